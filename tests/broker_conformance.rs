//! The broker conformance suite: every test here runs against both backends,
//! the embedded one (on a fresh directory) and Redis (under a key prefix of
//! its own, on the redis-server named by `HIPPO_TEST_REDIS_URL`, which
//! `scripts/test` starts). Without that variable the Redis variants fail:
//! a missing server is a setup error, never a reason to skip.
//!
//! The tests only use the [`Broker`] trait, so both backends are held to
//! the same semantics (see `host/src/broker/mod.rs`).

use hippo::broker::{
    Broker, BrokerConfig, BrokerError, Delivery, EmbeddedBroker, LeaseStatus, RedisBroker,
    RevokeOutcome, RunMeta, Settlement, SharedBroker, TaskMessage, TaskState, WorkerHeartbeat,
    now_ms,
};
use hippo::runtime::{ExecStats, Progress, TaskFailure};
use hippo_integration_tests::redis_url;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Instantiates each test once per backend: `redis::name` and `embedded::name`.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Redis).await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Embedded).await;
                }
            )*
        }
    };
}

conformance!(
    round_trip_keeps_every_field,
    priority_follows_queue_order_then_band,
    expired_lease_is_redelivered_and_the_stale_holder_is_fenced,
    heartbeat_keeps_the_lease,
    release_hands_back_without_an_attempt,
    concurrent_consumers_never_share_a_delivery,
    eta_is_released_only_when_due,
    retry_comes_back_with_the_next_attempt,
    dead_letters_list_replay_and_purge,
    revoked_queued_task_never_starts,
    revoked_running_task_is_reported,
    expired_task_never_starts,
    wait_returns_as_soon_as_the_task_settles,
    wait_returns_the_record_at_timeout,
    idempotency_key_returns_the_first_id,
    results_expire,
    event_log_is_ordered_and_bounded,
    worker_heartbeats_expire,
    purge_revokes_ready_tasks_only,
    queue_stats_count_ready_reserved_scheduled,
    unknown_queue_is_rejected,
    kv_set_get_delete_and_ttl,
    kv_incr_counts_and_refuses_text,
);

// ---------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Backend {
    Redis,
    Embedded,
}

/// A broker under test, and what keeps it alive.
struct Fixture {
    broker: SharedBroker,
    /// The Redis backend itself, for checks on its keys.
    redis: Option<(Arc<RedisBroker>, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Fixture {
    type Target = dyn Broker;
    fn deref(&self) -> &Self::Target {
        &*self.broker
    }
}

/// A key prefix no other test (or earlier run) uses.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("hippo-test:{}:{}:{n}:", std::process::id(), now_ms())
}

async fn open_with(backend: Backend, config: BrokerConfig) -> Fixture {
    match backend {
        Backend::Redis => {
            let url = redis_url();
            let broker = RedisBroker::connect_with_prefix(&url, config, &unique_prefix())
                .await
                .unwrap_or_else(|e| panic!("connecting to the test redis-server at {url}: {e}"));
            let broker = Arc::new(broker);
            Fixture {
                broker: broker.clone(),
                redis: Some((broker, url)),
                _dir: None,
            }
        }
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let broker = EmbeddedBroker::open(dir.path(), config)
                .await
                .expect("opening the embedded broker");
            Fixture {
                broker: Arc::new(broker),
                redis: None,
                _dir: Some(dir),
            }
        }
    }
}

async fn open(backend: Backend) -> Fixture {
    open_with(backend, BrokerConfig::default()).await
}

fn queues(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn all_queues() -> Vec<String> {
    BrokerConfig::default().queues
}

fn message(task: &str, queue: &str, priority: u8) -> TaskMessage {
    let mut m = TaskMessage::new(
        task,
        queue,
        json!({"task": task, "n": [1, 2.5, {}], "empty": []}),
    );
    m.priority = priority;
    m
}

fn meta(worker: &str) -> RunMeta {
    let now = now_ms();
    RunMeta {
        worker: worker.to_string(),
        started_ms: now - 5,
        finished_ms: now,
        stats: ExecStats {
            fuel_used: Some(123_456_789_012),
            peak_memory_bytes: 1 << 20,
            wall_time_us: 4_321,
            soft_limit_passed: false,
        },
        plugin_version: "1.2.3".into(),
    }
}

fn success(output: serde_json::Value, worker: &str) -> Settlement {
    Settlement::Success {
        output,
        meta: meta(worker),
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn submit(b: &Fixture, m: TaskMessage) -> String {
    let submitted = b.submit(m).await.expect("submit");
    assert!(submitted.created);
    submitted.task_id
}

/// Reserves without waiting.
async fn take(b: &Fixture, consumer: &str, queues: &[String], max: usize) -> Vec<Delivery> {
    b.reserve(consumer, queues, max, LEASE, Duration::ZERO)
        .await
        .expect("reserve")
}

async fn take_one(b: &Fixture, consumer: &str) -> Option<Delivery> {
    let mut got = take(b, consumer, &all_queues(), 1).await;
    assert!(got.len() <= 1, "asked for one delivery, got {}", got.len());
    got.pop()
}

async fn state(b: &Fixture, id: &str) -> TaskState {
    b.task(id)
        .await
        .expect("task")
        .unwrap_or_else(|| panic!("task {id} is missing"))
        .state
}

// ---------------------------------------------------------------------------
// The suite.
// ---------------------------------------------------------------------------

async fn round_trip_keeps_every_field(backend: Backend) {
    let b = open(backend).await;
    let mut m = message("word_count", "default", 8);
    m.max_retries = 7;
    m.limits.fuel = Some(1_000_000);
    m.expires_ms = Some(now_ms() + 3_600_000);
    let id = submit(&b, m.clone()).await;
    assert_eq!(id, m.id);

    let pending = b.task(&id).await.unwrap().expect("record after submit");
    assert_eq!(pending.state, TaskState::Pending);
    assert_eq!(pending.message, m);
    assert_eq!(pending.runs, 0);
    assert!(pending.result.is_none() && pending.error.is_none() && pending.last_run.is_none());

    let d = take_one(&b, "consumer-1").await.expect("a delivery");
    assert_eq!(
        d.message, m,
        "the delivery carries the message as submitted"
    );
    assert!(d.generation >= 1);
    assert_eq!(d.consumer, "consumer-1");
    assert!(!d.receipt.is_empty());
    assert_eq!(state(&b, &id).await, TaskState::Received);
    let reserved = b.reserved().await.unwrap();
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0].message.id, id);
    assert_eq!(reserved[0].generation, d.generation);
    assert_eq!(reserved[0].consumer, "consumer-1");
    assert!(
        take_one(&b, "consumer-2").await.is_none(),
        "a leased task is not handed out twice"
    );

    assert_eq!(
        b.mark_started(&d, "worker-a").await.unwrap(),
        LeaseStatus::Held
    );
    let started = b.task(&id).await.unwrap().unwrap();
    assert_eq!(started.state, TaskState::Started);
    assert_eq!(started.worker.as_deref(), Some("worker-a"));

    let progress = Progress {
        done: 3,
        total: 10,
        message: Some("counting".into()),
    };
    assert_eq!(
        b.report_progress(&d, &progress).await.unwrap(),
        LeaseStatus::Held
    );
    let running = b.task(&id).await.unwrap().unwrap();
    assert_eq!(running.state, TaskState::Progress);
    assert_eq!(running.progress.as_ref(), Some(&progress));

    let output = json!({"words": 42, "list": [], "nested": {"x": 1.5}});
    let run = meta("worker-a");
    let settled = b
        .settle(
            &d,
            Settlement::Success {
                output: output.clone(),
                meta: run.clone(),
            },
        )
        .await
        .unwrap();
    assert!(settled);
    let done = b.task(&id).await.unwrap().unwrap();
    assert_eq!(done.state, TaskState::Success);
    assert_eq!(done.result, Some(output), "the output comes back exactly");
    assert_eq!(done.last_run, Some(run));
    assert_eq!(done.worker.as_deref(), Some("worker-a"));
    assert_eq!(done.runs, 1);
    assert_eq!(done.message, m);
    assert!(done.error.is_none());
    assert!(done.updated_ms >= pending.updated_ms);

    assert!(
        !b.settle(&d, success(json!(0), "worker-a")).await.unwrap(),
        "a delivery settles once"
    );
    assert_eq!(b.heartbeat(&d, LEASE).await.unwrap(), LeaseStatus::Lost);
    assert!(b.reserved().await.unwrap().is_empty());
    assert!(take_one(&b, "consumer-1").await.is_none());

    let states: Vec<TaskState> = b
        .events(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.task_id == id)
        .map(|e| e.state)
        .collect();
    assert_eq!(
        states,
        [
            TaskState::Pending,
            TaskState::Received,
            TaskState::Started,
            TaskState::Progress,
            TaskState::Success
        ]
    );
}

async fn priority_follows_queue_order_then_band(backend: Backend) {
    let b = open(backend).await;
    // Submitted in the reverse of the order they must come out in.
    let order = [
        ("background-high", "background", 9),
        ("default-low-2", "default", 0),
        ("default-low-1", "default", 3),
        ("default-normal", "default", 5),
        ("default-high", "default", 7),
        ("memory-low", "memory_ops", 1),
    ];
    let mut ids = HashMap::new();
    for (name, queue, priority) in order {
        ids.insert(submit(&b, message(name, queue, priority)).await, name);
        // Distinct submission times keep FIFO order within a band observable.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let consume = queues(&["memory_ops", "default", "background"]);
    let mut got = Vec::new();
    while let Some(d) = take(&b, "c", &consume, 1).await.pop() {
        got.push(ids[&d.message.id]);
        assert!(b.settle(&d, success(json!(null), "w")).await.unwrap());
    }
    assert_eq!(
        got,
        [
            "memory-low",
            "default-high",
            "default-normal",
            "default-low-2",
            "default-low-1",
            "background-high"
        ],
        "queues in the given order, then High > Normal > Low, FIFO within a band"
    );

    // A batch follows the same order, and only the queues asked for are read.
    for (name, queue, priority) in order {
        submit(&b, message(name, queue, priority)).await;
    }
    let batch = take(&b, "c", &queues(&["background", "default"]), 3).await;
    let names: Vec<&str> = batch.iter().map(|d| d.message.task.as_str()).collect();
    assert_eq!(names, ["background-high", "default-high", "default-normal"]);
}

async fn expired_lease_is_redelivered_and_the_stale_holder_is_fenced(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("slow", "default", 5)).await;
    let short = Duration::from_millis(300);
    let stale = b
        .reserve("frozen", &all_queues(), 1, short, Duration::ZERO)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        b.mark_started(&stale, "frozen-worker").await.unwrap(),
        LeaseStatus::Held
    );

    // Not yet expired: housekeeping leaves it alone.
    b.maintain().await.unwrap();
    assert!(take_one(&b, "fresh").await.is_none());

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        b.maintain().await.unwrap() >= 1,
        "maintain returns the expired lease to its queue"
    );
    let record = b.task(&id).await.unwrap().unwrap();
    assert!(!record.state.is_terminal());
    let fresh = take_one(&b, "fresh")
        .await
        .expect("redelivered after its lease expired");
    assert_eq!(fresh.message.id, id);
    assert!(
        fresh.generation > stale.generation,
        "every hand-out bumps the generation"
    );
    assert_eq!(
        fresh.message.attempt, stale.message.attempt,
        "a lost lease is not a failed attempt"
    );

    // The stale holder wakes up: fenced out of everything.
    assert_eq!(b.heartbeat(&stale, LEASE).await.unwrap(), LeaseStatus::Lost);
    assert_eq!(
        b.mark_started(&stale, "frozen-worker").await.unwrap(),
        LeaseStatus::Lost
    );
    assert!(
        !b.settle(&stale, success(json!("stale"), "frozen-worker"))
            .await
            .unwrap()
    );
    assert!(!b.release(&stale).await.unwrap());
    assert_eq!(state(&b, &id).await, TaskState::Received);

    assert_eq!(
        b.mark_started(&fresh, "fresh-worker").await.unwrap(),
        LeaseStatus::Held
    );
    assert!(
        b.settle(&fresh, success(json!("fresh"), "fresh-worker"))
            .await
            .unwrap()
    );
    assert!(
        !b.settle(&stale, success(json!("stale"), "frozen-worker"))
            .await
            .unwrap()
    );
    let record = b.task(&id).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Success);
    assert_eq!(
        record.result,
        Some(json!("fresh")),
        "the stale worker never overwrites the result"
    );
    assert_eq!(record.worker.as_deref(), Some("fresh-worker"));
}

async fn heartbeat_keeps_the_lease(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("long", "default", 5)).await;
    let lease = Duration::from_millis(600);
    let d = b
        .reserve("holder", &all_queues(), 1, lease, Duration::ZERO)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(b.heartbeat(&d, lease).await.unwrap(), LeaseStatus::Held);
        b.maintain().await.unwrap();
        assert!(
            take_one(&b, "other").await.is_none(),
            "a heartbeated lease is never taken over"
        );
    }
    assert!(b.settle(&d, success(json!(1), "holder")).await.unwrap());
    assert_eq!(state(&b, &id).await, TaskState::Success);
}

async fn release_hands_back_without_an_attempt(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("t", "default", 5)).await;
    let first = take_one(&b, "shutting-down").await.unwrap();
    assert!(b.release(&first).await.unwrap());
    assert_eq!(state(&b, &id).await, TaskState::Pending);
    assert!(b.reserved().await.unwrap().is_empty());
    assert!(
        !b.settle(&first, success(json!(0), "w")).await.unwrap(),
        "a released delivery is no longer held"
    );

    let second = take_one(&b, "next")
        .await
        .expect("released task is ready again");
    assert_eq!(second.message.id, id);
    assert_eq!(second.message.attempt, 1);
    assert!(second.generation > first.generation);
    assert!(!b.release(&first).await.unwrap());
    assert!(b.settle(&second, success(json!(2), "w")).await.unwrap());
}

async fn concurrent_consumers_never_share_a_delivery(backend: Backend) {
    const TASKS: usize = 200;
    let b = Arc::new(open(backend).await);
    for i in 0..TASKS {
        submit(
            &b,
            message(
                &format!("t{i}"),
                if i % 2 == 0 { "default" } else { "background" },
                (i % 10) as u8,
            ),
        )
        .await;
    }
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..4 {
        let b = b.clone();
        let seen = seen.clone();
        consumers.spawn(async move {
            let name = format!("consumer-{c}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.lock().unwrap().len() < TASKS && Instant::now() < deadline {
                let batch = b
                    .reserve(&name, &all_queues(), 3, LEASE, Duration::from_millis(100))
                    .await
                    .expect("reserve");
                for d in batch {
                    assert!(
                        b.settle(&d, success(json!(c), &name)).await.unwrap(),
                        "a fresh delivery settles"
                    );
                    seen.lock().unwrap().push(d.message.id.clone());
                }
            }
        });
    }
    while let Some(joined) = consumers.join_next().await {
        joined.expect("consumer task");
    }
    let seen = seen.lock().unwrap().clone();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &seen {
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(counts.len(), TASKS, "every task delivered");
    assert!(take(&b, "late", &all_queues(), 10).await.is_empty());
}

async fn eta_is_released_only_when_due(backend: Backend) {
    let b = open(backend).await;
    let now = now_ms();
    let start = Instant::now();
    let mut later = message("later", "scheduled", 5);
    later.eta_ms = Some(now + 2_500);
    let mut sooner = message("sooner", "scheduled", 5);
    sooner.eta_ms = Some(now + 800);
    let mut past = message("past-eta", "scheduled", 5);
    past.eta_ms = Some(now - 1_000);
    let later_id = submit(&b, later).await;
    let sooner_id = submit(&b, sooner).await;
    let past_id = submit(&b, past).await;

    b.maintain().await.unwrap();
    let now_ready = take(&b, "c", &all_queues(), 10).await;
    assert_eq!(
        now_ready.len(),
        1,
        "only the task whose ETA passed is ready"
    );
    assert_eq!(now_ready[0].message.id, past_id);

    let scheduled = b.scheduled(10).await.unwrap();
    let ids: Vec<&str> = scheduled.iter().map(|r| r.message.id.as_str()).collect();
    assert_eq!(
        ids,
        [sooner_id.as_str(), later_id.as_str()],
        "soonest first"
    );
    assert!(scheduled.iter().all(|r| r.state == TaskState::Pending));
    assert_eq!(b.scheduled(1).await.unwrap().len(), 1);
    let stats = b.queue_stats().await.unwrap();
    let sched = stats.iter().find(|s| s.name == "scheduled").unwrap();
    assert_eq!((sched.ready, sched.scheduled), (0, 2));

    tokio::time::sleep_until((start + Duration::from_millis(1_000)).into()).await;
    b.maintain().await.unwrap();
    let due = take(&b, "c", &all_queues(), 10).await;
    assert_eq!(
        due.iter()
            .map(|d| d.message.id.as_str())
            .collect::<Vec<_>>(),
        [sooner_id.as_str()]
    );
    assert!(
        start.elapsed() < Duration::from_millis(2_400),
        "too slow to tell the two ETAs apart"
    );

    tokio::time::sleep_until((start + Duration::from_millis(2_700)).into()).await;
    b.maintain().await.unwrap();
    let due = take(&b, "c", &all_queues(), 10).await;
    assert_eq!(
        due.iter()
            .map(|d| d.message.id.as_str())
            .collect::<Vec<_>>(),
        [later_id.as_str()]
    );
    assert!(b.scheduled(10).await.unwrap().is_empty());
}

async fn retry_comes_back_with_the_next_attempt(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("flaky", "default", 5)).await;
    let first = take_one(&b, "c").await.unwrap();
    assert_eq!(first.message.attempt, 1);
    let failure = TaskFailure::Retry {
        message: "upstream busy".into(),
        delay_ms: Some(700),
    };
    let at_ms = now_ms() + 700;
    let retry = Settlement::Retry {
        failure: failure.clone(),
        at_ms,
        meta: meta("w"),
    };
    assert!(b.settle(&first, retry).await.unwrap());

    let record = b.task(&id).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Retry);
    assert_eq!(record.error, Some(failure));
    assert_eq!(
        record.message.attempt, 2,
        "the record holds the next attempt"
    );
    assert_eq!(record.runs, 1);
    assert_eq!(b.scheduled(10).await.unwrap().len(), 1);
    assert!(!record.state.is_terminal());

    b.maintain().await.unwrap();
    assert!(
        take_one(&b, "c").await.is_none(),
        "not before its retry time"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    b.maintain().await.unwrap();
    let second = take_one(&b, "c")
        .await
        .expect("the retry is delivered when due");
    assert_eq!(second.message.id, id);
    assert_eq!(second.message.attempt, 2);
    assert!(second.generation > first.generation);
    assert!(b.settle(&second, success(json!("ok"), "w")).await.unwrap());
    let record = b.task(&id).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Success);
    assert_eq!(record.runs, 2);
    assert!(
        record.error.is_none(),
        "success clears the last attempt's error"
    );
}

async fn dead_letters_list_replay_and_purge(backend: Backend) {
    let b = open(backend).await;
    assert!(b.dead_letters(10).await.unwrap().is_empty());
    let dead = fail(&b, "dead", true).await;
    let not_kept = fail(&b, "not-kept", false).await;
    assert_eq!(state(&b, &not_kept).await, TaskState::Failure);

    let letters = b.dead_letters(10).await.unwrap();
    assert_eq!(
        letters.len(),
        1,
        "only failures flagged dead_letter are kept"
    );
    assert_eq!(letters[0].message.id, dead);
    assert_eq!(letters[0].state, TaskState::Failure);
    assert_eq!(
        letters[0].error,
        Some(TaskFailure::Fatal {
            message: "dead broke".into()
        })
    );

    let replayed = b
        .replay_dead_letter(&dead)
        .await
        .unwrap()
        .expect("a new task id");
    assert_ne!(replayed, dead);
    let record = b.task(&replayed).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Pending);
    assert_eq!(record.message.attempt, 1, "a replay is a first attempt");
    assert_eq!(record.message.task, "dead");
    assert_eq!(record.message.input, letters[0].message.input);
    assert_eq!(record.message.idempotency_key, None);
    assert!(
        b.dead_letters(10).await.unwrap().is_empty(),
        "a replayed letter leaves the queue"
    );
    assert_eq!(
        b.replay_dead_letter(&dead).await.unwrap(),
        None,
        "replayed once only"
    );
    assert_eq!(b.replay_dead_letter("no-such-task").await.unwrap(), None);
    assert_eq!(b.replay_dead_letter(&not_kept).await.unwrap(), None);
    assert_eq!(
        state(&b, &dead).await,
        TaskState::Failure,
        "the original record stays as it was"
    );
    let d = take_one(&b, "c").await.expect("the replay is ready");
    assert_eq!(d.message.id, replayed);
    assert!(b.settle(&d, success(json!(1), "w")).await.unwrap());

    let first = fail(&b, "first", true).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = fail(&b, "second", true).await;
    let ids: Vec<String> = b
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.message.id)
        .collect();
    assert_eq!(ids, [second.clone(), first.clone()], "newest first");
    assert_eq!(b.dead_letters(1).await.unwrap().len(), 1);
    assert_eq!(b.purge_dead_letters().await.unwrap(), 2);
    assert!(b.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(b.purge_dead_letters().await.unwrap(), 0);
    assert_eq!(b.replay_dead_letter(&first).await.unwrap(), None);
}

/// Submits a task that fails for good on its last attempt; returns its id.
async fn fail(b: &Fixture, task: &str, dead_letter: bool) -> String {
    let mut m = message(task, "default", 5);
    m.attempt = 4;
    m.idempotency_key = Some(format!("key-{task}-{}", m.id));
    let id = submit(b, m).await;
    let d = take_one(b, "c").await.expect("the failing task");
    assert_eq!(d.message.id, id);
    let failure = TaskFailure::Fatal {
        message: format!("{task} broke"),
    };
    assert!(
        b.settle(
            &d,
            Settlement::Failure {
                failure,
                dead_letter,
                meta: meta("w")
            }
        )
        .await
        .unwrap()
    );
    id
}

async fn revoked_queued_task_never_starts(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("doomed", "default", 5)).await;
    let mut eta = message("doomed-later", "default", 5);
    eta.eta_ms = Some(now_ms() + 300);
    let eta_id = submit(&b, eta).await;
    let keep = submit(&b, message("kept", "default", 5)).await;

    assert_eq!(b.revoke(&id).await.unwrap(), RevokeOutcome::Queued);
    assert_eq!(b.revoke(&eta_id).await.unwrap(), RevokeOutcome::Queued);
    assert_eq!(state(&b, &id).await, TaskState::Revoked);
    assert_eq!(state(&b, &eta_id).await, TaskState::Revoked);
    assert_eq!(b.revoke(&id).await.unwrap(), RevokeOutcome::AlreadyFinished);
    assert_eq!(
        b.revoke("no-such-task").await.unwrap(),
        RevokeOutcome::Unknown
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    b.maintain().await.unwrap();
    let got = take(&b, "c", &all_queues(), 10).await;
    assert_eq!(
        got.iter()
            .map(|d| d.message.id.as_str())
            .collect::<Vec<_>>(),
        [keep.as_str()]
    );
    assert!(b.scheduled(10).await.unwrap().is_empty());
    assert_eq!(
        b.wait(&id, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap()
            .state,
        TaskState::Revoked
    );
}

async fn revoked_running_task_is_reported(backend: Backend) {
    let b = open(backend).await;
    let mut feed = b.revocations();
    let id = submit(&b, message("running", "default", 5)).await;
    let d = take_one(&b, "c").await.unwrap();
    assert_eq!(b.mark_started(&d, "w").await.unwrap(), LeaseStatus::Held);

    assert_eq!(b.revoke(&id).await.unwrap(), RevokeOutcome::Running);
    let revoked = tokio::time::timeout(Duration::from_secs(5), feed.recv())
        .await
        .expect("the revocation arrives on the live feed")
        .expect("feed open");
    assert_eq!(revoked, id);
    assert_eq!(
        b.heartbeat(&d, LEASE).await.unwrap(),
        LeaseStatus::Revoked,
        "stored, not only broadcast"
    );
    assert_eq!(b.heartbeat(&d, LEASE).await.unwrap(), LeaseStatus::Revoked);
    assert!(!state(&b, &id).await.is_terminal(), "the worker settles it");

    assert!(
        b.settle(
            &d,
            Settlement::Revoked {
                meta: Some(meta("w"))
            }
        )
        .await
        .unwrap()
    );
    let record = b.task(&id).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Revoked);
    assert_eq!(b.revoke(&id).await.unwrap(), RevokeOutcome::AlreadyFinished);
    assert!(take_one(&b, "c").await.is_none());
}

async fn expired_task_never_starts(backend: Backend) {
    let b = open(backend).await;
    let mut m = message("stale", "default", 5);
    m.expires_ms = Some(now_ms() - 1);
    let id = submit(&b, m).await;
    assert!(
        take_one(&b, "c").await.is_none(),
        "an expired task is not handed out"
    );
    assert_eq!(state(&b, &id).await, TaskState::Revoked);
    assert!(
        b.queue_stats()
            .await
            .unwrap()
            .iter()
            .all(|s| s.ready == 0 && s.reserved == 0)
    );
}

async fn wait_returns_as_soon_as_the_task_settles(backend: Backend) {
    let b = Arc::new(open(backend).await);
    let id = submit(&b, message("awaited", "default", 5)).await;
    let d = take_one(&b, "c").await.unwrap();
    let settler = {
        let b = b.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                b.settle(&d, success(json!({"answer": 42}), "w"))
                    .await
                    .unwrap()
            );
        })
    };
    let started = Instant::now();
    let record = b
        .wait(&id, Duration::from_secs(20))
        .await
        .unwrap()
        .expect("record");
    let elapsed = started.elapsed();
    settler.await.unwrap();
    assert_eq!(record.state, TaskState::Success);
    assert_eq!(record.result, Some(json!({"answer": 42})));
    assert!(
        elapsed >= Duration::from_millis(250),
        "returned before the task settled: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "wait returned {elapsed:?} after submit, long after the settle"
    );

    // Many waiters on one task, and an already-finished task returns at once.
    let id2 = submit(&b, message("awaited-2", "default", 5)).await;
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let b = b.clone();
            let id2 = id2.clone();
            tokio::spawn(async move { b.wait(&id2, Duration::from_secs(20)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let d2 = take_one(&b, "c").await.unwrap();
    let started = Instant::now();
    assert!(b.settle(&d2, success(json!(2), "w")).await.unwrap());
    for w in waiters {
        let record = w.await.unwrap().unwrap().unwrap();
        assert_eq!(record.state, TaskState::Success);
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let started = Instant::now();
    assert_eq!(
        b.wait(&id, Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap()
            .state,
        TaskState::Success
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

async fn wait_returns_the_record_at_timeout(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("never-runs", "default", 5)).await;
    let started = Instant::now();
    let record = b
        .wait(&id, Duration::from_millis(400))
        .await
        .unwrap()
        .expect("the record, unfinished");
    let elapsed = started.elapsed();
    assert_eq!(record.state, TaskState::Pending);
    assert!(
        elapsed >= Duration::from_millis(390),
        "returned early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "overslept: {elapsed:?}");

    let started = Instant::now();
    assert!(
        b.wait("no-such-task", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "an unknown task is answered at once"
    );
}

async fn idempotency_key_returns_the_first_id(backend: Backend) {
    let b = open(backend).await;
    let mut first = message("once", "default", 5);
    first.idempotency_key = Some("order-17".into());
    let mut again = message("once", "default", 5);
    again.idempotency_key = Some("order-17".into());
    let mut other = message("once", "default", 5);
    other.idempotency_key = Some("order-18".into());

    let a = b.submit(first.clone()).await.unwrap();
    assert!(a.created);
    assert_eq!(a.task_id, first.id);
    let dup = b.submit(again.clone()).await.unwrap();
    assert!(!dup.created);
    assert_eq!(dup.task_id, first.id, "the first task's id");
    assert!(
        b.task(&again.id).await.unwrap().is_none(),
        "the duplicate was not stored"
    );
    let c = b.submit(other.clone()).await.unwrap();
    assert!(c.created);

    let got = take(&b, "c", &all_queues(), 10).await;
    let mut ids: Vec<&str> = got.iter().map(|d| d.message.id.as_str()).collect();
    ids.sort();
    let mut want = [first.id.as_str(), other.id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    for d in &got {
        assert!(b.settle(d, success(json!(1), "w")).await.unwrap());
    }
    // Still inside the window after the first task finished.
    assert_eq!(b.submit(again).await.unwrap().task_id, first.id);
}

async fn results_expire(backend: Backend) {
    let config = BrokerConfig {
        result_expires: Duration::from_secs(1),
        ..BrokerConfig::default()
    };
    let b = open_with(backend, config).await;
    let id = submit(&b, message("short-lived", "default", 5)).await;
    let pending = submit(&b, message("still-queued", "default", 1)).await;
    let d = take_one(&b, "c").await.unwrap();
    assert_eq!(d.message.id, id);
    assert!(
        b.settle(&d, success(json!("gone soon"), "w"))
            .await
            .unwrap()
    );
    assert_eq!(state(&b, &id).await, TaskState::Success);

    if let Some((redis, url)) = &b.redis {
        let client = ::redis::Client::open(url.as_str()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(redis.task_key(&id))
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(
            pttl > 0 && pttl <= 1000,
            "the finished record's key carries the result TTL (PTTL {pttl})"
        );
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(redis.task_key(&pending))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(pttl, -1, "an unfinished task never expires");
    }

    tokio::time::sleep(Duration::from_millis(2_000)).await;
    b.maintain().await.unwrap();
    assert!(b.task(&id).await.unwrap().is_none(), "the result expired");
    assert!(
        b.wait(&id, Duration::from_millis(100))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        state(&b, &pending).await,
        TaskState::Pending,
        "unfinished tasks do not expire"
    );
}

async fn event_log_is_ordered_and_bounded(backend: Backend) {
    let config = BrokerConfig {
        event_log_capacity: 10,
        ..BrokerConfig::default()
    };
    let b = open_with(backend, config).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit(&b, message(&format!("e{i}"), "default", 5)).await);
    }
    for _ in 0..3 {
        let d = take_one(&b, "c").await.unwrap();
        assert_eq!(b.mark_started(&d, "w").await.unwrap(), LeaseStatus::Held);
        assert!(b.settle(&d, success(json!(null), "w")).await.unwrap());
    }
    // 3 PENDING + 3 x (RECEIVED, STARTED, SUCCESS) = 12 events, 10 kept.
    b.maintain().await.unwrap();
    let events = b.events(None, 100).await.unwrap();
    assert_eq!(events.len(), 10, "the log keeps its capacity: {events:#?}");
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "increasing seq"
    );
    assert!(
        events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "oldest first"
    );
    assert_eq!(events[9].seq - events[0].seq, 9, "the newest ten, no gaps");
    let last = &events[9];
    assert_eq!(last.state, TaskState::Success);
    assert_eq!(last.task_id, ids[2]);
    assert_eq!(last.task, "e2");
    assert_eq!(last.queue, "default");
    assert_eq!(last.worker.as_deref(), Some("w"));
    assert!(events.iter().all(|e| ids.contains(&e.task_id)));

    let after = b.events(Some(events[4].seq), 100).await.unwrap();
    assert_eq!(after, events[5..].to_vec());
    assert_eq!(b.events(None, 3).await.unwrap(), events[..3].to_vec());
    assert_eq!(
        b.events(Some(events[4].seq), 2).await.unwrap(),
        events[5..7].to_vec()
    );
    assert!(b.events(Some(last.seq), 100).await.unwrap().is_empty());

    // New events continue the sequence.
    submit(&b, message("e3", "default", 5)).await;
    let newer = b.events(Some(last.seq), 100).await.unwrap();
    assert_eq!(newer.len(), 1);
    assert!(newer[0].seq > last.seq);
    assert_eq!(newer[0].state, TaskState::Pending);
}

async fn worker_heartbeats_expire(backend: Backend) {
    let b = open(backend).await;
    let heartbeat = |name: &str| WorkerHeartbeat {
        name: name.into(),
        hostname: "host".into(),
        pid: 4242,
        queues: queues(&["default", "memory_ops"]),
        concurrency: 4,
        active: vec!["task-1".into()],
        processed: 10,
        failed: 1,
        retried: 2,
        succeeded: 7,
        cpu_seconds: 1.25,
        rss_bytes: 50 << 20,
        started_ms: now_ms() - 60_000,
        heartbeat_ms: now_ms(),
    };
    let short = heartbeat("host:1");
    let long = heartbeat("host:2");
    b.record_worker(&short, Duration::from_millis(700))
        .await
        .unwrap();
    b.record_worker(&long, Duration::from_secs(30))
        .await
        .unwrap();
    let mut workers = b.workers().await.unwrap();
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(workers, vec![short.clone(), long.clone()]);

    // A renewed heartbeat replaces the old one.
    let mut renewed = long.clone();
    renewed.processed = 11;
    b.record_worker(&renewed, Duration::from_secs(30))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    b.maintain().await.unwrap();
    assert_eq!(
        b.workers().await.unwrap(),
        vec![renewed],
        "the expired heartbeat is gone"
    );
}

async fn purge_revokes_ready_tasks_only(backend: Backend) {
    let b = open(backend).await;
    let mut ready = Vec::new();
    for p in [1, 5, 9] {
        ready.push(submit(&b, message("bg", "background", p)).await);
    }
    let mut later = message("bg-later", "background", 5);
    later.eta_ms = Some(now_ms() + 60_000);
    let later = submit(&b, later).await;
    let other = submit(&b, message("other", "default", 5)).await;
    let leased_id = submit(&b, message("bg-leased", "background", 0)).await;
    // Lease the low-priority one so it is running, not ready.
    let running = b
        .reserve("c", &queues(&["background"]), 4, LEASE, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(running.len(), 4);
    for d in &running {
        if d.message.id != leased_id {
            assert!(b.release(d).await.unwrap());
        }
    }
    let leased = running
        .into_iter()
        .find(|d| d.message.id == leased_id)
        .unwrap();

    assert_eq!(b.purge("background").await.unwrap(), 3);
    for id in &ready {
        assert_eq!(state(&b, id).await, TaskState::Revoked);
    }
    assert_eq!(
        state(&b, &later).await,
        TaskState::Pending,
        "scheduled tasks are not ready tasks"
    );
    assert_eq!(
        state(&b, &other).await,
        TaskState::Pending,
        "other queues are untouched"
    );
    assert_eq!(
        b.heartbeat(&leased, LEASE).await.unwrap(),
        LeaseStatus::Held,
        "running tasks are untouched"
    );
    let stats = b.queue_stats().await.unwrap();
    let bg = stats.iter().find(|s| s.name == "background").unwrap();
    assert_eq!((bg.ready, bg.reserved, bg.scheduled), (0, 1, 1));
    assert!(take(&b, "c", &queues(&["background"]), 10).await.is_empty());
    assert_eq!(b.purge("background").await.unwrap(), 0);
    assert!(b.settle(&leased, success(json!(1), "w")).await.unwrap());
    assert!(matches!(
        b.purge("no-such-queue").await,
        Err(BrokerError::UnknownQueue(_))
    ));
}

async fn queue_stats_count_ready_reserved_scheduled(backend: Backend) {
    let b = open(backend).await;
    let stats = b.queue_stats().await.unwrap();
    let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["memory_ops", "default", "scheduled", "background"],
        "in the configured order"
    );
    assert!(
        stats
            .iter()
            .all(|s| s.ready == 0 && s.reserved == 0 && s.scheduled == 0)
    );

    submit(&b, message("m", "memory_ops", 9)).await;
    submit(&b, message("m", "memory_ops", 0)).await;
    for p in [2, 5, 8] {
        submit(&b, message("d", "default", p)).await;
    }
    let mut eta = message("s", "scheduled", 5);
    eta.eta_ms = Some(now_ms() + 60_000);
    submit(&b, eta).await;
    let taken = take(&b, "c", &queues(&["default"]), 1).await;
    assert_eq!(taken.len(), 1);

    let counts: Vec<(u64, u64, u64)> = b
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| (s.ready, s.reserved, s.scheduled))
        .collect();
    assert_eq!(counts, [(2, 0, 0), (2, 1, 0), (0, 0, 1), (0, 0, 0)]);

    assert!(b.settle(&taken[0], success(json!(1), "w")).await.unwrap());
    let counts: Vec<(u64, u64, u64)> = b
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| (s.ready, s.reserved, s.scheduled))
        .collect();
    assert_eq!(counts, [(2, 0, 0), (2, 0, 0), (0, 0, 1), (0, 0, 0)]);
}

async fn unknown_queue_is_rejected(backend: Backend) {
    let b = open(backend).await;
    let err = b
        .submit(message("t", "no-such-queue", 5))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownQueue(q) if q == "no-such-queue"));
    assert!(b.queue_stats().await.unwrap().iter().all(|s| s.ready == 0));
}

// ---------------------------------------------------------------------------
// The key-value store beside the queues.
// ---------------------------------------------------------------------------

async fn kv_set_get_delete_and_ttl(backend: Backend) {
    let b = open(backend).await;
    assert_eq!(b.kv_get("missing").await.unwrap(), None);
    b.kv_set("plain", b"value", None).await.unwrap();
    assert_eq!(
        b.kv_get("plain").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    b.kv_set("plain", b"second", None).await.unwrap();
    assert_eq!(
        b.kv_get("plain").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );

    b.kv_set("short", b"gone soon", Some(Duration::from_millis(150)))
        .await
        .unwrap();
    assert!(b.kv_get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.kv_get("short").await.unwrap(), None, "the TTL passed");
    assert!(
        !b.kv_delete("short").await.unwrap(),
        "an expired key is gone"
    );

    // A set without a TTL clears an earlier one.
    b.kv_set("kept", b"1", Some(Duration::from_millis(100)))
        .await
        .unwrap();
    b.kv_set("kept", b"2", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(b.kv_get("kept").await.unwrap().as_deref(), Some(&b"2"[..]));

    assert!(b.kv_delete("plain").await.unwrap());
    assert!(!b.kv_delete("plain").await.unwrap());
    assert_eq!(b.kv_get("plain").await.unwrap(), None);
    assert!(matches!(
        b.kv_set("", b"x", None).await,
        Err(hippo::broker::KvError::Key)
    ));
}

async fn kv_incr_counts_and_refuses_text(backend: Backend) {
    let b = open(backend).await;
    assert_eq!(b.kv_incr("n", 5).await.unwrap(), 5);
    assert_eq!(b.kv_incr("n", -2).await.unwrap(), 3);
    assert_eq!(b.kv_get("n").await.unwrap().as_deref(), Some(&b"3"[..]));
    // Concurrent increments are atomic.
    let b = Arc::new(b);
    let adds: Vec<_> = (0..20)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.kv_incr("n", 1).await.unwrap() })
        })
        .collect();
    for add in adds {
        add.await.unwrap();
    }
    assert_eq!(b.kv_incr("n", 0).await.unwrap(), 23);
    b.kv_set("text", b"abc", None).await.unwrap();
    assert!(matches!(
        b.kv_incr("text", 1).await,
        Err(hippo::broker::KvError::NotAnInteger)
    ));
}
