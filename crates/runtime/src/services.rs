//! The host services a task may be granted beyond its own sandbox: the
//! runtime's own key-value store and health probes, and the capabilities
//! other crates plug in ([`HostCapability`]: the memory capability of
//! `hippo-memory` is one). A plugin's instances link only the interfaces
//! its manifest grants, and each capability keeps its own per-task state
//! in the task's store ([`CapabilityStates`]).
//!
//! Host calls run on the task's blocking thread. Services that are async
//! (the key-value store in the broker) are driven with the tokio runtime
//! handle captured when the services are built.

use super::host_api::GuestState;
use super::manifest::Capability;
use hippo_kv::{KeyValue, KvQuota, KvSpace, PluginKv};
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Linker;

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

/// Everything the host offers tasks besides their sandbox. A plugin
/// granted an interface that no service here provides still loads; its
/// calls to that interface trap, naming the import.
#[derive(Clone, Default)]
pub struct HostServices {
    /// The key-value store (the broker's).
    pub kv: Option<Arc<dyn KeyValue>>,
    /// Drives async services from the task's blocking thread.
    pub handle: Option<tokio::runtime::Handle>,
    /// The capabilities plugged in beside the runtime's own.
    pub capabilities: Vec<Arc<dyn HostCapability>>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let capabilities: Vec<_> = self.capabilities.iter().map(|c| c.name()).collect();
        f.debug_struct("HostServices")
            .field("kv", &self.kv.is_some())
            .field("capabilities", &capabilities)
            .finish()
    }
}

/// A host capability provided by another crate, as Spin's factors are: it
/// adds its interfaces to a plugin's linker when the plugin's manifest
/// grants one of them, and gives each task of such a plugin a state of its
/// own ([`HostCapability::task_state`]), which its host functions reach
/// through [`GuestState::capability`].
pub trait HostCapability: Any + Send + Sync {
    /// A short name, for logs and `Debug`.
    fn name(&self) -> &'static str;

    /// The grants it serves: interfaces it implements and scopes it reads.
    fn grants(&self) -> &'static [Capability];

    /// Adds the interfaces among `granted` that it implements to `linker`.
    fn add_to_linker(
        &self,
        linker: &mut Linker<GuestState>,
        granted: &BTreeSet<Capability>,
    ) -> wasmtime::Result<()>;

    /// The state one task starts with (see [`TaskGrants`]).
    fn task_state(&self, task: &TaskGrants<'_>) -> Box<dyn Any + Send>;

    /// Probes each of its services and times each (blocking).
    fn probe(&self) -> Vec<ProbeResult>;
}

/// What a task was granted and who it acts for, as a capability sees it
/// when it builds the task's state.
#[derive(Debug, Clone, Copy)]
pub struct TaskGrants<'a> {
    /// The plugin manifest's grants.
    pub granted: &'a BTreeSet<Capability>,
    /// The user the task's submission acts for, if any: decided once, when
    /// the task was submitted.
    pub acting_for: Option<&'a str>,
}

/// The per-task states of the capabilities a task was granted, each found
/// by its type.
#[derive(Default)]
pub(crate) struct CapabilityStates(Vec<Box<dyn Any + Send>>);

impl CapabilityStates {
    pub(crate) fn get_mut<S: Any + Send + Default>(&mut self) -> &mut S {
        let at = match self.0.iter().position(|s| s.is::<S>()) {
            Some(at) => at,
            // A capability's functions are linked only with its state; a
            // default one answers "not configured" all the same.
            None => {
                self.0.push(Box::new(S::default()));
                self.0.len() - 1
            }
        };
        self.0[at].downcast_mut().expect("found by its type")
    }
}

impl std::fmt::Debug for CapabilityStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CapabilityStates({})", self.0.len())
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

    /// The capability of type `C`, when one is plugged in.
    pub fn capability<C: HostCapability>(&self) -> Option<&C> {
        self.capabilities
            .iter()
            .find_map(|c| (c.as_ref() as &dyn Any).downcast_ref::<C>())
    }

    /// Probes every service present and times each.
    pub fn probe(&self) -> Vec<ProbeResult> {
        let mut probes = Vec::new();
        if let Some(kv) = &self.kv {
            probes.push(timed("broker", || {
                self.block_on(kv.kv_get(KvSpace::Host, "health-probe"))?
                    .map(|_| "answered".to_string())
                    .map_err(|e| e.to_string())
            }));
        }
        for capability in &self.capabilities {
            probes.extend(capability.probe());
        }
        probes
    }

    /// Adds the interfaces of the capabilities plugged in that `granted`
    /// names to `linker`.
    pub(crate) fn add_to_linker(
        &self,
        linker: &mut Linker<GuestState>,
        granted: &BTreeSet<Capability>,
    ) -> wasmtime::Result<()> {
        for capability in self.granted(granted) {
            capability.add_to_linker(linker, granted)?;
        }
        Ok(())
    }

    /// Every grant something on this host serves: the runtime's own
    /// interfaces and the capabilities plugged in.
    pub(crate) fn provided(&self) -> BTreeSet<Capability> {
        let own = super::OWN_INTERFACES.iter().map(|(c, _)| *c);
        let plugged = self
            .capabilities
            .iter()
            .flat_map(|c| c.grants().iter().copied());
        own.chain(plugged).collect()
    }

    /// The capabilities plugged in that serve one of `granted`.
    fn granted<'a>(
        &'a self,
        granted: &'a BTreeSet<Capability>,
    ) -> impl Iterator<Item = &'a Arc<dyn HostCapability>> {
        self.capabilities
            .iter()
            .filter(|c| c.grants().iter().any(|g| granted.contains(g)))
    }
}

/// Times `probe`, reporting it as `component`.
pub fn timed(component: &str, probe: impl FnOnce() -> Result<String, String>) -> ProbeResult {
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

/// What a task may reach beyond its sandbox: set per task from its plugin
/// and its submission.
#[derive(Debug)]
pub(crate) struct TaskScope {
    pub(crate) services: Arc<HostServices>,
    /// The key-value store as the plugin sees it (when the host has one):
    /// bound to the namespace of its deployment (its file's name, which it
    /// cannot claim by declaring a name) and to its quota, so one plugin
    /// cannot read, clobber or crowd out another's keys.
    pub(crate) kv: Option<PluginKv>,
    /// The states of the capabilities the plugin was granted.
    pub(crate) capabilities: CapabilityStates,
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
        let task = TaskGrants {
            granted: &plugin.manifest.grants,
            acting_for,
        };
        TaskScope {
            services: services.clone(),
            kv: services.plugin_kv(
                plugin.deployment.as_str(),
                plugin.manifest.kv.quota(kv_ceiling),
            ),
            capabilities: CapabilityStates(
                services
                    .granted(task.granted)
                    .map(|c| c.task_state(&task))
                    .collect(),
            ),
        }
    }

    /// The scope of a plugin's `describe` call: no user, no kv room, and
    /// the capabilities' default (empty) states.
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
            capabilities: CapabilityStates::default(),
        }
    }
}
