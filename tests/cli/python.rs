//! A plugin written in Python with the guest SDK (examples/python over
//! sdk/python-guest, built by componentize-py): it loads and runs under the
//! same limits and grants as a Rust plugin, through `hippo run` and
//! `hippo serve`.

use super::serve_with;
use hippo_integration_tests::serve::{hippo_local, parts};
use hippo_integration_tests::{guest, guest_path};
use std::time::{Duration, Instant};

const EXAMPLE: &str = "python_example";

fn run(task: &str, input: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let component = guest_path(EXAMPLE);
    let output = hippo_local(
        &[
            &["run", component.to_str().unwrap(), task, "--input", input][..],
            extra,
        ]
        .concat(),
    );
    let (code, report, stderr) = parts(&output);
    assert!(report.is_object(), "{task}: {stderr}");
    (code, report)
}

#[test]
fn a_python_plugin_runs_under_hippo_run() {
    let (code, report) = run("pyexample.greet", r#"{"name": "Ada"}"#, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["output"]["greeting"], "Hello, Ada!");
    assert_eq!(
        report["log"]["lines"][0]["message"], "greeting Ada",
        "{report}"
    );

    let (code, report) = run("pyexample.greet", "{}", &[]);
    assert_eq!(code, 1);
    assert_eq!(report["error"]["detail"]["kind"], "bad_input", "{report}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("field `name`")
    );

    let (code, report) = run("pyexample.count", r#"{"n": 50}"#, &[]);
    assert_eq!(
        (code, &report["output"]["counted"]),
        (0, &serde_json::json!(50)),
        "{report}"
    );
    assert_eq!(report["progress"]["done"], 50, "{report}");

    let (code, report) = run("pyexample.flaky", r#"{"succeed_on": 2}"#, &[]);
    assert_eq!(code, 1);
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry"),
        "{report}"
    );

    // A busy loop in CPython stops at the hard limit like any guest.
    let started = Instant::now();
    let (code, report) = run("pyexample.spin", "{}", &["--hard-time-limit-ms", "1000"]);
    assert_eq!(code, 1);
    assert_eq!(
        report["error"]["detail"]["kind"], "hard_time_limit",
        "{report}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // And fuel, when it runs out first.
    let (code, report) = run("pyexample.spin", "{}", &["--fuel", "50000000"]);
    assert_eq!(code, 1);
    assert_eq!(
        report["error"]["detail"]["kind"], "fuel_exhausted",
        "{report}"
    );
}

#[test]
fn a_python_plugin_is_retried_by_hippo_serve() {
    let server = serve_with(&[("python-example.wasm", &guest(EXAMPLE))], &[]);
    let (code, status, stderr) =
        server.submit_waiting("pyexample.flaky", r#"{"succeed_on": 2}"#, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status["status"], "SUCCESS", "{status}");
    assert_eq!(status["result"]["attempt"], 2, "{status}");
    let (code, status, stderr) =
        server.submit_waiting("pyexample.greet", r#"{"name": "Grace"}"#, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status["result"]["greeting"], "Hello, Grace!", "{status}");
}
