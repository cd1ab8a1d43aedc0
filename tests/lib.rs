//! Shared setup of hippo's end-to-end tests of the whole host (one test
//! binary, `all.rs`): workers, the memory services and plugins, on top of
//! what every crate's tests share ([`hippo_test_support`], re-exported).

pub use hippo_test_support::*;

pub mod processes;

use hippo::runtime::{Runtime, RuntimeConfig};
use std::path::PathBuf;
use std::sync::Arc;

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

/// The broker's whole event log, oldest first, read a page at a time.
pub async fn all_events(broker: &dyn hippo::broker::Broker) -> Vec<hippo::broker::Event> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = broker.events(after, 10_000).await.unwrap();
        let Some(last) = page.last() else {
            return events;
        };
        after = Some(last.seq);
        events.extend(page);
    }
}

/// The fire times (Unix ms) of the tasks submitted for entry `name`, from
/// the broker's event log, sorted; one per task.
pub async fn fired_slots(broker: &dyn hippo::broker::Broker, name: &str) -> Vec<u64> {
    let ids: std::collections::BTreeSet<String> = all_events(broker)
        .await
        .into_iter()
        .filter(|e| e.state == hippo::broker::TaskState::Pending)
        .map(|e| e.task_id)
        .collect();
    let prefix = format!("schedule:{name}:");
    let mut slots = Vec::new();
    for id in ids {
        let record = broker.task(&id).await.unwrap().expect("the task is kept");
        if let Some(slot) = record
            .message
            .idempotency_key
            .as_deref()
            .and_then(|k| k.strip_prefix(&prefix))
        {
            // The slot is the key's next segment (whatever may follow it).
            let slot = slot.split(':').next().unwrap();
            slots.push(slot.parse::<u64>().unwrap());
        }
    }
    slots.sort_unstable();
    slots
}
