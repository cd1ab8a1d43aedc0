//! The operator sets the ceiling (issue 15, item 4), against the `greedy`
//! test guest, whose `describe` asks for the host's ceilings on every limit:
//! - `describe` may only lower the operator's defaults; the manifest (the
//!   operator's file) may raise them up to the ceilings;
//! - a submission may raise a task's limits only from a key with the
//!   `limits` scope: the API refuses a raise it can check (403 naming the
//!   field), and the runtime lowers one it could not (the plugin was
//!   deployed after the submission);
//! - a task's output stays JSON text on the host: a 15 MiB `[0,0,...]` (a
//!   node of a parsed tree per two bytes) costs the service a small multiple
//!   of its size.
//!
//! Through the library, `hippo run` and `hippo serve`, each followed by a
//! well-behaved task.

use hippo::api::hash_key;
use hippo::runtime::{Limits, LoadedPlugin, Manifest, Runtime, TaskRequest};
use hippo_integration_tests::serve::Serve;
use hippo_integration_tests::{
    assert_still_healthy, guest, guest_path, hippo_bin, hostile, output, run, runtime,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// Above the default memory limit (256 MiB), below the ceiling.
const OVER_DEFAULT: u64 = 300 * MIB;
/// A memory limit above the default that a raise asks for.
const RAISED: u64 = 512 * MIB;

fn greedy(runtime: &Runtime, manifest: Manifest) -> LoadedPlugin {
    runtime
        .load(&guest("greedy_guest"), manifest, None, None)
        .expect("the greedy guest loads")
}

/// What `greedy.limits` reports: whether it could allocate, and the time
/// left before each limit.
#[track_caller]
fn assert_got_the_defaults(report: &Value) {
    assert_eq!(report["allocated"], false, "{report}");
    let soft = report["soft_time_left_ms"]
        .as_u64()
        .expect("soft time left");
    let hard = report["hard_time_left_ms"]
        .as_u64()
        .expect("hard time left");
    assert!(soft <= 300_000 && hard <= 600_000, "{report}");
}

#[test]
fn a_describe_asking_for_the_ceilings_gets_the_operators_defaults() {
    let runtime = runtime();
    let plugin = greedy(&runtime, Manifest::default());
    for spec in &plugin.tasks {
        assert_eq!(spec.limits.memory_bytes, Some(4 << 30), "it does ask");
        assert_eq!(runtime.plugin_limits(&plugin, spec), Limits::DEFAULT);
    }
    let outcome = run(
        &runtime,
        &plugin,
        "greedy.limits",
        json!({ "bytes": OVER_DEFAULT }),
    );
    assert_eq!(outcome.limits, Limits::DEFAULT);
    assert_got_the_defaults(&output(&outcome));

    // The operator's manifest may raise them, up to the ceilings.
    let manifest = Manifest::from_toml(&format!(
        "[limits]\nmemory_bytes = {RAISED}\nhard_time_limit_ms = 3600000"
    ))
    .unwrap();
    let raised = greedy(&runtime, manifest);
    let outcome = run(
        &runtime,
        &raised,
        "greedy.limits",
        json!({ "bytes": OVER_DEFAULT }),
    );
    assert_eq!(
        (outcome.limits.memory_bytes, outcome.limits.hard_time_limit),
        (RAISED, Duration::from_secs(3600))
    );
    assert_eq!(output(&outcome)["allocated"], true);
    assert_still_healthy(&runtime, &hostile(&runtime));
}

#[test]
fn a_submission_only_lowers_limits_unless_authorised_to_raise_them() {
    let runtime = runtime();
    let plugin = greedy(&runtime, Manifest::default());
    let mut request = TaskRequest::new(
        "greedy.limits",
        json!({ "bytes": OVER_DEFAULT }).to_string(),
    );
    request.limits.memory_bytes = Some(RAISED);
    let refused = runtime.execute_blocking(&plugin, &request);
    assert_eq!(refused.limits.memory_bytes, Limits::DEFAULT.memory_bytes);
    assert_got_the_defaults(&output(&refused));

    request.may_raise_limits = true;
    let raised = runtime.execute_blocking(&plugin, &request);
    assert_eq!(raised.limits.memory_bytes, RAISED);
    assert_eq!(output(&raised)["allocated"], true);

    request.may_raise_limits = false;
    request.limits.memory_bytes = Some(64 * MIB);
    request.limits.hard_time_limit_ms = Some(5_000);
    let lowered = runtime.execute_blocking(&plugin, &request);
    assert_eq!(
        (lowered.limits.memory_bytes, lowered.limits.hard_time_limit),
        (64 * MIB, Duration::from_secs(5))
    );
    assert_still_healthy(&runtime, &hostile(&runtime));
}

/// `hippo run PLUGIN ARGS` with a data directory of `data`: its exit code
/// and stdout.
fn hippo_run(plugin: &Path, data: &Path, args: &[&str]) -> (i32, String) {
    let ran = Command::new(hippo_bin())
        .arg("run")
        .arg(plugin)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("HIPPO_LOG", "warn")
        .output()
        .expect("hippo run runs");
    let stdout = String::from_utf8(ran.stdout).expect("UTF-8");
    assert!(
        ran.status.code().is_some(),
        "{:?}: {}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );
    (ran.status.code().unwrap(), stdout)
}

#[test]
fn hippo_run_gives_a_greedy_describe_the_defaults_and_lets_the_operator_raise() {
    let data = tempfile::tempdir().unwrap();
    let plugin = guest_path("greedy_guest");
    let input = json!({ "bytes": OVER_DEFAULT }).to_string();
    let report = |args: &[&str]| -> Value {
        let (code, stdout) = hippo_run(&plugin, data.path(), args);
        assert_eq!(code, 0, "{stdout}");
        serde_json::from_str(&stdout).expect("hippo run prints JSON")
    };
    let greedy = report(&["greedy.limits", "--input", &input]);
    assert_eq!(
        greedy["limits"],
        serde_json::to_value(Limits::DEFAULT).unwrap()
    );
    assert_got_the_defaults(&greedy["output"]);

    // The operator's own flags may raise.
    let raised = report(&[
        "greedy.limits",
        "--input",
        &input,
        "--memory-bytes",
        &RAISED.to_string(),
    ]);
    assert_eq!(raised["limits"]["memory_bytes"], RAISED);
    assert_eq!(raised["output"]["allocated"], true);

    let modest = report(&["greedy.limits", "--input", r#"{"bytes": 4096}"#]);
    assert_eq!(modest["output"]["allocated"], true, "{modest}");
}

/// 15 MiB of `[0,0,...]`: under the default 16 MiB output cap.
const BIG_OUTPUT: u64 = 15 * MIB;

/// Where the result sits in a task status as the API writes it
/// (`..."result":<result>,"error":...`).
fn result_text(status: &str) -> &str {
    let start = status.find(r#""result":"#).expect("a result") + r#""result":"#.len();
    let end = status.rfind(r#","error":"#).expect("an error field");
    &status[start..end]
}

#[track_caller]
fn assert_zeros(text: &str, bytes: u64) {
    assert_eq!(text.len() as u64, bytes - 1, "the whole output");
    assert!(
        text.starts_with("[0,0,0,") && text.ends_with(",0,0]"),
        "{}...",
        &text[..40.min(text.len())]
    );
}

#[test]
fn hippo_run_prints_a_large_output_as_the_task_returned_it() {
    let data = tempfile::tempdir().unwrap();
    let plugin = guest_path("greedy_guest");
    let input = json!({ "bytes": BIG_OUTPUT }).to_string();
    let (code, stdout) = hippo_run(&plugin, data.path(), &["greedy.zeros", "--input", &input]);
    assert_eq!(code, 0, "{}", &stdout[..200.min(stdout.len())]);
    assert!(stdout.starts_with("{\n  \"status\": \"SUCCESS\",\n  \"output\": [0,0,"));
    let start = stdout.find('[').unwrap();
    let end = stdout.find("],\n").unwrap() + 1;
    assert_zeros(&stdout[start..end], BIG_OUTPUT);
    let (code, stdout) = hippo_run(
        &plugin,
        data.path(),
        &["greedy.zeros", "--input", r#"{"bytes": 7}"#],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("\"output\": [0,0,0]"), "{stdout}");
}

/// The API of a `hippo serve`, as a key-holder calls it.
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn of(serve: &Serve) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
            url: serve.url.clone(),
        }
    }

    /// POSTs a submission with `key`: the status and the body's text.
    async fn submit_text(&self, key: &str, path_query: &str, body: &Value) -> (StatusCode, String) {
        let response = self
            .http
            .post(format!("{}/api/v1/tasks/submit{path_query}", self.url))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("the API answers");
        let status = response.status();
        (status, response.text().await.expect("a body"))
    }

    /// Submits and waits for the task to finish: its status.
    async fn run(&self, key: &str, body: Value) -> Value {
        let (status, text) = self.submit_text(key, "?wait=60", &body).await;
        assert_eq!(status, StatusCode::OK, "{body}: {text}");
        let finished: Value = serde_json::from_str(&text).unwrap();
        assert!(
            ["SUCCESS", "FAILURE"].contains(&finished["status"].as_str().unwrap()),
            "{finished}"
        );
        finished
    }

    /// Submits without waiting: the answer's status and body.
    async fn submit(&self, key: &str, body: Value) -> (StatusCode, Value) {
        let (status, text) = self.submit_text(key, "", &body).await;
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn get_text(&self, key: &str, path: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("the API answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.text().await.unwrap()
    }

    async fn get(&self, key: &str, path: &str) -> Value {
        serde_json::from_str(&self.get_text(key, path).await).unwrap()
    }

    /// Asserts that a well-behaved task still runs.
    async fn assert_still_serves(&self, key: &str) {
        let echo = self
            .run(
                key,
                json!({"task": "test.echo", "input": {"still": "serving"}}),
            )
            .await;
        assert_eq!(
            (&echo["status"], &echo["result"]),
            (&json!("SUCCESS"), &json!({"still": "serving"}))
        );
    }
}

const PLAIN: &str = "plain-key";
const RAISER: &str = "raiser-key";

/// A keys file with `plain` (submit, read) and `raiser` (submit, read, limits).
fn keys_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("keys.toml");
    std::fs::write(
        &path,
        format!(
            "[[keys]]\nname = \"plain\"\nsha256 = \"{}\"\nscopes = [\"submit\", \"read\"]\n\n\
             [[keys]]\nname = \"raiser\"\nsha256 = \"{}\"\nscopes = [\"submit\", \"read\", \"limits\"]\n",
            hash_key(PLAIN),
            hash_key(RAISER)
        ),
    )
    .unwrap();
    path
}

/// `hippo serve` with the keys of [`keys_file`] and the hostile guest, and
/// the greedy guest unless `without_greedy`; with its directories.
fn serve_with_keys(without_greedy: bool) -> (Serve, [tempfile::TempDir; 2]) {
    let (plugins, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    if !without_greedy {
        std::fs::write(plugins.path().join("greedy.wasm"), guest("greedy_guest")).unwrap();
    }
    let keys = keys_file(data.path());
    let serve = Serve::start(
        plugins.path(),
        data.path(),
        &[],
        &[("HIPPO_API_KEYS_FILE", keys.as_os_str())],
    );
    (serve, [plugins, data])
}

fn greedy_limits(limits: Value) -> Value {
    json!({"task": "greedy.limits", "input": {"bytes": OVER_DEFAULT}, "limits": limits, "max_retries": 0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_a_raise_from_a_key_without_the_limits_scope() {
    let (serve, _dirs) = serve_with_keys(false);
    let api = Api::of(&serve);

    // The greedy describe gets the defaults through the service too.
    let greedy = api.run(PLAIN, greedy_limits(json!({}))).await;
    assert_eq!(greedy["status"], "SUCCESS", "{greedy}");
    assert_got_the_defaults(&greedy["result"]);

    for (limits, field) in [
        (json!({"memory_bytes": RAISED}), "limits.memory_bytes"),
        (
            json!({"soft_time_limit_ms": 300_001}),
            "limits.soft_time_limit_ms",
        ),
        (
            json!({"fuel": 1, "hard_time_limit_ms": 3_600_000}),
            "limits.hard_time_limit_ms",
        ),
    ] {
        let (status, body) = api.submit(PLAIN, greedy_limits(limits.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{limits}: {body}");
        assert_eq!(
            (&body["error"]["code"], &body["error"]["field"]),
            (&json!("forbidden"), &json!(field)),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limits scope"),
            "{body}"
        );
    }
    // Lowering needs no scope.
    let lowered = api
        .run(
            PLAIN,
            json!({"task": "greedy.limits", "input": {"bytes": 100 * MIB},
                           "limits": {"memory_bytes": 64 * MIB, "hard_time_limit_ms": 10_000}}),
        )
        .await;
    assert_eq!(lowered["result"]["allocated"], false, "{lowered}");
    assert!(lowered["result"]["hard_time_left_ms"].as_u64().unwrap() <= 10_000);
    // The limits scope raises.
    let raised = api
        .run(RAISER, greedy_limits(json!({"memory_bytes": RAISED})))
        .await;
    assert_eq!(raised["result"]["allocated"], true, "{raised}");

    api.assert_still_serves(PLAIN).await;
}

/// When the tasks submitted before their plugin is deployed are due (s).
const DUE_S: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_lowers_a_raise_the_api_could_not_check() {
    let (serve, dirs) = serve_with_keys(true);
    let api = Api::of(&serve);
    // The plugin is not deployed yet: the API cannot tell what its limits
    // are, and takes both submissions (for a named queue), due in a moment.
    let later = |limits: Value| {
        json!({"task": "greedy.limits", "queue": "default", "countdown": DUE_S, "max_retries": 0,
               "input": {"bytes": OVER_DEFAULT}, "limits": limits})
    };
    let submitted = Instant::now();
    let mut ids = Vec::new();
    for key in [PLAIN, RAISER] {
        let (status, body) = api
            .submit(key, later(json!({"memory_bytes": RAISED})))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["task_id"].as_str().unwrap().to_string());
    }
    // Deployed: renamed into the folder whole, as a deploy does.
    let staged = dirs[1].path().join("greedy.wasm");
    std::fs::write(&staged, guest("greedy_guest")).unwrap();
    std::fs::rename(&staged, dirs[0].path().join("greedy.wasm")).unwrap();
    loop {
        let plugins = api.get(PLAIN, "/api/v1/plugins").await;
        let names: Vec<&str> = plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        if names.contains(&"greedy") {
            break;
        }
        assert!(
            submitted.elapsed() < Duration::from_secs(DUE_S),
            "the plugin was not loaded before the tasks were due: {plugins}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut results = Vec::new();
    for id in &ids {
        let status = api
            .get(PLAIN, &format!("/api/v1/tasks/status/{id}?wait=30"))
            .await;
        assert_eq!(status["status"], "SUCCESS", "{status}");
        results.push(status["result"].clone());
    }
    assert_got_the_defaults(&results[0]);
    assert_eq!(results[1]["allocated"], true, "the raiser's raise stands");

    api.assert_still_serves(PLAIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_output_costs_the_service_a_small_multiple_of_its_size() {
    const KEY: &str = "output-key";
    let (plugins, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    std::fs::write(plugins.path().join("greedy.wasm"), guest("greedy_guest")).unwrap();
    let serve = Serve::start(
        plugins.path(),
        data.path(),
        &[],
        &[("HIPPO_API_KEY", OsStr::new(KEY))],
    );
    let api = Api::of(&serve);
    // Warm: the same path with a small output, so the figures below are
    // the output's and not a first task's.
    let small = api
        .run(
            KEY,
            json!({"task": "greedy.zeros", "input": {"bytes": 1025}}),
        )
        .await;
    assert_eq!(small["result"].as_array().map(Vec::len), Some(512));
    api.assert_still_serves(KEY).await;

    let (peak_before, rss_before) = (serve.memory("VmHWM"), serve.memory("VmRSS"));
    serve.reset_peak_memory();
    let body = json!({"task": "greedy.zeros", "input": {"bytes": BIG_OUTPUT}});
    let (status, finished) = api.submit_text(KEY, "?wait=60", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        finished[..200].contains(r#""status":"SUCCESS""#),
        "{}",
        &finished[..400.min(finished.len())]
    );
    assert_zeros(result_text(&finished), BIG_OUTPUT);
    let id: String = {
        let start = finished.find(r#""task_id":""#).unwrap() + 11;
        finished[start..start + 36].to_string()
    };
    // Read back, as a client polling for it would.
    let read = api
        .get_text(KEY, &format!("/api/v1/tasks/status/{id}"))
        .await;
    assert_zeros(result_text(&read), BIG_OUTPUT);
    drop((finished, read));
    let peak_after = serve.memory("VmHWM");
    let growth = peak_after.saturating_sub(rss_before);
    eprintln!(
        "15 MiB [0,0,...] output: service VmHWM {} MiB before (VmRSS {} MiB), {} MiB after: +{} MiB",
        peak_before / MIB,
        rss_before / MIB,
        peak_after / MIB,
        growth / MIB
    );
    // The guest's own memory counts here too (it builds the output in its
    // linear memory), then a copy or two of the text per step: the worker's,
    // the broker's record and journal, the API's answer.
    let bound = 4 * BIG_OUTPUT + 64 * MIB;
    assert!(
        growth < bound,
        "a {} MiB output grew the service by {} MiB (bound {} MiB)",
        BIG_OUTPUT / MIB,
        growth / MIB,
        bound / MIB
    );
    api.assert_still_serves(KEY).await;
}
