//! `GET /api/v1/stats/tasks`: per task name, how tasks ended and how long
//! they ran over a sliding window (the last minute, hour or day), and the
//! same in time buckets for charts.
//!
//! Read from the task history (its index by last change, newest first), so
//! every process answers the same for the whole cluster. At most
//! [`MAX_SCANNED`] entries are read; `complete` says whether that was the
//! whole window (a busy day is summarised from its newest entries).

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::history::text_filter;
use super::{AppState, ValidQuery};
use axum::Extension;
use axum::extract::State;
use hippo_broker::{HistoryEntry, HistoryQuery, TaskState, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// History entries read at most for one answer.
pub const MAX_SCANNED: usize = 50_000;
/// Entries asked of the history at a time.
const PAGE: usize = 1_000;

/// The window and the filter of `GET /api/v1/stats/tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// `1m`, `1h` (the default) or `24h`: the last minute (buckets of a
    /// second), hour (of a minute) or day (of 15 minutes).
    #[param(pattern = r"^(1m|1h|24h)$")]
    pub window: Option<String>,
    /// Only tasks of this name.
    #[param(min_length = 1, max_length = 256)]
    pub task: Option<String>,
}

/// Runtimes of the last attempts, in milliseconds.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Runtimes {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Longest.
    pub max: f64,
}

impl Runtimes {
    /// Nearest-rank percentiles of `samples` (microseconds), which it sorts.
    fn of(samples: &mut [u64]) -> Runtimes {
        if samples.is_empty() {
            return Runtimes::default();
        }
        samples.sort_unstable();
        let rank = |q: f64| samples[((q * samples.len() as f64).ceil() as usize).max(1) - 1];
        Runtimes {
            p50: rank(0.50) as f64 / 1e3,
            p95: rank(0.95) as f64 / 1e3,
            max: samples[samples.len() - 1] as f64 / 1e3,
        }
    }
}

/// One task name over the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskNameStats {
    /// Task name.
    pub task: String,
    /// Tasks that ended (or wait to retry) in the window.
    pub total: u64,
    /// Of those, how many by state (`SUCCESS`, `FAILURE`, `REVOKED`, `RETRY`).
    pub states: BTreeMap<String, u64>,
    /// Failures over the tasks that ended (not counting those waiting to
    /// retry); 0 when none ended.
    pub failure_rate: f64,
    /// Runtime of the tasks' last attempts (those that ran).
    pub runtime_ms: Runtimes,
}

/// One time bucket, for charts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// Start of the bucket (Unix ms).
    pub at_ms: u64,
    /// Tasks that succeeded in it.
    pub succeeded: u64,
    /// Tasks that failed in it.
    pub failed: u64,
    /// Tasks revoked or waiting to retry.
    pub other: u64,
    /// Runtimes of the tasks that ran.
    pub runtime_ms: Runtimes,
}

/// The answer of `GET /api/v1/stats/tasks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskStats {
    /// Length of the window, seconds.
    pub window_s: u64,
    /// The window, Unix ms: from (inclusive) ...
    pub since_ms: u64,
    /// ... to (inclusive).
    pub until_ms: u64,
    /// Length of a bucket, seconds.
    pub bucket_s: u64,
    /// History entries read.
    pub scanned: usize,
    /// Whether the whole window was read (false past `MAX_SCANNED`
    /// entries: the figures are of its newest part).
    pub complete: bool,
    /// Per task name, the busiest first.
    pub tasks: Vec<TaskNameStats>,
    /// The window in buckets, oldest first.
    pub buckets: Vec<Bucket>,
}

/// (window, bucket) lengths in ms of a `window` parameter.
fn window_of(window: Option<&str>) -> Result<(u64, u64), ApiError> {
    match window.unwrap_or("1h") {
        "1m" => Ok((60_000, 1_000)),
        "1h" => Ok((3_600_000, 60_000)),
        "24h" => Ok((86_400_000, 900_000)),
        _ => Err(ApiError::invalid("window", "window must be 1m, 1h or 24h")),
    }
}

/// The wall time of an entry's last attempt that ran, microseconds.
fn runtime_us(entry: &HistoryEntry) -> Option<u64> {
    entry
        .attempts
        .iter()
        .rev()
        .find_map(|a| a.run.as_ref())
        .map(|run| run.stats.wall_time_us)
}

#[derive(Default)]
struct Tally {
    states: BTreeMap<String, u64>,
    runtimes: Vec<u64>,
}

/// Per task name over the window: counts by final state, failure rate and
/// runtime p50/p95/max; and the window in buckets for charts.
#[utoipa::path(get, path = "/api/v1/stats/tasks", tag = "history", params(StatsQuery),
    responses((status = 200, body = TaskStats), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn tasks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidQuery(query): ValidQuery<StatsQuery>,
) -> Result<axum::Json<TaskStats>, ApiError> {
    caller.require(Scope::Read)?;
    let (window_ms, bucket_ms) = window_of(query.window.as_deref())?;
    let until_ms = now_ms();
    // Whole buckets: the oldest starts a bucket's length before the next.
    let first_bucket = (until_ms.saturating_sub(window_ms) / bucket_ms + 1) * bucket_ms;
    let since_ms = first_bucket;
    let buckets_n = (until_ms - first_bucket) / bucket_ms + 1;
    let mut per_task: BTreeMap<String, Tally> = BTreeMap::new();
    let mut per_bucket: Vec<(Tally, [u64; 3])> =
        (0..buckets_n).map(|_| (Tally::default(), [0; 3])).collect();
    let mut history_query = HistoryQuery {
        task: text_filter("task", query.task)?,
        since_ms: Some(since_ms),
        until_ms: Some(until_ms),
        limit: PAGE,
        ..HistoryQuery::default()
    };
    let mut scanned = 0;
    let complete = loop {
        let page = state.broker.history(&history_query).await?;
        for entry in &page.entries {
            scanned += 1;
            if !caller.sees(entry.acting_for.as_deref()) {
                continue;
            }
            let runtime = runtime_us(entry);
            let tally = per_task.entry(entry.task.clone()).or_default();
            *tally
                .states
                .entry(entry.state.as_str().to_owned())
                .or_default() += 1;
            tally.runtimes.extend(runtime);
            let index = (entry.updated_ms.saturating_sub(since_ms) / bucket_ms) as usize;
            if let Some((tally, counts)) = per_bucket.get_mut(index) {
                let column = match entry.state {
                    TaskState::Success => 0,
                    TaskState::Failure => 1,
                    _ => 2,
                };
                counts[column] += 1;
                tally.runtimes.extend(runtime);
            }
        }
        match page.next {
            None => break true,
            Some(_) if scanned >= MAX_SCANNED => break false,
            next => history_query.after = next,
        }
    };
    let mut tasks: Vec<TaskNameStats> = per_task
        .into_iter()
        .map(|(task, mut tally)| {
            let total = tally.states.values().sum();
            let failed = tally.states.get("FAILURE").copied().unwrap_or(0);
            let ended = total - tally.states.get("RETRY").copied().unwrap_or(0);
            TaskNameStats {
                task,
                total,
                failure_rate: if ended == 0 {
                    0.0
                } else {
                    failed as f64 / ended as f64
                },
                runtime_ms: Runtimes::of(&mut tally.runtimes),
                states: tally.states,
            }
        })
        .collect();
    tasks.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.task.cmp(&b.task)));
    let buckets = per_bucket
        .into_iter()
        .enumerate()
        .map(|(i, (mut tally, [succeeded, failed, other]))| Bucket {
            at_ms: since_ms + i as u64 * bucket_ms,
            succeeded,
            failed,
            other,
            runtime_ms: Runtimes::of(&mut tally.runtimes),
        })
        .collect();
    Ok(axum::Json(TaskStats {
        window_s: window_ms / 1000,
        since_ms,
        until_ms,
        bucket_s: bucket_ms / 1000,
        scanned,
        complete,
        tasks,
        buckets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        samples.reverse();
        let r = Runtimes::of(&mut samples);
        assert_eq!((r.p50, r.p95, r.max), (50.0, 95.0, 100.0));
        let r = Runtimes::of(&mut [7000]);
        assert_eq!((r.p50, r.p95, r.max), (7.0, 7.0, 7.0));
        let r = Runtimes::of(&mut []);
        assert_eq!((r.p50, r.p95, r.max), (0.0, 0.0, 0.0));
    }

    #[test]
    fn windows_are_the_three_named() {
        assert_eq!(window_of(None).unwrap(), (3_600_000, 60_000));
        assert_eq!(window_of(Some("1m")).unwrap(), (60_000, 1_000));
        assert_eq!(window_of(Some("24h")).unwrap(), (86_400_000, 900_000));
        assert_eq!(
            window_of(Some("2h")).unwrap_err().field.as_deref(),
            Some("window")
        );
    }
}
