//! hippo as `hippo serve` runs it, inside the benchmark's process: a broker,
//! a worker consuming its queues and the REST API on a loopback port, and
//! for `memory.create` the memory services (models, memory store), built
//! from the library's own pieces (`hippo::config`, `hippo::worker`,
//! `hippo::api`).

use anyhow::Context;
use hippo::api::{AppState, KeyStore};
use hippo::broker::{BrokerConfig, SharedBroker, TaskMessage};
use hippo::config::{BrokerTarget, MemorySettings, open_registry};
use hippo::models::{ModelsConfig, default_models_dir};
use hippo::runtime::{PluginRegistry, RuntimeConfig};
use hippo::store::StoreConfig;
use hippo::worker::{Worker, WorkerConfig};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The API key the benchmark's clients present. The server listens on a
/// loopback port for the length of one run only.
pub const KEY: &str = "bench-api-key";

/// Which broker a stack runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded broker, in a temporary directory.
    Embedded,
    /// Redis at this URL (a database that holds no tasks).
    Redis(String),
}

impl Backend {
    /// The prefix of this backend's figures in the report.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Redis(_) => "redis",
        }
    }
}

/// A running broker, worker and API.
#[derive(Debug)]
pub struct Stack {
    /// The broker the worker and the API share.
    pub broker: SharedBroker,
    /// The plugins in service.
    pub registry: Arc<PluginRegistry>,
    /// `http://127.0.0.1:PORT` of the API.
    pub base_url: String,
    stop: watch::Sender<bool>,
    worker: JoinHandle<()>,
    api: JoinHandle<std::io::Result<()>>,
    /// The data directory (embedded broker, component cache).
    _data: tempfile::TempDir,
}

/// Resolves once `stop` is set.
async fn until(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

impl Stack {
    /// Opens the broker of `backend`, the memory services when `memory`
    /// (the models and an embedded memory store), loads the plugins of
    /// `plugins_dir`, and starts a worker of `concurrency` slots and the API.
    pub async fn start(
        backend: &Backend,
        plugins_dir: &Path,
        concurrency: usize,
        memory: bool,
    ) -> anyhow::Result<Stack> {
        let data = tempfile::tempdir()?;
        let target = match backend {
            Backend::Embedded => BrokerTarget::Embedded(data.path().join("broker")),
            Backend::Redis(url) => BrokerTarget::Redis(url.clone()),
        };
        let broker = target.open(BrokerConfig::default()).await?;
        let leftover: u64 = broker
            .queue_stats()
            .await?
            .iter()
            .map(|q| q.ready + q.reserved + q.scheduled)
            .sum();
        anyhow::ensure!(
            leftover == 0,
            "{target:?} already holds {leftover} tasks: give the benchmark an empty database"
        );
        // The benchmark is the one process on its broker, so the embedded
        // store serves it on Redis too (`MemorySettings::choose` gives a
        // Redis worker none, as other workers may share that Redis), and
        // both brokers run memory tasks on the same kind of store.
        let settings = MemorySettings {
            models: memory.then(|| ModelsConfig::default_in(&default_models_dir())),
            store: memory.then(|| StoreConfig::embedded(data.path())),
        };
        let (plugins, data_dir) = (plugins_dir.to_path_buf(), data.path().to_path_buf());
        let services_broker = broker.clone();
        let registry = tokio::task::spawn_blocking(move || {
            let services = settings.open(&services_broker)?;
            open_registry(RuntimeConfig::default(), services, &plugins, &data_dir)
        })
        .await??;
        let config = WorkerConfig {
            concurrency,
            min_concurrency: concurrency,
            ..WorkerConfig::default()
        };
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn({
            let worker = Worker::new(broker.clone(), registry.clone(), config);
            let stopped = stopped.clone();
            async move { worker.run(until(stopped)).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let mut key = KeyStore::admin_key("bench", KEY);
        // The benchmark's one key carries every client's load.
        key.rate_per_s = Some(1e9);
        let state = AppState {
            broker: broker.clone(),
            registry: registry.clone(),
            keys: Arc::new(KeyStore::new(vec![key])?),
        };
        let api = tokio::spawn(hippo::api::serve(listener, state, until(stopped)));
        Ok(Stack {
            broker,
            registry,
            base_url,
            stop,
            worker,
            api,
            _data: data,
        })
    }

    /// A message for `task` with `input`, on the queue the API would choose
    /// (the plugin's queue for the task).
    pub fn message(&self, task: &str, input: serde_json::Value) -> anyhow::Result<TaskMessage> {
        let plugin = self
            .registry
            .resolve(task)
            .with_context(|| format!("no loaded plugin offers {task}"))?;
        let spec = plugin.task(task).context("the plugin lost its task")?;
        Ok(TaskMessage::new(task, plugin.queue_for(spec), input))
    }

    /// Stops the API and the worker (which drains first).
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.worker.await?;
        self.api.await??;
        Ok(())
    }
}
