//! An async client of the hippo REST API.
//!
//! Submit a task and wait for its result, the way a Celery caller does
//! `task.delay(...)` then `result.get(timeout=...)`:
//!
//! ```no_run
//! use hippo_client::{Client, ClientError, SubmitOptions};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ClientError> {
//!     let key = std::env::var("HIPPO_API_KEY").unwrap_or_default();
//!     let client = Client::new("http://127.0.0.1:8000", key)?;
//!
//!     // delay(): queue the task, get a handle on it.
//!     let task = client.submit("example.fib", json!({"n": 50})).await?;
//!     // get(timeout): long-polls until the task finishes.
//!     match task.get(Duration::from_secs(30)).await {
//!         Ok(value) => println!("fib(50) = {}", value["value"]),
//!         Err(ClientError::TaskFailed { error, .. }) => eprintln!("failed: {error}"),
//!         Err(ClientError::Timeout { .. }) => eprintln!("still running"),
//!         Err(other) => return Err(other),
//!     }
//!
//!     // apply_async(): the same with a queue, priority, countdown, ...
//!     let options = SubmitOptions {
//!         priority: Some(9),
//!         countdown: Some(Duration::from_secs(10)),
//!         idempotency_key: Some("fib-90-once".into()),
//!         ..SubmitOptions::default()
//!     };
//!     let later = client.submit_with("example.fib", json!({"n": 90}), &options).await?;
//!     println!("{} is {}", later.id, later.status().await?.status);
//!     later.cancel().await?;
//!
//!     for queue in client.inspect_queues().await? {
//!         println!("{}: {} ready, {} running", queue.name, queue.ready, queue.reserved);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Every call is one HTTP request (waits are long-polls of at most 60 s
//! each, never a busy loop). Every error is a [`ClientError`]: the API's
//! own errors keep their stable code and the field at fault
//! ([`ClientError::Api`]); a task that failed or was revoked is
//! [`ClientError::TaskFailed`] or [`ClientError::Revoked`].
//!
//! The client speaks plain HTTP (`http://`); put a TLS-terminating proxy in
//! front of the API for traffic that leaves the machine.

mod admin;
mod error;
mod history;
mod memory;
mod schedules;
mod types;

pub use error::ClientError;
pub use history::{
    Attempt, AttemptLog, HistoryEntry, HistoryFilter, LogLine, TaskList, TaskLog, TaskLogs,
};
pub use memory::{
    BatchCreated, CreateAction, Created, Memory, MemoryPage, NewMemory, RecallHit, RecallRequest,
    Recalled, ScoreBreakdown, ScoreWeights, Updated,
};
pub use schedules::Schedule;
pub use types::{
    ActiveTasks, CancelOutcome, CancelResponse, Health, Limits, PluginInfo, PluginTask, Plugins,
    QueueStats, RefusedPlugin, SubmitOptions, TaskState, TaskStatus, WorkerInfo,
};

use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::{Duration, Instant};
use types::{SubmitBody, SubmitResponse};

/// The longest wait the API grants in one request; longer waits are made of
/// several requests.
pub const MAX_WAIT_PER_REQUEST: Duration = Duration::from_secs(60);

/// How long an ordinary request may take, by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Uploads are validated (compiled) by the server before they answer.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one hippo API, with one API key. Cheap to clone (clones share
/// their connection pool).
#[derive(Clone)]
pub struct Client {
    base: Url,
    authorization: Option<HeaderValue>,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("has_key", &self.authorization.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A submitted task: what `delay()` returns in Celery. Ask it for its
/// [`status`](TaskHandle::status), wait for its result with
/// [`get`](TaskHandle::get), or [`cancel`](TaskHandle::cancel) it.
#[derive(Debug, Clone)]
pub struct TaskHandle {
    /// The task's id.
    pub id: String,
    /// False when the submission repeated an idempotency key and an earlier
    /// task stands (then `id` is that task's). True for handles made with
    /// [`Client::task`].
    pub created: bool,
    client: Client,
}

impl TaskHandle {
    /// The task's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The task's current status.
    pub async fn status(&self) -> Result<TaskStatus, ClientError> {
        self.client.status(&self.id).await
    }

    /// Waits up to `timeout` for the task to finish; returns its status then,
    /// finished or not.
    pub async fn wait(&self, timeout: Duration) -> Result<TaskStatus, ClientError> {
        self.client.wait(&self.id, timeout).await
    }

    /// Waits up to `timeout` for the task's result: its output on `SUCCESS`,
    /// [`ClientError::TaskFailed`] on `FAILURE`, [`ClientError::Revoked`] on
    /// `REVOKED`, [`ClientError::Timeout`] when it has not finished in time.
    /// A zero `timeout` reads the status once.
    pub async fn get(&self, timeout: Duration) -> Result<Value, ClientError> {
        let status = self.wait(timeout).await?;
        match status.status {
            TaskState::Success => Ok(status.result.unwrap_or(Value::Null)),
            TaskState::Failure => Err(ClientError::TaskFailed {
                id: status.task_id,
                error: status.error.unwrap_or(Value::Null),
            }),
            TaskState::Revoked => Err(ClientError::Revoked { id: status.task_id }),
            state => Err(ClientError::Timeout {
                id: status.task_id,
                waited: timeout,
                state,
            }),
        }
    }

    /// [`get`](TaskHandle::get), read as `T`: the memory helpers' results
    /// read as [`Created`], [`BatchCreated`], [`Recalled`], [`Updated`].
    pub async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let output = self.get(timeout).await?;
        serde_json::from_value(output).map_err(|e| ClientError::Decode {
            status: 200,
            reason: format!("the result of task {}: {e}", self.id),
        })
    }

    /// Cancels the task: a queued one never runs, a running one is
    /// interrupted at once.
    pub async fn cancel(&self) -> Result<CancelResponse, ClientError> {
        self.client.cancel(&self.id).await
    }
}

/// A request body.
enum Body {
    None,
    Json(Vec<u8>),
    /// Bytes and their content type.
    Raw(Vec<u8>, String),
}

impl Client {
    /// A client of the API at `base_url` (e.g. `http://127.0.0.1:8000`; a
    /// path prefix is kept), sending `api_key` as `Authorization: Bearer`.
    /// An empty key sends no `Authorization` header: only [`health`](Client::health)
    /// and [`ready`](Client::ready) answer then.
    pub fn new(
        base_url: impl AsRef<str>,
        api_key: impl Into<String>,
    ) -> Result<Client, ClientError> {
        let url = base_url.as_ref().trim();
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let base = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("the URL must not have a query or a fragment"));
        }
        let key = api_key.into();
        let key = key.trim();
        let authorization = if key.is_empty() {
            None
        } else {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::InvalidKey)?;
            value.set_sensitive(true);
            Some(value)
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("hippo-client/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            base,
            authorization,
            http,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with another limit on ordinary requests (default
    /// 30 s). Long-polls add their wait to it; deploys get at least 120 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    // ---- tasks ----

    /// Submits `task` with `input` (any value that serializes to JSON) to
    /// the plugin's queue, with the default priority and retries: Celery's
    /// `delay()`.
    pub async fn submit(
        &self,
        task: &str,
        input: impl Serialize,
    ) -> Result<TaskHandle, ClientError> {
        self.submit_with(task, input, &SubmitOptions::default())
            .await
    }

    /// Submits `task` with `input` and `options` (queue, priority, countdown
    /// or ETA, expiry, retries, idempotency key, limits): Celery's
    /// `apply_async()`.
    pub async fn submit_with(
        &self,
        task: &str,
        input: impl Serialize,
        options: &SubmitOptions,
    ) -> Result<TaskHandle, ClientError> {
        let input = serde_json::to_value(input).map_err(ClientError::Encode)?;
        let body = SubmitBody::new(task, &input, options);
        self.queue(&["api", "v1", "tasks", "submit"], json(&body)?)
            .await
    }

    /// A handle on a task submitted earlier (Celery's `AsyncResult(id)`);
    /// makes no request.
    pub fn task(&self, id: impl Into<String>) -> TaskHandle {
        TaskHandle {
            id: id.into(),
            created: true,
            client: self.clone(),
        }
    }

    /// A task's current status (404 [`ClientError::Api`] for an unknown id,
    /// or one whose result expired).
    pub async fn status(&self, id: &str) -> Result<TaskStatus, ClientError> {
        self.get_json(&["api", "v1", "tasks", "status", id]).await
    }

    /// Waits up to `timeout` for a task to finish, long-polling in requests
    /// of at most [`MAX_WAIT_PER_REQUEST`]; returns its status then,
    /// finished or not.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<TaskStatus, ClientError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let remaining = timeout.saturating_sub(started.elapsed());
            let slice = remaining.min(MAX_WAIT_PER_REQUEST);
            let asked = Instant::now();
            let wait = format!("{:.3}", slice.as_secs_f64());
            let status: TaskStatus = self
                .call(
                    Method::GET,
                    &["api", "v1", "tasks", "status", id],
                    &[("wait", &wait)],
                    Body::None,
                    self.timeout + slice,
                )
                .await?;
            if status.is_finished() || started.elapsed() >= timeout {
                return Ok(status);
            }
            // The server answers before the wait ran out only when the task
            // finished; should one answer early anyway, do not spin on it.
            if asked.elapsed() + Duration::from_millis(50) < slice {
                tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }

    /// Cancels a task: a queued one never runs, a running one is interrupted
    /// at once.
    pub async fn cancel(&self, id: &str) -> Result<CancelResponse, ClientError> {
        self.call(
            Method::POST,
            &["api", "v1", "tasks", "cancel", id],
            &[],
            Body::None,
            self.timeout,
        )
        .await
    }

    // ---- plumbing ----

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have a path")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Body,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut request = self
            .http
            .request(method, self.url(segments, query))
            .timeout(timeout);
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        request = match body {
            Body::None => request,
            Body::Json(bytes) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(bytes),
            Body::Raw(bytes, content_type) => request
                .header(header::CONTENT_TYPE, content_type)
                .body(bytes),
        };
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((status, bytes.to_vec()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Body,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.send(method, segments, query, body, timeout).await?;
        decode(status, &bytes)
    }

    async fn get_json<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        self.call(Method::GET, segments, &[], Body::None, self.timeout)
            .await
    }

    /// POSTs to a route that queues a task, and returns the task's handle.
    async fn queue(&self, segments: &[&str], body: Body) -> Result<TaskHandle, ClientError> {
        let answer: SubmitResponse = self
            .call(Method::POST, segments, &[], body, self.timeout)
            .await?;
        Ok(TaskHandle {
            id: answer.task_id,
            created: answer.created,
            client: self.clone(),
        })
    }
}

fn json(body: &impl Serialize) -> Result<Body, ClientError> {
    serde_json::to_vec(body)
        .map(Body::Json)
        .map_err(ClientError::Encode)
}

/// A success's body as `T`, or the error the API answered.
fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(api_error(status, bytes));
    }
    serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
        status: status.as_u16(),
        reason: e.to_string(),
    })
}

/// The API's error body, `{"error": {"code", "message", "field"}}`, as a
/// [`ClientError::Api`]; any other error answer as code `http_error`.
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(serde::Deserialize)]
    struct ErrorDetail {
        code: String,
        message: String,
        #[serde(default)]
        field: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(ErrorBody { error }) => ClientError::Api {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
            field: error.field,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text.chars().take(200).collect()
            };
            ClientError::Api {
                status: status.as_u16(),
                code: "http_error".into(),
                message,
                field: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_path_prefix_and_escape_segments() {
        let client = Client::new("http://example.invalid:8000/hippo/", "k").unwrap();
        let url = client.url(
            &["api", "v1", "tasks", "status", "a/b c"],
            &[("wait", "1.500")],
        );
        assert_eq!(
            url.as_str(),
            "http://example.invalid:8000/hippo/api/v1/tasks/status/a%2Fb%20c?wait=1.500"
        );
        let client = Client::new("http://127.0.0.1:8000", "k").unwrap();
        assert_eq!(
            client.url(&["healthz"], &[]).as_str(),
            "http://127.0.0.1:8000/healthz"
        );
    }

    #[test]
    fn bad_urls_and_keys_are_refused() {
        assert!(matches!(
            Client::new("127.0.0.1:8000", "k"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Client::new("ftp://host", "k"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Client::new("http://host/?q=1", "k"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Client::new("http://host", "bad\nkey"),
            Err(ClientError::InvalidKey)
        ));
        let debug = format!("{:?}", Client::new("http://host", "secret-key").unwrap());
        assert!(!debug.contains("secret-key"), "{debug}");
    }

    #[test]
    fn error_bodies_become_api_errors() {
        let body = br#"{"error":{"code":"invalid_input","message":"no registered plugin offers task \"x\"","field":"task"}}"#;
        match api_error(StatusCode::BAD_REQUEST, body) {
            ClientError::Api {
                status: 400,
                code,
                field: Some(field),
                ..
            } => {
                assert_eq!((code.as_str(), field.as_str()), ("invalid_input", "task"));
            }
            other => panic!("{other:?}"),
        }
        let error = api_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(error.code(), Some("http_error"));
        assert_eq!(error.status(), Some(502));
        assert!(error.to_string().contains("bad gateway"), "{error}");
        let error = api_error(StatusCode::NOT_FOUND, b"");
        assert!(error.is_not_found());
        assert_eq!(error.to_string(), "Not Found (404 http_error)");
    }

    #[test]
    fn submissions_send_only_what_is_set() {
        let options = SubmitOptions {
            countdown: Some(Duration::from_millis(1500)),
            limits: Some(Limits {
                fuel: Some(10),
                ..Limits::default()
            }),
            ..SubmitOptions::default()
        };
        let input = serde_json::json!({"n": 1});
        let body = serde_json::to_value(SubmitBody::new("example.fib", &input, &options)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"task": "example.fib", "input": {"n": 1}, "countdown": 1.5, "limits": {"fuel": 10}})
        );
    }

    #[test]
    fn states_parse_and_unknown_ones_do_not_fail() {
        let state: TaskState = serde_json::from_str("\"PROGRESS\"").unwrap();
        assert_eq!(state, TaskState::Progress);
        assert!(!state.is_finished());
        let state: TaskState = serde_json::from_str("\"SOMETHING_NEW\"").unwrap();
        assert_eq!(state, TaskState::Unknown);
        assert_eq!(TaskState::Revoked.to_string(), "REVOKED");
    }
}
