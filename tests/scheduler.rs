//! The scheduler (Celery Beat's replacement) on real brokers, with the real
//! `example.fib` plugin: each fire time of an entry becomes one task however
//! many schedulers run (in process on both backends, and as two `hippo
//! worker` processes on Redis), a restart catches up one missed fire and
//! never a burst, and the API and the `hippo schedule` commands list entries
//! with their next fire times and run them (a real worker runs the task).

//!
//! This file covers the beat on both brokers; `scheduler/api.rs` the REST
//! routes and `scheduler/process.rs` the `hippo` binary.

#[path = "scheduler/api.rs"]
mod api;
#[path = "scheduler/process.rs"]
mod process;

use hippo::broker::{BrokerConfig, EmbeddedBroker, RedisBroker, SharedBroker, now_ms};
use hippo::runtime::PluginRegistry;
use hippo::scheduler::{BeatReport, ScheduleEntry, ScheduleTable, Scheduler};
use hippo_integration_tests::{fired_slots, guest, redis_url, runtime};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Embedded,
    Redis,
}

/// A registry serving `example.fib` from its own folder.
fn registry() -> (tempfile::TempDir, Arc<PluginRegistry>) {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("fib.wasm"), guest("hippo_example_fib")).unwrap();
    let registry = Arc::new(PluginRegistry::new(runtime(), plugins.path(), None));
    registry.scan().unwrap();
    assert!(registry.resolve("example.fib").is_some());
    (plugins, registry)
}

/// A Redis broker under a prefix of its own (for a second connection, the
/// same prefix: another process on the same queues).
async fn redis_broker(prefix: &str) -> SharedBroker {
    Arc::new(
        RedisBroker::connect_with_prefix(&redis_url(), BrokerConfig::default(), prefix)
            .await
            .unwrap(),
    )
}

/// Two handles on one broker: for Redis two connections (as two processes
/// have); the embedded broker's file belongs to one process, so one broker
/// shared by both schedulers there.
async fn two_handles(
    backend: Backend,
    dir: &std::path::Path,
) -> (SharedBroker, SharedBroker, String) {
    let prefix = format!("hippo-scheduler-test-{}:", uuid());
    match backend {
        Backend::Embedded => {
            let broker: SharedBroker = Arc::new(
                EmbeddedBroker::open(dir, BrokerConfig::default())
                    .await
                    .unwrap(),
            );
            (broker.clone(), broker, prefix)
        }
        Backend::Redis => (
            redis_broker(&prefix).await,
            redis_broker(&prefix).await,
            prefix,
        ),
    }
}

fn uuid() -> String {
    hippo::broker::TaskMessage::new("", "", Value::Null).id
}

/// `example.fib` of 10 every second, on the `scheduled` queue.
/// A cron expression that fires every second.
const EVERY_SECOND: &str = "* * * * * *";

fn every_second(name: &str) -> ScheduleEntry {
    firing(name, EVERY_SECOND)
}

fn firing(name: &str, schedule: &str) -> ScheduleEntry {
    let mut entry = ScheduleEntry::new(name, "example.fib", schedule).unwrap();
    entry.input = json!({"n": 10});
    entry
}

fn table(entries: Vec<ScheduleEntry>) -> ScheduleTable {
    ScheduleTable::new(entries).unwrap()
}

#[track_caller]
fn assert_consecutive_seconds(slots: &[u64]) {
    assert!(slots.iter().all(|s| s % 1000 == 0), "{slots:?}");
    assert!(
        slots.windows(2).all(|w| w[1] - w[0] == 1000),
        "one task per second, none missing or twice: {slots:?}"
    );
}

async fn run_for(scheduler: &Scheduler, duration: Duration) -> BeatReport {
    scheduler.run(tokio::time::sleep(duration)).await
}

// ---------------------------------------------------------------------------
// Two schedulers on one broker.
// ---------------------------------------------------------------------------

async fn two_schedulers_fire_each_slot_once(backend: Backend, schedule: &str) {
    let (_plugins, registry) = registry();
    let data = tempfile::tempdir().unwrap();
    let (a, b, _) = two_handles(backend, data.path()).await;
    let first = Scheduler::new(
        a.clone(),
        registry.clone(),
        table(vec![firing("beat", schedule)]),
    )
    .unwrap();
    let second = Scheduler::new(b, registry, table(vec![firing("beat", schedule)])).unwrap();
    let run = Duration::from_millis(3200);
    let (x, y) = tokio::join!(run_for(&first, run), run_for(&second, run));

    let slots = fired_slots(&*a, "beat").await;
    assert!((3..=4).contains(&slots.len()), "{slots:?} ({x:?}, {y:?})");
    assert_consecutive_seconds(&slots);
    assert_eq!(x.fired + y.fired, slots.len() as u64, "{x:?} {y:?}");
    // Both fired (nearly) every slot: the broker kept one task of each pair.
    assert!(
        x.duplicates + y.duplicates + 1 >= slots.len() as u64,
        "{x:?} {y:?}"
    );
    assert_eq!(
        (x.failed + y.failed, x.skipped + y.skipped),
        (0, 0),
        "{x:?} {y:?}"
    );
    let queued = a.queue_stats().await.unwrap();
    let scheduled = queued.iter().find(|q| q.name == "scheduled").unwrap();
    assert_eq!(scheduled.ready, slots.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_fire_each_slot_once_embedded() {
    two_schedulers_fire_each_slot_once(Backend::Embedded, EVERY_SECOND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_fire_each_slot_once_redis() {
    two_schedulers_fire_each_slot_once(Backend::Redis, EVERY_SECOND).await;
}

/// An interval's slots are multiples of it from the epoch: two processes
/// that started at different moments still agree on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_fire_each_interval_slot_once_embedded() {
    two_schedulers_fire_each_slot_once(Backend::Embedded, "@every 1s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_fire_each_interval_slot_once_redis() {
    two_schedulers_fire_each_slot_once(Backend::Redis, "@every 1s").await;
}

// ---------------------------------------------------------------------------
// Restarts.
// ---------------------------------------------------------------------------

async fn restart_catches_up_once_and_never_refires(backend: Backend) {
    let (_plugins, registry) = registry();
    let data = tempfile::tempdir().unwrap();
    let (broker, _, prefix) = two_handles(backend, data.path()).await;
    // A new handle per run, as a restarted process has (Redis); the
    // embedded broker stays open: its state is the broker's either way.
    let reopen = || async {
        match backend {
            Backend::Embedded => broker.clone(),
            Backend::Redis => redis_broker(&prefix).await,
        }
    };
    // An hourly entry half an hour away: a fresh entry owes nothing from
    // before the start, so it never fires in these runs.
    let minute = (now_ms() / 60_000 + 30) % 60;
    let mut hourly =
        ScheduleEntry::new("far-hourly", "example.fib", &format!("{minute} * * * *")).unwrap();
    hourly.input = json!({"n": 1});
    let entries = || table(vec![every_second("catch-up"), hourly.clone()]);

    let first = Scheduler::new(reopen().await, registry.clone(), entries()).unwrap();
    let report = run_for(&first, Duration::from_millis(1500)).await;
    let before = fired_slots(&*broker, "catch-up").await;
    assert!(
        !before.is_empty() && report.fired == before.len() as u64,
        "{report:?} {before:?}"
    );
    let last = *before.last().unwrap();

    // Down for three seconds: three or more fire times pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = now_ms();
    let second = Scheduler::new(reopen().await, registry.clone(), entries()).unwrap();
    let report = run_for(&second, Duration::from_millis(1200)).await;
    let after = fired_slots(&*broker, "catch-up").await;
    let new: Vec<u64> = after.iter().copied().filter(|&s| s > last).collect();
    assert_eq!(
        after.len(),
        before.len() + new.len(),
        "no earlier slot fired again"
    );
    assert_eq!(report.fired, new.len() as u64, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    // One catch-up fire, for the latest missed time, at once ...
    let caught_up = new[0];
    let start_second = started / 1000 * 1000;
    assert!(
        caught_up == start_second || caught_up == start_second + 1000,
        "catch-up {caught_up} for a start at {started}"
    );
    // ... and none of the times before it: no burst.
    assert!(
        caught_up - last >= 3000,
        "missed slots between {last} and {caught_up} were skipped"
    );
    assert_consecutive_seconds(&new);
    assert!(new.len() <= 3, "{new:?}");

    // Restarted at once: the slots already fired are not fired again (a
    // refire would come back from the broker as a duplicate).
    let third = Scheduler::new(reopen().await, registry, entries()).unwrap();
    let report = run_for(&third, Duration::from_millis(700)).await;
    assert_eq!(report.duplicates, 0, "{report:?}");
    assert_consecutive_seconds(&fired_slots(&*broker, "catch-up").await[before.len()..]);
    assert!(fired_slots(&*broker, "far-hourly").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_catches_up_once_and_never_refires_embedded() {
    restart_catches_up_once_and_never_refires(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_catches_up_once_and_never_refires_redis() {
    restart_catches_up_once_and_never_refires(Backend::Redis).await;
}
