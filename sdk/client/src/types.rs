//! The API's request and response bodies, as this client reads and writes
//! them. They match the JSON of the server's OpenAPI document
//! (`/api/openapi.json`); fields this client does not know are ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// A task's state, as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Waiting in its queue (or for its ETA).
    Pending,
    /// Reserved by a worker, not started yet.
    Received,
    /// Running.
    Started,
    /// Running, and has reported progress.
    Progress,
    /// Failed, and will run again after a delay.
    Retry,
    /// Finished with a result.
    Success,
    /// Failed for good.
    Failure,
    /// Revoked: cancelled, expired or purged; it will not run (again).
    Revoked,
    /// A state this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl TaskState {
    /// Whether the task is done: `SUCCESS`, `FAILURE` or `REVOKED`.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failure | TaskState::Revoked
        )
    }

    /// The name the API uses (`PENDING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Received => "RECEIVED",
            TaskState::Started => "STARTED",
            TaskState::Progress => "PROGRESS",
            TaskState::Retry => "RETRY",
            TaskState::Success => "SUCCESS",
            TaskState::Failure => "FAILURE",
            TaskState::Revoked => "REVOKED",
            TaskState::Unknown => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task's status and, once finished, its result or error:
/// `GET /api/v1/tasks/status/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Task id.
    pub task_id: String,
    /// Task name.
    pub task: String,
    /// Queue.
    pub queue: String,
    /// State.
    pub status: TaskState,
    /// Output, once `SUCCESS`.
    #[serde(default)]
    pub result: Option<Value>,
    /// Why it failed (`kind`, `message`, ...), once `FAILURE`, or while `RETRY`.
    #[serde(default)]
    pub error: Option<Value>,
    /// Latest progress report (`done`, `total`, `message`).
    #[serde(default)]
    pub progress: Option<Value>,
    /// Current attempt (1 for the first run).
    pub attempt: u32,
    /// Runs so far.
    pub runs: u32,
    /// Worker holding or that last held the task.
    #[serde(default)]
    pub worker: Option<String>,
    /// The latest run: worker, start and end (Unix ms), fuel, peak memory,
    /// wall time, plugin version.
    #[serde(default)]
    pub last_run: Option<Value>,
    /// Submitted at (Unix ms).
    pub submitted_ms: u64,
    /// Last change (Unix ms).
    pub updated_ms: u64,
}

impl TaskStatus {
    /// Whether the task is done: `SUCCESS`, `FAILURE` or `REVOKED`.
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

/// Per-task limits a submission may set, within the host's ceilings and what
/// the plugin allows. Unset fields keep the plugin's (or the host's) values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Soft time limit (ms): the task sees it passed and may return a partial result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft_time_limit_ms: Option<u64>,
    /// Hard time limit (ms): the task is interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_time_limit_ms: Option<u64>,
    /// Fuel (instructions, roughly).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Linear memory cap (bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Output size cap (bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
}

/// How to submit a task, beyond its name and input; every field is optional
/// (`SubmitOptions::default()` is a plain submission).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmitOptions {
    /// Queue; default: the plugin's queue for the task.
    pub queue: Option<String>,
    /// 0-9, higher first (default 5).
    pub priority: Option<u8>,
    /// Run no sooner than this long from now (Celery's `countdown`).
    pub countdown: Option<Duration>,
    /// Run no sooner than this time (Unix ms; Celery's `eta`). Not with `countdown`.
    pub eta_ms: Option<u64>,
    /// Revoke the task if it has not started within this long.
    pub expires: Option<Duration>,
    /// Retries after the first attempt (default 3, at most 100).
    pub max_retries: Option<u32>,
    /// Submissions with the same key within 24 h are one task.
    pub idempotency_key: Option<String>,
    /// Per-task limits.
    pub limits: Option<Limits>,
}

/// The body of `POST /api/v1/tasks/submit`.
#[derive(Debug, Serialize)]
pub(crate) struct SubmitBody<'a> {
    pub task: &'a str,
    pub input: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countdown: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<&'a Limits>,
}

impl<'a> SubmitBody<'a> {
    pub(crate) fn new(task: &'a str, input: &'a Value, options: &'a SubmitOptions) -> Self {
        SubmitBody {
            task,
            input,
            queue: options.queue.as_deref(),
            priority: options.priority,
            countdown: options.countdown.map(|d| d.as_secs_f64()),
            eta_ms: options.eta_ms,
            expires: options.expires.map(|d| d.as_secs_f64()),
            max_retries: options.max_retries,
            idempotency_key: options.idempotency_key.as_deref(),
            limits: options.limits.as_ref(),
        }
    }
}

/// The answer to a submission (and to a dead letter's replay).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SubmitResponse {
    pub task_id: String,
    #[serde(default = "yes")]
    pub created: bool,
}

fn yes() -> bool {
    true
}

/// What a cancellation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The task was waiting: it will never run.
    Queued,
    /// The task was running: it is being interrupted.
    Running,
    /// The task had already finished; nothing changed.
    AlreadyFinished,
    /// An outcome this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

/// The answer to a cancellation: `POST /api/v1/tasks/cancel/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResponse {
    /// Task id.
    pub task_id: String,
    /// What the cancellation did.
    pub outcome: CancelOutcome,
}

/// A worker's latest heartbeat: `GET /api/v1/tasks/inspect/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// `hostname:pid` (unique per process).
    pub name: String,
    /// Host name.
    #[serde(default)]
    pub hostname: String,
    /// Process id.
    #[serde(default)]
    pub pid: u32,
    /// Queues it consumes.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Tasks it may run at once.
    #[serde(default)]
    pub concurrency: u32,
    /// Task ids it is running.
    #[serde(default)]
    pub active: Vec<String>,
    /// Tasks finished (any outcome).
    #[serde(default)]
    pub processed: u64,
    /// Tasks that failed for good.
    #[serde(default)]
    pub failed: u64,
    /// Attempts that ended in a retry.
    #[serde(default)]
    pub retried: u64,
    /// Tasks that succeeded.
    #[serde(default)]
    pub succeeded: u64,
    /// Process CPU time, in seconds.
    #[serde(default)]
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    #[serde(default)]
    pub rss_bytes: u64,
    /// When it started (Unix ms).
    #[serde(default)]
    pub started_ms: u64,
    /// When this report was made (Unix ms).
    #[serde(default)]
    pub heartbeat_ms: u64,
}

/// One queue's counts: `GET /api/v1/tasks/inspect/queues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Ready to be taken.
    pub ready: u64,
    /// Leased by workers (running or about to).
    pub reserved: u64,
    /// Waiting for an ETA, countdown or retry delay.
    pub scheduled: u64,
}

/// Tasks held by workers, by worker name: `GET /api/v1/tasks/inspect/active`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActiveTasks {
    /// Running (`STARTED`, `PROGRESS`).
    #[serde(default)]
    pub active: BTreeMap<String, Vec<TaskStatus>>,
    /// Reserved, waiting for a free slot (`RECEIVED`).
    #[serde(default)]
    pub reserved: BTreeMap<String, Vec<TaskStatus>>,
}

/// One task a plugin offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginTask {
    /// Task name, e.g. `example.fib`.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The queue it goes to by default (after the manifest).
    #[serde(default)]
    pub queue: String,
    /// Limits the plugin states for it.
    #[serde(default)]
    pub limits: Value,
}

/// A plugin in service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Its identity on the server: the name of its file there
    /// (`plugins/{deployment}.wasm`), which its kv keys and manifest go by.
    #[serde(default)]
    pub deployment: String,
    /// Name from the plugin's `describe`.
    pub name: String,
    /// Version from the plugin's `describe`.
    pub version: String,
    /// The file it was loaded from, on the server.
    #[serde(default)]
    pub file: String,
    /// SHA-256 of the component, hex.
    #[serde(default)]
    pub wasm_sha256: String,
    /// Host capabilities granted.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Its tasks.
    #[serde(default)]
    pub tasks: Vec<PluginTask>,
}

/// A plugin file the server refused to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedPlugin {
    /// The file, on the server.
    pub path: String,
    /// Why it was refused.
    pub reason: String,
}

/// `GET /api/v1/plugins`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plugins {
    /// Plugins in service.
    #[serde(default)]
    pub plugins: Vec<PluginInfo>,
    /// Files refused, and why.
    #[serde(default)]
    pub refused: Vec<RefusedPlugin>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Per dependency: its status and latency.
    #[serde(default)]
    pub checks: Value,
}

impl Health {
    /// Whether the status is `ok`.
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}
