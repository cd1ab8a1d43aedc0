//! The task model every broker backend stores: what is submitted, what a
//! worker receives, and the record a caller reads back.

use super::TaskOutput;
use hippo_task::{ExecStats, LimitOverrides, Progress, TaskFailure, TaskLogRecord};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// A task's state, named as Celery names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Accepted, waiting in a queue or for its ETA.
    Pending,
    /// Reserved by a worker, not yet running.
    Received,
    /// Running for 10 ms or more: a worker records the start of a shorter
    /// task with its end (its STARTED event is still in the log), which
    /// saves a broker write per task.
    Started,
    /// Running and reporting progress.
    Progress,
    /// Failed with a retryable error; waiting for its next attempt.
    Retry,
    /// Finished with a result.
    Success,
    /// Failed for good (see the record's error).
    Failure,
    /// Revoked before or while running.
    Revoked,
}

impl TaskState {
    /// Whether the task will not change state any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failure | TaskState::Revoked
        )
    }

    /// The Celery name (`"SUCCESS"`).
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
        }
    }
}

/// Priority band within a queue. A worker takes `High` before `Normal`
/// before `Low`; three bands keep the Redis backend to three streams a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// Priority 7 to 9.
    High,
    /// Priority 4 to 6.
    Normal,
    /// Priority 0 to 3.
    Low,
}

impl Band {
    /// Bands in the order a worker drains them.
    pub const ALL: [Band; 3] = [Band::High, Band::Normal, Band::Low];

    /// The band of a 0-9 priority (Celery's scale; higher runs first).
    pub fn of(priority: u8) -> Band {
        match priority {
            7.. => Band::High,
            4..=6 => Band::Normal,
            _ => Band::Low,
        }
    }

    /// Short name used in storage keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::High => "high",
            Band::Normal => "normal",
            Band::Low => "low",
        }
    }
}

/// A new task id: a time-ordered UUID (version 7). Ids taken in a row sort
/// together, so the embedded broker's writes of recent tasks share a few
/// B-tree pages instead of touching one page each, as random (version 4)
/// ids did: a third of its writer's time per task (`bench/RESULTS.md`).
/// An id reveals the millisecond it was made, as a submission time would.
pub fn new_task_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A task as submitted: everything a worker needs to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// UUID; [`new_task_id`] makes a new one.
    pub id: String,
    /// Registered task name.
    pub task: String,
    /// Queue name.
    pub queue: String,
    /// 0 to 9; higher runs first within a queue.
    pub priority: u8,
    /// JSON input.
    pub input: serde_json::Value,
    /// 1 for the first run.
    pub attempt: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// Do not run before this time (Unix ms): countdowns and ETAs.
    pub eta_ms: Option<u64>,
    /// Do not start after this time (Unix ms): the task is revoked instead.
    pub expires_ms: Option<u64>,
    /// Submissions with the same key inside the idempotency window are one task.
    pub idempotency_key: Option<String>,
    /// Per-task limits (the submission's layer).
    pub limits: LimitOverrides,
    /// Whether `limits` may raise the task's limits above what its plugin's
    /// manifest, `describe` and the defaults give: the submitter's key
    /// carried the `limits` scope. Otherwise the runtime lowers them to
    /// those, whatever path the task took (retries and dead-letter replays
    /// keep the message, and so the authority, of the original submission).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub may_raise_limits: bool,
    /// The user the task acts for, decided at submission from its input
    /// ([`hippo_task::acting_user`]); the memory capability limits the
    /// task's memory-store calls to this user. `None`: it acts for no user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// When the task was accepted (Unix ms).
    pub submitted_ms: u64,
}

impl TaskMessage {
    /// A first attempt of `task` on `queue` with `input` and defaults
    /// elsewhere, acting for the input's user (none when its `user_id` is
    /// missing or not a string: a submitter that takes input from outside
    /// refuses that first, as the API does).
    pub fn new(
        task: impl Into<String>,
        queue: impl Into<String>,
        input: serde_json::Value,
    ) -> Self {
        let acting_for = hippo_task::acting_user(&input)
            .ok()
            .flatten()
            .map(str::to_owned);
        TaskMessage {
            id: new_task_id(),
            task: task.into(),
            queue: queue.into(),
            priority: 5,
            input,
            attempt: 1,
            max_retries: 3,
            eta_ms: None,
            expires_ms: None,
            idempotency_key: None,
            limits: LimitOverrides::default(),
            may_raise_limits: false,
            acting_for,
            submitted_ms: now_ms(),
        }
    }

    /// The band this task's priority falls in.
    pub fn band(&self) -> Band {
        Band::of(self.priority)
    }
}

/// A leased task handed to a worker. Only the holder of the current
/// `generation` can settle it: a worker whose lease expired and was given to
/// another cannot write a result afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The task.
    pub message: TaskMessage,
    /// Fencing token: bumped every time the task is handed out.
    pub generation: u64,
    /// The consumer holding the lease.
    pub consumer: String,
    /// Backend-specific locator (the Redis stream entry).
    pub receipt: String,
}

/// How a worker ends a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Settlement {
    /// Finished with `output` (JSON).
    Success {
        /// The task's output.
        output: TaskOutput,
        /// What it cost.
        meta: RunMeta,
    },
    /// Failed retryably: run attempt + 1 at `at_ms`.
    Retry {
        /// Why.
        failure: TaskFailure,
        /// When the next attempt may start (Unix ms).
        at_ms: u64,
        /// What this attempt cost.
        meta: RunMeta,
    },
    /// Failed for good; kept in the dead-letter queue when `dead_letter`.
    Failure {
        /// Why.
        failure: TaskFailure,
        /// Keep it for listing and replay.
        dead_letter: bool,
        /// What the last attempt cost.
        meta: RunMeta,
    },
    /// Revoked (before or while running).
    Revoked {
        /// What the interrupted run cost, if it ran.
        meta: Option<RunMeta>,
    },
}

impl Settlement {
    /// What the run cost, when the task ran.
    pub fn meta(&self) -> Option<&RunMeta> {
        match self {
            Settlement::Success { meta, .. }
            | Settlement::Retry { meta, .. }
            | Settlement::Failure { meta, .. } => Some(meta),
            Settlement::Revoked { meta } => meta.as_ref(),
        }
    }

    /// What the run cost, when the task ran.
    pub fn into_meta(self) -> Option<RunMeta> {
        match self {
            Settlement::Success { meta, .. }
            | Settlement::Retry { meta, .. }
            | Settlement::Failure { meta, .. } => Some(meta),
            Settlement::Revoked { meta } => meta,
        }
    }
}

/// What one run of a task cost, and where it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The worker that ran it.
    pub worker: String,
    /// When the run started (Unix ms).
    pub started_ms: u64,
    /// When it ended (Unix ms).
    pub finished_ms: u64,
    /// Fuel, memory and wall time.
    pub stats: ExecStats,
    /// Version of the plugin that ran it.
    pub plugin_version: String,
    /// What the run logged. A broker keeps it in the task's history, one
    /// log per attempt ([`crate::History::task_log`]), and not in the
    /// record: `TaskRecord::last_run` and the history's attempts hold an
    /// empty one.
    #[serde(default, skip_serializing_if = "TaskLogRecord::is_empty")]
    pub log: TaskLogRecord,
}

impl RunMeta {
    /// This run's figures without its log.
    pub fn without_log(&self) -> RunMeta {
        RunMeta {
            worker: self.worker.clone(),
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            stats: self.stats,
            plugin_version: self.plugin_version.clone(),
            log: TaskLogRecord::default(),
        }
    }
}

/// Everything known about a task: what a status query returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task as submitted (the current attempt).
    pub message: TaskMessage,
    /// Current state.
    pub state: TaskState,
    /// Output, once `SUCCESS` (`None` when the output is JSON `null`).
    pub result: Option<TaskOutput>,
    /// Why it failed (or why the last attempt failed, while `RETRY`).
    pub error: Option<TaskFailure>,
    /// The latest progress report.
    pub progress: Option<Progress>,
    /// The worker holding or that last held it.
    pub worker: Option<String>,
    /// Cost of the latest run.
    pub last_run: Option<RunMeta>,
    /// Runs so far.
    pub runs: u32,
    /// Last state change (Unix ms).
    pub updated_ms: u64,
}

impl TaskRecord {
    /// A freshly accepted task.
    pub fn pending(message: TaskMessage) -> Self {
        TaskRecord {
            updated_ms: message.submitted_ms,
            message,
            state: TaskState::Pending,
            result: None,
            error: None,
            progress: None,
            worker: None,
            last_run: None,
            runs: 0,
        }
    }
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The task's id: the existing task's when the idempotency key was seen.
    pub task_id: String,
    /// False when an earlier submission with the same idempotency key stands.
    pub created: bool,
}

/// What a lease holder learns when it checks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseStatus {
    /// Still yours.
    Held,
    /// Expired and handed to another worker (or settled): stop, write nothing.
    Lost,
    /// The task was revoked: interrupt it and settle it as revoked.
    Revoked,
}

/// What revoking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevokeOutcome {
    /// Not started yet: it never will.
    Queued,
    /// Running: its worker interrupts it.
    Running,
    /// Already finished; nothing changed.
    AlreadyFinished,
    /// No such task.
    Unknown,
}

/// Per-queue counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Ready to be taken.
    pub ready: u64,
    /// `ready` by priority band: what runs first, then next, then last.
    pub ready_by_band: BandCounts,
    /// Leased by workers (running or about to).
    pub reserved: u64,
    /// Waiting for an ETA, countdown or retry delay.
    pub scheduled: u64,
}

/// A count per priority band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandCounts {
    /// Priority 7 to 9.
    pub high: u64,
    /// Priority 4 to 6.
    pub normal: u64,
    /// Priority 0 to 3.
    pub low: u64,
}

impl BandCounts {
    /// Counts in [`Band::ALL`]'s order.
    pub fn from_ordered([high, normal, low]: [u64; 3]) -> BandCounts {
        BandCounts { high, normal, low }
    }

    /// The sum over the bands.
    pub fn total(&self) -> u64 {
        self.high + self.normal + self.low
    }
}

/// A worker's periodic report of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    /// `hostname:pid` (unique per process).
    pub name: String,
    /// Host name.
    pub hostname: String,
    /// Process id.
    pub pid: u32,
    /// Queues it consumes.
    pub queues: Vec<String>,
    /// Tasks it may run at once.
    pub concurrency: u32,
    /// Task ids it is running.
    pub active: Vec<String>,
    /// Tasks finished (any outcome).
    pub processed: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    /// Attempts that ended in a retry.
    pub retried: u64,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Process CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
    /// When it started (Unix ms).
    pub started_ms: u64,
    /// When this report was made (Unix ms).
    pub heartbeat_ms: u64,
    /// Per task name, what its attempts here came to since it started.
    #[serde(default)]
    pub tasks: std::collections::BTreeMap<String, TaskNameFigures>,
}

/// What a worker's attempts of one task name came to since it started:
/// how they ended, and their wall time, fuel and peak memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskNameFigures {
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    /// Attempts that ended in a retry.
    pub retried: u64,
    /// Tasks revoked while this worker held them.
    pub revoked: u64,
    /// Wall time of the attempts that ran, seconds.
    pub runtime_s: hippo_task::Histogram,
    /// Fuel of the attempts that ran with a fuel limit.
    pub fuel: hippo_task::Histogram,
    /// Peak linear memory of the attempts that ran, bytes.
    pub peak_memory_bytes: hippo_task::Histogram,
}

impl Default for TaskNameFigures {
    fn default() -> Self {
        TaskNameFigures {
            succeeded: 0,
            failed: 0,
            retried: 0,
            revoked: 0,
            runtime_s: hippo_task::Histogram::new(hippo_task::RUNTIME_BOUNDS_S),
            fuel: hippo_task::Histogram::new(hippo_task::FUEL_BOUNDS),
            peak_memory_bytes: hippo_task::Histogram::new(hippo_task::MEMORY_BOUNDS_BYTES),
        }
    }
}

impl TaskNameFigures {
    /// Counts an attempt that ended in `state` (`SUCCESS`, `FAILURE`,
    /// `RETRY` or `REVOKED`), with its figures if it ran.
    pub fn count(&mut self, state: TaskState, stats: Option<&hippo_task::ExecStats>) {
        match state {
            TaskState::Success => self.succeeded += 1,
            TaskState::Failure => self.failed += 1,
            TaskState::Retry => self.retried += 1,
            TaskState::Revoked => self.revoked += 1,
            _ => return,
        }
        if let Some(stats) = stats {
            self.runtime_s.observe(stats.wall_time_us as f64 / 1e6);
            if let Some(fuel) = stats.fuel_used {
                self.fuel.observe(fuel as f64);
            }
            self.peak_memory_bytes
                .observe(stats.peak_memory_bytes as f64);
        }
    }
}

/// One state change, as the event log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log (increasing).
    pub seq: u64,
    /// When (Unix ms).
    pub at_ms: u64,
    /// Task id.
    pub task_id: String,
    /// Task name.
    pub task: String,
    /// Queue.
    pub queue: String,
    /// The new state.
    pub state: TaskState,
    /// The worker involved, if any.
    pub worker: Option<String>,
    /// A short note (the error, the retry time).
    pub detail: Option<String>,
}

impl Event {
    /// Whether this event put a task back in line because the lease of the
    /// worker holding it expired (it died, froze, or lost the broker for
    /// longer than the lease): the one way a task that started may start
    /// again without a retry. Both backends note it `lease of <worker>
    /// expired`.
    pub fn is_lease_expiry(&self) -> bool {
        self.state == TaskState::Pending
            && self
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("lease of ") && d.contains(" expired"))
    }
}
