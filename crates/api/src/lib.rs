//! The REST API (axum): tasks, their history and logs, inspection, dead
//! letters, plugins, health
//! and the OpenAPI document generated from this code (`/api/openapi.json`).
//!
//! Every route but `/healthz`, `/readyz` and the OpenAPI document needs an
//! API key ([`auth`]). Every error is JSON with a stable code ([`error`]);
//! bad input is a 4xx naming the field, never a 500.
//!
//! Depends on the parts it serves (`hippo-broker`, `hippo-runtime`,
//! `hippo-scheduler`, `hippo-store`, `hippo-models`); nothing depends on it
//! but the binary.

pub mod auth;
pub mod dashboard;
pub mod error;
mod events;
mod flower;
mod history;
mod memory;
pub mod metrics;
mod plugins;
mod schedule;
mod stats;
mod tasks;

pub use auth::{KeyConfig, KeyStore, Scope, hash_key};
pub use error::ApiError;
pub use schedule::{ScheduleInfo, ScheduleList, with_scheduler};
pub use tasks::{CancelResponse, SubmitRequest, SubmitResponse, TaskStatus};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use hippo_broker::SharedBroker;
use hippo_runtime::PluginRegistry;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::OpenApi;

/// Largest JSON body a route takes.
pub const MAX_JSON_BYTES: usize = 2 << 20;
/// A request that takes longer is answered 408 (long-polls wait at most 60 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The broker tasks go to.
    pub broker: SharedBroker,
    /// The plugins in service (task names, queues, uploads).
    pub registry: Arc<PluginRegistry>,
    /// API keys.
    pub keys: Arc<KeyStore>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "hippo", description = "Task runtime for an LLM long-term-memory engine"),
    paths(
        tasks::submit, tasks::status, tasks::cancel, tasks::inspect_stats, tasks::inspect_queues,
        tasks::inspect_active, tasks::inspect_scheduled, tasks::purge_queue, tasks::dead_letters,
        tasks::replay_dead_letter, tasks::purge_dead_letters,
        history::list, history::entry, history::log, events::events, stats::tasks,
        plugins::list, plugins::upload, plugins::upload_manifest, plugins::remove,
        schedule::list, schedule::run,
        memory::queue_create, memory::queue_batch_create, memory::queue_recall, memory::queue_update,
        memory::queue_delete, memory::create, memory::get_one, memory::update, memory::delete,
        memory::recall, memory::query,
        healthz, readyz, metrics,
    ),
    components(schemas(
        tasks::SubmitRequest, tasks::LimitsBody, tasks::SubmitResponse, tasks::TaskStatus, tasks::CancelResponse,
        schedule::ScheduleList, schedule::ScheduleInfo, history::TaskList, history::TaskLogs,
        stats::TaskStats, stats::TaskNameStats, stats::Runtimes, stats::Bucket,
        error::ErrorBody, error::ErrorDetail, Health,
        memory::NewMemory, memory::BatchCreate, memory::Recall, memory::RecallMode, memory::MemoryFilters,
        memory::MemoryUpdates, memory::Update, memory::Delete, memory::Query, hippo_store::MemoryType,
        memory::MemoryRecord, memory::CreateAction, memory::Created, memory::BatchCreated, memory::Found,
        memory::Updated, memory::Deleted, memory::ScoreWeights, memory::ScoreBreakdown, memory::RecallHit,
        memory::Recalled, memory::MemoryPage,
        hippo_store::Visibility,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    /// The bearer scheme, and on every route that needs a key the answers
    /// the authentication layer gives before any handler runs: 401 (no or
    /// a wrong key), 403 (a scope or a user the key lacks) and 429 (the
    /// key's rate); and 400 where the route takes parameters or a body, 404
    /// where its path names something, 503 where it needs the memory
    /// plugin. Each an `ErrorBody`, unless the route documents its own.
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let refusals = [
            ("401", "No API key, or a wrong one"),
            (
                "403",
                "The key lacks the scope, or may not act for the user",
            ),
            ("429", "The key's rate limit; see Retry-After"),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The memory routes run the memory plugin, which may be missing.
            let memory =
                path.starts_with("/api/v1/memories") || path.starts_with("/api/v1/tasks/memory/");
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.is_none() {
                    continue;
                }
                // A request the handler can refuse: bad parameters or body
                // (400), and an id that names nothing (404).
                let parameters = operation.parameters.as_deref().unwrap_or_default();
                let in_path = parameters
                    .iter()
                    .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path);
                let checked = in_path || !parameters.is_empty() || operation.request_body.is_some();
                let refusals = refusals
                    .into_iter()
                    .chain(checked.then_some((
                        "400",
                        "A parameter or the body is refused; `field` names it",
                    )))
                    .chain(in_path.then_some(("404", "Nothing has that id")))
                    .chain(
                        memory
                            .then_some(("503", "The memory plugin or its store is not available")),
                    );
                for (status, description) in refusals {
                    let body = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build();
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content("application/json", body)
                        .build();
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert(response.into());
                }
            }
        }
    }
}

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let protected = v1_routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        authenticate,
    ));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/openapi.json", get(|| async { axum::Json(openapi()) }))
        .merge(protected);
    hardened(app).with_state(state)
}

/// The routes that need a caller (an extension `Caller` put there by the
/// listener's authentication): the API's, which the dashboard serves too.
pub(crate) fn v1_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/stats/tasks", get(stats::tasks))
        .route("/api/v1/tasks", get(history::list))
        .route("/api/v1/tasks/{task_id}/history", get(history::entry))
        .route("/api/v1/tasks/{task_id}/log", get(history::log))
        .route("/api/v1/tasks/submit", post(tasks::submit))
        .route("/api/v1/tasks/status/{task_id}", get(tasks::status))
        .route("/api/v1/tasks/cancel/{task_id}", post(tasks::cancel))
        .route("/api/v1/tasks/inspect/stats", get(tasks::inspect_stats))
        .route("/api/v1/tasks/inspect/queues", get(tasks::inspect_queues))
        .route("/api/v1/tasks/inspect/active", get(tasks::inspect_active))
        .route(
            "/api/v1/tasks/inspect/scheduled",
            get(tasks::inspect_scheduled),
        )
        .route("/api/v1/tasks/queues/{queue}", delete(tasks::purge_queue))
        .route(
            "/api/v1/tasks/deadletters",
            get(tasks::dead_letters).delete(tasks::purge_dead_letters),
        )
        .route(
            "/api/v1/tasks/deadletters/{task_id}/replay",
            post(tasks::replay_dead_letter),
        )
        .route("/api/v1/tasks/memory/create", post(memory::queue_create))
        .route(
            "/api/v1/tasks/memory/batch-create",
            post(memory::queue_batch_create),
        )
        .route("/api/v1/tasks/memory/recall", post(memory::queue_recall))
        .route("/api/v1/tasks/memory/update", post(memory::queue_update))
        .route("/api/v1/tasks/memory/delete", post(memory::queue_delete))
        .route("/api/v1/memories", post(memory::create))
        .route("/api/v1/memories/recall", post(memory::recall))
        .route("/api/v1/memories/query", post(memory::query))
        .route(
            "/api/v1/memories/{memory_id}",
            get(memory::get_one)
                .patch(memory::update)
                .delete(memory::delete),
        )
        .route("/api/v1/tasks/scheduled", get(schedule::list))
        .route("/api/v1/tasks/scheduled/{name}/run", post(schedule::run))
        .route("/api/v1/plugins", get(plugins::list))
        .route(
            "/api/v1/plugins/{name}",
            put(plugins::upload).delete(plugins::remove),
        )
        .route(
            "/api/v1/plugins/{name}/manifest",
            put(plugins::upload_manifest),
        )
        .route("/metrics", get(metrics))
}

/// `app` with what every listener's routes need: JSON fallbacks, bodies
/// read by the handlers with their own limits (see `read_body`), a
/// request timeout, and unread bodies drained before answering.
pub(crate) fn hardened(app: Router<AppState>) -> Router<AppState> {
    json_fallbacks(app)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(finish_unread_bodies))
}

/// `router` answering an unknown route 404 and a known route's wrong
/// method 405, both as JSON errors like every other answer. The API and
/// the dashboard's listener share it.
pub(crate) fn json_fallbacks<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                ..ApiError::not_found("method not allowed on this route")
            }
        })
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), shutdown).await
}

/// Serves `app` ([`router`], e.g. [`with_scheduler`]) on `listener` until
/// `shutdown` resolves.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Streams (`/api/v1/events`) end when the shutdown begins: a graceful
    // shutdown waits for open responses, and a stream never ends by itself.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let app = app.layer(axum::Extension(events::Stopping(stopping)));
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.keys.authenticate(header) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// At most this much of a body no handler read is drained before answering.
const DRAIN_BYTES: usize = 16 << 20;
/// ... and for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// A request body that reports whether it was read to its end, and that the
/// middleware below can finish reading after the handler dropped it.
#[derive(Clone)]
struct TrackedBody {
    stream: Arc<std::sync::Mutex<axum::body::BodyDataStream>>,
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl futures::Stream for TrackedBody {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let mut stream = self
            .stream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = std::pin::Pin::new(&mut *stream).poll_next(cx);
        if let std::task::Poll::Ready(None) = next {
            self.ended.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        next
    }
}

/// Many answers come before the request's body is read (a bad key, a bad
/// query, a body over the limit). hyper then closes the connection with the
/// rest of the body unread: the client may see a reset instead of the answer,
/// or reuse the connection and see its next request fail. So the rest of the
/// body is read (within bounds) and the answer says `Connection: close`.
async fn finish_unread_bodies(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    if !has_body {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = TrackedBody {
        stream: Arc::new(std::sync::Mutex::new(body.into_data_stream())),
        ended: Arc::default(),
    };
    let mut response = next
        .run(Request::from_parts(parts, Body::from_stream(body.clone())))
        .await;
    if !body.ended.load(std::sync::atomic::Ordering::Relaxed) {
        use futures::StreamExt;
        let mut rest = body;
        let drain = async {
            let mut drained = 0;
            while let Some(Ok(chunk)) = rest.next().await {
                drained += chunk.len();
                if drained > DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Reads a body of at most `limit` bytes (413 beyond).
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("the body exceeds {limit} bytes"),
            field: Some("body".into()),
            retry_after: None,
        })
}

/// A JSON body whose errors name the field at fault.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request.into_body(), MAX_JSON_BYTES).await?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| ApiError::bad_body(format!("the body is not UTF-8: {e}")))?;
        // Bodies are objects: serde would also take a struct's fields as an array.
        if !text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('{')
        {
            return Err(ApiError::bad_body("the body must be a JSON object"));
        }
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let value = serde_path_to_error::deserialize(&mut *deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            // serde_json also reports a value an enum cannot start with (`3`
            // for a type name) as a syntax error: the body is to blame only
            // when it is not JSON at all.
            // Nesting beyond serde_json's limit is the body's fault too.
            let malformed = inner.is_eof()
                || (inner.is_syntax()
                    && (inner.to_string().starts_with("recursion limit exceeded")
                        || serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()));
            if malformed {
                ApiError::bad_body(format!("the body is not valid JSON: {inner}"))
            } else if inner.is_syntax() {
                ApiError::invalid(
                    path.clone(),
                    format!("{path}: not a value it takes ({inner})"),
                )
            } else {
                // A missing or unknown field is reported at the object that
                // should (not) hold it: name the field itself (other messages
                // quote values, not fields: `integer `42``).
                let message = inner.to_string();
                let named = (message.starts_with("missing field `")
                    || message.starts_with("unknown field `"))
                .then(|| message.split('`').nth(1))
                .flatten();
                let field = match (named, path.as_str()) {
                    (None, ".") => "body".to_string(),
                    (None, _) => path,
                    (Some(name), ".") => name.to_string(),
                    (Some(name), _) if path.ends_with(name) => path,
                    (Some(name), _) => format!("{path}.{name}"),
                };
                ApiError::invalid(field, message)
            }
        })?;
        // Only whitespace may follow the value.
        deserializer
            .end()
            .map_err(|e| ApiError::bad_body(format!("the body is not valid JSON: {e}")))?;
        Ok(ValidJson(value))
    }
}

/// Query parameters whose errors are JSON naming the parameter (axum's
/// `Query` answers plain text).
#[derive(Debug)]
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|q| ValidQuery(q.0))
            .map_err(|rejection| {
                // "Failed to deserialize query string: wait: invalid float literal"
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                // "missing field `user_id`" names the parameter too.
                let missing = detail
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next());
                let field = missing
                    .or_else(|| detail.split_once(": ").map(|(name, _)| name))
                    .filter(|name| {
                        !name.is_empty()
                            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                    .unwrap_or("query");
                ApiError::invalid(field.to_string(), text.clone())
            })
    }
}

/// Path parameters whose errors are JSON naming the parameter (axum's
/// `Path` answers plain text).
#[derive(Debug)]
pub struct ValidPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ValidPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(path) => Ok(ValidPath(path.0)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                let message = error.body_text();
                let field = match error.into_kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => key,
                    _ => "path".to_string(),
                };
                Err(ApiError::invalid(field, message))
            }
            Err(other) => Err(ApiError::invalid("path", other.body_text())),
        }
    }
}

/// Health of one dependency.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Per dependency: `ok` or the error, and latency in milliseconds.
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        checks: serde_json::json!({}),
    })
}

/// Prometheus metrics, text exposition format 0.0.4 (scrape with a key of
/// scope `read`): tasks per queue and state, every worker's heartbeat
/// figures, this process's plugins and model batching ([`crate::metrics`]).
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<auth::Caller>,
) -> Result<Response, ApiError> {
    caller.require(auth::Scope::Read)?;
    let text =
        crate::metrics::render(&state.broker, &state.registry, hippo_broker::now_ms()).await?;
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// The broker answers, plugins are loaded, and every host service this
/// process runs (memory store, embedder, reranker) answers a probe (503 otherwise).
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let started = Instant::now();
    let broker = state.broker.queue_stats().await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let plugins = state.registry.plugins().len();
    let runtime = state.registry.runtime().clone();
    // The probes call the models and the store, which block.
    let probes = tokio::task::spawn_blocking(move || runtime.services().probe())
        .await
        .unwrap_or_default();
    let mut ready = broker.is_ok();
    let mut checks = serde_json::json!({
        "broker": { "status": broker.err().map_or("ok".to_string(), |e| e.to_string()), "latency_ms": latency_ms },
        "plugins": { "status": "ok", "loaded": plugins },
    });
    for probe in probes {
        // The broker was checked above, through the queues.
        if probe.component == "broker" {
            continue;
        }
        ready &= probe.ok;
        checks[probe.component.as_str()] = serde_json::json!({
            "status": if probe.ok { "ok".to_string() } else { probe.detail.clone() },
            "latency_ms": probe.latency_us as f64 / 1000.0,
            "detail": probe.detail,
        });
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if ready { "ok" } else { "unavailable" }.into(),
        checks,
    };
    (status, axum::Json(health)).into_response()
}
