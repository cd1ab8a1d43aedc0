//! The dashboard's page in a real headless Chromium, against a real
//! `hippo serve` (embedded broker, the hostile test plugin): log in, see
//! the worker, watch submitted tasks appear in Tasks and Monitor without a
//! reload, read a task's log, revoke a running task with its button, see a
//! queue's length change, replay a dead letter, and the page on a phone's
//! width. A screenshot of every tab is saved under
//! `$CARGO_TARGET_TMPDIR/dashboard/`.

#[path = "dashboard/webdriver.rs"]
mod webdriver;

use hippo_integration_tests::guest;
use hippo_integration_tests::serve::Serve;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::PathBuf;
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
