//! Workers end to end, in process: a real broker, the real runtime and real
//! guest components. Each test runs on the embedded broker and on Redis.

use hippo::broker::{
    BrokerConfig, EmbeddedBroker, RedisBroker, SharedBroker, TaskMessage, TaskState,
};
use hippo::runtime::{PluginRegistry, TaskFailure};
use hippo::worker::{Worker, WorkerConfig};
use hippo_integration_tests::{RunningWorker, guest, redis_url, runtime, test_worker_config};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Setup {
    broker: SharedBroker,
    worker: Arc<Worker>,
    running: RunningWorker,
    _dirs: Vec<tempfile::TempDir>,
}

async fn broker(kind: &str, dir: &std::path::Path) -> SharedBroker {
    let config = BrokerConfig::default();
    match kind {
        "embedded" => Arc::new(EmbeddedBroker::open(dir, config).await.unwrap()),
        _ => {
            let prefix = format!("hippo-test-{}:", unique());
            Arc::new(
                RedisBroker::connect_with_prefix(&redis_url(), config, &prefix)
                    .await
                    .unwrap(),
            )
        }
    }
}

/// A key prefix no other test (or earlier run) uses.
fn unique() -> String {
    TaskMessage::new("", "", json!(null)).id
}

async fn start(kind: &str, concurrency: usize) -> Setup {
    start_scaling(kind, concurrency, concurrency).await
}

async fn start_scaling(kind: &str, concurrency: usize, min_concurrency: usize) -> Setup {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    let registry = Arc::new(PluginRegistry::new(runtime(), plugins.path(), None));
    registry.scan().unwrap();
    let broker = broker(kind, data.path()).await;
    let config = WorkerConfig {
        min_concurrency,
        ..test_worker_config(format!("test-worker-{kind}"), concurrency)
    };
    let worker = Worker::new(broker.clone(), registry, config);
    let running = RunningWorker::start(worker.clone());
    Setup {
        broker,
        worker,
        running,
        _dirs: vec![plugins, data],
    }
}

impl Setup {
    async fn submit(&self, task: &str, input: serde_json::Value) -> String {
        self.submit_message(TaskMessage::new(task, "default", input))
            .await
    }

    async fn submit_message(&self, message: TaskMessage) -> String {
        self.broker.submit(message).await.unwrap().task_id
    }

    async fn finished(&self, id: &str) -> hippo::broker::TaskRecord {
        let record = self
            .broker
            .wait(id, Duration::from_secs(20))
            .await
            .unwrap()
            .expect("task exists");
        assert!(
            record.state.is_terminal(),
            "task {id} did not finish: {record:?}"
        );
        record
    }

    async fn shutdown(self) {
        self.running.stop().await;
    }
}

macro_rules! on_both_brokers {
    ($($name:ident($concurrency:expr, $setup:ident) $body:block)*) => {
        mod embedded {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { let setup = start("embedded", $concurrency).await; super::scenarios::$name(setup).await })*
        }
        mod redis {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { let setup = start("redis", $concurrency).await; super::scenarios::$name(setup).await })*
        }
        mod scenarios {
            use super::*;
            $(pub async fn $name($setup: Setup) $body)*
        }
    };
}

on_both_brokers! {
    runs_many_tasks_with_results_and_metadata(4, setup) {
        let ids: Vec<String> = futures_join(&setup, 200).await;
        for id in &ids {
            let record = setup.finished(id).await;
            assert_eq!(record.state, TaskState::Success);
            assert_eq!(record.result.map(|r| r.to_value()), Some(json!({"n": id})));
            let run = record.last_run.expect("run metadata");
            assert_eq!(run.worker, setup.worker.config().name);
            assert!(run.stats.fuel_used.is_some_and(|f| f > 0));
            assert!(run.stats.peak_memory_bytes > 0);
            assert!(run.finished_ms >= run.started_ms);
            assert_eq!(record.runs, 1);
        }
        // The counters move just after the broker answers the waiters.
        let deadline = Instant::now() + Duration::from_secs(5);
        while setup.worker.heartbeat().succeeded < 200 {
            assert!(Instant::now() < deadline, "succeeded: {}", setup.worker.heartbeat().succeeded);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let heartbeat = setup.worker.heartbeat();
        assert_eq!(heartbeat.succeeded, 200);
        assert!(heartbeat.rss_bytes > 0);
        let workers = setup.broker.workers().await.unwrap();
        assert!(workers.iter().any(|w| w.name == setup.worker.config().name), "{workers:?}");
        setup.shutdown().await;
    }

    retries_with_backoff_then_dead_letters(2, setup) {
        let mut message = TaskMessage::new("test.fail", "default", json!({"kind": "retry"}));
        message.max_retries = 2;
        let id = setup.submit_message(message).await;
        let record = setup.finished(&id).await;
        assert_eq!(record.state, TaskState::Failure);
        assert_eq!(record.message.attempt, 3, "first attempt and two retries");
        assert_eq!(record.runs, 3);
        assert!(matches!(record.error, Some(TaskFailure::Retry { .. })));
        let dead = setup.broker.dead_letters(10).await.unwrap();
        assert_eq!(dead.iter().map(|r| r.message.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
        let replayed = setup.broker.replay_dead_letter(&id).await.unwrap().expect("replayed");
        assert_eq!(setup.finished(&replayed).await.message.attempt, 3);
        setup.shutdown().await;
    }

    bad_input_and_unknown_tasks_fail_without_retrying(2, setup) {
        let bad = setup.submit("test.recurse", json!({"depth": "deep"})).await;
        let record = setup.finished(&bad).await;
        assert_eq!(record.state, TaskState::Failure);
        assert_eq!(record.runs, 1);
        assert!(matches!(record.error, Some(TaskFailure::BadInput { ref message }) if message.contains("depth")));
        let unknown = setup.submit("no.such-task", json!(null)).await;
        let record = setup.finished(&unknown).await;
        assert_eq!(record.error, Some(TaskFailure::UnknownTask { task: "no.such-task".into() }));
        setup.shutdown().await;
    }

    a_revoked_queued_task_never_runs(2, setup) {
        let mut message = TaskMessage::new("test.noop", "default", json!(null));
        message.eta_ms = Some(hippo::broker::now_ms() + 300);
        let id = setup.submit_message(message).await;
        setup.broker.revoke(&id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        let record = setup.finished(&id).await;
        assert_eq!(record.state, TaskState::Revoked);
        assert!(record.last_run.is_none() && record.runs == 0, "it never ran: {record:?}");
        let events = setup.broker.events(None, 10_000).await.unwrap();
        assert!(!events.iter().any(|e| e.task_id == id && e.state == TaskState::Started));
        setup.shutdown().await;
    }

    a_revoked_running_task_stops_within_100_ms(2, setup) {
        let id = setup.submit("test.spin", json!(null)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while setup.broker.task(&id).await.unwrap().unwrap().state != TaskState::Started {
            assert!(Instant::now() < deadline, "the task never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let revoked_at = Instant::now();
        setup.broker.revoke(&id).await.unwrap();
        let record = setup.finished(&id).await;
        let took = revoked_at.elapsed();
        assert_eq!(record.state, TaskState::Revoked);
        assert!(took < Duration::from_millis(100), "stopped {took:?} after the revocation");
        setup.shutdown().await;
    }

    a_running_task_s_progress_reaches_the_broker(1, setup) {
        // Works for 800 ms, reporting progress (in milliseconds) all along.
        let mut message = TaskMessage::new("test.soft-partial", "default", json!(null));
        message.limits.soft_time_limit_ms = Some(800);
        message.limits.hard_time_limit_ms = Some(5_000);
        let id = setup.submit_message(message).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let progress = loop {
            let record = setup.broker.task(&id).await.unwrap().expect("task exists");
            if record.state == TaskState::Progress
                && let Some(progress) = record.progress.clone()
            {
                break progress;
            }
            assert!(!record.state.is_terminal(), "ended without reporting progress: {record:?}");
            assert!(Instant::now() < deadline, "no progress while running: {record:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(progress.total >= 700 && progress.done <= progress.total, "{progress:?}");
        let record = setup.finished(&id).await;
        assert_eq!(record.state, TaskState::Success);
        assert_eq!(record.result.unwrap().to_value()["partial"], json!(true));
    }

    countdowns_are_honoured(2, setup) {
        let mut message = TaskMessage::new("test.noop", "default", json!(null));
        message.eta_ms = Some(hippo::broker::now_ms() + 700);
        let submitted = Instant::now();
        let id = setup.submit_message(message).await;
        let record = setup.finished(&id).await;
        assert_eq!(record.state, TaskState::Success);
        assert!(submitted.elapsed() >= Duration::from_millis(650), "ran after {:?}", submitted.elapsed());
        setup.shutdown().await;
    }

    shutdown_drains_running_tasks(1, setup) {
        let running = setup.submit("test.sleep", json!({"ms": 500})).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while setup.broker.task(&running).await.unwrap().unwrap().state != TaskState::Started {
            assert!(Instant::now() < deadline, "the task never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let waiting = setup.submit("test.noop", json!(null)).await;
        let broker = setup.broker.clone();
        setup.shutdown().await;
        let record = broker.task(&running).await.unwrap().unwrap();
        assert_eq!(record.state, TaskState::Success, "the running task finished during the drain");
        let record = broker.task(&waiting).await.unwrap().unwrap();
        assert_eq!(record.state, TaskState::Pending, "the waiting task went back to its queue");
        assert!(broker.reserved().await.unwrap().is_empty(), "no lease is left behind");
    }
}

/// Guests of plugins with only task-local grants run on the async runtime's
/// own threads; guests that never stop computing must still leave those
/// threads to everything else (they yield at every epoch tick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_guests_do_not_stall_the_async_runtime() {
    let setup = start("embedded", 4).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut message = TaskMessage::new("test.spin", "default", json!(null));
        message.limits.hard_time_limit_ms = Some(10_000);
        ids.push(setup.submit_message(message).await);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for id in &ids {
        while setup.broker.task(id).await.unwrap().unwrap().state != TaskState::Started {
            assert!(Instant::now() < deadline, "task {id} did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Four guests spin on the runtime's two threads; a timer on the same
    // runtime still fires on time.
    let late = tokio::spawn(async {
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let asked = Instant::now();
            tokio::time::sleep(Duration::from_millis(10)).await;
            worst = worst.max(asked.elapsed());
        }
        worst
    })
    .await
    .unwrap();
    assert!(
        late < Duration::from_millis(200),
        "a 10 ms timer took {late:?}"
    );
    for id in &ids {
        setup.broker.revoke(id).await.unwrap();
    }
    for id in &ids {
        assert_eq!(setup.finished(id).await.state, TaskState::Revoked);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscale_grows_under_backlog_and_shrinks_when_idle() {
    let setup = start_scaling("embedded", 4, 1).await;
    assert_eq!(setup.worker.heartbeat().concurrency, 1);
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(setup.submit("test.sleep", json!({"ms": 100})).await);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.worker.heartbeat().concurrency < 4 {
        assert!(
            Instant::now() < deadline,
            "concurrency never reached the maximum"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        assert_eq!(setup.finished(id).await.state, TaskState::Success);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while setup.worker.heartbeat().concurrency > 1 {
        assert!(
            Instant::now() < deadline,
            "concurrency never went back to the minimum"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    setup.shutdown().await;
}

async fn futures_join(setup: &Setup, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let mut message = TaskMessage::new("test.echo", "default", json!(null));
        message.input = json!({"n": message.id});
        ids.push(setup.submit_message(message).await);
    }
    ids
}
