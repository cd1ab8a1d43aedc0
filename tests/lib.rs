//! Shared setup of the end-to-end tests: they run real components, built
//! from `tests/guests/` and `examples/` by `scripts/build-guests` (which the
//! README's test command runs first), on a real wasmtime runtime.

pub mod serve;

use hippo::runtime::{LoadedPlugin, Manifest, Runtime, RuntimeConfig, TaskOutcome, TaskRequest};
use std::path::PathBuf;
use std::sync::Arc;

/// Where `scripts/build-guests` puts the components: `$HIPPO_GUESTS_DIR`,
/// else `$CARGO_TARGET_DIR/wasm32-wasip2/release`, else the default target
/// directory the scripts use.
pub fn guests_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HIPPO_GUESTS_DIR") {
        return PathBuf::from(dir);
    }
    target_dir().join("wasm32-wasip2/release")
}

/// The `hippo` binary that `scripts/test` builds before the tests run:
/// `$HIPPO_BIN`, else `release/hippo` in the target directory.
pub fn hippo_bin() -> PathBuf {
    let path = std::env::var_os("HIPPO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release/hippo"));
    assert!(
        path.is_file(),
        "{} is missing: run the suite with scripts/test, which builds it",
        path.display()
    );
    path
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/hippo/target")
        })
}

/// The bytes of a built guest component, e.g. `guest("hostile_guest")`.
///
/// # Panics
/// When the component was not built: a missing guest is a setup error,
/// never a reason to skip a test.
pub fn guest(name: &str) -> Vec<u8> {
    let path = guest_path(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "guest component {} is missing ({e}); run scripts/build-guests first",
            path.display()
        )
    })
}

/// Path of a built guest component.
pub fn guest_path(name: &str) -> PathBuf {
    guests_dir().join(format!("{name}.wasm"))
}

/// A runtime with the default configuration.
pub fn runtime() -> Arc<Runtime> {
    runtime_with(RuntimeConfig::default())
}

/// A runtime with `config`.
pub fn runtime_with(config: RuntimeConfig) -> Arc<Runtime> {
    Arc::new(Runtime::new(config).expect("runtime builds"))
}

/// The hostile test guest, loaded with the default manifest.
pub fn hostile(runtime: &Runtime) -> Arc<LoadedPlugin> {
    Arc::new(
        runtime
            .load(&guest("hostile_guest"), Manifest::default(), None, None)
            .expect("hostile guest loads"),
    )
}

/// Runs `task` with JSON `input` on the current thread.
pub fn run(
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    task: &str,
    input: serde_json::Value,
) -> TaskOutcome {
    runtime.execute_blocking(
        plugin,
        &TaskRequest::new(task, input.to_string().into_bytes()),
    )
}

/// The successful output of `outcome` as JSON.
///
/// # Panics
/// When the task failed.
pub fn output(outcome: &TaskOutcome) -> serde_json::Value {
    match &outcome.result {
        Ok(bytes) => serde_json::from_slice(bytes).expect("task output is JSON"),
        Err(failure) => panic!("task failed: {failure} (log: {:?})", outcome.log),
    }
}

/// Asserts that the runtime still runs an ordinary task after a hostile one.
pub fn assert_still_healthy(runtime: &Runtime, plugin: &LoadedPlugin) {
    let outcome = run(
        runtime,
        plugin,
        "test.echo",
        serde_json::json!({"still": "alive"}),
    );
    assert_eq!(output(&outcome), serde_json::json!({"still": "alive"}));
}

/// The Redis server the tests use: `HIPPO_TEST_REDIS_URL`, which
/// `scripts/test` sets after starting a private redis-server.
///
/// # Panics
/// When it is not set: Redis tests never skip silently.
pub fn redis_url() -> String {
    std::env::var("HIPPO_TEST_REDIS_URL")
        .expect("HIPPO_TEST_REDIS_URL is not set: run the suite with scripts/test, which starts redis-server")
}

/// A worker configured for tests: 5 s leases, heartbeats every 200 ms,
/// housekeeping every 50 ms, retries after 20-100 ms.
pub fn test_worker_config(
    name: impl Into<String>,
    concurrency: usize,
) -> hippo::worker::WorkerConfig {
    use std::time::Duration;
    hippo::worker::WorkerConfig {
        name: name.into(),
        concurrency,
        min_concurrency: concurrency,
        lease: Duration::from_secs(5),
        heartbeat_interval: Duration::from_millis(200),
        maintain_interval: Duration::from_millis(50),
        drain_timeout: Duration::from_secs(5),
        retry: hippo::worker::RetryPolicy {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        ..hippo::worker::WorkerConfig::default()
    }
}

/// A worker running in the background until [`stop`](Self::stop).
#[derive(Debug)]
pub struct RunningWorker {
    stop: Arc<tokio::sync::Notify>,
    running: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Runs `worker` on the current tokio runtime.
    pub fn start(worker: Arc<hippo::worker::Worker>) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let running = tokio::spawn({
            let stop = stop.clone();
            async move { worker.run(async move { stop.notified().await }).await }
        });
        RunningWorker { stop, running }
    }

    /// Shuts the worker down (it drains) and waits until it has stopped.
    pub async fn stop(self) {
        self.stop.notify_one();
        self.running.await.expect("the worker task ends cleanly");
    }
}

/// The memory services of a test process, all real: the models that
/// `scripts/fetch-models` provides (ONNX Runtime and all-MiniLM-L6-v2), an
/// embedded Qdrant store in `data_dir` (or the Qdrant server named by
/// `HIPPO_QDRANT_URL`, under collections of its own), and `broker` as the
/// key-value store. Call it from a blocking context inside a tokio runtime.
///
/// # Panics
/// When the models are missing (`scripts/test` fetches them first) or the
/// store does not open.
pub fn memory_services(
    broker: &hippo::broker::SharedBroker,
    data_dir: &std::path::Path,
) -> hippo::runtime::HostServices {
    memory_services_with(broker, data_dir, None)
}

/// A runtime with [`memory_services`] (from an async test: the services
/// load on a blocking thread).
pub async fn memory_runtime(
    broker: &hippo::broker::SharedBroker,
    data_dir: &std::path::Path,
) -> Arc<Runtime> {
    let services = tokio::task::spawn_blocking({
        let (broker, data_dir) = (broker.clone(), data_dir.to_path_buf());
        move || memory_services(&broker, &data_dir)
    })
    .await
    .expect("the memory services load");
    Arc::new(Runtime::with_services(RuntimeConfig::default(), services).expect("runtime builds"))
}

/// [`memory_services`] with the models of `models` (`None`: the defaults).
pub fn memory_services_with(
    broker: &hippo::broker::SharedBroker,
    data_dir: &std::path::Path,
    models: Option<hippo::models::ModelsConfig>,
) -> hippo::runtime::HostServices {
    let mut settings = hippo::config::MemorySettings::choose(
        false,
        &hippo::models::default_models_dir(),
        models,
        std::env::var("HIPPO_QDRANT_URL").ok().as_deref(),
        None,
        &hippo::config::BrokerTarget::Embedded(data_dir.join("broker")),
        data_dir,
    );
    if let Some(store) = &mut settings.store {
        // Each test gets collections of its own, also on a shared server.
        store.collection_prefix = format!("test_{}_", uuid::Uuid::new_v4().simple());
    }
    settings.open(broker).unwrap_or_else(|e| {
        panic!("memory services (run scripts/test, which fetches the models): {e}")
    })
}

/// Copies the memory and maintenance plugins (and their manifests) that
/// `scripts/build-guests` put in `plugins/` into `dir`.
pub fn copy_memory_plugins(dir: &std::path::Path) {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    for file in [
        "memory.wasm",
        "memory.toml",
        "maintenance.wasm",
        "maintenance.toml",
    ] {
        std::fs::copy(source.join(file), dir.join(file))
            .unwrap_or_else(|e| panic!("{file} (run scripts/build-guests first): {e}"));
    }
}

/// A test's temporary directories, removed when it passes and kept (named on
/// stderr) when it fails: a failing test's runtime shuts down after the test
/// body unwinds, and a store still flushing into a removed directory aborts
/// the whole test binary (qdrant-edge 0.7 panics while unwinding); kept, the
/// directories can also be inspected.
#[derive(Debug)]
pub struct TestDirs(pub Vec<tempfile::TempDir>);

impl Drop for TestDirs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for dir in self.0.drain(..) {
                eprintln!("kept the failed test's directory {}", dir.keep().display());
            }
        }
    }
}
