//! A failure says what happened: a guest that exits instead of returning,
//! one whose stack in linear memory runs out, one whose output is over any
//! copy limit, each named as such and not as wasmtime's internals.

use hippo_runtime::{LimitOverrides, TaskFailure, TaskRequest};
use hippo_test_support::{assert_still_healthy, hostile, run, runtime};
use serde_json::json;

#[test]
fn a_guest_that_exits_mid_task_is_reported_as_exited() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    // WASI 0.2's `exit` carries success or failure only: any non-zero
    // status reaches the host as 1.
    for (status, seen) in [(0, 0), (3, 1)] {
        let outcome = run(&runtime, &plugin, "test.exit", json!({"status": status}));
        assert_eq!(outcome.result, Err(TaskFailure::Exited { status: seen }));
        let message = outcome.result.unwrap_err().to_string();
        assert!(message.contains("without returning"), "{message}");
    }
    assert_still_healthy(&runtime, &plugin);
}

/// The shadow stack in linear memory ran out first and the trap read "out
/// of bounds memory access", followed by a long backtrace.
#[test]
fn a_stack_overflow_in_linear_memory_is_a_stack_overflow() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let outcome = run(
        &runtime,
        &plugin,
        "test.recurse-wide",
        json!({"depth": 100_000}),
    );
    assert_eq!(outcome.result, Err(TaskFailure::StackOverflow));
    let shallow = run(&runtime, &plugin, "test.recurse-wide", json!({"depth": 10}));
    assert_eq!(
        shallow.result.map(|b| String::from_utf8(b).unwrap()),
        Ok(r#"{"depth":10}"#.into())
    );
}

/// An output over wasmtime's copy limit (the store's hostcall fuel) failed
/// as "too much data is being copied between the host and the guest"
/// before hippo's own output check could say what it was.
#[test]
fn an_output_over_every_copy_limit_is_output_too_large() {
    let runtime = runtime();
    let plugin = hostile(&runtime);
    let mut request = TaskRequest::new(
        "test.big-output",
        json!({"bytes": 48 << 20}).to_string().into_bytes(),
    );
    request.limits = LimitOverrides {
        memory_bytes: Some(512 << 20),
        ..Default::default()
    };
    request.may_raise_limits = true;
    let outcome = runtime.execute_blocking(&plugin, &request);
    match &outcome.result {
        Err(TaskFailure::OutputTooLarge {
            size_bytes,
            limit_bytes,
        }) => {
            assert_eq!(*limit_bytes, 16 << 20);
            assert!(*size_bytes > *limit_bytes);
        }
        other => panic!("expected output_too_large, got {other:?}"),
    }
    assert_still_healthy(&runtime, &plugin);
}
