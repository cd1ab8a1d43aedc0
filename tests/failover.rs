//! Failures of whole processes: `hippo worker` and `hippo serve` killed,
//! frozen or cut off from Redis in the middle of a batch. Every accepted task
//! must complete; only tasks in flight at the failure may run twice.

use hippo::broker::{
    Broker, BrokerConfig, EmbeddedBroker, RedisBroker, SharedBroker, TaskMessage, TaskState,
};
use hippo_integration_tests::processes::{Process, free_port, private_redis};
use hippo_integration_tests::{all_events, guest, hippo_bin, redis_url};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TASKS: usize = 1_000;
const TASK_MS: u64 = 50;
const CONCURRENCY: usize = 16;

fn plugins_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    dir
}

fn spawn(command: &str, broker: &str, plugins: &Path, data: &Path, name_hint: &str) -> Process {
    let child = Command::new(hippo_bin())
        .args([
            command,
            "--broker",
            broker,
            "--lease",
            "2",
            "--drain-timeout",
            "5",
        ])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        // Several services at once: none needs a dashboard.
        .args(if command == "serve" {
            &["--no-dashboard"][..]
        } else {
            &[]
        })
        .arg("--plugins")
        .arg(plugins)
        .arg("--data-dir")
        .arg(data)
        .env("HIPPO_LOG", "warn")
        .env("HOSTNAME", name_hint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("hippo starts");
    Process(child)
}

/// A Redis database of its own for each test (the suite's redis-server has 16).
fn redis_db(db: u8) -> String {
    format!("{}/{db}", redis_url().trim_end_matches('/'))
}

async fn redis(url: &str) -> SharedBroker {
    let flushed = Command::new("redis-cli")
        .args(["-u", url, "flushdb"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(flushed.success(), "the test database can be emptied");
    Arc::new(
        RedisBroker::connect(url, BrokerConfig::default())
            .await
            .expect("redis answers"),
    )
}

async fn submit_sleepers(broker: &dyn Broker, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let message = TaskMessage::new("test.sleep", "default", json!({"ms": TASK_MS}));
        ids.push(broker.submit(message).await.unwrap().task_id);
    }
    ids
}

async fn successes(broker: &dyn Broker, ids: &[String]) -> usize {
    let mut done = 0;
    for id in ids {
        if broker
            .task(id)
            .await
            .unwrap()
            .is_some_and(|r| r.state == TaskState::Success)
        {
            done += 1;
        }
    }
    done
}

async fn wait_for(broker: &dyn Broker, ids: &[String], at_least: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let done = successes(broker, ids).await;
        if done >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {at_least} tasks succeeded in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many times each task started, from the broker's event log.
async fn starts(broker: &dyn Broker) -> HashMap<String, usize> {
    let mut starts = HashMap::new();
    for event in all_events(broker).await {
        if event.state == TaskState::Started {
            *starts.entry(event.task_id).or_insert(0) += 1;
        }
    }
    starts
}

/// Every task succeeded, and at most `in_flight` ran twice.
async fn assert_complete(broker: &dyn Broker, ids: &[String], in_flight: usize) {
    wait_for(broker, ids, ids.len(), Duration::from_secs(60)).await;
    let starts = starts(broker).await;
    let twice = ids
        .iter()
        .filter(|id| starts.get(*id).copied().unwrap_or(0) > 1)
        .count();
    assert!(
        twice <= in_flight,
        "{twice} tasks ran twice; at most {in_flight} were in flight"
    );
    assert!(
        ids.iter()
            .all(|id| starts.get(id).copied().unwrap_or(0) <= 2),
        "no task ran three times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_no_task() {
    let url = redis_db(1);
    let broker = redis(&url).await;
    let (plugins, data) = (plugins_dir(), tempfile::tempdir().unwrap());
    let ids = submit_sleepers(&*broker, TASKS).await;
    let first = spawn("worker", &url, plugins.path(), data.path(), "first");
    wait_for(&*broker, &ids, TASKS / 2, Duration::from_secs(60)).await;
    first.signal("KILL");
    drop(first);
    let _second = spawn("worker", &url, plugins.path(), data.path(), "second");
    // The killed worker held at most concurrency x prefetch tasks.
    assert_complete(&*broker, &ids, CONCURRENCY * 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_loses_its_leases_and_cannot_overwrite_results() {
    let url = redis_db(2);
    let broker = redis(&url).await;
    let (plugins, data) = (plugins_dir(), tempfile::tempdir().unwrap());
    let ids = submit_sleepers(&*broker, TASKS).await;
    let frozen = spawn("worker", &url, plugins.path(), data.path(), "frozen");
    wait_for(&*broker, &ids, TASKS / 2, Duration::from_secs(60)).await;
    frozen.signal("STOP");
    let froze_at = hippo::broker::now_ms();
    let _second = spawn("worker", &url, plugins.path(), data.path(), "second");
    assert_complete(&*broker, &ids, CONCURRENCY * 4).await;
    let before: Vec<_> = futures_records(&*broker, &ids).await;
    // Wake the stale worker: its late results must be refused.
    frozen.signal("CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<_> = futures_records(&*broker, &ids).await;
    assert_eq!(
        before, after,
        "no result changed after the stale worker woke up"
    );
    for record in &after {
        let run = record.last_run.as_ref().unwrap();
        assert!(
            !(run.worker.starts_with("frozen") && run.finished_ms > froze_at + 100),
            "the frozen worker wrote a result after it was frozen: {record:?}"
        );
    }
}

async fn futures_records(broker: &dyn Broker, ids: &[String]) -> Vec<hippo::broker::TaskRecord> {
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        records.push(broker.task(id).await.unwrap().unwrap());
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_load_loses_no_accepted_submission() {
    let redis_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let start_redis = || private_redis(redis_dir.path(), port);
    let mut server = start_redis();
    let url = format!("redis://127.0.0.1:{port}/0");
    let broker = redis(&url).await;
    let (plugins, data) = (plugins_dir(), tempfile::tempdir().unwrap());
    let _worker = spawn("worker", &url, plugins.path(), data.path(), "survivor");

    let mut accepted = Vec::new();
    let started = Instant::now();
    let mut restarted = false;
    while accepted.len() < 600 {
        let message = TaskMessage::new("test.sleep", "default", json!({"ms": 5}));
        if let Ok(submitted) = broker.submit(message).await {
            accepted.push(submitted.task_id);
        }
        if !restarted && accepted.len() == 300 {
            server.signal("KILL");
            drop(server);
            server = start_redis();
            restarted = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "submissions never resumed after the restart"
        );
    }
    assert_complete(&*broker, &accepted, CONCURRENCY * 4).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_survives_a_killed_serve_process() {
    let (plugins, data) = (plugins_dir(), tempfile::tempdir().unwrap());
    let broker_dir = data.path().join("broker");
    let ids = {
        let broker = EmbeddedBroker::open(&broker_dir, BrokerConfig::default())
            .await
            .unwrap();
        submit_sleepers(&broker, TASKS).await
    };
    // Give the closed broker's writer thread a moment to release the file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("embedded://{}", broker_dir.display());
    let serve = spawn("serve", &url, plugins.path(), data.path(), "crashing");
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve.signal("KILL");
    drop(serve);
    // Restart and let it finish (the killed process's leases expire first),
    // then stop it gracefully and read the broker.
    let expected =
        Duration::from_millis(TASK_MS * TASKS as u64 / CONCURRENCY as u64) + Duration::from_secs(6);
    let mut rounds = 0;
    loop {
        let serve = spawn("serve", &url, plugins.path(), data.path(), "restarted");
        tokio::time::sleep(expected).await;
        serve.signal("TERM");
        let mut serve = serve;
        serve.0.wait().unwrap();
        let broker = EmbeddedBroker::open(&broker_dir, BrokerConfig::default())
            .await
            .unwrap();
        let done = successes(&broker, &ids).await;
        if done == TASKS {
            let starts = starts(&broker).await;
            let twice = ids
                .iter()
                .filter(|id| starts.get(*id).copied().unwrap_or(0) > 1)
                .count();
            assert!(twice <= CONCURRENCY * 4, "{twice} tasks ran twice");
            return;
        }
        rounds += 1;
        assert!(
            rounds < 4,
            "only {done} of {TASKS} tasks succeeded after {rounds} restarts"
        );
        drop(broker);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_queue_never_run_one_delivery_twice() {
    let url = redis_db(3);
    let broker = redis(&url).await;
    let (plugins, data) = (plugins_dir(), tempfile::tempdir().unwrap());
    let ids = submit_sleepers(&*broker, TASKS).await;
    let _one = spawn("worker", &url, plugins.path(), data.path(), "one");
    let _two = spawn("worker", &url, plugins.path(), data.path(), "two");
    // Nothing fails here, so nothing may run twice.
    assert_complete(&*broker, &ids, 0).await;
    let workers: std::collections::HashSet<_> = futures_records(&*broker, &ids)
        .await
        .into_iter()
        .filter_map(|r| r.last_run.map(|m| m.worker))
        .collect();
    assert_eq!(workers.len(), 2, "both workers took a share: {workers:?}");
}

/// A guest waiting inside a host call (a key-value read on a frozen Redis)
/// was stopped by nothing: no wasm ran, so no epoch tick reached it, and
/// the call had no deadline of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_waiting_in_a_kv_call_on_a_frozen_redis_is_stopped_and_revoked() {
    use hippo::runtime::{
        Capability, HostServices, LimitOverrides, Manifest, Runtime, RuntimeConfig, TaskFailure,
        TaskRequest,
    };
    let redis_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let redis_server = private_redis(redis_dir.path(), port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let broker = redis(&url).await;
    let services = HostServices {
        kv: Some(broker.clone()),
        handle: Some(tokio::runtime::Handle::current()),
        ..HostServices::default()
    };
    let runtime = Arc::new(Runtime::with_services(RuntimeConfig::default(), services).unwrap());
    let mut manifest = Manifest::default();
    manifest.grants.insert(Capability::Kv);
    let plugin = Arc::new(
        runtime
            .load(&guest("kv_waiter_guest"), manifest, None, None)
            .expect("the kv waiter loads"),
    );
    let read = |hard_ms: u64| {
        let mut request = TaskRequest::new("wait.kv-get", br#"{"key": "k"}"#.to_vec());
        request.limits = LimitOverrides {
            hard_time_limit_ms: Some(hard_ms),
            ..Default::default()
        };
        request
    };
    let answered = runtime.execute(plugin.clone(), read(5_000)).await;
    assert_eq!(
        answered.result.map(|b| String::from_utf8(b).unwrap()),
        Ok(r#"{"found":false}"#.to_string())
    );

    redis_server.signal("STOP");
    let started = Instant::now();
    let stopped = runtime.execute(plugin.clone(), read(500)).await;
    let took = started.elapsed();
    assert_eq!(
        stopped.result,
        Err(TaskFailure::HardTimeLimit { limit_ms: 500 })
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(500 + 155),
        "stopped after {took:?}"
    );

    let request = read(60_000);
    let cancel = request.cancel.clone();
    let waiting = tokio::spawn({
        let (runtime, plugin) = (runtime.clone(), plugin.clone());
        async move { runtime.execute(plugin, request).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let revoked_at = Instant::now();
    cancel.cancel();
    let revoked = waiting.await.unwrap();
    assert_eq!(revoked.result, Err(TaskFailure::Revoked));
    assert!(
        revoked_at.elapsed() < Duration::from_millis(100),
        "stopped {:?} after the revocation",
        revoked_at.elapsed()
    );
    redis_server.signal("CONT");
}
