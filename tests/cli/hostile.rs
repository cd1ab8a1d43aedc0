//! Hostile guests through the real binary: `hippo run` and `hippo serve`
//! end a guest that waits outside wasm at its hard limit or on
//! revocation, refuse a plugin whose `describe` never returns, free the
//! worker's slots, keep serving, and exit on SIGTERM within the drain
//! timeout plus a second.

use super::{Server, serve_with};
use hippo_integration_tests::serve::{hippo_local, parts};
use hippo_integration_tests::{guest, guest_path};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

/// `hippo run ARGS`, with the time it took.
fn hippo_run(args: &[&str]) -> (i32, Value, String, Duration) {
    let started = Instant::now();
    let output = hippo_local(&[&["run"], args, &["--no-cache"]].concat());
    let took = started.elapsed();
    let (code, json, stderr) = parts(&output);
    (code, json, stderr, took)
}

#[test]
fn hippo_run_stops_a_guest_asleep_in_wasi_at_its_hard_limit() {
    let hostile = guest_path("hostile_guest");
    let hostile = hostile.to_str().unwrap();
    for (task, input) in [
        ("test.sleep", r#"{"ms": 3600000}"#),
        ("test.block", r#"{"how": "forever"}"#),
    ] {
        let (code, report, stderr, took) = hippo_run(&[
            hostile,
            task,
            "--input",
            input,
            "--hard-time-limit-ms",
            "1000",
        ]);
        assert_eq!(code, 1, "{task}: {report} {stderr}");
        assert_eq!(
            report["error"]["detail"]["kind"], "hard_time_limit",
            "{report}"
        );
        assert!(
            took < Duration::from_secs(10),
            "{task}: hippo run took {took:?}"
        );
    }
    let (code, report, stderr, _) =
        hippo_run(&[hostile, "test.exit", "--input", r#"{"status": 0}"#]);
    assert_eq!(
        (code, &report["error"]["detail"]["kind"]),
        (1, &json!("exited")),
        "{stderr}"
    );
}

#[test]
fn hippo_run_refuses_a_plugin_whose_describe_never_returns() {
    let path = guest_path("slow_describe_guest");
    let (code, _, stderr, took) = hippo_run(&[path.to_str().unwrap(), "slow.noop"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("describe failed"), "{stderr}");
    assert!(took < Duration::from_secs(10), "hippo run took {took:?}");
}

impl Server {
    /// Submits `task` and returns its id.
    #[track_caller]
    fn submit(&self, task: &str, input: &str, extra: &[&str]) -> String {
        let mut args = vec!["submit", task, "--input", input];
        args.extend_from_slice(extra);
        let (code, submitted, stderr) = parts(&self.hippo(&args));
        assert_eq!(code, 0, "{stderr}");
        submitted["task_id"]
            .as_str()
            .expect("a task id")
            .to_string()
    }

    /// The task's status once it is final (waiting up to `seconds`).
    #[track_caller]
    fn final_status(&self, id: &str, seconds: &str) -> Value {
        let (_, status, stderr) = parts(&self.hippo(&["status", id, "--wait", seconds]));
        assert!(status.is_object(), "{stderr}");
        status
    }

    /// A well-behaved task still runs, end to end.
    #[track_caller]
    fn assert_serves(&self) {
        let (code, status, stderr) =
            self.submit_waiting("test.echo", r#"{"still":"serving"}"#, &[]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(status["result"], json!({"still": "serving"}), "{status}");
    }
}

#[test]
fn hippo_serve_ends_waiting_guests_and_keeps_serving() {
    let started = Instant::now();
    let server = serve_with(
        &[
            ("hostile.wasm", &guest("hostile_guest")),
            ("slow-describe.wasm", &guest("slow_describe_guest")),
        ],
        &["-c", "2", "--drain-timeout", "2"],
    );
    // The plugin whose describe sleeps is refused; the others load.
    let (code, listed, _) = parts(&server.hippo(&["plugins", "--remote"]));
    assert_eq!(code, 0);
    let refused = listed["refused"].to_string();
    assert!(
        refused.contains("slow-describe") && refused.contains("describe failed"),
        "{listed}"
    );
    // It would never start if it waited on that describe; it waits at most
    // the describe limit (2 s) beside compiling two small plugins.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the service took {:?} to start",
        started.elapsed()
    );
    server.assert_serves();

    // Asleep in WASI past its hard limit: FAILURE at the limit.
    let submitted = Instant::now();
    let sleeper = server.submit(
        "test.sleep",
        r#"{"ms": 3600000}"#,
        &["--hard-time-limit-ms", "1500"],
    );
    let status = server.final_status(&sleeper, "20");
    assert_eq!(
        (&status["status"], &status["error"]["kind"]),
        (&json!("FAILURE"), &json!("hard_time_limit")),
        "{status}"
    );
    assert!(
        submitted.elapsed() < Duration::from_millis(1_500 + 2_000),
        "failed after {:?}",
        submitted.elapsed()
    );
    server.assert_serves();

    // Two guests blocked forever hold both slots of `-c 2`; revoking them
    // stops them and frees the slots.
    let blocked: Vec<String> = (0..2)
        .map(|_| server.submit("test.block", r#"{"how": "forever"}"#, &[]))
        .collect();
    for id in &blocked {
        let (_, status, _) = parts(&server.hippo(&["status", id, "--wait", "0.5"]));
        assert_ne!(status["status"], "SUCCESS", "{status}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let revoked_at = Instant::now();
    for id in &blocked {
        let (code, cancelled, stderr) = parts(&server.hippo(&["cancel", id]));
        assert_eq!(
            (code, &cancelled["outcome"]),
            (0, &json!("running")),
            "{stderr}"
        );
    }
    for id in &blocked {
        let status = server.final_status(id, "10");
        assert_eq!(status["status"], "REVOKED", "{status}");
    }
    assert!(
        revoked_at.elapsed() < Duration::from_secs(5),
        "revoked after {:?}",
        revoked_at.elapsed()
    );
    server.assert_serves();

    // A deploy of the sleeping describe is answered (refused) within its limit.
    let deploy_started = Instant::now();
    let (code, _, stderr) = parts(&server.hippo(&[
        "deploy",
        guest_path("slow_describe_guest").to_str().unwrap(),
        "--name",
        "slow-again",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("describe failed"), "{stderr}");
    assert!(
        deploy_started.elapsed() < Duration::from_secs(10),
        "the deploy was answered after {:?}",
        deploy_started.elapsed()
    );
    server.assert_serves();
}

/// `hippo serve --drain-timeout 5` was still running 40 s after SIGTERM
/// while a guest slept in WASI.
#[test]
fn sigterm_exits_within_the_drain_timeout_while_a_guest_waits() {
    let mut server = serve_with(
        &[("hostile.wasm", &guest("hostile_guest"))],
        &["--drain-timeout", "2"],
    );
    let blocked = server.submit("test.block", r#"{"how": "forever"}"#, &[]);
    let (_, status, _) = parts(&server.hippo(&["status", &blocked, "--wait", "0.5"]));
    assert_ne!(status["status"], "SUCCESS", "{status}");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.serve.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = loop {
        if let Some(status) = server.serve.try_wait() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "hippo serve still runs {:?} after SIGTERM",
            signalled.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    assert!(exit.success(), "{exit}");
    assert!(
        took < Duration::from_secs(2 + 1),
        "exited {took:?} after SIGTERM with --drain-timeout 2"
    );
}
