//! The WebAssembly task runtime: one wasmtime engine with the pooling
//! allocator, one epoch ticker, and a fresh sandboxed store per task.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hippo_runtime::{Manifest, Runtime, RuntimeConfig, TaskRequest};
//! let runtime = std::sync::Arc::new(Runtime::new(RuntimeConfig::default())?);
//! let wasm = std::fs::read("plugins/example-fib.wasm")?;
//! let plugin = std::sync::Arc::new(runtime.load(&wasm, Manifest::default(), None, None)?);
//! let outcome = runtime.execute(plugin, TaskRequest::new("example.fib", br#"{"n": 50}"#.to_vec())).await;
//! println!("{:?} in {} us", outcome.result, outcome.stats.wall_time_us);
//! # Ok(()) }
//! ```
//!
//! Owns the sandbox, the limits and their watchdog, plugins, their names
//! and the registry, and the generic host interfaces (log, progress,
//! deadline, kv, health). Depends on `hippo-task` and `hippo-kv`, never on
//! a broker, the scheduler, the worker, the API, the models, the vector
//! store or the memory types: other capabilities plug in through
//! [`HostCapability`] (`hippo-memory`), and each plugin links only what its
//! manifest grants.

mod cache;
mod engine;
mod host_api;
mod manifest;
mod names;
mod plugin;
mod registry;
mod service_api;
mod services;
mod task;
mod task_log;
mod watchdog;

pub use cache::{ArtifactCache, CacheStats};
pub use hippo_task::{ExecStats, LimitOverrides, Limits, Progress, Raise, TaskFailure};
pub use host_api::{CancelToken, GuestState, ProgressSink};
pub use manifest::{Capability, KvManifest, Manifest, TaskManifest};
pub use plugin::{
    EngineError, LoadError, LoadedPlugin, MAX_MANIFEST_BYTES, MAX_PLUGIN_BYTES, TaskSpec,
    sha256_hex,
};
pub use registry::{
    DeployError, PluginRegistry, PluginSummary, Rejection, ScanReport, WatchHandle,
    load_plugin_file,
};
pub use services::{HostCapability, HostServices, ProbeResult, TaskGrants, timed};
pub use task::{TaskOutcome, TaskRequest};
pub use task_log::{LogLevel, LogLine, LogSource, TaskLogRecord};

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

/// Adds one host interface to a plugin's linker.
type AddToLinker = fn(&mut Linker<GuestState>) -> wasmtime::Result<()>;

/// The runtime's own host interfaces, each linked into a plugin's
/// instances only when its manifest grants it.
pub(crate) const OWN_INTERFACES: [(Capability, AddToLinker); 5] = {
    use host_api::hippo::tasks::{deadline, health, kv, log, progress};
    [
        (Capability::Log, |l| {
            log::add_to_linker::<_, HasSelf<_>>(l, |s| s)
        }),
        (Capability::Progress, |l| {
            progress::add_to_linker::<_, HasSelf<_>>(l, |s| s)
        }),
        (Capability::Deadline, |l| {
            deadline::add_to_linker::<_, HasSelf<_>>(l, |s| s)
        }),
        (Capability::Kv, |l| {
            kv::add_to_linker::<_, HasSelf<_>>(l, |s| s)
        }),
        (Capability::Health, |l| {
            health::add_to_linker::<_, HasSelf<_>>(l, |s| s)
        }),
    ]
};

/// Settings of the runtime itself (per-task limits have their own layers).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Tasks that may run at once: the pooling allocator's slot count. Work
    /// beyond it waits for a slot instead of failing.
    pub max_concurrent_tasks: u32,
    /// Limits a task gets when nobody sets one.
    pub defaults: Limits,
    /// Limits nobody can exceed.
    pub ceilings: Limits,
    /// Meter fuel: needed for fuel limits and the fuel-used figure; costs a
    /// few percent of guest speed.
    pub fuel_metering: bool,
    /// How often the epoch ticker runs: the precision of hard time limits
    /// and how fast a revoked running task stops.
    pub epoch_tick: Duration,
    /// Largest wasm stack, so deep recursion traps instead of taking the host down.
    pub max_wasm_stack_bytes: usize,
    /// The most a plugin's manifest may give it in the key-value store.
    pub kv_ceiling: hippo_kv::KvQuota,
    /// Retries of a task whose submitter names none (the API's and the
    /// beat's submissions in this process); the reference's 3.
    pub default_max_retries: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            // Far above the cores of most hosts, because tasks also wait on
            // host calls (models, vector store); each slot reserves address
            // space only, not memory.
            max_concurrent_tasks: 64,
            defaults: Limits::DEFAULT,
            ceilings: Limits::CEILING,
            fuel_metering: true,
            // 5 ms keeps a revoked task's stop well under 100 ms while the
            // ticker costs nothing measurable.
            epoch_tick: Duration::from_millis(5),
            max_wasm_stack_bytes: 1 << 20,
            kv_ceiling: hippo_kv::KvQuota::CEILING,
            default_max_retries: 3,
        }
    }
}

/// Errors building the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Wasmtime refused the engine configuration (or the linker's).
    #[error("engine configuration: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The epoch ticker thread could not start.
    #[error("epoch ticker: {0}")]
    Ticker(#[from] std::io::Error),
}

/// The task runtime. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
    slots: Arc<Semaphore>,
    /// Pool slots kept for `describe` at load, so loading a plugin never
    /// waits behind running tasks.
    describe_slots: Arc<Semaphore>,
    services: Arc<HostServices>,
    ticker: engine::EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Instances of the pool kept for `describe` calls, beside the task slots.
pub(crate) const DESCRIBE_SLOTS: u32 = 2;

/// Fuel and time `describe` may take at load: it only builds a small record.
/// The hard limit holds whatever `describe` does, a WASI sleep included
/// (see [`watchdog`]), so no plugin holds up a load longer than this.
const DESCRIBE_LIMITS: LimitOverrides = LimitOverrides {
    soft_time_limit_ms: Some(2_000),
    hard_time_limit_ms: Some(2_000),
    fuel: Some(1_000_000_000),
    memory_bytes: Some(64 << 20),
    table_elements: None,
    output_bytes: None,
    log_bytes: Some(16 << 10),
};

impl Runtime {
    /// Builds the engine, links WASI and the host interfaces, and starts the
    /// epoch ticker. Tasks get no host services (models, stores): see
    /// [`Runtime::with_services`].
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        Self::with_services(config, HostServices::default())
    }

    /// Like [`Runtime::new`], with the host services granted plugins may call.
    pub fn with_services(
        config: RuntimeConfig,
        services: HostServices,
    ) -> Result<Self, RuntimeError> {
        let engine = engine::build_engine(&config).map_err(|e| RuntimeError::Engine(e.into()))?;
        let ticker = engine::EpochTicker::start(&engine, config.epoch_tick)?;
        let slots = Arc::new(Semaphore::new(config.max_concurrent_tasks.max(1) as usize));
        Ok(Runtime {
            engine,
            config,
            slots,
            describe_slots: Arc::new(Semaphore::new(DESCRIBE_SLOTS as usize)),
            services: Arc::new(services),
            ticker,
        })
    }

    /// The linker of a plugin granted `granted`: WASI (with nothing of the
    /// host behind it, see `task::new_store`) and, of the host interfaces,
    /// only the granted ones, so a plugin cannot reach an ungranted
    /// function even through a host bug in the import check.
    fn linker_for(&self, granted: &BTreeSet<Capability>) -> wasmtime::Result<Linker<GuestState>> {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        host_api::hippo::tasks::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        for (capability, add) in OWN_INTERFACES {
            if granted.contains(&capability) {
                add(&mut linker)?;
            }
        }
        self.services.add_to_linker(&mut linker, granted)?;
        Ok(linker)
    }

    /// The shared wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The runtime's settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The host services tasks may be granted.
    pub fn services(&self) -> &HostServices {
        &self.services
    }

    /// Opens a precompiled-component cache for this engine in `dir`.
    pub fn open_cache(&self, dir: impl AsRef<Path>) -> std::io::Result<ArtifactCache> {
        ArtifactCache::open(dir.as_ref(), &self.engine)
    }

    /// Validates, compiles (or takes from `cache`), links and describes a
    /// component. `source` is the file it comes from (not read here): its
    /// stem is the plugin's deployment name. Blocks: call it from a blocking
    /// context.
    pub fn load(
        &self,
        wasm: &[u8],
        manifest: Manifest,
        cache: Option<&ArtifactCache>,
        source: Option<&Path>,
    ) -> Result<LoadedPlugin, LoadError> {
        let wasm_sha256 = sha256_hex(wasm);
        let linker = self
            .linker_for(&manifest.grants)
            .map_err(|e| LoadError::Link(e.into()))?;
        let (pre, from_cache) = plugin::prepare(
            &self.engine,
            linker,
            &self.services.provided(),
            wasm,
            &wasm_sha256,
            &manifest,
            cache,
        )?;
        let _slot = futures::executor::block_on(self.describe_slots.clone().acquire_owned())
            .expect("the describe semaphore is never closed");
        let limits = DESCRIBE_LIMITS.resolve(&self.config.defaults, &self.config.ceilings);
        let log = task_log::TaskLog::new(limits.log_bytes);
        let request = TaskRequest::new("describe", Vec::new());
        let mut store = task::new_store(
            &self.engine,
            self.config.fuel_metering,
            &limits,
            &log,
            &request,
            services::TaskScope::describe(&self.services),
        );
        let watchdog = self
            .ticker
            .watches()
            .watchdog(store.data().deadlines.hard, request.cancel.clone());
        let info = block_on_here(task::until_stopped(watchdog, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .hippo_tasks_plugin()
                .call_describe(&mut store)
                .await
        }))
        .map_err(|interruption| describe_interrupted(interruption, &limits))?
        .map_err(|e| match e.downcast_ref::<host_api::Interruption>() {
            Some(interruption) => describe_interrupted(*interruption, &limits),
            None => LoadError::Describe(describe_failure(&e)),
        })?;
        let (name, version, tasks) = plugin::tasks_from_describe(info)?;
        let deployment = source
            .and_then(Path::file_stem)
            .map_or_else(|| name.clone(), |stem| stem.to_string_lossy().into_owned());
        Ok(LoadedPlugin {
            deployment,
            name,
            version,
            tasks,
            manifest,
            wasm_sha256,
            source: source.map(Path::to_path_buf),
            from_cache,
            pre,
        })
    }

    /// The limits a task of `plugin` gets when its submission sets none:
    /// the manifest's (the operator's file, up to the ceilings), then
    /// `describe`'s (the plugin's own word, which may only lower the
    /// defaults), then the defaults.
    pub fn plugin_limits(&self, plugin: &LoadedPlugin, spec: &TaskSpec) -> Limits {
        let defaults = &self.config.defaults;
        plugin
            .manifest
            .limits_for(&spec.name)
            .or(spec.limits.at_most(defaults))
            .resolve(defaults, &self.config.ceilings)
    }

    /// The limits a submission's `request` runs with on `plugin`: its own,
    /// then the [`plugin_limits`](Self::plugin_limits), within the
    /// ceilings. Unless `may_raise` (its submitter was authorised to raise
    /// limits), the submission's layer is first lowered to the plugin
    /// limits: it can only lower them.
    pub fn resolve_limits(
        &self,
        plugin: &LoadedPlugin,
        spec: &TaskSpec,
        request: &LimitOverrides,
        may_raise: bool,
    ) -> Limits {
        let base = self.plugin_limits(plugin, spec);
        let submitted = if may_raise {
            *request
        } else {
            request.at_most(&base)
        };
        submitted
            .or(base.into())
            .resolve(&self.config.defaults, &self.config.ceilings)
    }

    /// Runs one task once a pool slot is free.
    ///
    /// The guest runs right here, on the async runtime: it yields at every
    /// epoch tick, and every host call that can wait is a future, so it
    /// shares the thread like any future and a short task costs no hand-over
    /// to another thread and back (about a third of a worker's CPU per no-op
    /// task, `bench/RESULTS.md`). On a current-thread runtime, whose one
    /// thread the guest would take, it runs on a blocking thread instead.
    pub async fn execute(
        self: &Arc<Self>,
        plugin: Arc<LoadedPlugin>,
        request: TaskRequest,
    ) -> TaskOutcome {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed");
        let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
        if multi_thread {
            let outcome = self.run_in_slot(&plugin, &request).await;
            drop(slot);
            return outcome;
        }
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = block_on_here(runtime.run_in_slot(&plugin, &request));
            drop(slot);
            outcome
        })
        .await
        .unwrap_or_else(|join_error| std::panic::resume_unwind(join_error.into_panic()))
    }

    /// Runs one task on the current thread once a pool slot is free. For
    /// the CLI, benchmarks and callers that are already on a blocking thread.
    pub fn execute_blocking(&self, plugin: &LoadedPlugin, request: &TaskRequest) -> TaskOutcome {
        let _slot = self.acquire_slot_blocking();
        block_on_here(self.run_in_slot(plugin, request))
    }

    async fn run_in_slot(&self, plugin: &LoadedPlugin, request: &TaskRequest) -> TaskOutcome {
        let Some(spec) = plugin.task(&request.task_name) else {
            let limits = request
                .limits
                .resolve(&self.config.defaults, &self.config.ceilings);
            return TaskOutcome {
                result: Err(TaskFailure::UnknownTask {
                    task: request.task_name.clone(),
                }),
                stats: ExecStats {
                    fuel_used: None,
                    peak_memory_bytes: 0,
                    wall_time_us: 0,
                    soft_limit_passed: false,
                },
                limits,
                log: TaskLogRecord::default(),
                progress: None,
                plugin_version: plugin.version.clone(),
            };
        };
        let limits = self.resolve_limits(plugin, spec, &request.limits, request.may_raise_limits);
        let scope = services::TaskScope::for_task(
            &self.services,
            plugin,
            request.acting_for.as_deref(),
            self.config.kv_ceiling,
        );
        task::run(
            &self.engine,
            self.config.fuel_metering,
            self.ticker.watches(),
            plugin,
            limits,
            request,
            scope,
        )
        .await
    }

    fn acquire_slot_blocking(&self) -> tokio::sync::OwnedSemaphorePermit {
        futures::executor::block_on(self.slots.clone().acquire_owned())
            .expect("the slot semaphore is never closed")
    }
}

/// `describe` ran past its limit, in wasm or waiting outside it.
fn describe_interrupted(interruption: host_api::Interruption, limits: &Limits) -> LoadError {
    LoadError::Describe(format!(
        "{interruption} ({} ms); describe must only return the plugin's record",
        limits.hard_time_limit.as_millis()
    ))
}

/// Why `describe` failed, in a line: the trap's words, not its backtrace.
fn describe_failure(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{:#}", error.root_cause()),
    }
}

/// Runs a guest's future to completion on the current thread. Not through
/// Tokio's `block_on`, which refuses to run on a thread of a Tokio runtime,
/// as a server's start-up scanning its plugins does. A Tokio context is
/// present all the same (the ambient one, or WASI's own), for WASI's clocks.
///
/// The guest keeps the thread to itself: its epoch ticks do not yield (see
/// [`host_api::on_epoch_tick`]). Tokio's `yield_now` would even hang it
/// when this thread is one of Tokio's workers, as a server's start-up
/// scanning its plugins is: the wake-up waits for that worker's next turn,
/// which never comes while this call blocks it.
fn block_on_here<F: std::future::Future>(future: F) -> F::Output {
    let _entered = BlockingExecutor::enter();
    wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| futures::executor::block_on(future))
}

thread_local! {
    /// Whether this thread runs a guest in [`block_on_here`].
    static IN_BLOCK_ON_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as inside [`block_on_here`] until dropped.
struct BlockingExecutor {
    outer: bool,
}

impl BlockingExecutor {
    fn enter() -> Self {
        BlockingExecutor {
            outer: IN_BLOCK_ON_HERE.replace(true),
        }
    }

    /// Whether the current thread runs a guest in [`block_on_here`].
    fn is_current() -> bool {
        IN_BLOCK_ON_HERE.get()
    }
}

impl Drop for BlockingExecutor {
    fn drop(&mut self) {
        IN_BLOCK_ON_HERE.set(self.outer);
    }
}
