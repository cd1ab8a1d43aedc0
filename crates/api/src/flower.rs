//! Flower's HTTP API on the dashboard's listener ([`super::dashboard`]),
//! with Flower's routes and field names, so scripts written against
//! Flower keep working.
//!
//! What cannot mean the same here as in Flower:
//! - a task has one JSON input, not `args` and `kwargs`: `kwargs` is the
//!   input's JSON text and `args` is `"[]"`; an apply sends `kwargs` as
//!   the input (or `args` when it holds one object, and nothing else);
//! - `received_start` / `received_end` and the order of `/api/tasks` are
//!   by a task's last change (the history's index), newest first; only
//!   finished tasks (and tasks waiting to retry) are listed;
//! - `result` and `exception` are JSON text and the error's text, not
//!   Python reprs; `traceback`, `clock`, `client`, `exchange` are null;
//! - `/api/workers` answers from the heartbeats (`refresh` changes
//!   nothing): `stats.total` is by outcome, not by task name.

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::tasks::{SubmitRequest, enqueue, validate};
use super::{AppState, ValidPath, ValidQuery};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hippo_broker::{HistoryEntry, HistoryQuery, RevokeOutcome, TaskRecord, TaskState};
use hippo_task::TaskFailure;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Flower's routes, for the dashboard to put behind its logins.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/workers", get(workers))
        .route("/api/tasks", get(tasks))
        .route("/api/task/types", get(task_types))
        .route("/api/queues/length", get(queue_lengths))
        .route("/api/task/info/{task_id}", get(task_info))
        .route("/api/task/result/{task_id}", get(task_result))
        .route("/api/task/revoke/{task_id}", post(revoke))
        .route("/api/task/async-apply/{name}", post(async_apply))
}

/// Unix seconds (Flower's times) of Unix ms.
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A task as Flower's API describes one: Flower's fields, in one place for
/// finished tasks ([`FlowerTask::finished`]) and the others
/// ([`FlowerTask::live`]). Times are Unix seconds; the fields hippo has no
/// meaning for are null (or an empty list).
#[derive(Serialize)]
struct FlowerTask<'a> {
    uuid: &'a str,
    name: &'a str,
    state: &'static str,
    received: f64,
    sent: f64,
    started: Option<f64>,
    succeeded: Option<f64>,
    failed: Option<f64>,
    retried: Option<f64>,
    revoked: Option<f64>,
    rejected: Option<()>,
    timestamp: f64,
    runtime: Option<f64>,
    args: &'static str,
    kwargs: String,
    result: Option<&'a str>,
    exception: Option<String>,
    traceback: Option<()>,
    retries: u64,
    worker: Option<&'a str>,
    eta: Option<f64>,
    expires: Option<f64>,
    exchange: Option<()>,
    routing_key: &'a str,
    clock: Option<()>,
    client: Option<()>,
    root_id: &'a str,
    parent_id: Option<()>,
    children: [(); 0],
}

impl<'a> FlowerTask<'a> {
    /// A finished task (or one waiting to retry), from its history entry.
    fn finished(entry: &'a HistoryEntry) -> Self {
        let first_run = entry.attempts.iter().find_map(|a| a.run.as_ref());
        let last_run = entry.attempts.iter().rev().find_map(|a| a.run.as_ref());
        let at_end = |state: TaskState| (entry.state == state).then(|| seconds(entry.updated_ms));
        let retried = entry
            .attempts
            .iter()
            .rev()
            .find(|a| a.state == TaskState::Retry)
            .and_then(|a| a.run.as_ref())
            .map(|run| seconds(run.finished_ms));
        FlowerTask {
            started: first_run.map(|run| seconds(run.started_ms)),
            succeeded: at_end(TaskState::Success),
            failed: at_end(TaskState::Failure),
            retried,
            revoked: at_end(TaskState::Revoked),
            runtime: last_run.map(|run| run.stats.wall_time_us as f64 / 1e6),
            result: entry.result.as_ref().map(|r| r.as_str()),
            retries: entry.attempts.len().saturating_sub(1) as u64,
            eta: None,
            expires: None,
            ..FlowerTask::common(
                &entry.id,
                &entry.task,
                &entry.queue,
                (entry.state, entry.submitted_ms, entry.updated_ms),
                &entry.input,
                entry.error.as_ref(),
                entry.worker.as_deref(),
            )
        }
    }

    /// A task not finished yet, from its record.
    fn live(record: &'a TaskRecord) -> Self {
        let message = &record.message;
        FlowerTask {
            retries: u64::from(message.attempt.saturating_sub(1)),
            eta: message.eta_ms.map(seconds),
            expires: message.expires_ms.map(seconds),
            ..FlowerTask::common(
                &message.id,
                &message.task,
                &message.queue,
                (record.state, message.submitted_ms, record.updated_ms),
                &message.input,
                record.error.as_ref(),
                record.worker.as_deref(),
            )
        }
    }

    /// What every task has: its names, state and times, input, error and
    /// worker; nothing of its runs.
    fn common(
        id: &'a str,
        name: &'a str,
        queue: &'a str,
        (state, submitted_ms, updated_ms): (TaskState, u64, u64),
        input: &Value,
        error: Option<&TaskFailure>,
        worker: Option<&'a str>,
    ) -> Self {
        FlowerTask {
            uuid: id,
            name,
            state: state.as_str(),
            received: seconds(submitted_ms),
            sent: seconds(submitted_ms),
            started: None,
            succeeded: None,
            failed: None,
            retried: None,
            revoked: None,
            rejected: None,
            timestamp: seconds(updated_ms),
            runtime: None,
            args: "[]",
            kwargs: input.to_string(),
            result: None,
            exception: error.map(ToString::to_string),
            traceback: None,
            retries: 0,
            worker,
            eta: None,
            expires: None,
            exchange: None,
            routing_key: queue,
            clock: None,
            client: None,
            root_id: id,
            parent_id: None,
            children: [],
        }
    }

    fn value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The names of the tasks the loaded plugins offer, sorted.
fn registered_tasks(state: &AppState) -> Vec<String> {
    let mut names: Vec<String> = state
        .registry
        .plugins()
        .iter()
        .flat_map(|p| p.tasks.iter().map(|t| t.spec.name.clone()))
        .collect();
    names.sort();
    names
}

/// Flower's `/api/workers` query (`refresh` is taken and changes nothing).
#[derive(Debug, Deserialize)]
struct WorkersQuery {
    workername: Option<String>,
    status: Option<String>,
}

/// Workers keyed by name, with Flower's fields (from their heartbeats);
/// `?status=true` answers `{name: true}` for each online worker.
async fn workers(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ValidQuery(query): ValidQuery<WorkersQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let registered = registered_tasks(&state);
    let mut answer = Map::new();
    for w in state.broker.workers().await? {
        if query
            .workername
            .as_ref()
            .is_some_and(|name| name != &w.name)
        {
            continue;
        }
        if query
            .status
            .as_deref()
            .is_some_and(|s| s == "true" || s == "1")
        {
            answer.insert(w.name, json!(true));
            continue;
        }
        let uptime = w.heartbeat_ms.saturating_sub(w.started_ms) / 1000;
        let worker = json!({
            "active_queues": w.queues.iter().map(|q| json!({"name": q, "routing_key": q})).collect::<Vec<_>>(),
            "conf": {"worker_concurrency": w.concurrency},
            "registered": registered,
            "stats": {
                "hostname": w.hostname,
                "pid": w.pid,
                "uptime": uptime,
                "pool": {"max-concurrency": w.concurrency, "processes": [w.pid]},
                "rusage": {"utime": w.cpu_seconds, "maxrss": w.rss_bytes / 1024},
                "total": {"succeeded": w.succeeded, "failed": w.failed, "retried": w.retried},
                "processed": w.processed,
            },
            "scheduled": [],
            "active": w.active.iter().map(|id| json!({"id": id, "hostname": w.hostname})).collect::<Vec<_>>(),
            "reserved": [],
            "revoked": [],
            "timestamp": seconds(w.heartbeat_ms),
        });
        answer.insert(w.name, worker);
    }
    Ok(axum::Json(Value::Object(answer)))
}

/// Flower's `/api/tasks` query.
#[derive(Debug, Deserialize)]
struct TasksQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    sort_by: Option<String>,
    workername: Option<String>,
    taskname: Option<String>,
    state: Option<TaskState>,
    received_start: Option<String>,
    received_end: Option<String>,
    search: Option<String>,
}

/// Flower's time of day, `%Y-%m-%d %H:%M`, as Unix ms (UTC).
fn flower_time(field: &str, value: &str) -> Result<u64, ApiError> {
    let with_seconds = format!("{}:00Z", value.trim().replace(' ', "T"));
    humantime::parse_rfc3339(&with_seconds)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| ApiError::invalid(field, format!("{field} must be YYYY-MM-DD HH:MM")))
}

/// Finished tasks keyed by id, newest first, with Flower's filters.
async fn tasks(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ValidQuery(query): ValidQuery<TasksQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    if let Some(sort) = query.sort_by.as_deref()
        && !matches!(sort, "-received" | "-timestamp")
    {
        return Err(ApiError::invalid(
            "sort_by",
            "tasks are listed newest first (`-received`) only",
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let mut skip = query.offset.unwrap_or(0).min(100_000);
    let mut history = HistoryQuery {
        state: query.state,
        task: query.taskname.filter(|s| !s.is_empty()),
        worker: query.workername.filter(|s| !s.is_empty()),
        text: query.search.filter(|s| !s.is_empty()),
        since_ms: query
            .received_start
            .as_deref()
            .map(|v| flower_time("received_start", v))
            .transpose()?,
        until_ms: query
            .received_end
            .as_deref()
            .map(|v| flower_time("received_end", v))
            .transpose()?,
        limit: 1_000,
        ..HistoryQuery::default()
    };
    let mut answer = Map::new();
    // Bounded: an offset of 100,000 reads at most 101 pages of 1,000.
    for _ in 0..=101 {
        let page = state.broker.history(&history).await?;
        for entry in page.entries {
            if !caller.sees(entry.acting_for.as_deref()) {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            answer.insert(entry.id.clone(), FlowerTask::finished(&entry).value());
            if answer.len() >= limit {
                return Ok(axum::Json(Value::Object(answer)));
            }
        }
        match page.next {
            Some(next) => history.after = Some(next),
            None => break,
        }
    }
    Ok(axum::Json(Value::Object(answer)))
}

/// `{"task-types": [...]}`: every task the loaded plugins offer.
async fn task_types(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(
        json!({ "task-types": registered_tasks(&state) }),
    ))
}

/// `{"active_queues": [{"name", "messages"}]}`: tasks ready per queue.
async fn queue_lengths(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let queues: Vec<Value> = state
        .broker
        .queue_stats()
        .await?
        .into_iter()
        .map(|q| json!({"name": q.name, "messages": q.ready}))
        .collect();
    Ok(axum::Json(json!({ "active_queues": queues })))
}

/// The task (history first, else its live record) the caller may see.
async fn flower_view(state: &AppState, caller: &Caller, id: &str) -> Result<Value, ApiError> {
    if let Some(entry) = state.broker.history_entry(id).await? {
        return caller
            .may_see(entry.acting_for.as_deref(), id)
            .map(|()| FlowerTask::finished(&entry).value());
    }
    match state.broker.task(id).await? {
        Some(record) => caller
            .may_see(record.message.acting_for.as_deref(), id)
            .map(|()| FlowerTask::live(&record).value()),
        None => Err(ApiError::not_found(format!("unknown task {id}"))),
    }
}

/// One task's Flower fields.
async fn task_info(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ValidPath(task_id): ValidPath<String>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(flower_view(&state, &caller, &task_id).await?))
}

#[derive(Debug, Deserialize)]
struct ResultQuery {
    timeout: Option<f64>,
}

/// `{"task-id", "state", "result"}`, waiting up to `timeout` seconds (at
/// most 60) for the task to finish.
async fn task_result(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ValidPath(task_id): ValidPath<String>,
    ValidQuery(query): ValidQuery<ResultQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let wait = super::tasks::wait_duration(query.timeout)
        .map_err(|_| ApiError::invalid("timeout", "timeout must be between 0 and 60 seconds"))?;
    let record = match wait {
        Some(wait) => state.broker.wait(&task_id, wait).await?,
        None => state.broker.task(&task_id).await?,
    };
    let Some(record) = record else {
        // Its result expired; the history still knows how it ended.
        let view = flower_view(&state, &caller, &task_id).await?;
        return Ok(axum::Json(json!({
            "task-id": task_id, "state": view["state"], "result": view["result"],
        })));
    };
    caller.may_see(record.message.acting_for.as_deref(), &task_id)?;
    let result = match record.state {
        TaskState::Success => record.result.map(|r| r.to_value()).unwrap_or(Value::Null),
        TaskState::Failure => json!(record.error.map(|e| e.to_string())),
        _ => Value::Null,
    };
    Ok(axum::Json(json!({
        "task-id": task_id, "state": record.state.as_str(), "result": result,
    })))
}

/// Revokes a task: a queued one never runs, a running one is interrupted
/// (hippo always interrupts, so `terminate` changes nothing).
async fn revoke(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ValidPath(task_id): ValidPath<String>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Submit)?;
    if let Some(record) = state.broker.task(&task_id).await? {
        caller.may_see(record.message.acting_for.as_deref(), &task_id)?;
    }
    match state.broker.revoke(&task_id).await? {
        RevokeOutcome::Unknown => Err(ApiError::not_found(format!("unknown task {task_id}"))),
        _ => Ok(axum::Json(
            json!({ "message": format!("Revoked '{task_id}'") }),
        )),
    }
}

/// Flower's apply body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    #[serde(default)]
    args: Vec<Value>,
    kwargs: Option<Map<String, Value>>,
    countdown: Option<f64>,
    /// An ISO 8601 time.
    eta: Option<String>,
    expires: Option<f64>,
    queue: Option<String>,
    priority: Option<u8>,
}

/// Submits `name` with the body's `kwargs` as its input; answers
/// `{"task-id", "state"}`.
async fn async_apply(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ValidPath(name): ValidPath<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Submit)?;
    let body: ApplyBody = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_str("{}").expect("an empty body is no field")
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_body(e.to_string()))?
    };
    let input = match (body.kwargs, body.args.as_slice()) {
        (Some(kwargs), []) => Value::Object(kwargs),
        (None, []) => Value::Null,
        (None, [single @ Value::Object(_)]) => single.clone(),
        _ => {
            return Err(ApiError::invalid(
                "args",
                "a hippo task takes one JSON input: send it as kwargs (or as one object in args)",
            ));
        }
    };
    let eta_ms = body
        .eta
        .as_deref()
        .map(|eta| {
            humantime::parse_rfc3339_weak(eta)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64)
                .ok_or_else(|| ApiError::invalid("eta", "eta must be an ISO 8601 time"))
        })
        .transpose()?;
    let request = SubmitRequest {
        task: name,
        input,
        queue: body.queue,
        priority: body.priority,
        countdown: body.countdown,
        eta_ms,
        expires: body.expires,
        max_retries: None,
        idempotency_key: None,
        limits: None,
    };
    let message = validate(&state, &caller, request)?;
    let id = message.id.clone();
    enqueue(&state, message, None).await?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "task-id": id, "state": "PENDING" })),
    )
        .into_response())
}
