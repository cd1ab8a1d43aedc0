//! The REST routes: `GET /api/v1/tasks/scheduled` and
//! `POST /api/v1/tasks/scheduled/{name}/run` on a real server on loopback,
//! with the embedded broker and a real worker in process.

use super::{registry, table};
use hippo::api::{AppState, KeyConfig, KeyStore, Scope, hash_key};
use hippo::broker::{BrokerConfig, EmbeddedBroker, SharedBroker};
use hippo::scheduler::{ScheduleEntry, ScheduleTable, Scheduler};
use hippo::worker::{Worker, WorkerConfig};
use hippo_integration_tests::{RunningWorker, test_worker_config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const READER: &str = "reader-secret";
const SUBMITTER: &str = "submitter-secret";
const ALICE: &str = "alice-secret";

fn key(name: &str, secret: &str, scopes: &[Scope], users: Option<&[&str]>) -> KeyConfig {
    KeyConfig {
        name: name.into(),
        sha256: hash_key(secret),
        scopes: scopes.iter().copied().collect(),
        users: users.map(|u| u.iter().map(|s| s.to_string()).collect()),
        rate_per_s: None,
    }
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn call(&self, method: Method, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.expect("every answer is JSON");
        if !status.is_success() {
            assert!(body["error"]["code"].is_string(), "{status}: {body}");
        }
        (status, body)
    }
}

/// Serves the API on a free loopback port, with `scheduler`'s entries
/// when given, until the returned notify fires.
async fn serve(
    state: AppState,
    scheduler: Option<Arc<Scheduler>>,
) -> (Http, Arc<tokio::sync::Notify>) {
    let app = hippo::api::router(state);
    let app = match scheduler {
        Some(scheduler) => hippo::api::with_scheduler(app, scheduler),
        None => app,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(hippo::api::serve_router(listener, app, {
        let stop = stop.clone();
        async move { stop.notified().await }
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    (Http { client, base }, stop)
}

const LIST: &str = "/api/v1/tasks/scheduled";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_lists_entries_with_next_fire_times_and_runs_them() {
    let (_plugins, registry) = registry();
    let data = tempfile::tempdir().unwrap();
    let broker: SharedBroker = Arc::new(
        EmbeddedBroker::open(data.path(), BrokerConfig::default())
            .await
            .unwrap(),
    );
    let worker = RunningWorker::start(Worker::new(
        broker.clone(),
        registry.clone(),
        WorkerConfig {
            queues: ["scheduled", "default"].map(String::from).to_vec(),
            ..test_worker_config("scheduler-api-worker", 2)
        },
    ));
    let mut fib = ScheduleEntry::new("fib-nightly", "example.fib", "0 3 * * *").unwrap();
    fib.input = json!({"n": 10});
    fib.enabled = false;
    let mut entries = ScheduleTable::defaults().entries().to_vec();
    entries.push(fib);
    let scheduler =
        Arc::new(Scheduler::new(broker.clone(), registry.clone(), table(entries)).unwrap());
    let state = AppState {
        broker: broker.clone(),
        registry: registry.clone(),
        keys: Arc::new(
            KeyStore::new(vec![
                key("reader", READER, &[Scope::Read], None),
                key("submitter", SUBMITTER, &[Scope::Submit, Scope::Read], None),
                key(
                    "alice",
                    ALICE,
                    &[Scope::Submit, Scope::Read],
                    Some(&["alice"]),
                ),
            ])
            .unwrap(),
        ),
    };
    let (api, stop) = serve(state.clone(), Some(scheduler)).await;

    // Auth: no key 401; read lists; run needs submit.
    assert_eq!(
        api.call(Method::GET, LIST, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, listed) = api.call(Method::GET, LIST, Some(READER)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let schedules = listed["schedules"].as_array().unwrap();
    let names: Vec<&str> = schedules
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "auto-deduplicate-memories",
            "consolidate-memories",
            "cleanup-expired-memories",
            "decay-memory-importance",
            "create-collection-snapshots",
            "health-check",
            "fib-nightly"
        ]
    );
    let by_name = |name: &str| {
        schedules
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    for schedule in schedules {
        let next: Vec<&str> = schedule["next_fire_times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(next.len(), 5, "{schedule}");
        assert!(next.windows(2).all(|w| w[0] < w[1]), "{schedule}");
        assert!(next.iter().all(|t| t.ends_with('Z')), "{schedule}");
        assert_eq!(schedule["timezone"], "UTC");
        assert_eq!(schedule["warning"], Value::Null, "{schedule}");
        assert_eq!(schedule["last_fire_time"], Value::Null);
    }
    // Daily at midnight: five midnights, not sixty minutes of one hour.
    let dedup = by_name("auto-deduplicate-memories");
    assert_eq!(
        (&dedup["task"], &dedup["cron"], &dedup["queue"]),
        (
            &json!("maintenance.dedup"),
            &json!("0 0 * * *"),
            &json!("scheduled")
        )
    );
    let midnights = dedup["next_fire_times"].as_array().unwrap();
    assert!(
        midnights
            .iter()
            .all(|t| t.as_str().unwrap().ends_with("T00:00:00Z")),
        "{dedup}"
    );
    let days: BTreeSet<&str> = midnights
        .iter()
        .map(|t| &t.as_str().unwrap()[..10])
        .collect();
    assert_eq!(days.len(), 5, "{dedup}");
    assert!(
        by_name("decay-memory-importance")["next_fire_times"][0]
            .as_str()
            .unwrap()
            .ends_with("T02:00:00Z")
    );
    let health = by_name("health-check");
    assert_eq!(
        (&health["queue"], &health["expires_s"]),
        (&json!("background"), &json!(240.0))
    );
    assert_eq!(
        health["task_registered"], false,
        "no maintenance plugin here"
    );
    assert_eq!(by_name("consolidate-memories")["enabled"], false);
    assert_eq!(by_name("fib-nightly")["task_registered"], true);

    let run = "/api/v1/tasks/scheduled/fib-nightly/run";
    assert_eq!(
        api.call(Method::POST, run, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call(Method::POST, run, Some(READER)).await.0,
        StatusCode::FORBIDDEN
    );
    // A key bound to users may not run an entry acting for everyone.
    assert_eq!(
        api.call(Method::POST, run, Some(ALICE)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/tasks/scheduled/no-such-entry/run",
            Some(SUBMITTER),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found")),
        "{body}"
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/tasks/scheduled/auto-deduplicate-memories/run",
            Some(SUBMITTER),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("conflict")),
        "{body}"
    );

    // Run a disabled entry by hand: a real task that the worker runs.
    let (status, submitted) = api.call(Method::POST, run, Some(SUBMITTER)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{submitted}");
    assert_eq!(submitted["status"], "submitted");
    assert!(
        submitted["message"]
            .as_str()
            .unwrap()
            .contains("example.fib"),
        "{submitted}"
    );
    let task_id = submitted["task_id"].as_str().unwrap();
    let (status, done) = api
        .call(
            Method::GET,
            &format!("/api/v1/tasks/status/{task_id}?wait=20"),
            Some(READER),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&done["status"], &done["result"]),
        (&json!("SUCCESS"), &json!({"value": 55})),
        "{done}"
    );
    // Run again: a new task each time.
    let (_, again) = api.call(Method::POST, run, Some(SUBMITTER)).await;
    assert_ne!(again["task_id"], submitted["task_id"]);

    let (_, listed) = api.call(Method::GET, LIST, Some(READER)).await;
    let fib = listed["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "fib-nightly")
        .unwrap()
        .clone();
    assert_eq!(
        (&fib["last_task_id"], &fib["last_trigger"]),
        (&again["task_id"], &json!("manual")),
        "{fib}"
    );
    assert!(fib["last_fire_time"].as_str().unwrap().ends_with('Z'));

    // A router built without a scheduler has no entries.
    let (bare, stop_bare) = serve(state, None).await;
    let (status, listed) = bare.call(Method::GET, LIST, Some(READER)).await;
    assert_eq!((status, listed), (StatusCode::OK, json!({"schedules": []})));
    assert_eq!(
        bare.call(Method::POST, run, Some(SUBMITTER)).await.0,
        StatusCode::NOT_FOUND
    );
    stop_bare.notify_one();
    stop.notify_one();
    worker.stop().await;
}
