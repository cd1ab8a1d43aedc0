//! The `hippo` control commands over the REST API: a real `hippo serve`
//! process on a free loopback port, driven by the `hippo` binary itself.

use hippo_integration_tests::guest;
use hippo_integration_tests::serve::{Serve, parts};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::process::Output;

const KEY: &str = "cli-test-key";

/// `hippo serve` with its own plugins folder and data directory (removed
/// with it).
struct Server {
    serve: Serve,
    _dirs: [tempfile::TempDir; 2],
}

impl Server {
    /// Runs `hippo ARGS` against this server.
    fn hippo(&self, args: &[&str]) -> Output {
        self.serve.hippo(KEY, args)
    }

    /// `hippo submit TASK --input INPUT --wait 60 EXTRA...`: the exit code,
    /// the status once finished, and standard error.
    fn submit_waiting(&self, task: &str, input: &str, extra: &[&str]) -> (i32, Value, String) {
        let submit = ["submit", task, "--input", input, "--wait", "60"];
        parts(&self.hippo(&[&submit[..], extra].concat()))
    }
}

fn serve() -> Server {
    serve_with(&[("hostile.wasm", &guest("hostile_guest"))], &[])
}

/// `hippo serve` on a plugins folder holding `files` (name, content), with
/// `args` added to its command line.
fn serve_with(files: &[(&str, &[u8])], args: &[&str]) -> Server {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(plugins.path().join(name), content).unwrap();
    }
    let serve = Serve::start(
        plugins.path(),
        data.path(),
        args,
        &[("HIPPO_API_KEY", OsStr::new(KEY))],
    );
    Server {
        serve,
        _dirs: [plugins, data],
    }
}

#[test]
fn control_commands_go_through_the_api() {
    let server = serve();

    // submit --wait: the status once finished.
    let (code, status, stderr) = server.submit_waiting("test.echo", r#"{"a":1}"#, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (&status["status"], &status["result"]),
        (&json!("SUCCESS"), &json!({"a": 1})),
        "{status}"
    );

    // submit, then result: just the result.
    let (code, submitted, stderr) = parts(&server.hippo(&[
        "submit",
        "test.echo",
        "--input",
        r#"{"b":[2]}"#,
        "--priority",
        "9",
        "--max-retries",
        "0",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let id = submitted["task_id"]
        .as_str()
        .expect("a task id")
        .to_string();
    assert_eq!(submitted["created"], true);
    let (code, result, stderr) = parts(&server.hippo(&["result", &id, "--wait", "10"]));
    assert_eq!((code, result), (0, json!({"b": [2]})), "{stderr}");
    let (code, status, _) = parts(&server.hippo(&["status", &id]));
    assert_eq!(
        (code, &status["task_id"], &status["status"]),
        (0, &json!(id), &json!("SUCCESS"))
    );

    // A failed task: result exits 1 with the error on stderr.
    let (_, submitted, _) =
        parts(&server.hippo(&["submit", "test.fail", "--input", r#"{"kind":"fatal"}"#]));
    let failed = submitted["task_id"].as_str().unwrap().to_string();
    let (code, result, stderr) = parts(&server.hippo(&["result", &failed, "--wait", "10"]));
    assert_eq!((code, result), (1, Value::Null), "{stderr}");
    assert!(
        stderr.contains(&format!("task {failed} failed")) && stderr.contains("fatal"),
        "{stderr}"
    );
    let (code, status, _) = parts(&server.hippo(&["status", &failed]));
    assert_eq!((code, &status["status"]), (1, &json!("FAILURE")));
    let (code, dead, _) = parts(&server.hippo(&["deadletters", "list"]));
    assert_eq!((code, &dead[0]["task_id"]), (0, &json!(failed)));

    // cancel (and its alias revoke): the task ends REVOKED, result exits 1.
    let (_, submitted, _) = parts(&server.hippo(&["submit", "test.spin", "--countdown", "60"]));
    let queued = submitted["task_id"].as_str().unwrap().to_string();
    let (code, cancelled, stderr) = parts(&server.hippo(&["cancel", &queued]));
    assert_eq!(
        (code, &cancelled["outcome"]),
        (0, &json!("queued")),
        "{stderr}"
    );
    let (code, _, stderr) = parts(&server.hippo(&["result", &queued, "--wait", "10"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("revoked"), "{stderr}");
    let (_, submitted, _) = parts(&server.hippo(&["submit", "test.spin", "--countdown", "60"]));
    let other = submitted["task_id"].as_str().unwrap().to_string();
    let (code, cancelled, _) = parts(&server.hippo(&["revoke", &other]));
    assert_eq!((code, &cancelled["outcome"]), (0, &json!("queued")));

    // A task still running when the wait ends: a command error.
    let (_, submitted, _) =
        parts(&server.hippo(&["submit", "test.sleep", "--input", r#"{"ms":3000}"#]));
    let sleeping = submitted["task_id"].as_str().unwrap().to_string();
    let (code, _, stderr) = parts(&server.hippo(&["result", &sleeping, "--wait", "0.2"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did not finish"), "{stderr}");
    server.hippo(&["cancel", &sleeping]);

    // inspect.
    let (code, queues, _) = parts(&server.hippo(&["inspect", "queues"]));
    assert_eq!(code, 0);
    assert!(
        queues
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["name"] == "default")),
        "{queues}"
    );
    let (code, workers, _) = parts(&server.hippo(&["inspect", "stats"]));
    assert_eq!(
        (code, workers.as_array().map(Vec::len)),
        (0, Some(1)),
        "{workers}"
    );

    // Errors the API answers exit 2 with its message.
    let garbage = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(garbage.path(), b"not a component").unwrap();
    let (code, _, stderr) = parts(&server.hippo(&[
        "deploy",
        garbage.path().to_str().unwrap(),
        "--name",
        "garbage",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("plugin refused") && stderr.contains("invalid_input"),
        "{stderr}"
    );
    let (code, _, stderr) = parts(&server.hippo(&["submit", "no.such-task"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no registered plugin offers task") && stderr.contains("field task"),
        "{stderr}"
    );
    let (code, _, stderr) = parts(&server.hippo(&["status", "no-such-id", "--key", "wrong-key"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown API key"), "{stderr}");
    let (code, _, stderr) = parts(&server.hippo(&["purge", "default"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("--yes"), "{stderr}");

    // Deploy a real plugin, list it remotely, remove it.
    let fib = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(fib.path(), guest("hippo_example_fib")).unwrap();
    let (code, deployed, stderr) =
        parts(&server.hippo(&["deploy", fib.path().to_str().unwrap(), "--name", "fib"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        deployed["deployed"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "example.fib"),
        "{deployed}"
    );
    let (code, status, _) = parts(&server.hippo(&[
        "submit",
        "example.fib",
        "--input",
        r#"{"n":10}"#,
        "--wait",
        "10",
    ]));
    assert_eq!((code, &status["result"]), (0, &json!({"value": 55})));
    let (code, listed, _) = parts(&server.hippo(&["plugins", "--remote"]));
    assert_eq!(
        (code, listed["plugins"].as_array().map(Vec::len)),
        (0, Some(2)),
        "{listed}"
    );
    let (code, _, stderr) = parts(&server.hippo(&["undeploy", "fib"]));
    assert_eq!(code, 0, "{stderr}");
}

#[path = "cli/hostile.rs"]
mod hostile;
#[path = "cli/python.rs"]
mod python;

#[path = "cli/kv_quota.rs"]
mod kv_quota;
#[path = "cli/new.rs"]
mod new;

/// `hippo logs` and `hippo history` read what the service keeps of finished
/// tasks, and it keeps it across a restart (here a kill: what was answered
/// is in the broker's journal).
#[test]
fn logs_and_history_survive_a_restart_of_serve() {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    let env = [("HIPPO_API_KEY", OsStr::new(KEY))];
    let first = Serve::start(plugins.path(), data.path(), &[], &env);
    let (code, status, stderr) = parts(&first.hippo(
        KEY,
        &[
            "submit",
            "test.log",
            "--input",
            r#"{"lines":2}"#,
            "--wait",
            "10",
        ],
    ));
    assert_eq!(
        (code, &status["status"]),
        (0, &json!("SUCCESS")),
        "{stderr}"
    );
    let id = status["task_id"].as_str().unwrap().to_owned();
    drop(first);

    let second = Serve::start(plugins.path(), data.path(), &[], &env);
    let logs = second.hippo(KEY, &["logs", &id]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(text.starts_with("-- attempt 1\n"), "{text}");
    for expected in [
        "info  guest  line 0",
        "info  stdout stdout 1",
        "warn  stderr stderr 1",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    let (code, logs, _) = parts(&second.hippo(KEY, &["logs", &id, "--json"]));
    assert_eq!((code, &logs["task_id"]), (0, &json!(id)));

    let (code, page, stderr) = parts(&second.hippo(
        KEY,
        &["history", "--task", "test.log", "--state", "success"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(page["tasks"][0]["id"], json!(id), "{page}");
    assert_eq!(page["tasks"][0]["attempts"][0]["state"], "SUCCESS");
    let (code, _, stderr) = parts(&second.hippo(KEY, &["logs", "no-such-task"]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("not_found") || stderr.contains("no history"),
        "{stderr}"
    );
}

/// `hippo serve` refuses to expose its dashboard off loopback with no
/// login, or with a login whose password is a known default.
/// `hippo serve` on the embedded broker without a worker, its API on a
/// free loopback port, plugins and data in `dirs`, with the test key and
/// no dashboard login from the caller's environment.
fn bare_serve([plugins, data]: &[tempfile::TempDir; 2]) -> std::process::Command {
    let mut command = std::process::Command::new(hippo_integration_tests::hippo_bin());
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--broker",
            "embedded",
            "--no-worker",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--plugins")
        .arg(plugins.path())
        .env("HIPPO_API_KEY", KEY)
        .env_remove("FLOWER_BASIC_AUTH")
        .env_remove("FLOWER_USER")
        .env_remove("FLOWER_PASSWORD");
    command
}

/// Starts `hippo serve ARGS` ([`bare_serve`]) with `env`; it must exit
/// within a minute and fail: its standard error.
fn refused_at_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut child = bare_serve(&dirs)
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{args:?} {env:?}: hippo serve started");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{args:?} {env:?}");
    stderr
}

/// A worker given `--queues cpu` (a queue the broker does not have) used to
/// start and then retry its reservation forever, running nothing.
#[test]
fn a_worker_asked_for_an_unknown_queue_refuses_to_start() {
    let stderr = refused_at_start(&["--queues", "default,cpu"], &[]);
    assert!(
        stderr.contains("--queues: unknown queue \"cpu\"") && stderr.contains("memory_ops"),
        "{stderr}"
    );
}

#[test]
fn the_dashboard_is_not_exposed_without_a_login_or_with_a_default_password() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[], "no login"),
        (
            &[("FLOWER_USER", "admin"), ("FLOWER_PASSWORD", "admin")],
            "known default password",
        ),
        (
            &[("FLOWER_BASIC_AUTH", "ops:changeme")],
            "known default password",
        ),
    ];
    for (env, expected) in cases {
        let stderr = refused_at_start(&["--dashboard-listen", "0.0.0.0:0"], env);
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
}

/// The guide's settings hippo cannot honour stop it at start, naming the
/// variable and what to do.
#[test]
fn reference_settings_hippo_cannot_honour_are_refused_by_name() {
    for (name, value, expected) in [
        ("CELERY_TASK_ACKS_LATE", "false", "always acknowledges"),
        (
            "CELERY_RESULT_BACKEND",
            "redis://elsewhere:6379/2",
            "keeps results in its broker",
        ),
        ("CELERY_WORKER_MAX_TASKS_PER_CHILD", "none", "whole number"),
        ("FLOWER_PORT", "http", "port number"),
    ] {
        let stderr = refused_at_start(&["--no-dashboard"], &[(name, value)]);
        assert!(stderr.contains(&format!("{name}=")), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

/// `FLOWER_PORT` places the dashboard when `--dashboard-listen` does not.
#[test]
fn flower_port_places_the_dashboard() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut child = bare_serve(&dirs)
        .env_remove("HIPPO_DASHBOARD_LISTEN")
        .env("FLOWER_PORT", port.to_string())
        .env("CELERY_TASK_ACKS_LATE", "true")
        .env("CELERY_WORKER_MAX_TASKS_PER_CHILD", "1000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let answered = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            break answer;
        }
        assert!(child.try_wait().unwrap().is_none(), "hippo serve exited");
        assert!(
            std::time::Instant::now() < deadline,
            "nothing on FLOWER_PORT {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answered.starts_with("HTTP/1.1 "), "{answered}");
}

/// The global task defaults are the flags': retries when the submission
/// names none (here none: a retryable failure fails at once), the backoff,
/// and the time limits a task without its own gets.
#[test]
fn task_defaults_come_from_the_flags() {
    let server = serve_with(
        &[("hostile.wasm", &guest("hostile_guest"))],
        &[
            "--max-retries",
            "1",
            "--retry-backoff",
            "0.05",
            "--retry-backoff-max",
            "0.1",
            "--soft-time-limit",
            "1",
            "--time-limit",
            "2",
        ],
    );
    let (code, status, stderr) = server.submit_waiting("test.fail", r#"{"kind":"retry"}"#, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(status["status"], "FAILURE", "{status}");
    assert_eq!(
        status["attempt"], 2,
        "one retry, after a short backoff: {status}"
    );

    let started = std::time::Instant::now();
    let (code, status, stderr) =
        server.submit_waiting("test.sleep", r#"{"ms":60000}"#, &["--max-retries", "0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        status["error"].to_string().contains("hard_time_limit"),
        "stopped at the default hard limit: {status}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // Limits that cannot hold refuse to start.
    let stderr = refused_at_start(
        &[
            "--no-dashboard",
            "--soft-time-limit",
            "9",
            "--time-limit",
            "3",
        ],
        &[],
    );
    assert!(stderr.contains("--soft-time-limit"), "{stderr}");
}
