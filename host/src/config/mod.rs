//! Service settings: where data and plugins live, which broker to use, and
//! how to build the pieces (runtime, plugin registry, broker) from them.
//!
//! Every setting has an environment variable; the reference stack's
//! `CELERY_BROKER_URL` is accepted as an alias of `HIPPO_BROKER_URL`, and
//! its other settings are honoured or refused by name ([`ReferenceSettings`]), so
//! an existing `.env` keeps working or says why not.

mod reference;
mod services;

pub use reference::{ReferenceSettingError, ReferenceSettings};
pub use services::MemorySettings;

use crate::broker::{BrokerConfig, BrokerError, EmbeddedBroker, RedisBroker, SharedBroker};
use crate::runtime::{HostServices, PluginRegistry, Runtime, RuntimeConfig, RuntimeError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The broker URL from the environment: `HIPPO_BROKER_URL`, else the
/// reference's `CELERY_BROKER_URL`.
pub fn broker_url_from_env() -> Option<String> {
    ["HIPPO_BROKER_URL", "CELERY_BROKER_URL"]
        .into_iter()
        .find_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        })
}

/// Which broker a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerTarget {
    /// The embedded broker in this directory (`embedded` or `embedded:///path`).
    Embedded(PathBuf),
    /// A Redis server (`redis://host:port/db`).
    Redis(String),
}

/// Errors turning settings into running parts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A broker URL that is neither `embedded...` nor `redis://...`.
    #[error(
        "unsupported broker URL {0:?}: use `embedded`, `embedded:///path` or `redis://host:port/db`"
    )]
    BrokerUrl(String),
    /// The broker could not be opened.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The runtime could not be built.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The models could not be loaded (a missing file names the command that fetches it).
    #[error("models: {0}")]
    Models(#[from] crate::models::ModelError),
    /// The memory store could not be opened.
    #[error("memory store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A directory could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl BrokerTarget {
    /// Parses a broker URL; `None` means the embedded broker under `data_dir`.
    pub fn parse(url: Option<&str>, data_dir: &Path) -> Result<BrokerTarget, ConfigError> {
        match url.map(str::trim) {
            None | Some("") | Some("embedded") => {
                Ok(BrokerTarget::Embedded(data_dir.join("broker")))
            }
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Ok(BrokerTarget::Redis(url.to_string()))
            }
            Some(url) => match url.strip_prefix("embedded://") {
                Some(path) if !path.is_empty() => Ok(BrokerTarget::Embedded(PathBuf::from(path))),
                _ => Err(ConfigError::BrokerUrl(url.to_string())),
            },
        }
    }

    /// Opens the broker.
    pub async fn open(&self, config: BrokerConfig) -> Result<SharedBroker, ConfigError> {
        Ok(match self {
            BrokerTarget::Embedded(dir) => Arc::new(EmbeddedBroker::open(dir, config).await?),
            BrokerTarget::Redis(url) => Arc::new(RedisBroker::connect(url, config).await?),
        })
    }
}

/// Builds the runtime (with the host `services` granted plugins may call)
/// and a plugin registry over `plugins_dir`, with the precompiled cache
/// under `data_dir`, and loads what the folder holds.
pub fn open_registry(
    runtime: RuntimeConfig,
    services: HostServices,
    plugins_dir: &Path,
    data_dir: &Path,
) -> Result<Arc<PluginRegistry>, ConfigError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { path, source }
    };
    std::fs::create_dir_all(plugins_dir).map_err(io(plugins_dir))?;
    let runtime = Arc::new(Runtime::with_services(runtime, services)?);
    let cache_dir = data_dir.join("cache").join("components");
    let cache = runtime.open_cache(&cache_dir).map_err(io(&cache_dir))?;
    let registry = Arc::new(PluginRegistry::new(runtime, plugins_dir, Some(cache)));
    let report = registry.scan().map_err(io(plugins_dir))?;
    tracing::info!(
        dir = %plugins_dir.display(),
        loaded = report.loaded.len(),
        refused = report.rejected.len(),
        "plugins scanned"
    );
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let data = Path::new("/data");
        assert_eq!(
            BrokerTarget::parse(None, data).unwrap(),
            BrokerTarget::Embedded("/data/broker".into())
        );
        assert_eq!(
            BrokerTarget::parse(Some("embedded"), data).unwrap(),
            BrokerTarget::Embedded("/data/broker".into())
        );
        assert_eq!(
            BrokerTarget::parse(Some("embedded:///tmp/b"), data).unwrap(),
            BrokerTarget::Embedded("/tmp/b".into())
        );
        assert_eq!(
            BrokerTarget::parse(Some("redis://127.0.0.1:6379/1"), data).unwrap(),
            BrokerTarget::Redis("redis://127.0.0.1:6379/1".into())
        );
        assert!(BrokerTarget::parse(Some("amqp://rabbit"), data).is_err());
    }
}
