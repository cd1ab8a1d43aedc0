//! `bench queues`: end-to-end throughput and submit-to-result round trip of
//! no-op tasks, for hippo over Redis (a separate `hippo worker` process, as
//! Celery runs its worker) and on the embedded broker (in process, as
//! `hippo serve` runs it), with its default journal sync (once a second)
//! and with `always`. `bench/run queues` measures Celery on the same
//! Redis first and passes its figures in (`--celery FILE`), so the ratios
//! compare two systems measured in one run.
//!
//! Both sides are driven the way their users drive them, then submit and
//! wait for one task at a time. Celery: `delay()` in a loop, then `get()`
//! of each result (its client is synchronous). hippo: `Broker::submit` from
//! `--in-flight` (64) concurrent futures, then `Broker::wait` 64 at a time,
//! as an async Rust caller does, from a task of its runtime; concurrent
//! calls share one connection and the broker sends them together.

use crate::report::Report;
use crate::stats::Summary;
use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use hippo::broker::{
    BrokerConfig, EmbeddedBroker, JournalSync, RedisBroker, SharedBroker, TaskMessage, TaskState,
};
use hippo::runtime::{PluginRegistry, Runtime, RuntimeConfig};
use hippo::worker::{Worker, WorkerConfig};
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Options {
    tasks: usize,
    rtt: usize,
    redis: String,
    celery: Option<PathBuf>,
    hippo: PathBuf,
    concurrency: usize,
    in_flight: usize,
    /// Which of hippo's setups to measure (`--only`, for profiling one).
    only: Option<String>,
}

impl Options {
    fn measures(&self, setup: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == setup)
    }
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        tasks: 10_000,
        rtt: 1_000,
        redis: String::new(),
        celery: None,
        hippo: PathBuf::new(),
        concurrency: 32,
        in_flight: 64,
        only: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tasks" => options.tasks = value()?.parse()?,
            "--rtt" => options.rtt = value()?.parse()?,
            "--redis" => options.redis = value()?.clone(),
            "--celery" => options.celery = Some(value()?.into()),
            "--hippo" => options.hippo = value()?.into(),
            "--concurrency" => options.concurrency = value()?.parse()?,
            "--in-flight" => options.in_flight = value()?.parse()?,
            "--only" => {
                let setup = value()?;
                if !SETUPS.contains(&setup.as_str()) {
                    bail!("--only takes one of {SETUPS:?}");
                }
                options.only = Some(setup.clone());
            }
            other => bail!("unknown option {other}"),
        }
    }
    if options.redis.is_empty() || options.hippo.as_os_str().is_empty() {
        bail!("queues needs --redis URL and --hippo PATH (bench/run queues passes them)");
    }
    Ok(options)
}

/// What one system measured.
struct Figures {
    tasks_per_s: f64,
    /// How fast the tasks went in (the first part of `tasks_per_s`).
    submit_per_s: f64,
    rtt: Summary,
}

async fn submit_noop(broker: &SharedBroker) -> anyhow::Result<String> {
    Ok(broker
        .submit(TaskMessage::new(
            "bench.noop",
            "default",
            serde_json::Value::Null,
        ))
        .await?
        .task_id)
}

/// Waits for task `id`, fails unless it succeeded, and returns its result.
pub(crate) async fn finished(broker: &SharedBroker, id: &str) -> anyhow::Result<Value> {
    let record = broker
        .wait(id, Duration::from_secs(60))
        .await?
        .context("task vanished")?;
    if record.state != TaskState::Success {
        bail!("task {id} ended {:?}: {:?}", record.state, record.error);
    }
    Ok(record.result.map_or(Value::Null, |r| r.to_value()))
}

async fn measure(broker: &SharedBroker, options: &Options) -> anyhow::Result<Figures> {
    for _ in 0..200 {
        let id = submit_noop(broker).await?;
        finished(broker, &id).await?;
    }
    let started = Instant::now();
    // Each future owns what it uses, so the measurement can be spawned.
    let ids: Vec<String> = futures::stream::iter(0..options.tasks)
        .map(|_| {
            let broker = broker.clone();
            async move { submit_noop(&broker).await }
        })
        .buffered(options.in_flight)
        .try_collect()
        .await?;
    let submit_per_s = options.tasks as f64 / started.elapsed().as_secs_f64();
    futures::stream::iter(ids)
        .map(|id| {
            let broker = broker.clone();
            async move { finished(&broker, &id).await }
        })
        .buffer_unordered(options.in_flight)
        .try_collect::<Vec<_>>()
        .await?;
    let tasks_per_s = options.tasks as f64 / started.elapsed().as_secs_f64();
    let mut rtts = Vec::with_capacity(options.rtt);
    for _ in 0..options.rtt {
        let sent = Instant::now();
        let id = submit_noop(broker).await?;
        finished(broker, &id).await?;
        rtts.push(sent.elapsed());
    }
    Ok(Figures {
        tasks_per_s,
        submit_per_s,
        rtt: Summary::of(&rtts),
    })
}

/// A temporary plugins folder holding the bench guest as `bench.wasm`.
pub(crate) fn plugins_dir() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let guest = crate::runtime::guest_path();
    std::fs::copy(&guest, dir.path().join("bench.wasm"))
        .with_context(|| format!("{}", guest.display()))?;
    Ok(dir)
}

async fn hippo_over_redis(options: Options) -> anyhow::Result<Figures> {
    let url = format!("{}/3", options.redis.trim_end_matches('/'));
    let flushed = Command::new("redis-cli")
        .args(["-u", &url, "flushdb"])
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(flushed.success(), "redis-cli flushdb failed");
    let (plugins, data) = (plugins_dir()?, tempfile::tempdir()?);
    let mut worker = Command::new(&options.hippo)
        .args([
            "worker",
            "--broker",
            &url,
            "--concurrency",
            &options.concurrency.to_string(),
        ])
        .arg("--plugins")
        .arg(plugins.path())
        .arg("--data-dir")
        .arg(data.path())
        .env("HIPPO_LOG", "warn")
        .spawn()
        .context("starting hippo worker")?;
    let broker: SharedBroker = Arc::new(RedisBroker::connect(&url, BrokerConfig::default()).await?);
    let figures = measure(&broker, &options).await;
    let _ = worker.kill();
    let _ = worker.wait();
    figures
}

async fn hippo_embedded(options: Options, journal_sync: JournalSync) -> anyhow::Result<Figures> {
    let (plugins, data) = (plugins_dir()?, tempfile::tempdir()?);
    let config = BrokerConfig {
        journal_sync,
        ..BrokerConfig::default()
    };
    let broker: SharedBroker = Arc::new(EmbeddedBroker::open(data.path(), config).await?);
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let registry = Arc::new(PluginRegistry::new(runtime, plugins.path(), None));
    registry.scan()?;
    let config = WorkerConfig {
        concurrency: options.concurrency,
        min_concurrency: options.concurrency,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(broker.clone(), registry, config);
    let stop = Arc::new(tokio::sync::Notify::new());
    let running = tokio::spawn({
        let (worker, stop) = (worker.clone(), stop.clone());
        async move { worker.run(async move { stop.notified().await }).await }
    });
    let figures = measure(&broker, &options).await;
    stop.notify_one();
    running.await?;
    figures
}

/// Runs one measurement as a task of the runtime, as a server's handlers
/// run, rather than on the thread that blocks on it: from there every reply
/// would cross to another thread and back.
fn measured(
    tokio: &tokio::runtime::Runtime,
    measurement: impl Future<Output = anyhow::Result<Figures>> + Send + 'static,
) -> anyhow::Result<Figures> {
    tokio.block_on(tokio.spawn(measurement))?
}

/// hippo's setups, as `--only` names them.
const SETUPS: [&str; 3] = ["redis", "embedded", "embedded-always"];

/// Runs the benchmark.
pub fn run(args: &[String]) -> anyhow::Result<Report> {
    let options = options(args)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report::new("queues");
    report.set("tasks", options.tasks);
    report.set("rtt_tasks", options.rtt);
    report.set("hippo_worker_concurrency", options.concurrency);

    let mut redis = None;
    for setup in SETUPS.into_iter().filter(|s| options.measures(s)) {
        // The embedded broker with its default journal sync (once a
        // second, as Redis' `everysec`) and with a sync before every
        // answer (`always`).
        let (figures, prefix, name) = match setup {
            "redis" => (
                measured(&tokio, hippo_over_redis(options.clone()))?,
                "hippo_redis",
                "hippo over Redis",
            ),
            "embedded" => (
                measured(
                    &tokio,
                    hippo_embedded(options.clone(), JournalSync::EverySecond),
                )?,
                "hippo_embedded",
                "hippo embedded (journal sync every second)",
            ),
            _ => (
                measured(&tokio, hippo_embedded(options.clone(), JournalSync::Always))?,
                "hippo_embedded_sync_always",
                "hippo embedded (journal sync always)",
            ),
        };
        println!(
            "{name}: {:.0} tasks/s, round trip p50 {:.3} ms, p99 {:.3} ms",
            figures.tasks_per_s,
            figures.rtt.p50_us / 1e3,
            figures.rtt.p99_us / 1e3
        );
        report.float(&format!("{prefix}_tasks_per_s"), figures.tasks_per_s, 0);
        report.float(&format!("{prefix}_submit_per_s"), figures.submit_per_s, 0);
        report.float(&format!("{prefix}_rtt_p50_ms"), figures.rtt.p50_us / 1e3, 3);
        report.float(&format!("{prefix}_rtt_p99_ms"), figures.rtt.p99_us / 1e3, 3);
        if setup == "redis" {
            redis = Some(figures);
        }
    }

    if let (Some(path), Some(redis)) = (&options.celery, &redis) {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let celery: serde_json::Value =
            serde_json::from_str(text.lines().last().unwrap_or_default())?;
        let figure = |key: &str| {
            celery[key]
                .as_f64()
                .with_context(|| format!("celery figures lack {key}"))
        };
        let (celery_tps, celery_p50) = (
            figure("celery_redis_tasks_per_s")?,
            figure("celery_rtt_p50_ms")?,
        );
        println!(
            "Celery over Redis: {celery_tps:.0} tasks/s, round trip p50 {celery_p50:.3} ms, p99 {:.3} ms",
            figure("celery_rtt_p99_ms")?
        );
        report.float("celery_redis_tasks_per_s", celery_tps, 0);
        report.float("celery_rtt_p50_ms", celery_p50, 3);
        report.float("celery_rtt_p99_ms", figure("celery_rtt_p99_ms")?, 3);
        report.float(
            "celery_redis_submit_per_s",
            figure("celery_redis_submit_per_s")?,
            0,
        );
        report.float("throughput_ratio", redis.tasks_per_s / celery_tps, 2);
        report.float("latency_ratio", redis.rtt.p50_us / 1e3 / celery_p50, 3);
    }
    Ok(report)
}
