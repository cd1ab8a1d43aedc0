//! `bench dashboard`: the task history at scale, on both brokers. Fills
//! the history with `--tasks` (1,000,000) finished tasks through the
//! broker (submit, reserve, settle: what a worker does, minus running a
//! guest), then times, over HTTP against the REST API in this process:
//! the first page of 100 (`tasks_list_p50_ms`), a page of 100 filtered by
//! name and state starting deep in the history (`search_p50_ms`), a task's
//! page (history and log, `task_page_p50_ms`), and the lag from a task's
//! settlement to its event on an SSE stream (`events_lag_p50_ms`); and the
//! bytes the history takes per task once the results expired
//! (`history_bytes_per_task`, with the bounded event log) and this
//! process's resident memory growth.

use crate::report::Report;
use crate::stats::percentile;
use anyhow::{Context, bail};
use futures::StreamExt;
use hippo::api::{AppState, KeyStore};
use hippo::broker::{
    BrokerConfig, RunMeta, Settlement, SharedBroker, TaskMessage, TaskOutput, now_ms,
};
use hippo::config::{BrokerTarget, MemorySettings, open_registry};
use hippo::runtime::RuntimeConfig;
use hippo::task::{ExecStats, LogLevel, LogLine, LogSource, TaskFailure, TaskLogRecord};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "bench-dashboard-key";
/// Task names the fill spreads over; one task in seven fails, of every name.
const NAMES: usize = 5;
/// Tasks submitted, reserved and settled per round of the fill.
const ROUND: usize = 500;
/// Timed requests per figure.
const SAMPLES: usize = 200;

struct Options {
    tasks: usize,
    redis: Option<String>,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        tasks: 1_000_000,
        redis: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the option");
        match arg.as_str() {
            "--tasks" => options.tasks = value()?.parse()?,
            "--redis" => options.redis = Some(value()?.clone()),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

pub fn run(args: &[String]) -> anyhow::Result<Report> {
    let options = options(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut report = Report::new("dashboard");
    report.set("tasks", options.tasks as u64);
    runtime.block_on(async {
        let data = tempfile::tempdir()?;
        measure(
            &mut report,
            "embedded",
            BrokerTarget::Embedded(data.path().join("broker")),
            options.tasks,
            data.path(),
        )
        .await?;
        if let Some(url) = &options.redis {
            measure(
                &mut report,
                "redis",
                BrokerTarget::Redis(url.clone()),
                options.tasks,
                data.path(),
            )
            .await?;
        }
        anyhow::Ok(())
    })?;
    Ok(report)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib << 10)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn redis_used_memory(url: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut con)
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has used_memory")
}

fn run_meta(i: usize) -> RunMeta {
    let now = now_ms();
    RunMeta {
        worker: "bench-worker".into(),
        started_ms: now.saturating_sub(3),
        finished_ms: now,
        stats: ExecStats {
            fuel_used: Some(5_711 + i as u64 % 1000),
            peak_memory_bytes: 1 << 17,
            wall_time_us: 1_000 + i as u64 % 5_000,
            soft_limit_passed: false,
        },
        plugin_version: "1.0.0".into(),
        log: TaskLogRecord {
            lines: vec![LogLine {
                at_ms: now,
                level: LogLevel::Info,
                source: LogSource::Guest,
                message: format!("task {i} done"),
            }],
            dropped_lines: 0,
        },
    }
}

/// Submits, reserves and settles `count` tasks from number `first` on.
async fn fill(broker: &SharedBroker, first: usize, count: usize) -> anyhow::Result<()> {
    let queues = vec!["default".to_owned()];
    let messages: Vec<TaskMessage> = (first..first + count)
        .map(|i| TaskMessage::new(format!("bench.t{}", i % NAMES), "default", json!({"n": i})))
        .collect();
    let submitted = futures::future::join_all(messages.into_iter().map(|m| broker.submit(m))).await;
    for s in submitted {
        s?;
    }
    let mut deliveries = Vec::with_capacity(count);
    for _ in 0..1_000 {
        if deliveries.len() >= count {
            break;
        }
        let got = broker
            .reserve(
                "bench",
                &queues,
                count - deliveries.len(),
                Duration::from_secs(60),
                Duration::from_millis(100),
            )
            .await?;
        deliveries.extend(got);
    }
    anyhow::ensure!(
        deliveries.len() == count,
        "reserved {} of {count}",
        deliveries.len()
    );
    let settled = futures::future::join_all(deliveries.iter().map(|d| {
        let i: usize = d.message.input["n"].as_u64().unwrap_or(0) as usize;
        let settlement = if i % 7 == 3 {
            Settlement::Failure {
                failure: TaskFailure::Fatal {
                    message: format!("task {i} failed"),
                },
                dead_letter: false,
                meta: run_meta(i),
            }
        } else {
            Settlement::Success {
                output: TaskOutput::from_value(&json!({"n": i})),
                meta: run_meta(i),
            }
        };
        broker.settle(d, settlement)
    }))
    .await;
    for s in settled {
        anyhow::ensure!(s?, "a settlement lost its lease");
    }
    Ok(())
}

/// p50 in ms of `SAMPLES` GETs of `path` (each answered 200).
async fn p50_ms(http: &reqwest::Client, base: &str, paths: &[String]) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let started = Instant::now();
        let response = http
            .get(format!("{base}{}", paths[i % paths.len()]))
            .bearer_auth(KEY)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "{}: {}",
            paths[i % paths.len()],
            response.status()
        );
        response.bytes().await?;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    Ok(percentile(&samples, 0.5))
}

async fn measure(
    report: &mut Report,
    name: &str,
    target: BrokerTarget,
    tasks: usize,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let config = BrokerConfig {
        // Results expire at once, so what the broker holds after the fill
        // is the history (and the bounded event log).
        result_expires: Duration::from_secs(1),
        ..BrokerConfig::default()
    };
    let broker = target.open(config).await?;
    let redis_url = match &target {
        BrokerTarget::Redis(url) => Some(url.clone()),
        _ => None,
    };
    let size = || async {
        match (&target, &redis_url) {
            (BrokerTarget::Embedded(dir), _) => Ok(dir_bytes(dir)),
            (_, Some(url)) => redis_used_memory(url).await,
            _ => Ok(0),
        }
    };
    let plugins = tempfile::tempdir()?;
    let (plugins_dir, data) = (plugins.path().to_path_buf(), data_dir.to_path_buf());
    let services_broker = broker.clone();
    let registry = tokio::task::spawn_blocking(move || {
        let services = MemorySettings {
            models: None,
            store: None,
        }
        .open(&services_broker)?;
        open_registry(RuntimeConfig::default(), services, &plugins_dir, &data)
    })
    .await??;
    let mut key = KeyStore::admin_key("bench", KEY);
    key.rate_per_s = Some(1e9);
    let state = AppState {
        broker: broker.clone(),
        registry,
        keys: Arc::new(KeyStore::new(vec![key])?),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let api = tokio::spawn(hippo::api::serve(listener, state, async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }));
    let http = reqwest::Client::new();

    let (rss_before, size_before) = (rss_bytes(), size().await?);
    let started = Instant::now();
    let mut middle = None;
    let mut done = 0;
    while done < tasks {
        let count = ROUND.min(tasks - done);
        fill(&broker, done, count).await?;
        done += count;
        if middle.is_none() && done >= tasks / 2 {
            middle = Some(now_ms());
        }
        if done % 100_000 < ROUND {
            eprintln!(
                "{name}: {done} tasks in the history ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let fill_s = started.elapsed().as_secs_f64();
    // The results expire; maintenance drops them (and prunes nothing: the
    // history keeps 7 days and 1,000,000 tasks).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for _ in 0..200 {
        broker.maintain().await?;
    }
    let (rss_after, size_after) = (rss_bytes(), size().await?);
    println!(
        "{name}: filled {tasks} tasks in {fill_s:.1} s ({:.0}/s); history {:.0} bytes a task; RSS +{} MiB",
        tasks as f64 / fill_s,
        size_after.saturating_sub(size_before) as f64 / tasks as f64,
        rss_after.saturating_sub(rss_before) >> 20
    );

    let list = p50_ms(&http, &base, &["/api/v1/tasks?limit=100".to_owned()]).await?;
    let deep = format!("{}.", middle.unwrap_or(u64::MAX));
    let search_paths: Vec<String> = (0..NAMES)
        .map(|n| format!("/api/v1/tasks?task=bench.t{n}&state=FAILURE&limit=100&cursor={deep}"))
        .collect();
    // A search deep in the history answers a full page.
    let page: Value = http
        .get(format!("{base}{}", search_paths[2]))
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?;
    let found = page["tasks"].as_array().map_or(0, Vec::len);
    let search = p50_ms(&http, &base, &search_paths).await?;
    let ids: Vec<String> = page["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    anyhow::ensure!(!ids.is_empty(), "the deep search found nothing: {page}");
    let task_paths: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            [
                format!("/api/v1/tasks/{id}/history"),
                format!("/api/v1/tasks/{id}/log"),
            ]
        })
        .collect();
    // A task's page is its history and its log: two requests.
    let task_page = 2.0 * p50_ms(&http, &base, &task_paths).await?;
    let lag = events_lag_p50_ms(&http, &base, &broker, tasks).await?;
    println!(
        "{name}: first page of 100 p50 {list:.2} ms; name+state search deep, page of {found}, p50 {search:.2} ms; task page p50 {task_page:.2} ms; events lag p50 {lag:.2} ms"
    );
    report.float(
        &format!("{name}_fill_tasks_per_s"),
        tasks as f64 / fill_s,
        0,
    );
    report.float(&format!("{name}_tasks_list_p50_ms"), list, 3);
    report.float(&format!("{name}_search_p50_ms"), search, 3);
    report.set(&format!("{name}_search_page_tasks"), found as u64);
    report.float(&format!("{name}_task_page_p50_ms"), task_page, 3);
    report.float(&format!("{name}_events_lag_p50_ms"), lag, 3);
    report.float(
        &format!("{name}_history_bytes_per_task"),
        size_after.saturating_sub(size_before) as f64 / tasks as f64,
        0,
    );
    report.set(
        &format!("{name}_rss_growth_mib"),
        rss_after.saturating_sub(rss_before) >> 20,
    );
    let _ = stop.send(true);
    api.await??;
    Ok(())
}

/// The lag from a settlement's return to its event reaching an SSE client.
async fn events_lag_p50_ms(
    http: &reqwest::Client,
    base: &str,
    broker: &SharedBroker,
    first: usize,
) -> anyhow::Result<f64> {
    let response = http
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(KEY)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "events: {}", response.status());
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut samples = Vec::new();
    for i in 0..SAMPLES / 2 {
        let n = first + i;
        fill(broker, n, 1).await?;
        let settled = Instant::now();
        let wanted = format!("\"task\":\"bench.t{}\"", n % NAMES);
        'found: loop {
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let ended = block.contains("\"state\":\"SUCCESS\"")
                    || block.contains("\"state\":\"FAILURE\"");
                if ended && block.contains(&wanted) {
                    samples.push(settled.elapsed().as_secs_f64() * 1e3);
                    break 'found;
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .context("an event within 10 s")?
                .context("the stream goes on")??;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(percentile(&samples, 0.5))
}
