//! The models capability: the embedder and the optional cross-encoder
//! reranker, run in-process on ONNX Runtime and shared by every task.
//!
//! - [`config`]: what to load ([`ModelsConfig::default_in`] is what
//!   `scripts/fetch-models` provides);
//! - [`Embedder`]: texts to vectors, [`Reranker`]: (query, passage) to logits;
//!   each owns one session, fed by a batching thread that coalesces the
//!   concurrent requests of many tasks into one run.
//!
//! Depends on no other hippo crate: it knows nothing of tasks, plugins
//! or stores.

mod batcher;
pub mod config;
mod embedder;
mod encode;
mod error;
mod reranker;
mod session;

pub use batcher::BatchStats;
pub use config::{
    ModelConfig, ModelsConfig, Pooling, RerankerConfig, SessionConfig, TextKind, default_models_dir,
};
pub use embedder::Embedder;
pub use error::ModelError;
pub use reranker::Reranker;

use std::sync::Arc;

/// The loaded models.
#[derive(Debug, Clone)]
pub struct Models {
    /// The embedder.
    pub embedder: Arc<Embedder>,
    /// The reranker, when one is configured.
    pub reranker: Option<Arc<Reranker>>,
}

impl Models {
    /// Loads ONNX Runtime (once per process) and the configured models.
    ///
    /// # Errors
    /// A missing file (named, with the command that fetches it), a library or
    /// graph that does not load, or a graph whose inputs or outputs are not
    /// those of its kind of model.
    pub fn load(config: &ModelsConfig) -> Result<Models, ModelError> {
        config.check_files()?;
        let environment = session::environment(&config.runtime_library)?;
        let embedder = Arc::new(Embedder::load(&environment, &config.embedder)?);
        let reranker = match &config.reranker {
            Some(reranker) => Some(Arc::new(Reranker::load(&environment, reranker)?)),
            None => None,
        };
        Ok(Models { embedder, reranker })
    }
}
