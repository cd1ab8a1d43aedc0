//! The task history (`GET /api/v1/tasks`) and a task's history and log.

use super::{Client, ClientError};
use crate::types::TaskState;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Filters and paging of [`Client::history`]; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks of this name.
    pub task: Option<String>,
    /// Only tasks of this queue.
    pub queue: Option<String>,
    /// Only tasks whose last attempt ran on this worker.
    pub worker: Option<String>,
    /// Only tasks whose last change is at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only tasks whose last change is at or before this time (Unix ms).
    pub until_ms: Option<u64>,
    /// Only tasks whose id or name contains this text (ignoring case).
    pub text: Option<String>,
    /// Entries per page, 1-1000 (the server's default: 100).
    pub limit: Option<usize>,
    /// Go on from a previous page's [`TaskList::next`].
    pub cursor: Option<String>,
}

/// A page of the history, newest change first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskList {
    /// The entries.
    pub tasks: Vec<HistoryEntry>,
    /// The cursor of the next page (`None`: the history ends here).
    #[serde(default)]
    pub next: Option<String>,
}

/// A finished task (or one waiting to retry) as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Task id.
    pub id: String,
    /// Task name.
    pub task: String,
    /// Queue.
    pub queue: String,
    /// `RETRY` while it waits for its next attempt, else its final state.
    pub state: TaskState,
    /// The worker of its last attempt.
    #[serde(default)]
    pub worker: Option<String>,
    /// The user it acted for.
    #[serde(default)]
    pub acting_for: Option<String>,
    /// Accepted at (Unix ms).
    pub submitted_ms: u64,
    /// Last change (Unix ms).
    pub updated_ms: u64,
    /// Its input, or its JSON's first 64 KiB as a string when `input_truncated`.
    pub input: Value,
    /// Whether `input` was cut.
    pub input_truncated: bool,
    /// Output, once `SUCCESS`, or its JSON's first 64 KiB as a string when
    /// `result_truncated`.
    #[serde(default)]
    pub result: Option<Value>,
    /// Whether `result` was cut.
    #[serde(default)]
    pub result_truncated: bool,
    /// Why its last attempt failed.
    #[serde(default)]
    pub error: Option<Value>,
    /// Every attempt, the first first.
    pub attempts: Vec<Attempt>,
}

/// One attempt of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first run.
    pub attempt: u32,
    /// How it ended: `RETRY` or the task's final state.
    pub state: TaskState,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<Value>,
    /// Its run (worker, start and end in Unix ms, `stats`: fuel, peak
    /// memory, wall time; plugin version); `None` when it never ran.
    #[serde(default)]
    pub run: Option<Value>,
}

/// The logs of a task's attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLogs {
    /// Task id.
    pub task_id: String,
    /// One per attempt that logged anything, the first first.
    pub attempts: Vec<AttemptLog>,
}

/// The log of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// 1 for the first run.
    pub attempt: u32,
    /// Its lines.
    pub log: TaskLog,
}

/// A bounded task log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLog {
    /// Lines kept, oldest first.
    pub lines: Vec<LogLine>,
    /// Lines dropped because the log was full.
    pub dropped_lines: u64,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Written at (Unix ms).
    #[serde(default)]
    pub at_ms: u64,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// `guest` (the log import), `stdout` or `stderr`.
    pub source: String,
    /// The text.
    pub message: String,
}

impl Client {
    /// A page of the history: finished tasks passing `filter`, newest change first.
    pub async fn history(&self, filter: &HistoryFilter) -> Result<TaskList, ClientError> {
        let numbers = [
            ("since", filter.since_ms.map(|n| n.to_string())),
            ("until", filter.until_ms.map(|n| n.to_string())),
            ("limit", filter.limit.map(|n| n.to_string())),
        ];
        let texts = [
            ("state", filter.state.map(|s| s.as_str().to_owned())),
            ("task", filter.task.clone()),
            ("queue", filter.queue.clone()),
            ("worker", filter.worker.clone()),
            ("q", filter.text.clone()),
            ("cursor", filter.cursor.clone()),
        ];
        let query: Vec<(&str, String)> = numbers
            .into_iter()
            .chain(texts)
            .filter_map(|(name, value)| value.map(|v| (name, v)))
            .collect();
        let query: Vec<(&str, &str)> = query.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.call(
            Method::GET,
            &["api", "v1", "tasks"],
            &query,
            super::Body::None,
            self.timeout,
        )
        .await
    }

    /// A task's history entry: every attempt, its figures, input and outcome.
    pub async fn task_history(&self, id: &str) -> Result<HistoryEntry, ClientError> {
        self.get_json(&["api", "v1", "tasks", id, "history"]).await
    }

    /// The logs of a task's attempts.
    pub async fn task_log(&self, id: &str) -> Result<TaskLogs, ClientError> {
        self.get_json(&["api", "v1", "tasks", id, "log"]).await
    }
}
