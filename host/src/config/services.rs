//! Which memory services a process runs (models, memory store, key-value
//! store) and building them into the [`HostServices`] tasks are granted.
//!
//! The store is chosen so memories are never split between processes: a
//! Qdrant server when `HIPPO_QDRANT_URL` (or `--qdrant-url`) names one;
//! otherwise the embedded store under the data directory, but only for a
//! process on the embedded broker (`hippo serve`), which is the one process
//! of its deployment. Workers on a shared Redis without a Qdrant server get
//! no store, and memory tasks there fail saying so.

use super::{BrokerTarget, ConfigError};
use crate::broker::SharedBroker;
use crate::memory::MemoryServices;
use crate::models::{Models, ModelsConfig};
use crate::runtime::HostServices;
use crate::store::{StoreConfig, VectorStore};
use std::path::Path;
use std::sync::Arc;

/// The memory services a process is asked to run.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySettings {
    /// The models to load (by default what `scripts/fetch-models` put in
    /// the models folder); `None`: run no models (and so no memory tasks).
    pub models: Option<ModelsConfig>,
    /// The memory store, if any.
    pub store: Option<StoreConfig>,
}

impl MemorySettings {
    /// The settings of a process: the models `models` describes (or the
    /// defaults in `models_dir`) unless `no_memory`, and the store rule of
    /// the module docs.
    pub fn choose(
        no_memory: bool,
        models_dir: &Path,
        models: Option<ModelsConfig>,
        qdrant_url: Option<&str>,
        qdrant_api_key: Option<String>,
        broker: &BrokerTarget,
        data_dir: &Path,
    ) -> MemorySettings {
        if no_memory {
            return MemorySettings {
                models: None,
                store: None,
            };
        }
        let store = match (qdrant_url.map(str::trim), broker) {
            (Some(url), _) if !url.is_empty() => {
                Some(StoreConfig::server(url.to_string(), qdrant_api_key))
            }
            (_, BrokerTarget::Embedded(_)) => Some(StoreConfig::embedded(data_dir)),
            (_, BrokerTarget::Redis(_)) => None,
        };
        MemorySettings {
            models: Some(models.unwrap_or_else(|| ModelsConfig::default_in(models_dir))),
            store,
        }
    }

    /// Loads the models, opens the store (sized to the embedder) and makes
    /// the broker the key-value store. Blocks (model loading, store open):
    /// call it from a blocking context inside a tokio runtime.
    pub fn open(&self, broker: &SharedBroker) -> Result<HostServices, ConfigError> {
        let mut services = HostServices {
            kv: Some(broker.clone() as Arc<dyn crate::broker::KeyValue>),
            handle: tokio::runtime::Handle::try_current().ok(),
            ..HostServices::default()
        };
        let Some(models) = &self.models else {
            return Ok(services);
        };
        let mut memory = MemoryServices::default();
        let models = Models::load(models)?;
        if let Some(store) = &self.store {
            let config = StoreConfig {
                dimension: models.embedder.dimension(),
                ..store.clone()
            };
            let store: Arc<dyn VectorStore> = crate::store::open(&config)?;
            memory.store = Some(store);
        } else {
            tracing::warn!(
                "no memory store: this worker shares a Redis broker, so set HIPPO_QDRANT_URL \
                 to a Qdrant server for memory tasks (the embedded store serves only `hippo serve` \
                 on the embedded broker)"
            );
        }
        memory.embeddings = Some(models.embedder);
        memory.reranker = models.reranker;
        services.capabilities.push(Arc::new(memory));
        Ok(services)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreBackend;

    #[test]
    fn memories_are_never_split_between_processes() {
        let data = Path::new("/data");
        let models = Path::new("/models");
        let embedded = BrokerTarget::Embedded(data.join("broker"));
        let redis = BrokerTarget::Redis("redis://127.0.0.1:6379/0".into());
        let serve = MemorySettings::choose(false, models, None, None, None, &embedded, data);
        assert!(matches!(
            serve.store.map(|s| s.backend),
            Some(StoreBackend::Embedded { .. })
        ));
        let worker = MemorySettings::choose(false, models, None, None, None, &redis, data);
        assert_eq!(worker.store, None, "a Redis worker has no embedded store");
        assert_eq!(worker.models, Some(ModelsConfig::default_in(models)));
        let scaled = MemorySettings::choose(
            false,
            models,
            None,
            Some("http://q:6334"),
            None,
            &redis,
            data,
        );
        assert!(matches!(
            scaled.store.map(|s| s.backend),
            Some(StoreBackend::Server { .. })
        ));
        let off = MemorySettings::choose(
            true,
            models,
            None,
            Some("http://q:6334"),
            None,
            &embedded,
            data,
        );
        assert_eq!((off.models, off.store), (None, None));
    }
}
