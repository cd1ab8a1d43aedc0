//! A whole cluster under chaos, as separate processes on loopback: one API
//! (`hippo serve --no-worker`), three `hippo worker`s with different queue
//! sets (two of them running the beat), one redis-server of the test's own
//! (AOF on), and, when `HIPPO_QDRANT_URL` names a Qdrant server, the memory
//! plugin on it. Under a steady mixed load submitted through the API (no-op
//! and CPU-bound tasks of a custom plugin, a plugin that reports its
//! version, and `memory.create` / `memory.recall` with a Qdrant server), the
//! test kills one worker (`kill -9`), freezes another (`SIGSTOP`) for longer
//! than its lease, kills and restarts redis-server, and hot-replaces a
//! plugin through the API. Then every accepted task must have exactly one
//! final state, a success; a task may have started again only after a
//! delivery's lease expired (counted from the broker's event log: the killed
//! and the frozen worker's tasks, and those of a live worker that could not
//! renew its lease while Redis was down); each beat slot fired once.
//! The counts are printed as a table.

use hippo::broker::{Broker, BrokerConfig, Inspection, RedisBroker, TaskState};
use hippo_integration_tests::processes::{Process, free_port, private_redis};
use hippo_integration_tests::{all_events, copy_memory_plugins, fired_slots, guest, hippo_bin};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "cluster-test-admin-key";
/// The workers' lease: the frozen worker stays frozen for more than twice it.
const LEASE_S: u64 = 2;
/// How long the load runs; the failures happen inside it.
const LOAD: Duration = Duration::from_secs(24);
/// Submissions per second (bounded: at most `LOAD` × this many).
const RATE: u64 = 40;
const CRUNCH_ROUNDS: u64 = 100;

/// One worker process: its role in the test (and data directory), queues,
/// whether it runs the beat.
struct WorkerSpec {
    name: &'static str,
    queues: &'static str,
    beat: bool,
}

const WORKERS: [WorkerSpec; 3] = [
    WorkerSpec {
        name: "killed",
        queues: "default,background",
        beat: false,
    },
    WorkerSpec {
        name: "frozen",
        queues: "background,scheduled,memory_ops",
        beat: true,
    },
    WorkerSpec {
        name: "steady",
        queues: "default,background,scheduled,memory_ops",
        beat: true,
    },
];

/// The beat's entry: a no-op every second, on the `scheduled` queue.
const SCHEDULES: &str = r#"
[schedules.cluster-tick]
task = "bench.noop"
cron = "* * * * * *"
queue = "scheduled"

[schedules.health-check]
enabled = false
"#;

struct Cluster {
    redis_dir: tempfile::TempDir,
    redis_port: u16,
    redis: Process,
    plugins: tempfile::TempDir,
    data: tempfile::TempDir,
    /// Held so the API runs as long as the cluster: dropping it kills the process.
    _api: Process,
    api_url: String,
    workers: Vec<Process>,
    memory: bool,
}

/// `hippo ARGS` as process `name`, with the data directory of its own
/// `<data>/<name>` (each process its own compiled-component cache and store).
fn hippo(args: &[&str], plugins: &Path, data: &Path, name: &str) -> Command {
    let data = data.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let mut command = Command::new(hippo_bin());
    command
        .args(args)
        .arg("--plugins")
        .arg(plugins)
        .arg("--data-dir")
        .arg(data)
        .env("HIPPO_LOG", "error")
        .env("AUTO_DEDUP_ENABLED", "false")
        .env("AUTO_CONSOLIDATION_ENABLED", "false")
        .env_remove("HIPPO_API_KEYS_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

impl Cluster {
    fn broker_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.redis_port)
    }

    async fn start() -> Cluster {
        let redis_dir = tempfile::tempdir().unwrap();
        let redis_port = free_port();
        let redis = private_redis(redis_dir.path(), redis_port);
        let plugins = tempfile::tempdir().unwrap();
        std::fs::write(
            plugins.path().join("bench.wasm"),
            guest("hippo_bench_guest"),
        )
        .unwrap();
        std::fs::write(plugins.path().join("versioned.wasm"), guest("versioned_v1")).unwrap();
        let memory = std::env::var("HIPPO_QDRANT_URL").is_ok();
        if memory {
            copy_memory_plugins(plugins.path());
        }
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("schedules.toml"), SCHEDULES).unwrap();
        let port = free_port();
        let broker = format!("redis://127.0.0.1:{redis_port}/0");
        let api = Process(
            hippo(
                &[
                    "serve",
                    "--no-worker",
                    "--no-beat",
                    "--no-dashboard",
                    "--broker",
                    &broker,
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                ],
                plugins.path(),
                data.path(),
                "api",
            )
            .env("HIPPO_API_KEY", KEY)
            .spawn()
            .expect("hippo serve starts"),
        );
        let mut cluster = Cluster {
            redis_dir,
            redis_port,
            redis,
            plugins,
            data,
            _api: api,
            api_url: format!("http://127.0.0.1:{port}"),
            workers: Vec::new(),
            memory,
        };
        for spec in &WORKERS {
            let worker = cluster.spawn_worker(spec);
            cluster.workers.push(worker);
        }
        cluster.wait_ready().await;
        cluster
    }

    fn spawn_worker(&self, spec: &WorkerSpec) -> Process {
        let (lease, broker) = (LEASE_S.to_string(), self.broker_url());
        let mut args = vec![
            "worker",
            "--broker",
            &broker,
            "--queues",
            spec.queues,
            "--concurrency",
            "4",
            "--lease",
            &lease,
            "--drain-timeout",
            "5",
            "--schedules",
        ];
        let schedules = self.data.path().join("schedules.toml");
        args.push(schedules.to_str().unwrap());
        if !spec.beat {
            args.push("--no-beat");
        }
        Process(
            hippo(&args, self.plugins.path(), self.data.path(), spec.name)
                .spawn()
                .expect("hippo worker starts"),
        )
    }

    /// Waits until the API answers ready.
    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = client
                .get(format!("{}/readyz", self.api_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "the API never became ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn restart_redis(&mut self) {
        self.redis.signal("KILL");
        let _ = self.redis.0.wait();
        self.redis = private_redis(self.redis_dir.path(), self.redis_port);
    }
}

/// What a submission asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Noop,
    Crunch,
    Version,
    MemoryCreate,
    MemoryRecall,
}

impl Kind {
    fn request(self, n: u64) -> (&'static str, Value) {
        let user = format!("cluster-user-{}", n % 3);
        match self {
            Kind::Noop => (
                "/api/v1/tasks/submit",
                json!({"task": "bench.noop", "input": null}),
            ),
            Kind::Crunch => (
                "/api/v1/tasks/submit",
                json!({"task": "bench.crunch", "queue": "background", "input": {"rounds": CRUNCH_ROUNDS}}),
            ),
            Kind::Version => (
                "/api/v1/tasks/submit",
                json!({"task": "test.version", "input": {"ms": 150}}),
            ),
            Kind::MemoryCreate => (
                "/api/v1/tasks/memory/create",
                json!({"text": format!("the locker code of turn {n} is L{n:05}"), "user_id": user}),
            ),
            Kind::MemoryRecall => (
                "/api/v1/tasks/memory/recall",
                json!({"query": format!("locker code L{:05}", n.saturating_sub(1)), "user_id": user, "k": 3}),
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Submissions {
    /// Accepted task id → kind, and when (since the load started).
    accepted: Vec<(String, Kind, Duration)>,
    refused: usize,
}

/// Submits a steady mix through the API until `LOAD` has passed.
async fn run_load(api_url: String, memory: bool, record: Arc<Mutex<Submissions>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut kinds = vec![Kind::Noop, Kind::Crunch, Kind::Version];
    if memory {
        kinds.extend([Kind::MemoryCreate, Kind::MemoryRecall]);
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    for n in 0..LOAD.as_secs() * RATE {
        tick.tick().await;
        let kind = kinds[n as usize % kinds.len()];
        let (path, body) = kind.request(n);
        let answer = client
            .post(format!("{api_url}{path}"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await;
        let id = match answer {
            Ok(response) if response.status().is_success() => response
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["task_id"].as_str().map(str::to_owned)),
            _ => None,
        };
        let mut record = record.lock().unwrap();
        match id {
            Some(id) => record.accepted.push((id, kind, started.elapsed())),
            None => record.refused += 1,
        }
    }
}

/// Waits until every id has a terminal state (or the bound passes).
async fn wait_terminal(broker: &dyn Broker, ids: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    let mut pending: Vec<&str> = ids.to_vec();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for id in pending {
            let terminal = broker
                .task(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.state.is_terminal());
            if !terminal {
                still.push(id);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_under_kill_freeze_redis_restart_and_hot_replace_loses_nothing() {
    let mut cluster = Cluster::start().await;
    let record = Arc::new(Mutex::new(Submissions::default()));
    let load = tokio::spawn(run_load(
        cluster.api_url.clone(),
        cluster.memory,
        record.clone(),
    ));
    let started = Instant::now();
    let at =
        |seconds: u64| tokio::time::sleep_until((started + Duration::from_secs(seconds)).into());

    at(4).await;
    cluster.workers[0].signal("KILL");
    at(7).await;
    cluster.workers[1].signal("STOP");
    at(7 + 3 * LEASE_S).await;
    cluster.workers[1].signal("CONT");
    at(15).await;
    cluster.restart_redis();
    let redis_restarted = started.elapsed();
    at(18).await;
    let replaced = reqwest::Client::new()
        .put(format!("{}/api/v1/plugins/versioned", cluster.api_url))
        .bearer_auth(KEY)
        .header("content-type", "application/wasm")
        .body(guest("versioned_v2"))
        .send()
        .await
        .expect("the API answers");
    assert!(
        replaced.status().is_success(),
        "hot replace: {}",
        replaced.text().await.unwrap_or_default()
    );
    let replaced_at = started.elapsed();
    load.await.expect("the load ran");
    let submissions = std::mem::take(&mut *record.lock().unwrap());

    let broker = RedisBroker::connect(&cluster.broker_url(), BrokerConfig::default())
        .await
        .expect("redis answers");
    let ids: Vec<&str> = submissions
        .accepted
        .iter()
        .map(|(id, _, _)| id.as_str())
        .collect();
    wait_terminal(&broker, &ids, Duration::from_secs(90)).await;

    // Per task: its starts, its lease expiries and its final events.
    let events = all_events(&broker).await;
    let mut starts: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut expiries: HashMap<&str, usize> = HashMap::new();
    let mut finals: HashMap<&str, usize> = HashMap::new();
    for event in &events {
        let id = event.task_id.as_str();
        if event.state == TaskState::Started {
            starts
                .entry(id)
                .or_default()
                .push(event.worker.as_deref().unwrap_or(""));
        } else if event.is_lease_expiry() {
            *expiries.entry(id).or_default() += 1;
        } else if event.state.is_terminal() {
            *finals.entry(id).or_default() += 1;
        }
    }
    // A worker's name ends with its process id.
    let lost_pids = [cluster.workers[0].0.id(), cluster.workers[1].0.id()];
    let on_lost_worker = |worker: &str| {
        worker
            .rsplit_once(':')
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
            .is_some_and(|pid| lost_pids.contains(&pid))
    };
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    let (mut twice_killed_or_frozen, mut twice_redis_outage) = (0, 0);
    let (mut twice_unexpected, mut not_one_final) = (0, 0);
    let mut versions: BTreeMap<String, usize> = BTreeMap::new();
    let mut late_v2 = 0;
    for (id, kind, submitted) in &submissions.accepted {
        *by_kind.entry(*kind).or_default() += 1;
        let record = broker.task(id).await.unwrap();
        let state = record
            .as_ref()
            .map_or("missing".to_string(), |r| format!("{:?}", r.state));
        *by_state.entry(state).or_default() += 1;
        if finals.get(id.as_str()).copied().unwrap_or(0) != 1 {
            not_one_final += 1;
        }
        let task_starts = starts.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        if task_starts.len() > 1 {
            // A start after the first needs a lease that expired before it.
            let expired = expiries.get(id.as_str()).copied().unwrap_or(0);
            if task_starts.len() > 1 + expired {
                twice_unexpected += 1;
                eprintln!("{id} started on {task_starts:?} after {expired} expiries");
            } else if task_starts[..task_starts.len() - 1]
                .iter()
                .all(|w| on_lost_worker(w))
            {
                twice_killed_or_frozen += 1;
            } else {
                twice_redis_outage += 1;
            }
        }
        if *kind == Kind::Version
            && let Some(result) = record.and_then(|r| r.result)
        {
            let version = serde_json::to_value(&result).unwrap()["version"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            if *submitted > replaced_at + Duration::from_secs(3) && version == "2.0.0" {
                late_v2 += 1;
            }
            *versions.entry(version).or_default() += 1;
        }
    }
    let slots = fired_slots(&broker, "cluster-tick").await;
    let twice_slots = slots.windows(2).filter(|w| w[0] == w[1]).count();
    let missed_slots: u64 = slots
        .windows(2)
        .map(|w| (w[1].saturating_sub(w[0]) / 1000).saturating_sub(1))
        .sum();
    let lost = by_state
        .iter()
        .filter(|(state, _)| !["Success", "Failure", "Revoked"].contains(&state.as_str()))
        .map(|(_, n)| n)
        .sum::<usize>();

    println!("| cluster test | count |");
    println!("|---|---|");
    println!("| accepted | {} {by_kind:?} |", submissions.accepted.len());
    println!(
        "| refused (Redis restarting at {redis_restarted:.1?}) | {} |",
        submissions.refused
    );
    for (state, n) in &by_state {
        println!("| final state {state} | {n} |");
    }
    println!("| lost | {lost} |");
    println!("| not exactly one final event | {not_one_final} |");
    println!("| ran twice, lease expired: killed or frozen worker | {twice_killed_or_frozen} |");
    println!(
        "| ran twice, lease expired: a live worker cut off from Redis | {twice_redis_outage} |"
    );
    println!("| ran twice without an expired lease | {twice_unexpected} |");
    println!("| versions (replaced at {replaced_at:.1?}) | {versions:?} |");
    println!(
        "| beat slots fired / twice / missed | {} / {twice_slots} / {missed_slots} |",
        slots.len()
    );

    assert!(
        submissions.accepted.len() as u64 >= LOAD.as_secs() * RATE / 2,
        "too few accepted"
    );
    assert_eq!(lost, 0, "every accepted task finished: {by_state:?}");
    assert_eq!(
        by_state.get("Success").copied().unwrap_or(0),
        submissions.accepted.len(),
        "every task succeeded: {by_state:?}"
    );
    assert_eq!(not_one_final, 0, "each task has one final state");
    assert_eq!(twice_unexpected, 0, "no duplicate without an expired lease");
    assert!(late_v2 > 0, "the replacement runs: {versions:?}");
    assert!(
        slots.len() as u64 >= LOAD.as_secs() - 4,
        "the beat fired: {slots:?}"
    );
    assert_eq!(twice_slots, 0, "each slot fired once: {slots:?}");
    assert_eq!(missed_slots, 0, "no slot was missed: {slots:?}");
    drop(cluster);
}
