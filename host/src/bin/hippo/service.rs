//! `hippo serve` and `hippo worker`: the long-running processes.

use clap::Args;
use hippo::api::{AppState, KeyStore};
use hippo::broker::{BrokerConfig, HistoryRetention, JournalSync, KvQuota};
use hippo::config::{
    BrokerTarget, MemorySettings, ReferenceSettings, broker_url_from_env, open_registry,
};
use hippo::runtime::{Limits, PluginRegistry, RuntimeConfig};
use hippo::scheduler::{BeatReport, ScheduleTable, Scheduler};
use hippo::worker::{RetryPolicy, Worker, WorkerConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where things live and which broker to use; shared by every command that
/// talks to a broker.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Broker: `embedded` (default; under the data directory) or
    /// `redis://host:port/db`. Also from HIPPO_BROKER_URL or CELERY_BROKER_URL.
    #[arg(long)]
    pub broker: Option<String>,
    /// Data directory (embedded broker, precompiled-component cache).
    #[arg(long, env = "HIPPO_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Seconds a finished task's result is kept.
    #[arg(long, env = "HIPPO_RESULT_EXPIRES", default_value_t = 3600)]
    pub result_expires: u64,
    /// Seconds the task history keeps a finished task (and its logs).
    #[arg(long, env = "HIPPO_HISTORY_MAX_AGE", default_value_t = 7 * 24 * 3600)]
    pub history_max_age: u64,
    /// Finished tasks the history keeps at most (the oldest go first).
    #[arg(long, env = "HIPPO_HISTORY_MAX_TASKS", default_value_t = 1_000_000)]
    pub history_max_tasks: u64,
    /// When the embedded broker syncs its journal: `every-second` (default;
    /// a machine crash may lose the last second, a process crash nothing)
    /// or `always` (before answering each write).
    #[arg(long, env = "HIPPO_BROKER_SYNC", default_value = "every-second")]
    pub broker_sync: JournalSync,
}

impl Connection {
    pub fn target(&self) -> anyhow::Result<BrokerTarget> {
        let url = self.broker.clone().or_else(broker_url_from_env);
        Ok(BrokerTarget::parse(url.as_deref(), &self.data_dir)?)
    }

    /// The reference stack's settings in the environment, checked against
    /// this broker (refused by name when hippo cannot honour them) and
    /// logged.
    pub fn reference_settings(&self) -> anyhow::Result<ReferenceSettings> {
        let url = self.broker.clone().or_else(broker_url_from_env);
        let redis = url.filter(|u| u.starts_with("redis://"));
        let settings = ReferenceSettings::from_env(redis.as_deref())?;
        settings.log();
        Ok(settings)
    }

    pub fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            result_expires: Duration::from_secs(self.result_expires),
            history: HistoryRetention {
                max_age: Duration::from_secs(self.history_max_age),
                max_tasks: self.history_max_tasks,
            },
            journal_sync: self.broker_sync,
            ..BrokerConfig::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The plugins folder (watched: drop a `.wasm` in to deploy it).
    #[arg(long, env = "HIPPO_PLUGINS_DIR", default_value = "plugins")]
    pub plugins: PathBuf,
    /// Queues to consume, in priority order (comma-separated).
    #[arg(long, short = 'Q', value_delimiter = ',', env = "HIPPO_WORKER_QUEUES")]
    pub queues: Vec<String>,
    /// Tasks run at once. Also CELERY_WORKER_CONCURRENCY.
    #[arg(long, short = 'c', env = "HIPPO_WORKER_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Tasks reserved ahead per slot. Also CELERY_WORKER_PREFETCH_MULTIPLIER.
    #[arg(
        long = "prefetch",
        alias = "prefetch-multiplier",
        env = "HIPPO_WORKER_PREFETCH_MULTIPLIER"
    )]
    pub prefetch: Option<usize>,
    /// Autoscale as MAX,MIN (e.g. 10,3): grow while work waits, shrink when idle.
    #[arg(long, value_parser = parse_autoscale)]
    pub autoscale: Option<(usize, usize)>,
    /// Seconds to let running tasks finish on SIGTERM before handing them back.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout: u64,
    /// Lease of a task, in seconds: how soon a dead worker's task runs again.
    #[arg(long, default_value_t = 10)]
    pub lease: u64,
    /// Tasks the runtime may run at once across the process (pool slots).
    #[arg(long, default_value_t = RuntimeConfig::default().max_concurrent_tasks)]
    pub max_instances: u32,
    /// Seconds a task runs before it is told to wrap up (the guest sees its
    /// deadline pass), unless its manifest or submission says otherwise.
    #[arg(long, env = "HIPPO_SOFT_TIME_LIMIT", default_value_t = Limits::DEFAULT.soft_time_limit.as_secs_f64())]
    pub soft_time_limit: f64,
    /// Seconds a task runs before it is stopped, unless its manifest or
    /// submission says otherwise.
    #[arg(long = "time-limit", alias = "hard-time-limit", env = "HIPPO_TIME_LIMIT", default_value_t = Limits::DEFAULT.hard_time_limit.as_secs_f64())]
    pub hard_time_limit: f64,
    /// Retries of a task whose submitter names none (submissions through
    /// this process's API and beat).
    #[arg(long, env = "HIPPO_MAX_RETRIES", default_value_t = RuntimeConfig::default().default_max_retries)]
    pub max_retries: u32,
    /// Seconds before the first retry of a failed task that asks for no
    /// delay of its own; each next retry waits up to twice as long (half
    /// of it random), up to --retry-backoff-max.
    #[arg(long, env = "HIPPO_RETRY_BACKOFF", default_value_t = RetryPolicy::default().base.as_secs_f64())]
    pub retry_backoff: f64,
    /// The longest wait before a retry, seconds.
    #[arg(long, env = "HIPPO_RETRY_BACKOFF_MAX", default_value_t = RetryPolicy::default().cap.as_secs_f64())]
    pub retry_backoff_max: f64,
    /// The most keys a plugin's manifest may give it in the key-value store.
    #[arg(long, env = "HIPPO_KV_MAX_KEYS", default_value_t = KvQuota::CEILING.max_keys)]
    pub kv_max_keys: u64,
    /// The most bytes (keys plus values) a plugin's manifest may give it in
    /// the key-value store.
    #[arg(long, env = "HIPPO_KV_MAX_BYTES", default_value_t = KvQuota::CEILING.max_bytes)]
    pub kv_max_bytes: u64,
    #[command(flatten)]
    pub memory: MemoryArgs,
    #[command(flatten)]
    pub beat: BeatArgs,
}

/// The scheduler (Celery Beat). It runs in every `serve` and `worker`
/// process by default: however many run it, each fire time of each entry
/// submits one task.
#[derive(Args, Debug)]
pub struct BeatArgs {
    /// Do not run the scheduler in this process (the API still lists and
    /// runs entries).
    #[arg(long)]
    pub no_beat: bool,
    /// Schedule entries (TOML) over the defaults and the environment
    /// controls; default: `schedules.toml` in the data directory, if there.
    #[arg(long, env = "HIPPO_SCHEDULES_FILE")]
    pub schedules: Option<PathBuf>,
}

/// The memory services: models and the memory store.
#[derive(Args, Debug, Clone)]
pub struct MemoryArgs {
    /// Where `scripts/fetch-models` put ONNX Runtime and the models.
    #[arg(long, env = "HIPPO_MODELS_DIR", default_value_os_t = hippo::models::default_models_dir())]
    pub models_dir: PathBuf,
    /// A TOML file describing the models instead (any Hugging Face encoder
    /// exported to ONNX: tokenizer, graph, pooling, normalisation, maximum
    /// length, query prefix; an optional cross-encoder reranker).
    #[arg(long, env = "HIPPO_MODELS_CONFIG")]
    pub models_config: Option<PathBuf>,
    /// A Qdrant server's gRPC URL (e.g. http://qdrant:6334) for the memory
    /// store; without it, `hippo serve` on the embedded broker keeps memories
    /// in the embedded store under the data directory.
    #[arg(long, env = "HIPPO_QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// The Qdrant server's API key, if it has one.
    #[arg(long, env = "HIPPO_QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    /// Run no models and no memory store (memory tasks then fail saying so).
    #[arg(long)]
    pub no_memory: bool,
}

fn parse_autoscale(value: &str) -> Result<(usize, usize), String> {
    let (max, min) = value.split_once(',').ok_or("expected MAX,MIN")?;
    let max: usize = max.trim().parse().map_err(|_| "MAX must be a number")?;
    let min: usize = min.trim().parse().map_err(|_| "MIN must be a number")?;
    if min == 0 || min > max {
        return Err("need 1 <= MIN <= MAX".into());
    }
    Ok((max, min))
}

impl WorkerArgs {
    /// The broker, the plugin registry and the scheduler of this process.
    async fn open_parts(
        &self,
    ) -> anyhow::Result<(
        hippo::broker::SharedBroker,
        Arc<PluginRegistry>,
        hippo::runtime::WatchHandle,
        Arc<Scheduler>,
    )> {
        let runtime = RuntimeConfig {
            max_concurrent_tasks: self.max_instances,
            kv_ceiling: KvQuota {
                max_keys: self.kv_max_keys,
                max_bytes: self.kv_max_bytes,
            },
            defaults: self.limits()?,
            default_max_retries: self.max_retries,
            ..RuntimeConfig::default()
        };
        open_parts(
            &self.connection,
            &self.plugins,
            runtime,
            &self.memory,
            self.beat.schedules.as_deref(),
        )
        .await
    }

    /// The default limits, with the time limits of the flags.
    fn limits(&self) -> anyhow::Result<Limits> {
        let seconds = |name: &str, value: f64| -> anyhow::Result<Duration> {
            let ceiling = Limits::CEILING.hard_time_limit;
            Duration::try_from_secs_f64(value)
                .ok()
                .filter(|d| !d.is_zero() && *d <= ceiling)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--{name} {value}: must be above 0 and at most {} s",
                        ceiling.as_secs()
                    )
                })
        };
        let soft = seconds("soft-time-limit", self.soft_time_limit)?;
        let hard = seconds("time-limit", self.hard_time_limit)?;
        anyhow::ensure!(
            soft <= hard,
            "--soft-time-limit {} is past --time-limit {}: the task would be stopped before it is warned",
            self.soft_time_limit,
            self.hard_time_limit
        );
        Ok(Limits {
            soft_time_limit: soft,
            hard_time_limit: hard,
            ..Limits::DEFAULT
        })
    }

    fn worker_config(&self, reference: &ReferenceSettings) -> anyhow::Result<WorkerConfig> {
        let defaults = WorkerConfig::default();
        let concurrency = self
            .concurrency
            .or(reference.concurrency)
            .unwrap_or(defaults.concurrency);
        let (max, min) = self.autoscale.unwrap_or((concurrency, concurrency));
        let queues = if self.queues.is_empty() {
            defaults.queues.clone()
        } else {
            self.queues.clone()
        };
        // A worker on a queue the broker does not have would wait forever.
        let known = self.connection.broker_config().queues;
        if let Some(unknown) = queues.iter().find(|q| !known.contains(q)) {
            anyhow::bail!(
                "--queues: unknown queue {unknown:?}; the queues are {}",
                known.join(", ")
            );
        }
        Ok(WorkerConfig {
            queues,
            concurrency: max,
            min_concurrency: min,
            prefetch_multiplier: self
                .prefetch
                .or(reference.prefetch)
                .unwrap_or(defaults.prefetch_multiplier),
            drain_timeout: Duration::from_secs(self.drain_timeout),
            lease: Duration::from_secs(self.lease.max(1)),
            heartbeat_interval: Duration::from_secs(self.lease.max(1)).div_f64(5.0),
            retry: self.retry_policy()?,
            ..defaults
        })
    }

    fn retry_policy(&self) -> anyhow::Result<RetryPolicy> {
        let base = Duration::try_from_secs_f64(self.retry_backoff).ok();
        let cap = Duration::try_from_secs_f64(self.retry_backoff_max).ok();
        match (base, cap) {
            (Some(base), Some(cap)) if !base.is_zero() && base <= cap => {
                Ok(RetryPolicy { base, cap })
            }
            _ => anyhow::bail!(
                "--retry-backoff {} and --retry-backoff-max {}: need 0 < backoff <= max",
                self.retry_backoff,
                self.retry_backoff_max
            ),
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Address the REST API listens on.
    #[arg(long, env = "HIPPO_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: std::net::SocketAddr,
    /// Address the dashboard (Flower's API, the metrics) listens on;
    /// default 127.0.0.1:5555, or FLOWER_PORT on loopback. Off loopback it
    /// needs a dashboard login (`FLOWER_BASIC_AUTH=user:pass` or
    /// `FLOWER_USER` and `FLOWER_PASSWORD`) whose password is not a known
    /// default; API keys work there too.
    #[arg(long, env = "HIPPO_DASHBOARD_LISTEN")]
    pub dashboard_listen: Option<std::net::SocketAddr>,
    /// Do not serve the dashboard.
    #[arg(long)]
    pub no_dashboard: bool,
    /// Serve the API only (workers run elsewhere, on a shared Redis).
    #[arg(long)]
    pub no_worker: bool,
    /// TOML file of API keys (hashed); see `hippo hash-key`.
    #[arg(long, env = "HIPPO_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
}

/// The broker, the plugin registry (loaded and watched) and the scheduler a
/// process runs on.
pub(crate) async fn open_parts(
    connection: &Connection,
    plugins: &std::path::Path,
    runtime: RuntimeConfig,
    memory: &MemoryArgs,
    schedules: Option<&std::path::Path>,
) -> anyhow::Result<(
    hippo::broker::SharedBroker,
    std::sync::Arc<hippo::runtime::PluginRegistry>,
    hippo::runtime::WatchHandle,
    Arc<Scheduler>,
)> {
    let schedules = ScheduleTable::load(schedules, &connection.data_dir)?;
    let target = connection.target()?;
    let broker = target.open(connection.broker_config()).await?;
    let models = match &memory.models_config {
        Some(path) => Some(
            toml::from_str(&std::fs::read_to_string(path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        ),
        None => None,
    };
    let memory = MemorySettings::choose(
        memory.no_memory,
        &memory.models_dir,
        models,
        memory.qdrant_url.as_deref(),
        memory.qdrant_api_key.clone(),
        &target,
        &connection.data_dir,
    );
    let (plugins, data_dir) = (plugins.to_path_buf(), connection.data_dir.clone());
    let services_broker = broker.clone();
    let registry = tokio::task::spawn_blocking(move || {
        let services = memory.open(&services_broker)?;
        open_registry(runtime, services, &plugins, &data_dir)
    })
    .await??;
    let watch = registry.watch()?;
    tracing::info!(broker = ?target, plugins = registry.plugins().len(), "broker and plugins ready");
    let scheduler = Arc::new(Scheduler::new(broker.clone(), registry.clone(), schedules)?);
    Ok((broker, registry, watch, scheduler))
}

/// Runs the scheduler until `stopped`, unless `--no-beat`.
fn start_beat(
    args: &BeatArgs,
    scheduler: &Arc<Scheduler>,
    stopped: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<BeatReport>> {
    let scheduler = scheduler.clone();
    (!args.no_beat).then(|| tokio::spawn(async move { scheduler.run(until(stopped)).await }))
}

/// Runs a worker (and the scheduler) until SIGTERM or Ctrl-C, then drains.
pub async fn run_worker(args: WorkerArgs) -> anyhow::Result<u8> {
    let reference = args.connection.reference_settings()?;
    let config = args.worker_config(&reference)?;
    let (broker, registry, _watch, scheduler) = args.open_parts().await?;
    tracing::info!(worker = %config.name, queues = ?config.queues, concurrency = config.concurrency, "worker ready");
    let (signal, stopped) = stop_on_signal();
    let beat = start_beat(&args.beat, &scheduler, stopped.clone());
    Worker::new(broker, registry, config)
        .run(until(stopped))
        .await;
    signal.abort();
    if let Some(beat) = beat {
        beat.await?;
    }
    Ok(0)
}

/// The API keys: the file's, plus `HIPPO_API_KEY` (every scope). With
/// neither, a random admin key is made for this run and printed once, so a
/// fresh `hippo serve` is usable and never open to anyone.
pub(crate) fn api_keys(file: Option<&std::path::Path>) -> anyhow::Result<KeyStore> {
    let mut configs = match file {
        Some(path) => KeyStore::configs_from_file(path)?,
        None => Vec::new(),
    };
    if let Ok(key) = std::env::var("HIPPO_API_KEY")
        && !key.trim().is_empty()
    {
        configs.push(KeyStore::admin_key("HIPPO_API_KEY", key.trim()));
    }
    if configs.is_empty() {
        let key = uuid::Uuid::new_v4().simple().to_string();
        eprintln!("hippo: no API key configured; this run's admin key is: {key}");
        eprintln!("hippo: (set HIPPO_API_KEY or HIPPO_API_KEYS_FILE to choose keys)");
        configs.push(KeyStore::admin_key("generated", &key));
    }
    Ok(KeyStore::new(configs)?)
}

/// Runs the API, the scheduler (unless `--no-beat`) and a worker (unless
/// `--no-worker`) until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let reference = args.worker.connection.reference_settings()?;
    let config = args.worker.worker_config(&reference)?;
    let keys = std::sync::Arc::new(api_keys(args.api_keys_file.as_deref())?);
    let (broker, registry, _watch, scheduler) = args.worker.open_parts().await?;
    let (signal, stopped) = stop_on_signal();
    let state = AppState {
        broker: broker.clone(),
        registry: registry.clone(),
        keys,
    };
    let dashboard = match args.no_dashboard {
        true => None,
        false => Some(
            crate::dashboard::start(
                reference.dashboard_listen(args.dashboard_listen),
                state.clone(),
                &scheduler,
                stopped.clone(),
            )
            .await?,
        ),
    };
    // The API listens last: once it does, so does the dashboard (what
    // waits for the API's port may use both).
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "API listening");
    let app = hippo::api::with_scheduler(hippo::api::router(state), scheduler.clone());
    let api = tokio::spawn(hippo::api::serve_router(
        listener,
        app,
        until(stopped.clone()),
    ));
    let beat = start_beat(&args.worker.beat, &scheduler, stopped.clone());
    let api_cut = cut_after_drain(stopped.clone(), config.drain_timeout);
    if args.no_worker {
        until(stopped).await;
    } else {
        tracing::info!(worker = %config.name, queues = ?config.queues, concurrency = config.concurrency, "worker ready");
        Worker::new(broker, registry, config)
            .run(until(stopped))
            .await;
    }
    signal.abort();
    // The API stops taking connections at once; requests still open (a
    // long `?wait=`) may finish while the worker drains, not after.
    tokio::pin!(api);
    tokio::select! {
        finished = &mut api => finished??,
        () = api_cut => {
            api.abort();
            tracing::warn!("requests still open at the end of the drain were cut");
        }
    }
    // Its event streams ended with the stop; what is left is cut.
    if let Some(dashboard) = dashboard {
        dashboard.abort();
    }
    if let Some(beat) = beat {
        beat.await?;
    }
    Ok(0)
}

/// Time after the drain timeout that shutdown still gives open API
/// requests: the process exits within the drain timeout plus a second.
const API_GRACE: Duration = Duration::from_millis(800);

/// Resolves `API_GRACE` after the drain timeout has run from the stop.
async fn cut_after_drain(stopped: watch::Receiver<bool>, drain_timeout: Duration) {
    until(stopped).await;
    tokio::time::sleep(drain_timeout + API_GRACE).await;
}

/// A stop flag that SIGTERM or Ctrl-C sets, so the API, the scheduler and
/// the worker stop together; abort the task when done.
pub(crate) fn stop_on_signal() -> (tokio::task::JoinHandle<()>, watch::Receiver<bool>) {
    let (stop, stopped) = watch::channel(false);
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    (signal, stopped)
}

/// Resolves once the stop flag is set.
pub(crate) async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown requested: draining");
}
