//! The sandbox and the limits, on real components: every hostile case fails
//! cleanly with a clear reason, and the next task on the same runtime succeeds.

use hippo_runtime::{
    CancelToken, LimitOverrides, LoadError, LogSource, Manifest, RuntimeConfig, TaskFailure,
    TaskRequest,
};
use hippo_test_support::{
    assert_still_healthy, guest, hostile, output, run, runtime, runtime_with,
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn with_limits(task: &str, input: serde_json::Value, limits: LimitOverrides) -> TaskRequest {
    let mut request = TaskRequest::new(task, input.to_string().into_bytes());
    request.limits = limits;
    request
}

#[test]
fn noop_task_round_trips_with_measured_costs() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let outcome = run(&runtime, &plugin, "test.noop", json!(null));
    assert_eq!(output(&outcome), json!(null));
    assert!(
        outcome.stats.fuel_used.is_some_and(|f| f > 0),
        "fuel is measured: {:?}",
        outcome.stats
    );
    assert!(outcome.stats.peak_memory_bytes > 0, "memory is measured");
    assert!(outcome.stats.wall_time_us > 0);
    assert_eq!(outcome.plugin_version, "1.0.0");
    let echoed = run(&runtime, &plugin, "test.echo", json!({"a": [1, 2, 3]}));
    assert_eq!(output(&echoed), json!({"a": [1, 2, 3]}));
}

#[test]
fn infinite_loop_is_stopped_at_the_hard_limit() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let started = Instant::now();
    let limits = LimitOverrides {
        hard_time_limit_ms: Some(200),
        ..Default::default()
    };
    let outcome = runtime.execute_blocking(&plugin, &with_limits("test.spin", json!(null), limits));
    let took = started.elapsed();
    assert_eq!(
        outcome.result,
        Err(TaskFailure::HardTimeLimit { limit_ms: 200 })
    );
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(1_000),
        "stopped after {took:?}"
    );
    assert_still_healthy(&runtime, &plugin);
}

/// A guest run to completion (`execute_blocking`, and `load`, which runs
/// `describe`) from inside a task of a multi-thread Tokio runtime, as a
/// server's start-up or a benchmark does, hung at its first epoch tick: the
/// guest yielded through Tokio's `yield_now`, which parks the wake-up on the
/// worker thread that the blocked call itself occupies.
#[test]
fn a_guest_run_to_completion_inside_a_runtime_task_does_not_hang_at_its_first_tick() {
    let (finished, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let result = tokio.block_on(tokio.spawn(async {
            let runtime = runtime();
            let plugin = hostile(&runtime);
            let limits = LimitOverrides {
                hard_time_limit_ms: Some(100),
                ..Default::default()
            };
            runtime
                .execute_blocking(&plugin, &with_limits("test.spin", json!(null), limits))
                .result
        }));
        let _ = finished.send(result.unwrap());
    });
    let result = outcome
        .recv_timeout(Duration::from_secs(30))
        .expect("the spinning guest was never interrupted: its run hung");
    assert_eq!(result, Err(TaskFailure::HardTimeLimit { limit_ms: 100 }));
}

#[test]
fn soft_limit_lets_the_guest_return_a_partial_result() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let limits = LimitOverrides {
        soft_time_limit_ms: Some(100),
        hard_time_limit_ms: Some(5_000),
        ..Default::default()
    };
    let outcome = runtime.execute_blocking(
        &plugin,
        &with_limits("test.soft-partial", json!(null), limits),
    );
    let value = output(&outcome);
    assert_eq!(value["partial"], json!(true));
    assert!(value["iterations"].as_u64().unwrap() > 0);
    assert!(
        outcome.stats.soft_limit_passed,
        "the host records that the soft limit passed"
    );
    assert!(
        outcome.stats.wall_time_us < 2_000_000,
        "returned soon after the soft limit"
    );
    assert!(outcome.progress.is_some(), "progress was reported");
}

#[test]
fn allocating_a_gibibyte_under_a_64_mib_cap_fails_cleanly() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let limits = LimitOverrides {
        memory_bytes: Some(64 << 20),
        ..Default::default()
    };
    let outcome = runtime.execute_blocking(
        &plugin,
        &with_limits("test.alloc", json!({"bytes": 1u64 << 30}), limits),
    );
    match outcome.result {
        Err(TaskFailure::MemoryLimit {
            limit_bytes,
            requested_bytes,
        }) => {
            assert_eq!(limit_bytes, 64 << 20);
            assert!(requested_bytes >= 1 << 30);
        }
        other => panic!("expected a memory limit failure, got {other:?}"),
    }
    assert!(
        outcome.stats.peak_memory_bytes <= 64 << 20,
        "peak {}",
        outcome.stats.peak_memory_bytes
    );
    // A guest that handles the refusal itself gets to report it.
    let fallible = json!({"bytes": 1u64 << 30, "fallible": true});
    let handled = runtime.execute_blocking(&plugin, &with_limits("test.alloc", fallible, limits));
    assert!(
        matches!(handled.result, Err(TaskFailure::Fatal { ref message }) if message.contains("could not allocate"))
    );
    // Within the cap the same task succeeds.
    let fits = runtime.execute_blocking(
        &plugin,
        &with_limits("test.alloc", json!({"bytes": 16 << 20}), limits),
    );
    assert_eq!(output(&fits), json!({"allocated": 16 << 20}));
    assert!(fits.stats.peak_memory_bytes >= 16 << 20);
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn deep_recursion_is_a_stack_overflow_not_a_crash() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let outcome = run(
        &runtime,
        &plugin,
        "test.recurse",
        json!({"depth": 100_000_000u64}),
    );
    assert_eq!(outcome.result, Err(TaskFailure::StackOverflow));
    let shallow = run(&runtime, &plugin, "test.recurse", json!({"depth": 100}));
    assert_eq!(output(&shallow)["depth"], json!(100));
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn guest_panic_is_reported_with_its_message() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let outcome = run(&runtime, &plugin, "test.panic", json!(null));
    match &outcome.result {
        Err(TaskFailure::Panicked { message }) => {
            assert!(
                message.contains("hostile guest panicked on purpose"),
                "message: {message}"
            )
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn guest_cannot_read_host_files() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    assert!(
        std::fs::read_to_string("/etc/passwd").is_ok(),
        "the host itself can read the file"
    );
    let value = output(&run(
        &runtime,
        &plugin,
        "test.read-file",
        json!({"path": "/etc/passwd"}),
    ));
    assert_eq!(value["ok"], json!(false), "{value}");
    assert!(!value.to_string().contains("root:"));
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn guest_cannot_open_sockets() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    assert!(
        std::net::TcpStream::connect(&addr).is_ok(),
        "the host itself can connect"
    );
    let value = output(&run(
        &runtime,
        &plugin,
        "test.connect",
        json!({"addr": addr}),
    ));
    assert_eq!(value["ok"], json!(false), "{value}");
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn guest_sees_no_environment_and_no_arguments() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let value = output(&run(&runtime, &plugin, "test.env", json!(null)));
    assert_eq!(value, json!({"vars": 0, "args": 0}));
}

#[test]
fn output_over_the_limit_is_refused() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let limits = LimitOverrides {
        output_bytes: Some(1_000),
        ..Default::default()
    };
    let outcome = runtime.execute_blocking(
        &plugin,
        &with_limits("test.big-output", json!({"bytes": 5_000}), limits),
    );
    assert!(
        matches!(outcome.result, Err(TaskFailure::OutputTooLarge { limit_bytes: 1_000, size_bytes }) if size_bytes > 5_000)
    );
    let small = runtime.execute_blocking(
        &plugin,
        &with_limits("test.big-output", json!({"bytes": 500}), limits),
    );
    assert_eq!(output(&small).as_str().map(str::len), Some(500));
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn fuel_limit_stops_a_spinning_guest() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let limits = LimitOverrides {
        fuel: Some(10_000_000),
        ..Default::default()
    };
    let outcome = runtime.execute_blocking(&plugin, &with_limits("test.spin", json!(null), limits));
    assert_eq!(
        outcome.result,
        Err(TaskFailure::FuelExhausted { fuel: 10_000_000 })
    );
    assert_eq!(outcome.stats.fuel_used, Some(10_000_000));
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn task_errors_keep_their_kind() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let retry = run(
        &runtime,
        &plugin,
        "test.fail",
        json!({"kind": "retry", "delay_ms": 250}),
    );
    assert!(matches!(
        retry.result,
        Err(TaskFailure::Retry {
            delay_ms: Some(250),
            ..
        })
    ));
    assert!(retry.result.as_ref().unwrap_err().is_retryable());
    let fatal = run(&runtime, &plugin, "test.fail", json!({"kind": "fatal"}));
    assert!(matches!(fatal.result, Err(TaskFailure::Fatal { .. })));
    let bad = run(&runtime, &plugin, "test.fail", json!({"kind": "bad-input"}));
    assert!(matches!(bad.result, Err(TaskFailure::BadInput { .. })));
    let malformed = run(&runtime, &plugin, "test.recurse", json!({"depth": "deep"}));
    assert!(
        matches!(malformed.result, Err(TaskFailure::BadInput { ref message }) if message.contains("depth"))
    );
    let unknown = run(&runtime, &plugin, "test.nope", json!(null));
    assert_eq!(
        unknown.result,
        Err(TaskFailure::UnknownTask {
            task: "test.nope".into()
        })
    );
}

#[test]
fn logs_and_captured_stdio_are_bounded() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let few = run(&runtime, &plugin, "test.log", json!({"lines": 3}));
    output(&few);
    let sources: Vec<_> = few.log.lines.iter().map(|l| l.source).collect();
    assert_eq!(
        sources.iter().filter(|s| **s == LogSource::Guest).count(),
        3
    );
    assert_eq!(
        sources.iter().filter(|s| **s == LogSource::Stdout).count(),
        3
    );
    assert_eq!(
        sources.iter().filter(|s| **s == LogSource::Stderr).count(),
        3
    );
    assert_eq!(few.log.dropped_lines, 0);

    let limits = LimitOverrides {
        log_bytes: Some(1_000),
        ..Default::default()
    };
    let flood = runtime.execute_blocking(
        &plugin,
        &with_limits("test.log", json!({"lines": 10_000}), limits),
    );
    output(&flood);
    let kept: usize = flood.log.lines.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 1_000, "kept {kept} bytes");
    assert!(
        flood.log.dropped_lines > 20_000,
        "dropped {}",
        flood.log.dropped_lines
    );
}

#[test]
fn progress_reports_reach_the_sink() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut request = TaskRequest::new(
        "test.progress",
        json!({"steps": 4}).to_string().into_bytes(),
    );
    request.progress = Some(Arc::new({
        let seen = seen.clone();
        move |p: &hippo_runtime::Progress| seen.lock().unwrap().push((p.done, p.total))
    }));
    output(&runtime.execute_blocking(&plugin, &request));
    assert_eq!(*seen.lock().unwrap(), vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
}

#[test]
fn revoking_a_running_task_stops_it_within_100_ms() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let request = TaskRequest::new("test.spin", b"null".to_vec());
    let cancel: CancelToken = request.cancel.clone();
    let worker = std::thread::spawn({
        let runtime = runtime.clone();
        let plugin = plugin.clone();
        move || runtime.execute_blocking(&plugin, &request)
    });
    std::thread::sleep(Duration::from_millis(200));
    let revoked_at = Instant::now();
    cancel.cancel();
    let outcome = worker.join().unwrap();
    let stop = revoked_at.elapsed();
    assert_eq!(outcome.result, Err(TaskFailure::Revoked));
    assert!(
        stop < Duration::from_millis(100),
        "stopped {stop:?} after the revocation"
    );
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn excess_work_waits_for_a_pool_slot_instead_of_failing() {
    let runtime = runtime_with(RuntimeConfig {
        max_concurrent_tasks: 2,
        ..RuntimeConfig::default()
    });
    let plugin = hostile(&runtime);
    let limits = LimitOverrides {
        hard_time_limit_ms: Some(150),
        ..Default::default()
    };
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let outcomes = tokio.block_on(async {
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let runtime = runtime.clone();
                let plugin = plugin.clone();
                tokio::spawn(async move {
                    runtime
                        .execute(plugin, with_limits("test.spin", json!(null), limits))
                        .await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    });
    for outcome in outcomes {
        assert_eq!(
            outcome.result,
            Err(TaskFailure::HardTimeLimit { limit_ms: 150 })
        );
    }
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn ungranted_and_unknown_imports_are_refused_at_load_naming_the_import() {
    let runtime = runtime();
    let only_log = Manifest::from_toml(r#"grants = ["log"]"#).unwrap();
    match runtime.load(&guest("hostile_guest"), only_log, None, None) {
        Err(LoadError::NotGranted { import, granted }) => {
            assert!(
                import.starts_with("hippo:tasks/progress")
                    || import.starts_with("hippo:tasks/deadline"),
                "{import}"
            );
            assert_eq!(granted, "log");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match runtime.load(
        &guest("unknown_import_guest"),
        Manifest::default(),
        None,
        None,
    ) {
        Err(error @ LoadError::UnknownImport { .. }) => {
            assert!(error.to_string().contains("hippo:evil/raw-net"), "{error}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A plugin that uses no host capability needs no grant at all.
    let nothing = Manifest::from_toml("grants = []").unwrap();
    let fib = runtime
        .load(&guest("hippo_example_fib"), nothing, None, None)
        .expect("fib needs no grant");
    let value = output(&runtime.execute_blocking(
        &fib,
        &TaskRequest::new("example.fib", br#"{"n": 90}"#.to_vec()),
    ));
    assert_eq!(value, json!({"value": 2_880_067_194_370_816_120u64}));
}

#[test]
fn garbage_and_core_modules_are_refused() {
    let runtime = runtime();
    assert!(matches!(
        runtime.load(b"definitely not wasm", Manifest::default(), None, None),
        Err(LoadError::NotWasm)
    ));
    let core_module = b"\0asm\x01\0\0\0";
    assert!(matches!(
        runtime.load(core_module, Manifest::default(), None, None),
        Err(LoadError::CoreModule)
    ));
    let mut truncated = guest("hostile_guest");
    truncated.truncate(truncated.len() / 2);
    match runtime.load(&truncated, Manifest::default(), None, None) {
        // Wasmtime's error was a string; it is the source now.
        Err(error @ LoadError::Compile(_)) => {
            let engine = std::error::Error::source(&error).expect("wasmtime's error");
            assert!(engine.source().is_some(), "{error}: the chain goes on");
        }
        other => panic!("a truncated component: {other:?}"),
    }
    let plugin = hostile(&runtime);
    assert_still_healthy(&runtime, &plugin);
}

#[test]
fn a_task_never_sees_memory_an_earlier_task_left_in_its_pool_slot() {
    // One slot, so every task reuses the same linear memory; the pool
    // resets only the pages each task dirtied (PAGEMAP_SCAN where the
    // kernel has it), which must still hand the next task zeroes.
    let runtime = runtime_with(RuntimeConfig {
        max_concurrent_tasks: 1,
        ..RuntimeConfig::default()
    });
    let plugin = hostile(&runtime);
    for bytes in [1_000, 512 << 10, 8 << 20] {
        let written = run(
            &runtime,
            &plugin,
            "test.memory-probe",
            json!({"bytes": bytes, "mode": "write"}),
        );
        assert_eq!(output(&written), json!({"marked": bytes}));
        let probed = run(
            &runtime,
            &plugin,
            "test.memory-probe",
            json!({"bytes": bytes, "mode": "probe"}),
        );
        assert_eq!(
            output(&probed),
            json!({"marked": 0}),
            "{bytes} bytes: the earlier task's marker leaked"
        );
    }
    // The probe does see what is left in memory: within one task, freed
    // and allocated again, the marker is there.
    let both = run(
        &runtime,
        &plugin,
        "test.memory-probe",
        json!({"bytes": 8 << 20, "mode": "write-then-probe"}),
    );
    assert!(
        output(&both)["marked"].as_u64().unwrap() > 0,
        "the probe cannot see leftovers: {:?}",
        output(&both)
    );
}

#[path = "sandbox/failures.rs"]
mod failures;
#[path = "sandbox/waiting.rs"]
mod waiting;
