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

/// The python-memory example (built against `task-plugin`) with its
/// manifest, beside the memory plugin (to create memories through).
fn serve_python_memory() -> super::Server {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |path: &str| std::fs::read(repo.join(path)).unwrap();
    serve_with(
        &[
            ("python-memory.wasm", &guest("python_memory")),
            (
                "python-memory.toml",
                &read("examples/python-memory/python-memory.toml"),
            ),
            ("memory.wasm", &read("plugins/memory.wasm")),
            ("memory.toml", &read("plugins/memory.toml")),
        ],
        &[],
    )
}

#[test]
fn a_python_plugin_uses_the_key_value_store_the_model_and_the_memory_store() {
    let server = serve_python_memory();
    let run = |task: &str, input: &str| {
        let (code, status, stderr) = server.submit_waiting(task, input, &[]);
        assert_eq!(code, 0, "{task}: {stderr}");
        assert_eq!(status["status"], "SUCCESS", "{task}: {status}");
        status["result"].clone()
    };
    // The key-value store keeps the count between tasks.
    assert_eq!(run("pymemory.visits", r#"{"user_id": "ada"}"#)["visits"], 1);
    assert_eq!(run("pymemory.visits", r#"{"user_id": "ada"}"#)["visits"], 2);

    // The host's model: a paraphrase is nearer than an unrelated sentence.
    let near = run(
        "pymemory.similarity",
        r#"{"a": "I love drinking coffee in the morning", "b": "Every morning I enjoy a cup of coffee"}"#,
    );
    let far = run(
        "pymemory.similarity",
        r#"{"a": "I love drinking coffee in the morning", "b": "The train to Lyon leaves at nine"}"#,
    );
    assert_eq!(near["dimension"], 384);
    assert!(
        near["similarity"].as_f64().unwrap() > far["similarity"].as_f64().unwrap() + 0.2,
        "{near} {far}"
    );

    // The memory store: the user's own memories, nearest first.
    for text in ["Ada drinks her coffee black", "Ada's sister lives in Lyon"] {
        let input = serde_json::json!({"text": text, "user_id": "ada"}).to_string();
        let (code, status, stderr) = server.submit_waiting("memory.create", &input, &[]);
        assert_eq!(
            (code, &status["status"]),
            (0, &"SUCCESS".into()),
            "{stderr}"
        );
    }
    let found = run(
        "pymemory.recall",
        r#"{"user_id": "ada", "query": "how does she take her coffee?"}"#,
    );
    assert_eq!(found["count"], 2, "{found}");
    assert_eq!(found["texts"][0], "Ada drinks her coffee black", "{found}");

    // Another user's memories: the host refuses, and the task says so.
    let (code, status, _) = server.submit_waiting(
        "pymemory.recall",
        r#"{"user_id": "ada", "query": "coffee", "of_user": "grace"}"#,
        &[],
    );
    assert_ne!(code, 0);
    assert_eq!(status["status"], "FAILURE", "{status}");
    assert!(
        status["error"]
            .to_string()
            .contains("memory store (forbidden)"),
        "{status}"
    );
}

#[test]
fn a_python_plugin_importing_what_its_manifest_does_not_grant_is_refused() {
    // Beside no manifest: the basic grants (log, progress, deadline) only.
    let component = guest_path("python_memory");
    let output = hippo_local(&[
        "run",
        component.to_str().unwrap(),
        "pymemory.visits",
        "--input",
        r#"{"user_id": "ada"}"#,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("imports `hippo:tasks/kv") && stderr.contains("does not grant"),
        "{stderr}"
    );
}
