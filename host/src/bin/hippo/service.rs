//! `hippo serve` and `hippo worker`: the long-running processes.

use clap::Args;
use hippo::broker::BrokerConfig;
use hippo::config::{BrokerTarget, broker_url_from_env, open_registry};
use hippo::runtime::RuntimeConfig;
use hippo::worker::{Worker, WorkerConfig};
use std::path::PathBuf;
use std::time::Duration;

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
}

impl Connection {
    pub fn target(&self) -> anyhow::Result<BrokerTarget> {
        let url = self.broker.clone().or_else(broker_url_from_env);
        Ok(BrokerTarget::parse(url.as_deref(), &self.data_dir)?)
    }

    pub fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            result_expires: Duration::from_secs(self.result_expires),
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

fn celery_env(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.trim().parse().ok()
}

impl WorkerArgs {
    fn worker_config(&self) -> WorkerConfig {
        let defaults = WorkerConfig::default();
        let concurrency = self
            .concurrency
            .or_else(|| celery_env("CELERY_WORKER_CONCURRENCY"))
            .unwrap_or(defaults.concurrency);
        let (max, min) = self.autoscale.unwrap_or((concurrency, concurrency));
        WorkerConfig {
            queues: if self.queues.is_empty() {
                defaults.queues.clone()
            } else {
                self.queues.clone()
            },
            concurrency: max,
            min_concurrency: min,
            prefetch_multiplier: self
                .prefetch
                .or_else(|| celery_env("CELERY_WORKER_PREFETCH_MULTIPLIER"))
                .unwrap_or(defaults.prefetch_multiplier),
            drain_timeout: Duration::from_secs(self.drain_timeout),
            lease: Duration::from_secs(self.lease.max(1)),
            heartbeat_interval: Duration::from_secs(self.lease.max(1)).div_f64(5.0),
            ..defaults
        }
    }
}

/// Runs a worker until SIGTERM or Ctrl-C, then drains.
pub async fn run_worker(args: WorkerArgs) -> anyhow::Result<u8> {
    let target = args.connection.target()?;
    let broker = target.open(args.connection.broker_config()).await?;
    let runtime = RuntimeConfig {
        max_concurrent_tasks: args.max_instances,
        ..RuntimeConfig::default()
    };
    let (plugins, data_dir) = (args.plugins.clone(), args.connection.data_dir.clone());
    let registry =
        tokio::task::spawn_blocking(move || open_registry(runtime, &plugins, &data_dir)).await??;
    let _watch = registry.watch()?;
    let config = args.worker_config();
    tracing::info!(
        broker = ?target,
        worker = %config.name,
        queues = ?config.queues,
        concurrency = config.concurrency,
        plugins = registry.plugins().len(),
        "worker ready"
    );
    let worker = Worker::new(broker, registry, config);
    worker.run(shutdown_signal()).await;
    Ok(0)
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
