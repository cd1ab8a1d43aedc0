//! The REST API end to end: a real server on loopback (`hippo::api::serve`),
//! a real broker and a real worker in process, driven over HTTP. Every
//! scenario runs on the embedded broker and on Redis.
//!
//! The worker consumes every queue but `background`, so tasks sent there
//! stay ready (for the queue purge). Every answer is checked against the
//! OpenAPI document's schema for its route and status (`api/schema.rs`);
//! `api/tasks.rs` holds the task, plugin, health and metrics scenarios,
//! `api/history.rs` the history and logs, `api/events.rs` the live events,
//! `api/flower.rs` the dashboard's listener (Flower's routes, sessions, CSRF),
//! `api/memory.rs` the memory routes on real memory services and
//! `api/regressions.rs` the tests named after the bugs they pin.

#[path = "api/schema.rs"]
mod schema;

use hippo::api::{AppState, KeyConfig, KeyStore, Scope, hash_key};
use hippo::broker::{BrokerConfig, EmbeddedBroker, RedisBroker, SharedBroker, TaskMessage};
use hippo::runtime::PluginRegistry;
use hippo::worker::{Worker, WorkerConfig};
use hippo_integration_tests::{RunningWorker, TestDirs, test_worker_config};
use hippo_integration_tests::{copy_memory_plugins, guest, memory_runtime, redis_url, runtime};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every scope, any user.
const ADMIN: &str = "admin-secret";
/// `read` only.
const READER: &str = "reader-secret";
/// `submit` and `read`.
const SUBMITTER: &str = "submitter-secret";
/// `deploy` only.
const DEPLOYER: &str = "deployer-secret";
/// `submit` and `read`, bound to user `alice`.
const ALICE: &str = "alice-secret";
/// Every scope, half a request per second (a burst of one).
const THROTTLED: &str = "throttled-secret";

/// Every route of the router: what the OpenAPI document must list (plus the
/// document itself), and what these tests exercise.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/{task_id}/history"),
    ("GET", "/api/v1/tasks/{task_id}/log"),
    ("GET", "/api/v1/stats/tasks"),
    ("POST", "/api/v1/tasks/submit"),
    ("GET", "/api/v1/tasks/status/{task_id}"),
    ("POST", "/api/v1/tasks/cancel/{task_id}"),
    ("GET", "/api/v1/tasks/inspect/stats"),
    ("GET", "/api/v1/tasks/inspect/queues"),
    ("GET", "/api/v1/tasks/inspect/active"),
    ("GET", "/api/v1/tasks/inspect/scheduled"),
    ("DELETE", "/api/v1/tasks/queues/{queue}"),
    ("GET", "/api/v1/tasks/deadletters"),
    ("DELETE", "/api/v1/tasks/deadletters"),
    ("POST", "/api/v1/tasks/deadletters/{task_id}/replay"),
    ("GET", "/api/v1/plugins"),
    ("PUT", "/api/v1/plugins/{name}"),
    ("DELETE", "/api/v1/plugins/{name}"),
    ("PUT", "/api/v1/plugins/{name}/manifest"),
    ("POST", "/api/v1/tasks/memory/create"),
    ("POST", "/api/v1/tasks/memory/batch-create"),
    ("POST", "/api/v1/tasks/memory/recall"),
    ("POST", "/api/v1/tasks/memory/update"),
    ("POST", "/api/v1/tasks/memory/delete"),
    ("POST", "/api/v1/memories"),
    ("POST", "/api/v1/memories/recall"),
    ("POST", "/api/v1/memories/query"),
    ("GET", "/api/v1/memories/{memory_id}"),
    ("PATCH", "/api/v1/memories/{memory_id}"),
    ("DELETE", "/api/v1/memories/{memory_id}"),
    ("GET", "/api/v1/tasks/scheduled"),
    ("POST", "/api/v1/tasks/scheduled/{name}/run"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
];

/// The fields of a task status, exactly.
const STATUS_FIELDS: &[&str] = &[
    "attempt",
    "error",
    "last_run",
    "progress",
    "queue",
    "result",
    "runs",
    "status",
    "submitted_ms",
    "task",
    "task_id",
    "updated_ms",
    "worker",
];

fn key(name: &str, secret: &str, scopes: &[Scope], users: Option<&[&str]>) -> KeyConfig {
    KeyConfig {
        name: name.into(),
        sha256: hash_key(secret),
        scopes: scopes.iter().copied().collect(),
        users: users.map(|u| u.iter().map(|s| s.to_string()).collect()),
        rate_per_s: None,
    }
}

fn keys() -> KeyStore {
    let mut throttled = KeyStore::admin_key("throttled", THROTTLED);
    throttled.rate_per_s = Some(0.5);
    KeyStore::new(vec![
        KeyStore::admin_key("admin", ADMIN),
        key("reader", READER, &[Scope::Read], None),
        key("submitter", SUBMITTER, &[Scope::Submit, Scope::Read], None),
        key("deployer", DEPLOYER, &[Scope::Deploy], None),
        key(
            "alice",
            ALICE,
            &[Scope::Submit, Scope::Read],
            Some(&["alice"]),
        ),
        throttled,
    ])
    .expect("keys are valid")
}

/// A body to send.
enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>, &'static str),
}

/// An answer: every answer of the API is JSON.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// Asserts the status, then returns the body.
    #[track_caller]
    fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {self:?}");
        &self.body
    }

    /// Asserts an error answer: status, stable code and the field at fault.
    #[track_caller]
    fn error(&self, status: u16, code: &str, field: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {self:?}");
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "unexpected error: {self:?}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {self:?}"
        );
        assert_eq!(error["field"].as_str(), field, "unexpected field: {self:?}");
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
    broker: SharedBroker,
    registry: Arc<PluginRegistry>,
    worker_name: String,
    /// The OpenAPI document every answer is checked against.
    document: Value,
    stop_server: Arc<tokio::sync::Notify>,
    worker: RunningWorker,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dirs: TestDirs,
}

async fn broker(kind: &str, dir: &std::path::Path) -> SharedBroker {
    let config = BrokerConfig::default();
    match kind {
        "embedded" => Arc::new(EmbeddedBroker::open(dir, config).await.unwrap()),
        _ => {
            let prefix = format!(
                "hippo-api-test-{}:",
                TaskMessage::new("", "", json!(null)).id
            );
            Arc::new(
                RedisBroker::connect_with_prefix(&redis_url(), config, &prefix)
                    .await
                    .unwrap(),
            )
        }
    }
}

/// Starts the server, a worker and `kind` of broker; with `memory`, also the
/// memory plugins on real memory services (the models, the embedded store).
async fn start_with(kind: &str, memory: bool) -> Api {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    let broker = broker(kind, data.path()).await;
    let runtime = if memory {
        copy_memory_plugins(plugins.path());
        memory_runtime(&broker, data.path()).await
    } else {
        runtime()
    };
    let registry = Arc::new(PluginRegistry::new(runtime, plugins.path(), None));
    // Compiling the plugins blocks (for seconds, for the memory plugins).
    tokio::task::block_in_place(|| registry.scan()).unwrap();
    let worker_name = format!("api-test-worker-{kind}");
    let config = WorkerConfig {
        queues: ["memory_ops", "default", "scheduled"]
            .map(String::from)
            .to_vec(),
        ..test_worker_config(worker_name.clone(), 2)
    };
    let worker = RunningWorker::start(Worker::new(broker.clone(), registry.clone(), config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState {
        broker: broker.clone(),
        registry: registry.clone(),
        keys: Arc::new(keys()),
    };
    let stop_server = Arc::new(tokio::sync::Notify::new());
    let server = tokio::spawn(hippo::api::serve(listener, state, {
        let stop = stop_server.clone();
        async move { stop.notified().await }
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    Api {
        base,
        http,
        broker,
        registry,
        worker_name,
        document: serde_json::to_value(hippo::api::openapi()).unwrap(),
        stop_server,
        worker,
        server,
        _dirs: TestDirs(vec![plugins, data]),
    }
}

impl Api {
    async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Body) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(bytes, content_type) => {
                request.header("content-type", content_type).body(bytes)
            }
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
        let status = response.status();
        let headers = response.headers().clone();
        // A stream of server-sent events does not end: its answer is its
        // status and headers (`api/events.rs` reads streams).
        if headers
            .get("content-type")
            .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"))
        {
            return Answer {
                status,
                headers,
                body: Value::Null,
            };
        }
        let bytes = response.bytes().await.unwrap();
        // Every answer is JSON but the metrics (text for Prometheus).
        let text = headers
            .get("content-type")
            .is_some_and(|t| t.as_bytes().starts_with(b"text/plain"));
        let body: Value = if text && status.is_success() {
            Value::String(String::from_utf8(bytes.to_vec()).unwrap())
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path} answered {status} with a body that is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        if status.is_client_error() || status.is_server_error() {
            assert!(
                body["error"]["code"].is_string(),
                "{method} {path}: a {status} without error.code: {body}"
            );
        }
        let departures = schema::departures(
            &self.document,
            method.as_str(),
            path,
            status.as_u16(),
            &body,
        );
        assert!(
            departures.is_empty(),
            "{method} {path} answered {status} otherwise than documented: {departures:#?}\n{body}"
        );
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, key: Option<&str>) -> Answer {
        self.send(Method::GET, path, key, Body::None).await
    }

    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Answer {
        self.send(Method::POST, path, key, Body::Json(body)).await
    }

    async fn delete(&self, path: &str, key: Option<&str>) -> Answer {
        self.send(Method::DELETE, path, key, Body::None).await
    }

    async fn put(
        &self,
        path: &str,
        key: Option<&str>,
        bytes: Vec<u8>,
        content_type: &'static str,
    ) -> Answer {
        self.send(Method::PUT, path, key, Body::Raw(bytes, content_type))
            .await
    }

    /// Submits with the admin key; returns the task id.
    async fn submit(&self, body: Value) -> String {
        let answer = self.post("/api/v1/tasks/submit", Some(ADMIN), body).await;
        let body = answer.expect(202);
        assert_eq!(body["status"], "submitted", "{body}");
        body["task_id"].as_str().expect("a task id").to_string()
    }

    /// The task's status, read with the admin key.
    async fn status(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/tasks/status/{id}"), Some(ADMIN))
            .await
            .expect(200)
            .clone()
    }

    /// Waits (through the API) for the task to finish; returns its status.
    async fn finished(&self, id: &str) -> Value {
        let answer = self
            .get(&format!("/api/v1/tasks/status/{id}?wait=30"), Some(ADMIN))
            .await;
        let body = answer.expect(200).clone();
        assert!(
            ["SUCCESS", "FAILURE", "REVOKED"].contains(&body["status"].as_str().unwrap()),
            "task {id} did not finish: {body}"
        );
        body
    }

    /// Polls the status until it is `state`.
    async fn until_status(&self, id: &str, state: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status(id).await;
            if status["status"] == state {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never reached {state}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn shutdown(self) {
        drop(self.http);
        self.stop_server.notify_one();
        self.server.await.unwrap().unwrap();
        self.worker.stop().await;
    }
}

/// The keys of a JSON object.
fn fields(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[track_caller]
fn assert_task_status(status: &Value) {
    assert_eq!(
        fields(status),
        STATUS_FIELDS.iter().copied().collect(),
        "{status}"
    );
}

/// Each scenario as two tests, one per broker (`memory_services: true`
/// also loads the memory plugins on real memory services).
macro_rules! on_both_brokers {
    (memory_services: $memory:expr; $($name:ident($api:ident) $body:block)*) => {
        mod embedded {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { let api = start_with("embedded", $memory).await; super::scenarios::$name(&api).await; api.shutdown().await })*
        }
        mod redis {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { let api = start_with("redis", $memory).await; super::scenarios::$name(&api).await; api.shutdown().await })*
        }
        mod scenarios {
            use super::*;
            $(pub async fn $name($api: &Api) $body)*
        }
    };
    ($($name:ident($api:ident) $body:block)*) => {
        on_both_brokers!(memory_services: false; $($name($api) $body)*);
    };
}

#[path = "api/events.rs"]
mod events;
#[path = "api/flower.rs"]
mod flower;
#[path = "api/history.rs"]
mod history;
#[path = "api/memory.rs"]
mod memory;
#[path = "api/regressions.rs"]
mod regressions;
#[path = "api/tasks.rs"]
mod tasks;
