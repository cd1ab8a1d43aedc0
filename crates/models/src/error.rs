//! The errors of the models capability.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a model could not be loaded or could not run.
///
/// Cheap to clone: one failed batch answers every caller whose texts were in it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file the configuration names is not there; `hint` says how to get it.
    #[error("{what} is missing: {} ({hint})", path.display())]
    MissingFile {
        /// What the file is, e.g. "the embedder's ONNX graph".
        what: &'static str,
        /// The path the configuration gives.
        path: PathBuf,
        /// How to get it, e.g. "run scripts/fetch-models".
        hint: String,
    },
    /// The ONNX Runtime shared library could not be loaded, or a different one
    /// is already loaded in this process (there can be only one).
    #[error("ONNX Runtime: {message}")]
    Runtime {
        /// What failed, ending with its cause's text when it has one.
        message: String,
        /// The cause (ONNX Runtime's error, an I/O error), shared so the
        /// error stays `Clone`.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The tokenizer file could not be read or parsed, or failed on a text.
    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer {
        /// The tokenizer.json in question.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The ONNX graph could not be loaded, does not have the inputs and outputs
    /// of its kind of model, or failed to run.
    #[error("model {model}: {message}")]
    Graph {
        /// The model's name (its configured name or the graph's file name).
        model: String,
        /// What went wrong.
        message: String,
    },
    /// The configuration is inconsistent (e.g. a maximum length of 0).
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// The model's batching thread is gone (it panicked); no more requests can run.
    #[error("model {0} has stopped")]
    Stopped(String),
}

impl ModelError {
    /// A [`ModelError::Runtime`] caused by `cause` while doing `context`
    /// (`None`: the cause says it all).
    pub(crate) fn runtime(
        context: Option<&str>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ModelError::Runtime {
            message: match context {
                Some(context) => format!("{context}: {cause}"),
                None => cause.to_string(),
            },
            source: Some(Arc::new(cause)),
        }
    }
}
