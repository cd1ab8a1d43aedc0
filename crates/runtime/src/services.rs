//! The host services a task may be granted beyond its own sandbox: the
//! embedding model, the reranker, the memory store, the key-value store and
//! their health probes. The runtime links them into every instance; each
//! plugin can import only the ones its manifest grants.
//!
//! Host calls run on the task's blocking thread. Services that are async
//! (the key-value store in the broker) are driven with the tokio runtime
//! handle captured when the services are built.

use hippo_kv::{KeyValue, KvQuota, KvSpace, PluginKv};
use hippo_models::{Embedder, Reranker, TextKind};
use hippo_store::VectorStore;
use std::sync::Arc;
use std::time::Duration;

/// One health probe's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeResult {
    /// `store`, `broker`, `embedder`, `reranker`.
    pub component: String,
    /// Whether it answered correctly.
    pub ok: bool,
    /// How long it took.
    pub latency_us: u64,
    /// What failed, or a short description of what answered.
    pub detail: String,
}

/// Everything the host offers tasks besides their sandbox. Missing services
/// make the calls that need them fail with a clear message.
#[derive(Clone, Default)]
pub struct HostServices {
    /// The embedding model.
    pub embeddings: Option<Arc<Embedder>>,
    /// The reranker, when one is configured.
    pub reranker: Option<Arc<Reranker>>,
    /// The memory store.
    pub store: Option<Arc<dyn VectorStore>>,
    /// The key-value store (the broker's).
    pub kv: Option<Arc<dyn KeyValue>>,
    /// Drives async services from the task's blocking thread.
    pub handle: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices")
            .field("embeddings", &self.embeddings.is_some())
            .field("reranker", &self.reranker.is_some())
            .field("store", &self.store.is_some())
            .field("kv", &self.kv.is_some())
            .finish()
    }
}

impl HostServices {
    /// The key-value store in `namespace`, held to `quota`, if there is one.
    fn plugin_kv(&self, namespace: &str, quota: KvQuota) -> Option<PluginKv> {
        let store = self.kv.clone()?;
        Some(PluginKv::new(store, namespace.into(), quota))
    }

    /// Runs `future` to completion from a blocking thread.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> Result<F::Output, String> {
        match &self.handle {
            Some(handle) => Ok(handle.block_on(future)),
            None => Err("no async runtime available to this host call".into()),
        }
    }

    /// Probes every service present and times each.
    pub fn probe(&self) -> Vec<ProbeResult> {
        let mut probes = Vec::new();
        if let Some(store) = &self.store {
            probes.push(timed("store", || {
                store
                    .probe()
                    .map(|latency| format!("answered in {} us", latency.as_micros()))
                    .map_err(|e| e.to_string())
            }));
        }
        if let Some(kv) = &self.kv {
            probes.push(timed("broker", || {
                self.block_on(kv.kv_get(KvSpace::Host, "health-probe"))?
                    .map(|_| "answered".to_string())
                    .map_err(|e| e.to_string())
            }));
        }
        if let Some(embeddings) = &self.embeddings {
            probes.push(timed("embedder", || {
                let vectors = embeddings
                    .embed_blocking(vec!["health probe".into()], TextKind::Query)
                    .map_err(|e| e.to_string())?;
                match vectors.first() {
                    Some(v) if v.len() == embeddings.dimension() => {
                        Ok(format!("{} dimensions", v.len()))
                    }
                    _ => Err("the embedder returned no vector of the expected size".into()),
                }
            }));
        }
        if let Some(reranker) = &self.reranker {
            probes.push(timed("reranker", || {
                reranker
                    .score_blocking("health probe", &["a passage".into()])
                    .map(|scores| format!("{} score", scores.len()))
                    .map_err(|e| e.to_string())
            }));
        }
        probes
    }
}

fn timed(component: &str, probe: impl FnOnce() -> Result<String, String>) -> ProbeResult {
    let started = std::time::Instant::now();
    let answer = probe();
    let latency = started.elapsed().min(Duration::from_secs(3600));
    let (ok, detail) = match answer {
        Ok(detail) => (true, detail),
        Err(error) => (false, error),
    };
    ProbeResult {
        component: component.into(),
        ok,
        latency_us: latency.as_micros() as u64,
        detail,
    }
}

/// Who a task acts for and what it may reach: set per task from its plugin
/// and input.
#[derive(Debug, Clone)]
pub(crate) struct TaskScope {
    pub(crate) services: Arc<HostServices>,
    /// The key-value store as the plugin sees it (when the host has one):
    /// bound to the namespace of its deployment (its file's name, which it
    /// cannot claim by declaring a name) and to its quota, so one plugin
    /// cannot read, clobber or crowd out another's keys.
    pub(crate) kv: Option<PluginKv>,
    /// The user the task acts for: every memory-store call is limited to it.
    pub(crate) user: Option<String>,
    /// Granted `memory-maintenance`: may act across users.
    pub(crate) maintenance: bool,
}

impl TaskScope {
    /// The scope of a task of `plugin` acting for `acting_for`, on a host
    /// whose operator caps key-value quotas at `kv_ceiling`.
    pub(crate) fn for_task(
        services: &Arc<HostServices>,
        plugin: &super::LoadedPlugin,
        acting_for: Option<&str>,
        kv_ceiling: KvQuota,
    ) -> TaskScope {
        use super::Capability;
        let grants = &plugin.manifest.grants;
        TaskScope {
            services: services.clone(),
            kv: services.plugin_kv(
                plugin.deployment.as_str(),
                plugin.manifest.kv.quota(kv_ceiling),
            ),
            user: acting_for.map(str::to_owned),
            maintenance: grants.contains(&Capability::MemoryMaintenance),
        }
    }

    /// The scope of a plugin's `describe` call: no user, no services' data.
    pub(crate) fn describe(services: &Arc<HostServices>) -> TaskScope {
        TaskScope {
            services: services.clone(),
            kv: services.plugin_kv(
                "",
                KvQuota {
                    max_keys: 0,
                    max_bytes: 0,
                },
            ),
            user: None,
            maintenance: false,
        }
    }
}
