//! The memory routes: `/api/v1/tasks/memory/*` queue the memory tasks (the
//! reference's shapes: `{task_id, status: "submitted", message}`), and
//! `/api/v1/memories` runs the same plugin tasks inline, with the same
//! limits, for callers that want the answer now.
//!
//! Bodies are checked field by field ([`requests`]) before anything is
//! queued or run, so a malformed request is a 400 naming its field rather
//! than a failed task; the inline routes answer typed outputs
//! ([`responses`]), so the OpenAPI document states what they serve.

mod requests;
mod responses;

pub use requests::{
    BatchCreate, Delete, MemoryFilters, MemoryUpdates, NewMemory, OwnerQuery, Query, Recall,
    RecallMode, Update,
};
pub use responses::{
    BatchCreated, CreateAction, Created, Deleted, Found, MemoryPage, MemoryRecord, RecallHit,
    Recalled, ScoreBreakdown, ScoreWeights, Updated,
};

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::tasks::{SubmitRequest, WaitQuery, enqueue, validate, wait_duration};
use super::{AppState, ValidJson, ValidPath, ValidQuery};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hippo_memory::MemoryServices;
use hippo_runtime::{TaskFailure, TaskRequest};
use requests::{check_batch, check_delete, check_new, check_query, check_recall, check_update};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The plugin task's input: the checked body as JSON.
fn input_of(body: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(body).map_err(|e| ApiError::bad_body(e.to_string()))
}

// ---------------------------------------------------------------------------
// Queued: /api/v1/tasks/memory/*.
// ---------------------------------------------------------------------------

async fn queue(
    state: &AppState,
    caller: &Caller,
    task: &str,
    input: Value,
    wait: Option<f64>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Submit)?;
    let wait = wait_duration(wait)?;
    let message = validate(
        state,
        caller,
        SubmitRequest {
            task: task.into(),
            input,
            queue: None,
            priority: None,
            countdown: None,
            eta_ms: None,
            expires: None,
            max_retries: None,
            idempotency_key: None,
            limits: None,
        },
    )?;
    enqueue(state, message, wait).await
}

/// Queues `memory.create`.
#[utoipa::path(post, path = "/api/v1/tasks/memory/create", tag = "memory", request_body = NewMemory, params(WaitQuery),
    responses((status = 202, body = super::SubmitResponse), (status = 200, description = "finished within `wait`", body = super::TaskStatus),
        (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn queue_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<WaitQuery>,
    ValidJson(body): ValidJson<NewMemory>,
) -> Result<Response, ApiError> {
    check_new("", &body)?;
    queue(
        &state,
        &caller,
        "memory.create",
        input_of(&body)?,
        query.wait,
    )
    .await
}

/// Queues `memory.batch-create`.
#[utoipa::path(post, path = "/api/v1/tasks/memory/batch-create", tag = "memory", request_body = BatchCreate, params(WaitQuery),
    responses((status = 202, body = super::SubmitResponse), (status = 200, description = "finished within `wait`", body = super::TaskStatus),
        (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn queue_batch_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<WaitQuery>,
    ValidJson(body): ValidJson<BatchCreate>,
) -> Result<Response, ApiError> {
    let user = check_batch(&body)?;
    let mut input = input_of(&body)?;
    input["user_id"] = Value::String(user);
    queue(&state, &caller, "memory.batch-create", input, query.wait).await
}

/// Queues `memory.recall`.
#[utoipa::path(post, path = "/api/v1/tasks/memory/recall", tag = "memory", request_body = Recall, params(WaitQuery),
    responses((status = 202, body = super::SubmitResponse), (status = 200, description = "finished within `wait`", body = super::TaskStatus),
        (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn queue_recall(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<WaitQuery>,
    ValidJson(body): ValidJson<Recall>,
) -> Result<Response, ApiError> {
    check_recall(&body)?;
    queue(
        &state,
        &caller,
        "memory.recall",
        input_of(&body)?,
        query.wait,
    )
    .await
}

/// Queues `memory.update`.
#[utoipa::path(post, path = "/api/v1/tasks/memory/update", tag = "memory", request_body = Update, params(WaitQuery),
    responses((status = 202, body = super::SubmitResponse), (status = 200, description = "finished within `wait`", body = super::TaskStatus),
        (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn queue_update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<WaitQuery>,
    ValidJson(body): ValidJson<Update>,
) -> Result<Response, ApiError> {
    check_update(&body)?;
    queue(
        &state,
        &caller,
        "memory.update",
        input_of(&body)?,
        query.wait,
    )
    .await
}

/// Queues `memory.delete`.
#[utoipa::path(post, path = "/api/v1/tasks/memory/delete", tag = "memory", request_body = Delete, params(WaitQuery),
    responses((status = 202, body = super::SubmitResponse), (status = 200, description = "finished within `wait`", body = super::TaskStatus),
        (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn queue_delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<WaitQuery>,
    ValidJson(body): ValidJson<Delete>,
) -> Result<Response, ApiError> {
    check_delete(&body)?;
    queue(
        &state,
        &caller,
        "memory.delete",
        input_of(&body)?,
        query.wait,
    )
    .await
}

// ---------------------------------------------------------------------------
// Inline: /api/v1/memories.
// ---------------------------------------------------------------------------

/// Runs a memory task in this process, now, with the limits it has on a
/// worker, and maps its outcome to an HTTP answer: a memory the task did not
/// find (`found` or `deleted` false) is a 404, any other output is read as
/// the route's documented answer `T`.
async fn run_inline<T: DeserializeOwned>(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    task: &str,
    user_id: &str,
    input: Value,
) -> Result<T, ApiError> {
    caller.require(scope)?;
    caller.may_act_for(user_id)?;
    let plugin = state.registry.resolve(task).ok_or_else(|| {
        ApiError::unavailable(format!(
            "no plugin offering {task} is loaded (is plugins/memory.wasm deployed?)"
        ))
    })?;
    let runtime = state.registry.runtime();
    if MemoryServices::of(runtime.services()).is_none_or(|m| m.embeddings.is_none()) {
        return Err(ApiError::unavailable(
            "this process runs no memory services (start it with `hippo serve`, or point it at a Qdrant server)",
        ));
    }
    let mut request = TaskRequest::new(task, serde_json::to_vec(&input).unwrap_or_default());
    request.queue = "inline".into();
    request.acting_for = Some(user_id.to_owned());
    let outcome = runtime.execute(plugin, request).await;
    let output = match outcome.result {
        Ok(output) => output,
        Err(TaskFailure::BadInput { message }) => return Err(ApiError::invalid("body", message)),
        Err(TaskFailure::Retry { message, .. }) => return Err(ApiError::unavailable(message)),
        Err(failure) => return Err(ApiError::task_failed(failure.to_string())),
    };
    // Read into what the route needs, never into a tree of the whole output,
    // which costs many times its size (see `hippo_broker::TaskOutput`).
    let missing: Missing = read_output(task, &output)?;
    if missing.found == Some(false) || missing.deleted == Some(false) {
        let id = missing.memory_id.unwrap_or_default();
        return Err(ApiError::not_found(format!("no memory {id} for this user")));
    }
    read_output(task, &output)
}

/// The fields of a memory task's output that say it found no memory.
#[derive(serde::Deserialize)]
struct Missing {
    found: Option<bool>,
    deleted: Option<bool>,
    memory_id: Option<String>,
}

/// A memory task's output read as `T`: a 502 unless it is JSON of that shape.
fn read_output<T: DeserializeOwned>(task: &str, output: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(output).map_err(|e| {
        ApiError::task_failed(if e.is_data() {
            format!("{task} answered a shape this route does not document: {e}")
        } else {
            format!("{task} returned invalid JSON: {e}")
        })
    })
}

/// Creates a memory now (`memory.create`, inline).
#[utoipa::path(post, path = "/api/v1/memories", tag = "memories", request_body = NewMemory,
    responses((status = 201, body = Created), (status = 400, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidJson(body): ValidJson<NewMemory>,
) -> Result<Response, ApiError> {
    check_new("", &body)?;
    let user = body.user_id.clone();
    let created: Created = run_inline(
        &state,
        &caller,
        Scope::Submit,
        "memory.create",
        &user,
        input_of(&body)?,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// The input of the tasks that name one memory of a user.
fn memory_ref(memory_id: &str, owner: &OwnerQuery) -> Result<Value, ApiError> {
    let memory = Delete {
        memory_id: memory_id.to_owned(),
        user_id: owner.user_id.clone(),
    };
    check_delete(&memory)?;
    input_of(&memory)
}

/// One memory of a user (`memory.get`, inline).
#[utoipa::path(get, path = "/api/v1/memories/{memory_id}", tag = "memories", params(("memory_id" = String, Path, format = Uuid, description = "The memory's id"), OwnerQuery),
    responses((status = 200, body = Found), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(memory_id): ValidPath<String>,
    ValidQuery(owner): ValidQuery<OwnerQuery>,
) -> Result<axum::Json<Found>, ApiError> {
    let input = memory_ref(&memory_id, &owner)?;
    let task = "memory.get";
    let found = run_inline(&state, &caller, Scope::Read, task, &owner.user_id, input).await?;
    Ok(axum::Json(found))
}

/// Changes a memory now (`memory.update`, inline).
#[utoipa::path(patch, path = "/api/v1/memories/{memory_id}", tag = "memories", params(("memory_id" = String, Path, format = Uuid, description = "The memory's id"), OwnerQuery),
    request_body = MemoryUpdates,
    responses((status = 200, body = Updated), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(memory_id): ValidPath<String>,
    ValidQuery(owner): ValidQuery<OwnerQuery>,
    ValidJson(updates): ValidJson<MemoryUpdates>,
) -> Result<axum::Json<Updated>, ApiError> {
    let body = Update {
        memory_id,
        user_id: owner.user_id,
        updates,
    };
    check_update(&body)?;
    let input = input_of(&body)?;
    let task = "memory.update";
    let updated = run_inline(&state, &caller, Scope::Submit, task, &body.user_id, input).await?;
    Ok(axum::Json(updated))
}

/// Deletes a memory now (`memory.delete`, inline).
#[utoipa::path(delete, path = "/api/v1/memories/{memory_id}", tag = "memories", params(("memory_id" = String, Path, format = Uuid, description = "The memory's id"), OwnerQuery),
    responses((status = 200, body = Deleted), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(memory_id): ValidPath<String>,
    ValidQuery(owner): ValidQuery<OwnerQuery>,
) -> Result<axum::Json<Deleted>, ApiError> {
    let input = memory_ref(&memory_id, &owner)?;
    let task = "memory.delete";
    let deleted = run_inline(&state, &caller, Scope::Submit, task, &owner.user_id, input).await?;
    Ok(axum::Json(deleted))
}

/// The memories that best answer a query, with their score breakdown (`memory.recall`, inline).
#[utoipa::path(post, path = "/api/v1/memories/recall", tag = "memories", request_body = Recall,
    responses((status = 200, body = Recalled), (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn recall(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidJson(body): ValidJson<Recall>,
) -> Result<axum::Json<Recalled>, ApiError> {
    check_recall(&body)?;
    let input = input_of(&body)?;
    let task = "memory.recall";
    let recalled = run_inline(&state, &caller, Scope::Read, task, &body.user_id, input).await?;
    Ok(axum::Json(recalled))
}

/// A page of a user's memories matching filters (`memory.query`, inline).
#[utoipa::path(post, path = "/api/v1/memories/query", tag = "memories", request_body = Query,
    responses((status = 200, body = MemoryPage), (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn query(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidJson(body): ValidJson<Query>,
) -> Result<axum::Json<MemoryPage>, ApiError> {
    check_query(&body)?;
    let input = input_of(&body)?;
    let task = "memory.query";
    let page = run_inline(&state, &caller, Scope::Read, task, &body.user_id, input).await?;
    Ok(axum::Json(page))
}
