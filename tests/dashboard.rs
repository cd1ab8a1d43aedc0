//! The dashboard's page in a real headless Chromium, against a real
//! `hippo serve` (embedded broker, the hostile test plugin): log in, see
//! the worker, watch submitted tasks appear in Tasks and Monitor without a
//! reload, read a task's log, revoke a running task with its button, see a
//! queue's length change, replay a dead letter, and the page on a phone's
//! width. A screenshot of every tab is saved under
//! `$CARGO_TARGET_TMPDIR/dashboard/`.
//!
//! And `hippo dashboard` alone, beside a `hippo worker` on a shared Redis.

#[path = "dashboard/webdriver.rs"]
mod webdriver;

use hippo_integration_tests::serve::Serve;
use hippo_integration_tests::{guest, hippo_bin, redis_url};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use webdriver::Browser;

const KEY: &str = "dashboard-test-key";
const USER: &str = "ann";
const PASSWORD: &str = "a-long-test-password";

/// Where the screenshots go.
fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn submit(&self, task: &str, input: Value) -> String {
        let answer = self
            .post(
                "/api/v1/tasks/submit",
                json!({"task": task, "input": input, "max_retries": 0}),
            )
            .await;
        answer["task_id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// Waits until task `id` is in state `state` (at most 30 s).
    async fn wait_for(&self, id: &str, state: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let status = self.get(&format!("/api/v1/tasks/status/{id}")).await;
            if status["status"] == state {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{id}: {status}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    let login = format!("{USER}:{PASSWORD}");
    let serve = Serve::start(
        plugins.path(),
        data.path(),
        &["--concurrency", "1", "--prefetch", "1"],
        &[
            ("HIPPO_API_KEY", OsStr::new(KEY)),
            ("FLOWER_BASIC_AUTH", OsStr::new(&login)),
        ],
    );
    let api = Api {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        url: serve.url.clone(),
    };
    let shots = screenshots();
    let dashboard = &serve.dashboard_url;
    let browser = Browser::start(1280, 900).await;

    // Log in: a stranger is sent to the form; the form opens a session.
    browser.goto(dashboard).await;
    browser.wait_text("form h1", "hippo dashboard").await;
    browser.type_into("#password", "wrong").await;
    browser.type_into("#user", USER).await;
    browser.click("#login").await;
    browser.wait_text("#message", "wrong user").await;
    browser.type_into("#user", USER).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#login").await;
    browser.wait_text("header .who", USER).await;

    // Workers: this process's worker, online.
    let row = browser
        .wait_text("#workers tr[data-worker]", "online")
        .await;
    assert!(row.contains("default"), "{row}");
    browser.screenshot(&shots.join("workers.png")).await;

    // Tasks: submitted tasks appear without a reload (the marker set on the
    // page survives), with their runtime and per-name figures.
    browser.click("a[data-tab=tasks]").await;
    browser.wait_text("#task-names", "nothing here").await;
    browser
        .js("window.notReloaded = true; return true;", json!([]))
        .await;
    let mut ids = Vec::new();
    for lines in 1..=3 {
        ids.push(api.submit("test.log", json!({ "lines": lines })).await);
    }
    for id in &ids {
        browser
            .wait_text(&format!("#history tr[data-task-id='{id}']"), "SUCCESS")
            .await;
    }
    browser.wait_text("#task-names", "test.log").await;
    assert_eq!(
        browser
            .js("return window.notReloaded === true;", json!([]))
            .await,
        json!(true),
        "the page reloaded"
    );
    browser.screenshot(&shots.join("tasks.png")).await;

    // A task's page: its attempts and its log.
    browser
        .click(&format!("#history tr[data-task-id='{}'] a", ids[2]))
        .await;
    let log = browser.wait_text("#log", "line 2").await;
    assert!(
        log.contains("stdout 2") && log.contains("stderr 2"),
        "{log}"
    );
    browser.wait_text("#attempts", "SUCCESS").await;
    browser.screenshot(&shots.join("task.png")).await;

    // Monitor: the counts follow new tasks without a reload.
    browser.click("a[data-tab=monitor]").await;
    browser.wait_text("#monitor-totals", "3 succeeded").await;
    api.submit("test.echo", json!({"more": true})).await;
    browser.wait_text("#monitor-totals", "4 succeeded").await;
    browser.wait_text("#task-names", "test.echo").await;
    browser.screenshot(&shots.join("monitor.png")).await;

    // Revoke a running task with its button.
    let long = api.submit("test.sleep", json!({"ms": 60_000})).await;
    api.wait_for(&long, "STARTED").await;
    browser.goto(&format!("{dashboard}/#task/{long}")).await;
    browser.click("#revoke").await;
    browser.accept_dialog().await;
    browser.wait_text("section h2 .state", "REVOKED").await;
    api.wait_for(&long, "REVOKED").await;

    // Broker: a queue's length changes while the one slot is busy (the
    // worker reserves no task ahead: `--prefetch 1`).
    browser.click("a[data-tab=broker]").await;
    let ready = "#queues tr[data-queue=default] td.ready";
    browser.wait_text(ready, "0").await;
    let busy = api.submit("test.sleep", json!({"ms": 3_000})).await;
    api.wait_for(&busy, "STARTED").await;
    let mut waiting = Vec::new();
    for n in 0..3 {
        waiting.push(api.submit("test.echo", json!({ "waits": n })).await);
    }
    let queued = "return Number(document.querySelector(arguments[0])?.innerText) > 0;";
    browser
        .wait("a ready task in the queue", queued, json!([ready]))
        .await;
    // Submitted at the default priority, 5: the normal band.
    let bands = "#queues tr[data-queue=default] td.bands";
    let normal = "const [high, normal, low] = document.querySelector(arguments[0])?.innerText
        .split(' / ').map(Number) ?? []; return high === 0 && normal > 0 && low === 0;";
    browser
        .wait("the ready tasks in the normal band", normal, json!([bands]))
        .await;
    browser.screenshot(&shots.join("broker.png")).await;
    for id in &waiting {
        api.wait_for(id, "SUCCESS").await;
    }
    browser.wait_text(ready, "0").await;

    // A dead letter, replayed with its button: it runs again (and, failing
    // on purpose again, comes back under its new id).
    let doomed = api.submit("test.fail", json!({"kind": "fatal"})).await;
    api.wait_for(&doomed, "FAILURE").await;
    let replay = format!("#dead-letters tr[data-task-id='{doomed}'] button.replay");
    browser.click(&replay).await;
    let toast = browser.wait_text("#toast", "replayed as").await;
    let new_id = toast.rsplit(' ').next().unwrap().trim().to_owned();
    api.wait_for(&new_id, "FAILURE").await;
    browser
        .wait_text(
            &format!("#dead-letters tr[data-task-id='{new_id}']"),
            "fatal",
        )
        .await;

    // Schedules and Plugins.
    browser.click("a[data-tab=schedules]").await;
    browser.wait_text("#schedules", "Run now").await;
    browser.screenshot(&shots.join("schedules.png")).await;
    browser.click("a[data-tab=plugins]").await;
    browser
        .wait_text("#plugins tr[data-plugin=hostile]", "test.sleep")
        .await;
    browser.screenshot(&shots.join("plugins.png")).await;

    // A phone: the page is no wider than the screen (tables scroll inside
    // their boxes) and the tabs stay in reach.
    browser.resize(390, 844).await;
    browser.click("a[data-tab=tasks]").await;
    browser.wait_text("#history", "test.log").await;
    let overflow = browser
        .js(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            json!([]),
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "wider than a phone by {overflow} px"
    );
    browser.screenshot(&shots.join("tasks-phone.png")).await;

    // Logging out ends the session.
    browser.click("#logout").await;
    browser.wait_text("form h1", "hippo dashboard").await;
    browser.goto(&format!("{dashboard}/#tasks")).await;
    browser.wait_text("form h1", "hippo dashboard").await;
}

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hippo ARGS` with the dashboard's login, logging warnings only.
fn hippo(args: &[&str], plugins: &std::path::Path, data: &std::path::Path) -> Command {
    let mut command = Command::new(hippo_bin());
    command
        .args(args)
        .arg("--plugins")
        .arg(plugins)
        .arg("--data-dir")
        .arg(data)
        .env_remove("HIPPO_API_KEYS_FILE")
        .env_remove("HIPPO_BROKER_URL")
        .env("HIPPO_API_KEY", KEY)
        .env("FLOWER_BASIC_AUTH", format!("{USER}:{PASSWORD}"))
        .env("HIPPO_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// `hippo dashboard` serves a cluster it does not run: a `hippo worker` on
/// the same Redis takes what the dashboard submits, and the dashboard sees
/// the worker, the result and the history. On the embedded broker it
/// refuses to start (that broker belongs to one `hippo serve`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hippo_dashboard_runs_alone_beside_workers_on_redis() {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    // A database of its own (the failover tests use 1-3, the scheduler's 11).
    let redis = format!("{}/12", redis_url().trim_end_matches('/'));
    let flushed = Command::new("redis-cli")
        .args(["-u", &redis, "flushdb"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(flushed.success());

    let refused = hippo(
        &["dashboard", "--broker", "embedded", "--no-memory"],
        plugins.path(),
        data.path(),
    )
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("needs a shared Redis broker"),
        "{stderr}"
    );

    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let _worker = Process(
        hippo(
            &["worker", "--broker", &redis, "--no-memory"],
            plugins.path(),
            data.path(),
        )
        .spawn()
        .unwrap(),
    );
    let _dashboard = Process(
        hippo(
            &[
                "dashboard",
                "--broker",
                &redis,
                "--no-memory",
                "--listen",
                &listen,
            ],
            plugins.path(),
            data.path(),
        )
        .spawn()
        .unwrap(),
    );
    let base = format!("http://{listen}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let get = |path: String| {
        let request = http
            .get(format!("{base}{path}"))
            .basic_auth(USER, Some(PASSWORD));
        async move { request.send().await.ok() }
    };
    let get_json = |path: &str| {
        let response = get(path.to_owned());
        async move {
            let response = response.await.expect("the dashboard answers");
            response.json::<Value>().await.unwrap()
        }
    };
    // Up once the worker's heartbeat shows on the dashboard.
    loop {
        if let Some(response) = get("/api/workers?status=true".into()).await
            && let Ok(workers) = response.json::<Value>().await
            && workers.as_object().is_some_and(|w| !w.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed the worker"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let applied: Value = http
        .post(format!("{base}/api/task/async-apply/test.echo"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"kwargs": {"from": "dashboard"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = applied["task-id"]
        .as_str()
        .unwrap_or_else(|| panic!("{applied}"))
        .to_owned();
    let result = get_json(&format!("/api/task/result/{id}?timeout=30")).await;
    assert_eq!(result["state"], "SUCCESS", "{result}");
    assert_eq!(result["result"], json!({"from": "dashboard"}));
    let history = get_json("/api/v1/tasks").await;
    assert_eq!(history["tasks"][0]["id"], id.as_str(), "{history}");
    let schedules = get_json("/api/v1/tasks/scheduled").await;
    assert!(
        !schedules["schedules"].as_array().unwrap().is_empty(),
        "{schedules}"
    );
    let page = http
        .get(format!("{base}/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("<nav id=\"tabs\">"));
}
