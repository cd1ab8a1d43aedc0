//! The broker conformance suite: every test here runs against both backends,
//! the embedded one (on a fresh directory) and Redis (under a key prefix of
//! its own, on the redis-server named by `HIPPO_TEST_REDIS_URL`, which
//! `scripts/test` starts). Without that variable the Redis variants fail:
//! a missing server is a setup error, never a reason to skip.
//!
//! The tests only use the [`Broker`] trait, so both backends are held to
//! the same semantics (see `crates/broker/src/lib.rs`). They are grouped by
//! concept in `conformance/`: delivery, failures, results, inspection,
//! history and the key-value store; the fixtures are here.

use hippo_broker::{
    BandCounts, Broker, BrokerConfig, BrokerError, Delivery, EmbeddedBroker, LeaseStatus,
    QueueStats, RedisBroker, RevokeOutcome, RunMeta, Settlement, SharedBroker, TaskMessage,
    TaskNameFigures, TaskOutput, TaskState, WorkerHeartbeat, now_ms,
};
use hippo_task::{ExecStats, Progress, TaskFailure};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Instantiates each test of the module it is used in once per backend:
/// `<module>::redis::name` and `<module>::embedded::name`.
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

/// The test redis-server, which `scripts/test` starts and names in
/// `HIPPO_TEST_REDIS_URL`; unset, the Redis variants fail.
fn redis_url() -> String {
    std::env::var("HIPPO_TEST_REDIS_URL")
        .expect("HIPPO_TEST_REDIS_URL names the test redis-server (scripts/test starts one)")
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
        log: Default::default(),
    }
}

/// A task output of `value`.
fn output(value: serde_json::Value) -> TaskOutput {
    TaskOutput::from_value(&value)
}

fn success(value: serde_json::Value, worker: &str) -> Settlement {
    Settlement::Success {
        output: output(value),
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

/// Reserves one task of any queue under a lease of `lease`, without waiting.
async fn take_one_leased(b: &Fixture, consumer: &str, lease: Duration) -> Delivery {
    b.reserve(consumer, &all_queues(), 1, lease, Duration::ZERO)
        .await
        .expect("reserve")
        .pop()
        .expect("a ready task")
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

#[path = "conformance/delivery.rs"]
mod delivery;
#[path = "conformance/failures.rs"]
mod failures;
#[path = "conformance/history.rs"]
mod history;
#[path = "conformance/inspection.rs"]
mod inspection;
#[path = "conformance/kv.rs"]
mod kv;
#[path = "conformance/limits.rs"]
mod limits;
#[path = "conformance/results.rs"]
mod results;
