//! `bench cluster`: the scale-out topology as separate processes on
//! loopback: one API (`hippo serve --no-worker`) and 1, 2 or 3 `hippo
//! worker`s on one Redis (bench/run starts it). For each worker count, a
//! mixed load (no-op and CPU-bound `bench.crunch` tasks, half each)
//! submitted through the API by concurrent clients: throughput from the
//! first submission to the last result, and p99 of submit-to-result. Then
//! failover: two workers with the default 10 s lease take long tasks, one is
//! killed with SIGKILL, and `failover_s` is the time from the kill until the
//! last of its tasks started on the other worker. Every accepted task must
//! succeed (`lost` counts those that did not); a task may start again only
//! after a lease expired (`unexpected_duplicates` counts the starts without
//! one, from the event log).

use crate::report::Report;
use crate::stats::percentile;
use anyhow::Context;
use hippo::broker::{Broker, BrokerConfig, RedisBroker, TaskState};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "bench-cluster-key";
/// The lease `hippo worker` uses by default, which `failover_s` is held to.
const DEFAULT_LEASE_S: f64 = 10.0;

struct Options {
    redis: String,
    hippo: PathBuf,
    tasks: usize,
    clients: usize,
    rounds: u64,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        redis: String::new(),
        hippo: PathBuf::new(),
        tasks: 4_000,
        clients: 16,
        rounds: 100,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--redis" => options.redis = value.clone(),
            "--hippo" => options.hippo = value.into(),
            "--tasks" => options.tasks = value.parse()?,
            "--clients" => options.clients = value.parse()?,
            "--rounds" => options.rounds = value.parse()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    anyhow::ensure!(
        !options.redis.is_empty() && !options.hippo.as_os_str().is_empty(),
        "--redis and --hippo are required (bench/run cluster passes them)"
    );
    Ok(options)
}

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The processes of one measurement, on Redis database `db`.
struct Topology {
    broker_url: String,
    api_url: String,
    plugins: tempfile::TempDir,
    data: tempfile::TempDir,
    _api: Process,
    workers: Vec<Process>,
}

/// `hippo ARGS` as process `name`, on `broker_url`, with the data
/// directory `<data>/<name>` of its own.
fn spawn_hippo(
    options: &Options,
    (broker_url, plugins, data): (&str, &Path, &Path),
    name: &str,
    args: &[&str],
) -> anyhow::Result<Process> {
    let data = data.join(name);
    std::fs::create_dir_all(&data)?;
    let child = Command::new(&options.hippo)
        .args(args)
        .args(["--broker", broker_url, "--no-beat"])
        .arg("--plugins")
        .arg(plugins)
        .arg("--data-dir")
        .arg(&data)
        .env("HIPPO_API_KEY", KEY)
        .env("HIPPO_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting hippo {}", args[0]))?;
    Ok(Process(child))
}

impl Topology {
    async fn start(options: &Options, db: u8) -> anyhow::Result<Topology> {
        let broker_url = format!("{}/{db}", options.redis.trim_end_matches('/'));
        let flushed = Command::new("redis-cli")
            .args(["-u", &broker_url, "flushdb"])
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(flushed.success(), "redis-cli flushdb failed");
        let plugins = crate::queues::plugins_dir()?;
        let versioned = crate::runtime::guest_path().with_file_name("versioned_v1.wasm");
        std::fs::copy(&versioned, plugins.path().join("versioned.wasm"))
            .with_context(|| format!("{}", versioned.display()))?;
        let data = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let api = spawn_hippo(
            options,
            (&broker_url, plugins.path(), data.path()),
            "api",
            &[
                "serve",
                "--no-worker",
                "--no-dashboard",
                "--listen",
                &listen,
            ],
        )?;
        let topology = Topology {
            broker_url,
            api_url: format!("http://{listen}"),
            plugins,
            data,
            _api: api,
            workers: Vec::new(),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !client
            .get(format!("{}/readyz", topology.api_url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            anyhow::ensure!(Instant::now() < deadline, "the API never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(topology)
    }

    fn add_worker(
        &mut self,
        options: &Options,
        name: &str,
        concurrency: usize,
    ) -> anyhow::Result<()> {
        let concurrency = concurrency.to_string();
        let worker = spawn_hippo(
            options,
            (&self.broker_url, self.plugins.path(), self.data.path()),
            name,
            &[
                "worker",
                "--queues",
                "default",
                "--concurrency",
                &concurrency,
            ],
        )?;
        self.workers.push(worker);
        Ok(())
    }
}

/// Submits `bodies` through the API from `clients` concurrent clients;
/// the accepted task ids.
async fn submit_all(api_url: &str, bodies: Vec<Value>, clients: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(bodies));
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (client, bodies, url) = (
            client.clone(),
            bodies.clone(),
            format!("{api_url}/api/v1/tasks/submit"),
        );
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let Some(body) = bodies.lock().unwrap().pop() else {
                    return ids;
                };
                // A 429 (the key's rate limit) is retried after its
                // Retry-After, as a client does; at most 20 times.
                for _ in 0..20 {
                    let Ok(response) = client.post(&url).bearer_auth(KEY).json(&body).send().await
                    else {
                        break;
                    };
                    if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        let wait = response
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                            .unwrap_or(1);
                        tokio::time::sleep(Duration::from_secs(wait)).await;
                        continue;
                    }
                    if response.status().is_success()
                        && let Ok(value) = response.json::<Value>().await
                        && let Some(id) = value["task_id"].as_str()
                    {
                        ids.push(id.to_owned());
                    }
                    break;
                }
            }
        }));
    }
    let mut ids = Vec::new();
    for handle in handles {
        ids.extend(handle.await.unwrap_or_default());
    }
    ids
}

/// Waits (bounded) until every task is terminal; the records' states and
/// submit-to-finish times in ms.
async fn outcomes(
    broker: &dyn Broker,
    ids: &[String],
    within: Duration,
) -> anyhow::Result<(HashMap<String, TaskState>, Vec<f64>)> {
    let deadline = Instant::now() + within;
    let mut states = HashMap::new();
    let mut latencies = Vec::new();
    let mut pending: Vec<&String> = ids.iter().collect();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for id in pending {
            match broker.task(id).await? {
                Some(record) if record.state.is_terminal() => {
                    latencies.push(
                        record
                            .updated_ms
                            .saturating_sub(record.message.submitted_ms)
                            as f64,
                    );
                    states.insert(id.clone(), record.state);
                }
                _ => still.push(id),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok((states, latencies))
}

/// The process id in a worker's name (`<host>:<pid>`).
fn worker_pid(name: &str) -> Option<u32> {
    name.rsplit_once(':')?.1.parse().ok()
}

/// What the event log says of each task: its starts, in order, with the
/// worker and time of each, and how many times its lease expired.
#[derive(Default)]
struct Deliveries {
    starts: HashMap<String, Vec<(String, u64)>>,
    expiries: HashMap<String, usize>,
}

async fn deliveries(broker: &dyn Broker) -> anyhow::Result<Deliveries> {
    let mut deliveries = Deliveries::default();
    let mut after = None;
    loop {
        let events = broker.events(after, 10_000).await?;
        let Some(last) = events.last() else {
            return Ok(deliveries);
        };
        after = Some(last.seq);
        for event in events {
            if event.state == TaskState::Started {
                deliveries
                    .starts
                    .entry(event.task_id)
                    .or_default()
                    .push((event.worker.unwrap_or_default(), event.at_ms));
            } else if event.is_lease_expiry() {
                *deliveries.expiries.entry(event.task_id).or_default() += 1;
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    /// Submissions the API refused (after the retries a 429 allows).
    refused: usize,
    accepted: usize,
    lost: usize,
    unexpected_duplicates: usize,
}

impl Tally {
    /// Counts `ids`: lost unless they succeeded; a start after the first
    /// needs an expired lease before it.
    fn add(
        &mut self,
        ids: &[String],
        states: &HashMap<String, TaskState>,
        deliveries: &Deliveries,
    ) {
        self.accepted += ids.len();
        for id in ids {
            if states.get(id) != Some(&TaskState::Success) {
                self.lost += 1;
            }
            let starts = deliveries.starts.get(id).map_or(0, Vec::len);
            let expiries = deliveries.expiries.get(id).copied().unwrap_or(0);
            if starts > 1 + expiries {
                self.unexpected_duplicates += 1;
            }
        }
    }
}

async fn throughput(
    options: &Options,
    workers: usize,
    tally: &mut Tally,
) -> anyhow::Result<(f64, f64)> {
    let mut topology = Topology::start(options, 4 + workers as u8).await?;
    for n in 0..workers {
        topology.add_worker(options, &format!("w{n}"), 4)?;
    }
    let broker = RedisBroker::connect(&topology.broker_url, BrokerConfig::default()).await?;
    // Every worker has loaded the plugin once a task of each kind ran.
    let warm = submit_all(&topology.api_url, vec![json!({"task": "bench.noop"}); 8], 4).await;
    outcomes(&broker, &warm, Duration::from_secs(60)).await?;
    let bodies: Vec<Value> = (0..options.tasks)
        .map(|n| {
            if n % 2 == 0 {
                json!({"task": "bench.noop"})
            } else {
                json!({"task": "bench.crunch", "input": {"rounds": options.rounds}})
            }
        })
        .collect();
    let started = Instant::now();
    let ids = submit_all(&topology.api_url, bodies, options.clients).await;
    tally.refused += options.tasks - ids.len();
    let (states, mut latencies) = outcomes(&broker, &ids, Duration::from_secs(300)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    tally.add(&ids, &states, &deliveries(&broker).await?);
    latencies.sort_by(f64::total_cmp);
    let p99 = if latencies.is_empty() {
        f64::NAN
    } else {
        percentile(&latencies, 0.99)
    };
    let per_s = states.len() as f64 / elapsed;
    println!(
        "{workers} worker(s): {per_s:.0} tasks/s, p99 {p99:.0} ms ({} accepted)",
        ids.len()
    );
    Ok((per_s, p99))
}

/// Seconds from a worker's SIGKILL until the last of its started tasks
/// started again elsewhere.
async fn failover(options: &Options, tally: &mut Tally) -> anyhow::Result<f64> {
    let mut topology = Topology::start(options, 8).await?;
    topology.add_worker(options, "victim", 4)?;
    topology.add_worker(options, "survivor", 4)?;
    let broker = RedisBroker::connect(&topology.broker_url, BrokerConfig::default()).await?;
    let warm = submit_all(&topology.api_url, vec![json!({"task": "bench.noop"}); 8], 4).await;
    outcomes(&broker, &warm, Duration::from_secs(60)).await?;
    // Tasks of 3 s: both workers hold some when the victim dies.
    let bodies = vec![json!({"task": "test.version", "input": {"ms": 3000}}); 16];
    let ids = submit_all(&topology.api_url, bodies, 4).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = topology.workers.remove(0);
    let pid = victim.0.id();
    let killed_at_ms = hippo::broker::now_ms();
    drop(victim);
    let (states, _) = outcomes(&broker, &ids, Duration::from_secs(120)).await?;
    let deliveries = deliveries(&broker).await?;
    tally.add(&ids, &states, &deliveries);
    let restarted: Vec<u64> = deliveries
        .starts
        .values()
        .filter(|runs| runs.len() > 1 && worker_pid(&runs[0].0) == Some(pid))
        .filter_map(|runs| runs.iter().skip(1).map(|(_, at)| *at).min())
        .collect();
    anyhow::ensure!(!restarted.is_empty(), "the killed worker held no task");
    let last = restarted.iter().max().copied().unwrap_or(killed_at_ms);
    let seconds = last.saturating_sub(killed_at_ms) as f64 / 1e3;
    println!(
        "failover: {} of the killed worker's tasks ran again elsewhere, the last {seconds:.1} s after the kill (lease {DEFAULT_LEASE_S} s)",
        restarted.len()
    );
    Ok(seconds)
}

fn hippo_exists(path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        path.exists(),
        "{} is missing (cargo build --release)",
        path.display()
    );
    Ok(())
}

/// Runs the benchmark.
pub fn run(args: &[String]) -> anyhow::Result<Report> {
    let options = options(args)?;
    hippo_exists(&options.hippo)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut report = Report::new("cluster");
    let mut tally = Tally::default();
    report.set("tasks", options.tasks);
    report.set("crunch_rounds", options.rounds);
    for workers in 1..=3 {
        let (per_s, p99) = tokio.block_on(throughput(&options, workers, &mut tally))?;
        report.float(&format!("tasks_per_s_{workers}w"), per_s, 1);
        report.float(&format!("p99_ms_{workers}w"), p99, 1);
    }
    let failover_s = tokio.block_on(failover(&options, &mut tally))?;
    report.float("failover_s", failover_s, 2);
    report.float("lease_s", DEFAULT_LEASE_S, 1);
    report.set("accepted", tally.accepted);
    report.set("refused", tally.refused);
    report.set("lost", tally.lost);
    report.set("unexpected_duplicates", tally.unexpected_duplicates);
    Ok(report)
}
