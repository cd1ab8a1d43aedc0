//! Limits and revocation hold while the guest is not running wasm: asleep
//! in WASI, blocked on a pollable that never becomes ready, or inside a
//! host call. The epoch callback never runs then; the task's watchdog must
//! end it all the same, on both ways of running a task (`execute` on the
//! async runtime, `execute_blocking` on the caller's thread) and whatever
//! the plugin is granted.

use hippo_runtime::{
    CancelToken, Capability, LimitOverrides, LoadedPlugin, Manifest, Runtime, RuntimeConfig,
    TaskFailure, TaskOutcome, TaskRequest,
};
use hippo_test_support::{assert_still_healthy, guest, hostile, runtime, runtime_with};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hard limit of the waiting tasks below.
const HARD_MS: u64 = 300;
/// The promise: the task fails within 50 ms of its deadline plus one tick
/// (5 ms); the rest is room for a loaded test machine.
const LATE_BY_AT_MOST: Duration = Duration::from_millis(50 + 5 + 100);

fn limited(task: &str, input: serde_json::Value) -> TaskRequest {
    let mut request = TaskRequest::new(task, input.to_string().into_bytes());
    request.limits = LimitOverrides {
        hard_time_limit_ms: Some(HARD_MS),
        ..Default::default()
    };
    request
}

/// The hostile guest, granted the key-value store as well: such plugins
/// ran on a blocking thread of their own before every host call was a
/// future, and that path was stopped by nothing either.
fn hostile_granted_kv(runtime: &Runtime) -> Arc<LoadedPlugin> {
    let mut manifest = Manifest::default();
    manifest.grants.insert(Capability::Kv);
    Arc::new(
        runtime
            .load(&guest("hostile_guest"), manifest, None, None)
            .expect("hostile guest loads"),
    )
}

/// The ways a guest waits outside wasm for far longer than its limit.
fn waits() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("test.sleep", json!({"ms": 3_600_000})),
        ("test.block", json!({"how": "duration", "ms": 3_600_000})),
        ("test.block", json!({"how": "forever"})),
    ]
}

#[track_caller]
fn assert_stopped_at_the_hard_limit(outcome: &TaskOutcome, took: Duration, what: &str) {
    assert_eq!(
        outcome.result,
        Err(TaskFailure::HardTimeLimit { limit_ms: HARD_MS }),
        "{what}"
    );
    let limit = Duration::from_millis(HARD_MS);
    assert!(
        took >= limit && took < limit + LATE_BY_AT_MOST,
        "{what}: stopped after {took:?}"
    );
}

#[test]
fn a_guest_waiting_in_wasi_is_stopped_at_its_hard_limit_on_the_callers_thread() {
    let runtime = runtime();
    for plugin in [hostile(&runtime), hostile_granted_kv(&runtime)] {
        for (task, input) in waits() {
            let started = Instant::now();
            let outcome = runtime.execute_blocking(&plugin, &limited(task, input.clone()));
            let what = format!("{task} {input} granted {:?}", plugin.manifest.grants);
            assert_stopped_at_the_hard_limit(&outcome, started.elapsed(), &what);
        }
        assert_still_healthy(&runtime, &plugin);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_waiting_in_wasi_is_stopped_at_its_hard_limit_on_the_async_runtime() {
    let runtime = runtime();
    for plugin in [hostile(&runtime), hostile_granted_kv(&runtime)] {
        // All at once: each waiting guest holds no thread, so none delays another.
        let runs = waits().into_iter().map(|(task, input)| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = runtime.execute(plugin, limited(task, input.clone())).await;
                (format!("{task} {input}"), outcome, started.elapsed())
            })
        });
        for run in runs.collect::<Vec<_>>() {
            let (what, outcome, took) = run.await.unwrap();
            assert_stopped_at_the_hard_limit(&outcome, took, &what);
        }
    }
}

#[test]
fn a_current_thread_runtime_stops_a_waiting_guest_too() {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let started = Instant::now();
    let outcome =
        tokio.block_on(runtime.execute(plugin, limited("test.block", json!({"how": "forever"}))));
    assert_stopped_at_the_hard_limit(&outcome, started.elapsed(), "current-thread runtime");
}

#[test]
fn a_guest_waiting_in_wasi_is_revoked_within_100_ms() {
    let runtime = runtime();
    for plugin in [hostile(&runtime), hostile_granted_kv(&runtime)] {
        for (task, input) in waits() {
            let request = TaskRequest::new(task, input.to_string().into_bytes());
            let cancel: CancelToken = request.cancel.clone();
            let running = std::thread::spawn({
                let (runtime, plugin) = (runtime.clone(), plugin.clone());
                move || runtime.execute_blocking(&plugin, &request)
            });
            std::thread::sleep(Duration::from_millis(150));
            let revoked_at = Instant::now();
            cancel.cancel();
            let outcome = running.join().unwrap();
            let stop = revoked_at.elapsed();
            assert_eq!(outcome.result, Err(TaskFailure::Revoked), "{task} {input}");
            assert!(
                stop < Duration::from_millis(100),
                "{task} {input}: stopped {stop:?} after the revocation"
            );
        }
        assert_still_healthy(&runtime, &plugin);
    }
}

/// Two guests asleep in WASI used to hold both slots of a two-slot runtime
/// until they woke: every later task waited behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_guests_free_their_slots_at_their_deadline() {
    let runtime = runtime_with(RuntimeConfig {
        max_concurrent_tasks: 2,
        ..Default::default()
    });
    let plugin = hostile(&runtime);
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            tokio::spawn(async move {
                runtime
                    .execute(plugin, limited("test.sleep", json!({"ms": 3_600_000})))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let echo = runtime
        .execute(
            plugin.clone(),
            TaskRequest::new("test.echo", br#"{"after":"sleepers"}"#.to_vec()),
        )
        .await;
    assert_eq!(
        echo.result.map(|b| String::from_utf8(b).unwrap()),
        Ok(r#"{"after":"sleepers"}"#.to_string())
    );
    assert!(
        started.elapsed() < Duration::from_millis(HARD_MS) + LATE_BY_AT_MOST,
        "the next task waited {:?} for a slot",
        started.elapsed()
    );
    for sleeper in sleepers {
        assert!(matches!(
            sleeper.await.unwrap().result,
            Err(TaskFailure::HardTimeLimit { .. })
        ));
    }
}

/// A `describe` asleep in WASI hung every load: `hippo run`, a deploy, the
/// folder watcher and a cold start.
#[test]
fn a_describe_that_sleeps_is_refused_within_the_describe_limit() {
    let runtime = runtime();
    let started = Instant::now();
    let refused = runtime.load(
        &guest("slow_describe_guest"),
        Manifest::default(),
        None,
        None,
    );
    let took = started.elapsed();
    let error = refused.expect_err("a describe that never returns is refused");
    assert!(
        error.to_string().contains("describe failed") && error.to_string().contains("2000 ms"),
        "{error}"
    );
    // The load compiles the component first (a second or so on a busy
    // machine); the describe itself is cut at its 2 s limit.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(2 + 4),
        "refused after {took:?}"
    );
    let plugin = hostile(&runtime);
    assert_still_healthy(&runtime, &plugin);
}

/// While every task slot is held, a plugin still loads: `describe` has
/// pool slots of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_does_not_wait_behind_running_tasks() {
    let runtime = runtime_with(RuntimeConfig {
        max_concurrent_tasks: 1,
        ..Default::default()
    });
    let plugin = hostile(&runtime);
    let mut request = TaskRequest::new("test.sleep", br#"{"ms": 3600000}"#.to_vec());
    let cancel = request.cancel.clone();
    request.limits.hard_time_limit_ms = Some(60_000);
    let sleeping = tokio::spawn({
        let (runtime, plugin) = (runtime.clone(), plugin.clone());
        async move { runtime.execute(plugin, request).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let loaded = tokio::task::spawn_blocking({
        let runtime = runtime.clone();
        move || runtime.load(&guest("hippo_example_fib"), Manifest::default(), None, None)
    })
    .await
    .unwrap();
    assert!(loaded.is_ok(), "{:?}", loaded.err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    cancel.cancel();
    assert_eq!(sleeping.await.unwrap().result, Err(TaskFailure::Revoked));
}
