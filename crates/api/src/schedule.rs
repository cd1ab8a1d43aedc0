//! `/api/v1/tasks/scheduled`: the scheduler's entries (Celery Beat's
//! schedule) with their next fire times, and running an entry now.
//!
//! The routes read the [`Scheduler`] that [`with_scheduler`] puts on the
//! router; a router without one (plain [`super::router`]) has no entries.
//! Listing needs the `read` scope; running an entry submits its task, so it
//! needs `submit`, from a key not bound to users unless the entry's input
//! acts for one of them (maintenance entries act for every user).

use super::ValidPath;
use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::tasks::SubmitResponse;
use axum::http::StatusCode;
use axum::{Extension, Router};
use hippo_scheduler::{ScheduleStatus, Scheduler, SchedulerError, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// `router` with `scheduler`'s entries at `/api/v1/tasks/scheduled`.
pub fn with_scheduler(router: Router, scheduler: Arc<Scheduler>) -> Router {
    router.layer(Extension(scheduler))
}

/// One scheduler entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleInfo {
    /// Entry name, e.g. `auto-deduplicate-memories`.
    pub name: String,
    /// The task it submits, e.g. `maintenance.dedup`.
    pub task: String,
    /// The queue the task goes to.
    pub queue: String,
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: String,
    /// The expression in English.
    pub description: String,
    /// Always `UTC`.
    pub timezone: String,
    /// Disabled entries fire only when run by hand.
    pub enabled: bool,
    /// The task's JSON input.
    #[schema(value_type = Object)]
    pub input: Value,
    /// A submitted task not started within this many seconds is revoked.
    pub expires_s: Option<f64>,
    /// The next 5 times the expression names (RFC 3339, UTC).
    pub next_fire_times: Vec<String>,
    /// When the entry last fired, on schedule or by hand (RFC 3339, UTC).
    pub last_fire_time: Option<String>,
    /// The task it last submitted.
    pub last_task_id: Option<String>,
    /// `schedule` or `manual`.
    pub last_trigger: Option<String>,
    /// Whether a loaded plugin offers the task (fires of a task none offers are skipped).
    pub task_registered: bool,
    /// Set when the expression fires many times in a row (e.g. `* 0 * * *`).
    pub warning: Option<String>,
}

impl From<ScheduleStatus> for ScheduleInfo {
    fn from(status: ScheduleStatus) -> Self {
        let entry = status.entry;
        let last = status.last_fire;
        ScheduleInfo {
            description: entry.cron.describe(),
            warning: entry.cron.lint(),
            cron: entry.cron.expression().to_string(),
            name: entry.name,
            task: entry.task,
            queue: entry.queue,
            timezone: "UTC".into(),
            enabled: entry.enabled,
            input: entry.input,
            expires_s: entry.expires.map(|e| e.as_secs_f64()),
            next_fire_times: status.next_fires_ms.into_iter().map(rfc3339).collect(),
            last_fire_time: last.as_ref().map(|l| rfc3339(l.at_ms)),
            last_task_id: last.as_ref().map(|l| l.task_id.clone()),
            last_trigger: last.map(|l| l.trigger.as_str().to_string()),
            task_registered: status.task_registered,
        }
    }
}

/// The scheduler's entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    /// Every entry, enabled or not.
    pub schedules: Vec<ScheduleInfo>,
}

impl From<SchedulerError> for ApiError {
    fn from(error: SchedulerError) -> Self {
        match error {
            SchedulerError::UnknownEntry(name) => {
                ApiError::not_found(format!("unknown schedule {name:?}"))
            }
            error @ SchedulerError::TaskNotRegistered { .. } => {
                ApiError::conflict(format!("{error}: deploy the plugin that offers it first"))
            }
            SchedulerError::Broker(error) => error.into(),
            // The records failed, or a failure a later scheduler names.
            error @ (SchedulerError::Records(_) | _) => ApiError::unavailable(error.to_string()),
        }
    }
}

/// The scheduler's entries: cron, next 5 fire times, latest fire.
#[utoipa::path(get, operation_id = "list_schedules", path = "/api/v1/tasks/scheduled", tag = "scheduler",
    responses((status = 200, body = ScheduleList), (status = 401, body = super::error::ErrorBody),
              (status = 403, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    Extension(caller): Extension<Caller>,
    scheduler: Option<Extension<Arc<Scheduler>>>,
) -> Result<axum::Json<ScheduleList>, ApiError> {
    caller.require(Scope::Read)?;
    let schedules = match scheduler {
        Some(Extension(scheduler)) => scheduler.statuses().await?,
        None => Vec::new(),
    };
    Ok(axum::Json(ScheduleList {
        schedules: schedules.into_iter().map(ScheduleInfo::from).collect(),
    }))
}

/// Submits an entry's task now, as a new task (disabled entries too).
#[utoipa::path(post, path = "/api/v1/tasks/scheduled/{name}/run", tag = "scheduler", params(("name" = String, Path)),
    responses((status = 202, body = SubmitResponse), (status = 404, body = super::error::ErrorBody),
              (status = 409, description = "no loaded plugin offers the entry's task", body = super::error::ErrorBody),
              (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(
    Extension(caller): Extension<Caller>,
    scheduler: Option<Extension<Arc<Scheduler>>>,
    ValidPath(name): ValidPath<String>,
) -> Result<(StatusCode, axum::Json<SubmitResponse>), ApiError> {
    caller.require(Scope::Submit)?;
    let Some(Extension(scheduler)) = scheduler else {
        return Err(SchedulerError::UnknownEntry(name).into());
    };
    let entry = scheduler
        .table()
        .get(&name)
        .ok_or_else(|| SchedulerError::UnknownEntry(name.clone()))?;
    if !caller.sees(hippo_task::acting_user(&entry.input).ok().flatten()) {
        return Err(ApiError::forbidden(format!(
            "key {:?} may not run {name:?}: it acts beyond the key's users",
            caller.name
        )));
    }
    let fired = scheduler.run_now(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SubmitResponse {
            message: format!("{name} submitted {}", entry.task),
            task_id: fired.task_id,
            status: "submitted".into(),
            created: fired.created,
        }),
    ))
}
