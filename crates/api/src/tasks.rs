//! `/api/v1/tasks`: submit any registered task, read its status (optionally
//! waiting for it), cancel it, inspect queues and workers, and manage dead
//! letters.

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::{AppState, ValidJson, ValidPath, ValidQuery};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hippo_broker::{TaskMessage, TaskOutput, TaskRecord, TaskState, now_ms};
use hippo_task::{ACTING_USER_FIELD, LimitOverrides, acting_user};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The longest `wait` a request may ask for, in seconds.
pub const MAX_WAIT_S: f64 = 60.0;
const MAX_DELAY_S: f64 = 365.0 * 24.0 * 3600.0;

/// A task submission.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Registered task name, e.g. `memory.create` or your plugin's task.
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub task: String,
    /// JSON input (default `null`).
    #[serde(default)]
    #[schema(value_type = Value)]
    pub input: Value,
    /// Queue; default: the plugin's queue for the task.
    pub queue: Option<String>,
    /// 0-9, higher first (default 5).
    #[schema(minimum = 0, maximum = 9)]
    pub priority: Option<u8>,
    /// Run no sooner than this many seconds from now (at most a year).
    #[schema(minimum = 0, maximum = 31536000)]
    pub countdown: Option<f64>,
    /// Run no sooner than this time (Unix ms).
    pub eta_ms: Option<u64>,
    /// Revoke if not started within this many seconds (at most a year).
    #[schema(minimum = 0.001, maximum = 31536000)]
    pub expires: Option<f64>,
    /// Retries after the first attempt (default 3, at most 100).
    #[schema(minimum = 0, maximum = 100)]
    pub max_retries: Option<u32>,
    /// Submissions with the same key within 24 h are one task.
    #[schema(min_length = 1, max_length = 256)]
    pub idempotency_key: Option<String>,
    /// Per-task limits, within the host's ceilings. Above the task's own
    /// limits (its plugin's manifest, `describe` and the host's defaults)
    /// only with the `limits` scope; without it, 403 naming the field.
    pub limits: Option<LimitsBody>,
}

/// Per-task limits a submission may set.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// Soft time limit (ms).
    pub soft_time_limit_ms: Option<u64>,
    /// Hard time limit (ms).
    pub hard_time_limit_ms: Option<u64>,
    /// Fuel.
    pub fuel: Option<u64>,
    /// Memory cap (bytes).
    pub memory_bytes: Option<u64>,
    /// Output cap (bytes).
    pub output_bytes: Option<u64>,
}

/// The answer to a submission that does not wait.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    /// The task's id (the earlier task's, for a repeated idempotency key).
    pub task_id: String,
    /// Always `submitted`.
    pub status: String,
    /// A note for people.
    pub message: String,
    /// False when an earlier submission with the same idempotency key stands.
    pub created: bool,
}

/// A task's status: what `/status/{id}` answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskStatus {
    /// Task id.
    pub task_id: String,
    /// Task name.
    pub task: String,
    /// Queue.
    pub queue: String,
    /// PENDING, RECEIVED, STARTED, PROGRESS, RETRY, SUCCESS, FAILURE or REVOKED.
    pub status: String,
    /// Output, once SUCCESS (the task's JSON as it returned it).
    #[schema(value_type = Option<Value>)]
    pub result: Option<TaskOutput>,
    /// Why it failed (`kind`, `message`, ...), once FAILURE, or while RETRY.
    #[schema(value_type = Option<Value>)]
    pub error: Option<Value>,
    /// Latest progress report (`done`, `total`, `message`).
    #[schema(value_type = Option<Value>)]
    pub progress: Option<Value>,
    /// Current attempt (1 for the first run).
    pub attempt: u32,
    /// Runs so far.
    pub runs: u32,
    /// Worker holding or that last held the task.
    pub worker: Option<String>,
    /// The latest run: worker, start and end (Unix ms), fuel, peak memory, wall time, plugin version.
    #[schema(value_type = Option<Object>)]
    pub last_run: Option<Value>,
    /// Submitted at (Unix ms).
    pub submitted_ms: u64,
    /// Last change (Unix ms).
    pub updated_ms: u64,
}

impl From<TaskRecord> for TaskStatus {
    fn from(record: TaskRecord) -> Self {
        TaskStatus {
            task_id: record.message.id,
            task: record.message.task,
            queue: record.message.queue,
            status: record.state.as_str().to_string(),
            result: record.result,
            error: to_json(record.error),
            progress: to_json(record.progress),
            attempt: record.message.attempt,
            runs: record.runs,
            worker: record.worker,
            last_run: to_json(record.last_run),
            submitted_ms: record.message.submitted_ms,
            updated_ms: record.updated_ms,
        }
    }
}

/// The model's nested records, as JSON values of the response.
fn to_json<T: Serialize>(value: Option<T>) -> Option<Value> {
    value.and_then(|v| serde_json::to_value(v).ok())
}

/// `?wait=` seconds.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Wait up to this many seconds (at most 60) for the task to finish.
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<f64>,
}

pub(super) fn wait_duration(wait: Option<f64>) -> Result<Option<Duration>, ApiError> {
    match wait {
        None => Ok(None),
        Some(w) if w.is_finite() && (0.0..=MAX_WAIT_S).contains(&w) => {
            Ok(Some(Duration::from_secs_f64(w)))
        }
        Some(_) => Err(ApiError::invalid(
            "wait",
            format!("wait must be between 0 and {MAX_WAIT_S} seconds"),
        )),
    }
}

fn seconds_field(field: &str, value: Option<f64>, min: f64) -> Result<Option<u64>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= min && v <= MAX_DELAY_S => Ok(Some((v * 1000.0) as u64)),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be between {min} and {MAX_DELAY_S} seconds"),
        )),
    }
}

/// Checks a submission, binding it to the caller's users when the input names one.
pub(super) fn validate(
    state: &AppState,
    caller: &Caller,
    request: SubmitRequest,
) -> Result<TaskMessage, ApiError> {
    let task = request.task.trim();
    if task.is_empty() || task.chars().count() > 128 {
        return Err(ApiError::invalid("task", "task must be 1-128 characters"));
    }
    let queue = match (&request.queue, state.registry.resolve(task)) {
        (Some(queue), _) => queue.clone(),
        (None, Some(plugin)) => plugin
            .task(task)
            .map_or("default".into(), |spec| plugin.queue_for(spec).to_string()),
        (None, None) => {
            return Err(ApiError::invalid(
                "task",
                format!("no registered plugin offers task {task:?}"),
            ));
        }
    };
    if !state.broker.config().queues.contains(&queue) {
        return Err(ApiError::invalid(
            "queue",
            format!("unknown queue {queue:?}"),
        ));
    }
    // Who the task acts for is decided here, once; the message carries it.
    let acting_for = acting_user(&request.input)
        .map_err(|e| ApiError::invalid(format!("input.{ACTING_USER_FIELD}"), e.to_string()))?;
    if let Some(user) = acting_for {
        caller.may_act_for(user)?;
    }
    let mut message = TaskMessage::new(task, queue, request.input);
    if let Some(priority) = request.priority {
        if priority > 9 {
            return Err(ApiError::invalid(
                "priority",
                "priority must be between 0 and 9",
            ));
        }
        message.priority = priority;
    }
    message.max_retries = match request.max_retries {
        Some(retries) if retries > 100 => {
            return Err(ApiError::invalid(
                "max_retries",
                "max_retries must be at most 100",
            ));
        }
        Some(retries) => retries,
        None => state.registry.runtime().config().default_max_retries,
    };
    if let Some(key) = request.idempotency_key {
        if key.is_empty() || key.chars().count() > 256 {
            return Err(ApiError::invalid(
                "idempotency_key",
                "idempotency_key must be 1-256 characters",
            ));
        }
        message.idempotency_key = Some(key);
    }
    let now = now_ms();
    message.eta_ms = match (
        seconds_field("countdown", request.countdown, 0.0)?,
        request.eta_ms,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "eta_ms",
                "give countdown or eta_ms, not both",
            ));
        }
        (Some(countdown), None) => Some(now + countdown),
        (None, eta) => eta,
    };
    message.expires_ms = seconds_field("expires", request.expires, 0.001)?.map(|ms| now + ms);
    let limits = request.limits.unwrap_or_default();
    message.limits = LimitOverrides {
        soft_time_limit_ms: limits.soft_time_limit_ms,
        hard_time_limit_ms: limits.hard_time_limit_ms,
        fuel: limits.fuel,
        memory_bytes: limits.memory_bytes,
        output_bytes: limits.output_bytes,
        ..LimitOverrides::default()
    };
    message.may_raise_limits = caller.has(Scope::Limits);
    if !message.may_raise_limits {
        refuse_raised_limits(state, caller, &message)?;
    }
    Ok(message)
}

/// Refuses, naming the field, a submission whose limits exceed what the
/// task's plugin gets, from a key that may not raise them. Only a courtesy:
/// this process may not have the plugin (or have another version of it),
/// so the runtime that runs the task lowers such limits all the same.
fn refuse_raised_limits(
    state: &AppState,
    caller: &Caller,
    message: &TaskMessage,
) -> Result<(), ApiError> {
    let Some(plugin) = state.registry.resolve(&message.task) else {
        return Ok(());
    };
    let Some(spec) = plugin.task(&message.task) else {
        return Ok(());
    };
    let allowed = state.registry.runtime().plugin_limits(&plugin, spec);
    match message.limits.first_raise(&allowed) {
        None => Ok(()),
        Some(raise) => Err(ApiError {
            field: Some(format!("limits.{}", raise.field)),
            ..ApiError::forbidden(format!(
                "limits.{} = {} is above the task's own limit of {}: key {:?} lacks the limits scope, so its limits may only lower the task's",
                raise.field, raise.requested, raise.limit, caller.name
            ))
        }),
    }
}

/// Submits any registered task; with `?wait=` answers with its status once it finishes.
#[utoipa::path(post, path = "/api/v1/tasks/submit", tag = "tasks", request_body = SubmitRequest, params(WaitQuery),
    responses((status = 202, body = SubmitResponse), (status = 200, description = "finished within `wait`", body = TaskStatus),
              (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
              (status = 403, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<WaitQuery>,
    ValidJson(request): ValidJson<SubmitRequest>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Submit)?;
    let wait = wait_duration(query.wait)?;
    let message = validate(&state, &caller, request)?;
    enqueue(&state, message, wait).await
}

/// Submits a validated task: 202 with its id, or with `wait` its status
/// once it finishes (or when the wait ends).
pub(super) async fn enqueue(
    state: &AppState,
    message: TaskMessage,
    wait: Option<Duration>,
) -> Result<Response, ApiError> {
    let submitted = state.broker.submit(message).await?;
    match wait {
        Some(wait) => status_of(state, &submitted.task_id, Some(wait))
            .await
            .map(|s| axum::Json(s).into_response()),
        None => Ok((
            StatusCode::ACCEPTED,
            axum::Json(SubmitResponse {
                message: if submitted.created {
                    "task submitted".into()
                } else {
                    "an earlier submission with this idempotency key stands".into()
                },
                task_id: submitted.task_id,
                status: "submitted".into(),
                created: submitted.created,
            }),
        )
            .into_response()),
    }
}

async fn status_of(
    state: &AppState,
    id: &str,
    wait: Option<Duration>,
) -> Result<TaskStatus, ApiError> {
    let record = match wait {
        Some(wait) => state.broker.wait(id, wait).await?,
        None => state.broker.task(id).await?,
    };
    record
        .map(TaskStatus::from)
        .ok_or_else(|| ApiError::not_found(format!("unknown task {id}")))
}

/// A task's status and result (200 even when it failed; 404 for an unknown id).
#[utoipa::path(get, path = "/api/v1/tasks/status/{task_id}", tag = "tasks", params(("task_id" = String, Path), WaitQuery),
    responses((status = 200, body = TaskStatus), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(task_id): ValidPath<String>,
    ValidQuery(query): ValidQuery<WaitQuery>,
) -> Result<axum::Json<TaskStatus>, ApiError> {
    caller.require(Scope::Read)?;
    let wait = wait_duration(query.wait)?;
    // Before waiting: another user's task is refused at once.
    bound_to_caller(&state, &caller, &task_id).await?;
    Ok(axum::Json(status_of(&state, &task_id, wait).await?))
}

/// A key bound to users sees only tasks acting for them.
async fn bound_to_caller(state: &AppState, caller: &Caller, task_id: &str) -> Result<(), ApiError> {
    let Some(record) = state.broker.task(task_id).await? else {
        return Ok(());
    };
    match &record.message.acting_for {
        Some(user) => caller.may_act_for(user),
        None => Ok(()),
    }
}

/// The outcome of a cancellation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    /// Task id.
    pub task_id: String,
    /// `queued` (it will never run), `running` (being interrupted) or `already_finished`.
    pub outcome: String,
}

/// Cancels a task: a queued one never starts, a running one is interrupted at once.
#[utoipa::path(post, path = "/api/v1/tasks/cancel/{task_id}", tag = "tasks", params(("task_id" = String, Path)),
    responses((status = 200, body = CancelResponse), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(task_id): ValidPath<String>,
) -> Result<axum::Json<CancelResponse>, ApiError> {
    caller.require(Scope::Submit)?;
    bound_to_caller(&state, &caller, &task_id).await?;
    use hippo_broker::RevokeOutcome;
    let outcome = match state.broker.revoke(&task_id).await? {
        RevokeOutcome::Unknown => {
            return Err(ApiError::not_found(format!("unknown task {task_id}")));
        }
        RevokeOutcome::Queued => "queued",
        RevokeOutcome::Running => "running",
        RevokeOutcome::AlreadyFinished => "already_finished",
    };
    Ok(axum::Json(CancelResponse {
        task_id,
        outcome: outcome.into(),
    }))
}

/// Workers with their heartbeat: queues, concurrency, active tasks, counts, CPU, memory, uptime.
#[utoipa::path(get, path = "/api/v1/tasks/inspect/stats", tag = "inspect",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn inspect_stats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let workers = state.broker.workers().await?;
    Ok(axum::Json(
        serde_json::json!({ "workers": workers, "count": workers.len() }),
    ))
}

/// Ready (in all and by priority band), reserved and scheduled counts per queue.
#[utoipa::path(get, path = "/api/v1/tasks/inspect/queues", tag = "inspect",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn inspect_queues(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(
        serde_json::json!({ "queues": state.broker.queue_stats().await? }),
    ))
}

/// Tasks held by workers, running (`STARTED`, `PROGRESS`) or reserved (`RECEIVED`), per worker.
#[utoipa::path(get, path = "/api/v1/tasks/inspect/active", tag = "inspect",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn inspect_active(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let mut active: std::collections::BTreeMap<String, Vec<TaskStatus>> = Default::default();
    let mut reserved: std::collections::BTreeMap<String, Vec<TaskStatus>> = Default::default();
    for delivery in state
        .broker
        .reserved()
        .await?
        .into_iter()
        .filter(|d| caller.sees(d.message.acting_for.as_deref()))
    {
        let Some(record) = state.broker.task(&delivery.message.id).await? else {
            continue;
        };
        let running = matches!(record.state, TaskState::Started | TaskState::Progress);
        let group = if running { &mut active } else { &mut reserved };
        group
            .entry(delivery.consumer)
            .or_default()
            .push(record.into());
    }
    Ok(axum::Json(
        serde_json::json!({ "active": active, "reserved": reserved }),
    ))
}

/// The statuses of `records` that `caller` may see.
fn visible(caller: &Caller, records: Vec<TaskRecord>) -> Vec<TaskStatus> {
    records
        .into_iter()
        .filter(|r| caller.sees(r.message.acting_for.as_deref()))
        .map(Into::into)
        .collect()
}

/// Tasks waiting for their ETA, countdown or retry time, soonest first.
#[utoipa::path(get, path = "/api/v1/tasks/inspect/scheduled", tag = "inspect",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn inspect_scheduled(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let tasks = visible(&caller, state.broker.scheduled(1_000).await?);
    Ok(axum::Json(serde_json::json!({ "scheduled": tasks })))
}

/// Confirmation for destructive calls.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfirmQuery {
    /// Must be `true`.
    #[param(required = true, value_type = String, pattern = "^true$")]
    pub confirm: Option<bool>,
}

fn confirmed(query: &ConfirmQuery) -> Result<(), ApiError> {
    if query.confirm == Some(true) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "confirm",
            "destructive: repeat with ?confirm=true",
        ))
    }
}

/// Drops every waiting task of a queue (they become REVOKED).
#[utoipa::path(delete, path = "/api/v1/tasks/queues/{queue}", tag = "admin", params(("queue" = String, Path), ConfirmQuery),
    responses((status = 200, body = Object), (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn purge_queue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(queue): ValidPath<String>,
    ValidQuery(confirm): ValidQuery<ConfirmQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    confirmed(&confirm)?;
    if !state.broker.config().queues.contains(&queue) {
        return Err(ApiError::not_found(format!("unknown queue {queue:?}")));
    }
    Ok(axum::Json(
        serde_json::json!({ "queue": queue, "purged": state.broker.purge(&queue).await? }),
    ))
}

/// Tasks that failed for good, newest first.
#[utoipa::path(get, path = "/api/v1/tasks/deadletters", tag = "admin",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let tasks = visible(&caller, state.broker.dead_letters(1_000).await?);
    Ok(axum::Json(serde_json::json!({ "dead_letters": tasks })))
}

/// Submits a dead letter again as a first attempt.
#[utoipa::path(post, path = "/api/v1/tasks/deadletters/{task_id}/replay", tag = "admin", params(("task_id" = String, Path)),
    responses((status = 202, body = SubmitResponse), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(task_id): ValidPath<String>,
) -> Result<(StatusCode, axum::Json<SubmitResponse>), ApiError> {
    caller.require(Scope::Admin)?;
    let new_id = state
        .broker
        .replay_dead_letter(&task_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{task_id} is not a dead letter")))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SubmitResponse {
            task_id: new_id,
            status: "submitted".into(),
            message: format!("replay of {task_id}"),
            created: true,
        }),
    ))
}

/// Forgets every dead letter.
#[utoipa::path(delete, path = "/api/v1/tasks/deadletters", tag = "admin", params(ConfirmQuery),
    responses((status = 200, body = Object), (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn purge_dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(confirm): ValidQuery<ConfirmQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    confirmed(&confirm)?;
    Ok(axum::Json(
        serde_json::json!({ "purged": state.broker.purge_dead_letters().await? }),
    ))
}
