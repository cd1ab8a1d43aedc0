//! The memory host capability: the `embeddings`, `rerank` and
//! `memory-store` interfaces of the `hippo:tasks` package (its
//! `memory-host` world), over the models (`hippo-models`) and the vector
//! store (`hippo-store`), and the rule that keeps users apart: a task sees
//! and changes only the memories of the user its submission acts for,
//! unless its plugin is granted `memory-maintenance`.
//!
//! It plugs into the runtime as a [`HostCapability`]: linked into a
//! plugin's instances only when its manifest grants one of its interfaces,
//! with a [`MemoryTask`] state of its own per task. Depends on the runtime,
//! the models and the store; never on a broker, the worker or the API.
//!
//! ```no_run
//! # fn demo(embedder: std::sync::Arc<hippo_models::Embedder>) -> Result<(), Box<dyn std::error::Error>> {
//! use hippo_memory::MemoryServices;
//! use hippo_runtime::{HostServices, Runtime, RuntimeConfig};
//! let memory = MemoryServices { embeddings: Some(embedder), ..MemoryServices::default() };
//! let services = HostServices {
//!     capabilities: vec![std::sync::Arc::new(memory)],
//!     ..HostServices::default()
//! };
//! let runtime = Runtime::with_services(RuntimeConfig::default(), services)?;
//! # Ok(()) }
//! ```

mod models_api;
mod store_api;

use hippo_models::{Embedder, Reranker, TextKind};
use hippo_runtime::{
    Capability, GuestState, HostCapability, HostServices, ProbeResult, TaskGrants, timed,
};
use hippo_store::VectorStore;
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// The generated bindings of the `memory-host` world.
mod bindings {
    wasmtime::component::bindgen!({
        world: "memory-host",
        path: "../../tasks-wit/wit",
        // Every call that can wait is a future: a guest waiting on a model
        // batch or the store is suspended, not blocking a thread, so its
        // watchdog can stop it at its deadline or on revocation.
        imports: {
            "hippo:tasks/embeddings.embed": async,
            "hippo:tasks/rerank.score": async,
            "hippo:tasks/memory-store": async,
        },
    });
}

use bindings::hippo::tasks::{embeddings, memory_store, rerank};

/// The models and the store behind the memory capability. Each is optional:
/// a call that needs a missing one fails with a clear message.
#[derive(Clone, Default)]
pub struct MemoryServices {
    /// The embedding model.
    pub embeddings: Option<Arc<Embedder>>,
    /// The reranker, when one is configured.
    pub reranker: Option<Arc<Reranker>>,
    /// The memory store.
    pub store: Option<Arc<dyn VectorStore>>,
}

impl MemoryServices {
    /// The memory capability plugged into `services`, if any.
    pub fn of(services: &HostServices) -> Option<&MemoryServices> {
        services.capability()
    }
}

impl std::fmt::Debug for MemoryServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryServices")
            .field("embeddings", &self.embeddings.is_some())
            .field("reranker", &self.reranker.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}

/// One task's view of the memory capability: the services, the user it
/// acts for and whether it may act across users.
#[derive(Debug, Default)]
pub struct MemoryTask {
    services: MemoryServices,
    /// The user the task acts for: every memory-store call is limited to it.
    user: Option<String>,
    /// Granted `memory-maintenance`: may act across users.
    maintenance: bool,
}

/// The grants the memory capability serves.
const GRANTS: [Capability; 4] = [
    Capability::Embeddings,
    Capability::Rerank,
    Capability::MemoryStore,
    Capability::MemoryMaintenance,
];

fn task_state(state: &mut GuestState) -> &mut MemoryTask {
    state.capability()
}

impl HostCapability for MemoryServices {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn grants(&self) -> &'static [Capability] {
        &GRANTS
    }

    fn add_to_linker(
        &self,
        linker: &mut Linker<GuestState>,
        granted: &BTreeSet<Capability>,
    ) -> wasmtime::Result<()> {
        if granted.contains(&Capability::Embeddings) {
            embeddings::add_to_linker::<_, HasSelf<MemoryTask>>(linker, task_state)?;
        }
        if granted.contains(&Capability::Rerank) {
            rerank::add_to_linker::<_, HasSelf<MemoryTask>>(linker, task_state)?;
        }
        if granted.contains(&Capability::MemoryStore) {
            memory_store::add_to_linker::<_, HasSelf<MemoryTask>>(linker, task_state)?;
        }
        Ok(())
    }

    fn task_state(&self, task: &TaskGrants<'_>) -> Box<dyn Any + Send> {
        Box::new(MemoryTask {
            services: self.clone(),
            user: task.acting_for.map(str::to_owned),
            maintenance: task.granted.contains(&Capability::MemoryMaintenance),
        })
    }

    fn probe(&self) -> Vec<ProbeResult> {
        let mut probes = Vec::new();
        if let Some(store) = &self.store {
            probes.push(timed("store", || {
                store
                    .probe()
                    .map(|latency| format!("answered in {} us", latency.as_micros()))
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
