//! `/api/v1/tasks` (the history) and a task's history and log: finished
//! tasks, newest change first, filtered and paged by cursor (see
//! `hippo_broker::History`), long after their results expired.
//!
//! A key bound to users sees only tasks acting for one of them; a page
//! may then hold fewer entries than asked, and its cursor goes on.

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::{AppState, ValidPath, ValidQuery};
use axum::Extension;
use axum::extract::State;
use hippo_broker::{AttemptLog, HistoryCursor, HistoryEntry, HistoryQuery, TaskState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Entries per page by default, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

/// Filters and paging of `GET /api/v1/tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only tasks in this state (`SUCCESS`, `FAILURE`, `REVOKED`, or
    /// `RETRY` while waiting for their next attempt).
    #[param(value_type = Option<String>, pattern = r"^(SUCCESS|FAILURE|REVOKED|RETRY)$")]
    pub state: Option<TaskState>,
    /// Only tasks of this name.
    #[param(min_length = 1, max_length = 256)]
    pub task: Option<String>,
    /// Only tasks of this queue.
    #[param(min_length = 1, max_length = 256)]
    pub queue: Option<String>,
    /// Only tasks whose last attempt ran on this worker.
    #[param(min_length = 1, max_length = 256)]
    pub worker: Option<String>,
    /// Only tasks whose last change is at or after this time (Unix ms).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub since: Option<u64>,
    /// Only tasks whose last change is at or before this time (Unix ms).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub until: Option<u64>,
    /// Only tasks whose id or name contains this text (ignoring case).
    #[param(min_length = 1, max_length = 256)]
    pub q: Option<String>,
    /// Entries per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Where to go on from: the `next` of the previous page.
    #[param(pattern = r"^[0-9]+\.")]
    pub cursor: Option<String>,
}

/// A page of the history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    /// Entries, newest change first (see `hippo_broker::HistoryEntry`).
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<HistoryEntry>,
    /// The cursor of the next page; absent at the end of the history.
    pub next: Option<String>,
}

/// The logs of a task's attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskLogs {
    /// Task id.
    pub task_id: String,
    /// One log per attempt that logged anything, the first first: its
    /// lines (`at_ms`, `level`, `source`: guest, stdout or stderr,
    /// `message`) and how many lines it dropped when full.
    #[schema(value_type = Vec<Object>)]
    pub attempts: Vec<AttemptLog>,
}

pub(crate) fn text_filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > 256 => Err(ApiError::invalid(
            field,
            format!("{field} must be 1-256 bytes"),
        )),
        other => Ok(other),
    }
}

impl ListQuery {
    fn into_history_query(self) -> Result<HistoryQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be 1-{MAX_LIMIT}"),
            ));
        }
        for (field, time) in [("since", self.since), ("until", self.until)] {
            if time.is_some_and(|ms| ms > i64::MAX as u64) {
                return Err(ApiError::invalid(
                    field,
                    format!("{field} must be a time in Unix ms, at most {}", i64::MAX),
                ));
            }
        }
        let after = self
            .cursor
            .map(|c| c.parse::<HistoryCursor>())
            .transpose()
            .map_err(|e| ApiError::invalid("cursor", e))?;
        Ok(HistoryQuery {
            state: self.state,
            task: text_filter("task", self.task)?,
            queue: text_filter("queue", self.queue)?,
            worker: text_filter("worker", self.worker)?,
            since_ms: self.since,
            until_ms: self.until,
            text: text_filter("q", self.q)?,
            limit,
            after,
        })
    }
}

/// Finished tasks, newest change first, with filters and cursor paging.
#[utoipa::path(get, operation_id = "list_tasks", path = "/api/v1/tasks", tag = "history", params(ListQuery),
    responses((status = 200, body = TaskList), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> Result<axum::Json<TaskList>, ApiError> {
    caller.require(Scope::Read)?;
    let page = state.broker.history(&query.into_history_query()?).await?;
    Ok(axum::Json(TaskList {
        tasks: page
            .entries
            .into_iter()
            .filter(|e| caller.sees(e.acting_for.as_deref()))
            .collect(),
        next: page.next.map(|c| c.to_string()),
    }))
}

/// The history entry of a task the caller may see.
async fn visible_entry(
    state: &AppState,
    caller: &Caller,
    task_id: &str,
) -> Result<HistoryEntry, ApiError> {
    let entry = state.broker.history_entry(task_id).await?;
    match entry {
        Some(entry) => caller
            .may_see(entry.acting_for.as_deref(), task_id)
            .map(|()| entry),
        None => Err(ApiError::not_found(format!(
            "no history of task {task_id} (unknown, still queued or running, or pruned)"
        ))),
    }
}

/// A task's history: every attempt, its figures, input, result or error.
#[utoipa::path(get, path = "/api/v1/tasks/{task_id}/history", tag = "history",
    params(("task_id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn entry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(task_id): ValidPath<String>,
) -> Result<axum::Json<HistoryEntry>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(visible_entry(&state, &caller, &task_id).await?))
}

/// A task's log, one per attempt: host `log` calls and captured output.
#[utoipa::path(get, path = "/api/v1/tasks/{task_id}/log", tag = "history",
    params(("task_id" = String, Path)),
    responses((status = 200, body = TaskLogs), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(task_id): ValidPath<String>,
) -> Result<axum::Json<TaskLogs>, ApiError> {
    caller.require(Scope::Read)?;
    visible_entry(&state, &caller, &task_id).await?;
    let attempts = state.broker.task_log(&task_id).await?;
    Ok(axum::Json(TaskLogs { task_id, attempts }))
}
