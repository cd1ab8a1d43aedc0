//! Task history: what a task did, kept after it finished for far longer
//! than its result (`result_expires` governs results, [`HistoryRetention`]
//! the history), with the log of every attempt.
//!
//! Each backend writes a task's [`HistoryEntry`] in the same atomic step as
//! the state change it records: when an attempt ends in a retry, and when
//! the task ends for good, whoever ends it (a worker's settlement, a
//! revocation, a purge, an expiry). A task still queued or running has no
//! entry yet; its record ([`crate::Inspection::task`]) says where it is.
//!
//! Queries are served by indexes, newest change first: one ordered index
//! per *facet* (all tasks, a task name, a state, and a task name with a
//! state), keyed by the entry's last change and its id (a table in the
//! embedded broker, a sorted set in Redis). A query walks the most
//! selective facet its filters name and checks the rest (queue, worker,
//! text, time) on each entry, reading at most [`MAX_SCANNED`] entries per
//! page. Every index costs a write per task, so there are no more.

use crate::{RunMeta, TaskOutput, TaskRecord, TaskState};
use hippo_task::{TaskFailure, TaskLogRecord};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long the history keeps a task, and how many it keeps at most (the
/// oldest go first). Pruned by `maintain`, a bounded batch at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRetention {
    /// Entries whose last change is older than this are dropped.
    pub max_age: Duration,
    /// Past this many entries, the oldest are dropped.
    pub max_tasks: u64,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        HistoryRetention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_tasks: 1_000_000,
        }
    }
}

/// A task's input is kept up to this many bytes of its JSON; a longer one
/// is kept as a string of its first bytes, with [`HistoryEntry::input_truncated`].
pub const INPUT_KEPT_BYTES: usize = 64 * 1024;

/// A task's output is kept up to this many bytes of its JSON (the history
/// is for looking back, and a large output would be copied per task).
pub const OUTPUT_KEPT_BYTES: usize = 64 * 1024;

/// Entries a query reads at most for one page. A page whose filters reject
/// more than this ends early, with a cursor to go on from.
pub const MAX_SCANNED: usize = 5_000;

/// Entries `maintain` drops at most per call.
pub const PRUNE_BATCH: usize = 10_000;

/// One attempt of a task: how it ended and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first run.
    pub attempt: u32,
    /// How it ended: `RETRY`, or the task's final state.
    pub state: TaskState,
    /// Why it failed, when it did.
    pub error: Option<TaskFailure>,
    /// Where it ran, when, for how long, at what cost and on which plugin
    /// version; `None` when it never ran (revoked or expired in its queue).
    pub run: Option<RunMeta>,
}

/// A task as the history keeps it: what was asked, every attempt, how it
/// ended. The timeline of its states is `submitted_ms`, then each attempt's
/// start and end (`run.started_ms`, `run.finished_ms`, `state`).
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
    pub worker: Option<String>,
    /// The user it acted for (`TaskMessage::acting_for`).
    pub acting_for: Option<String>,
    /// When it was accepted (Unix ms).
    pub submitted_ms: u64,
    /// Its last change (Unix ms): the order of the history.
    pub updated_ms: u64,
    /// Its input, or the first [`INPUT_KEPT_BYTES`] of its JSON as a string.
    pub input: serde_json::Value,
    /// Whether `input` was cut.
    pub input_truncated: bool,
    /// Its output, once `SUCCESS`; one longer than [`OUTPUT_KEPT_BYTES`]
    /// is kept as a string of its JSON's first bytes (its whole self is the
    /// task record's until `result_expires`).
    pub result: Option<TaskOutput>,
    /// Whether `result` was cut.
    #[serde(default)]
    pub result_truncated: bool,
    /// Why its last attempt failed.
    pub error: Option<TaskFailure>,
    /// Every attempt so far, the first first.
    pub attempts: Vec<Attempt>,
}

impl HistoryEntry {
    /// The entry of `record` once its current attempt ended in `record.state`,
    /// after the attempts `earlier` holds. `run` is that attempt's run, if
    /// it ran; `attempt` its number.
    pub(crate) fn after(
        earlier: Option<HistoryEntry>,
        record: &TaskRecord,
        attempt: u32,
        run: Option<&RunMeta>,
    ) -> HistoryEntry {
        let message = &record.message;
        // A retry's entry already keeps the input (a task's input never
        // changes between attempts): only a first attempt measures and copies it.
        let (mut attempts, (input, input_truncated)) = match earlier {
            Some(earlier) => (earlier.attempts, (earlier.input, earlier.input_truncated)),
            None => (Vec::new(), bounded_input(&message.input)),
        };
        attempts.push(Attempt {
            attempt,
            state: record.state,
            error: record.error.clone(),
            run: run.map(RunMeta::without_log),
        });
        let (result, result_truncated) = match &record.result {
            Some(output) => {
                let (kept, cut) = bounded_output(output);
                (Some(kept), cut)
            }
            None => (None, false),
        };
        HistoryEntry {
            id: message.id.clone(),
            task: message.task.clone(),
            queue: message.queue.clone(),
            state: record.state,
            worker: record.worker.clone(),
            acting_for: message.acting_for.clone(),
            submitted_ms: message.submitted_ms,
            updated_ms: record.updated_ms,
            input,
            input_truncated,
            result,
            result_truncated,
            error: record.error.clone(),
            attempts,
        }
    }

    /// The index facets this entry is listed under.
    pub(crate) fn facets(&self) -> [String; 4] {
        Facet::of(&self.task, self.state).map(Facet::key)
    }
}

/// A task's input as the history keeps it, and whether it was cut.
pub(crate) fn bounded_input(input: &serde_json::Value) -> (serde_json::Value, bool) {
    // Measured without building the text, which only a long input needs.
    if serde_json::to_writer(&mut FitsIn(INPUT_KEPT_BYTES), input).is_ok() {
        return (input.clone(), false);
    }
    let text = input.to_string();
    let end = text.floor_char_boundary(INPUT_KEPT_BYTES);
    (serde_json::Value::String(text[..end].to_owned()), true)
}

/// A task's output as the history keeps it, and whether it was cut.
fn bounded_output(output: &TaskOutput) -> (TaskOutput, bool) {
    let text = output.as_str();
    if text.len() <= OUTPUT_KEPT_BYTES {
        return (output.clone(), false);
    }
    let end = text.floor_char_boundary(OUTPUT_KEPT_BYTES);
    let kept = serde_json::Value::String(text[..end].to_owned());
    (TaskOutput::from_value(&kept), true)
}

/// A writer that takes this many more bytes, then fails.
struct FitsIn(usize);

impl std::io::Write for FitsIn {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = self
            .0
            .checked_sub(bytes.len())
            .ok_or(std::io::ErrorKind::WriteZero)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An index of the history. Each costs a write per finished task, so
/// there are four: the filters a page must not scan for. Queue and worker
/// are checked on the entries of another (at most [`MAX_SCANNED`] a page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Facet<'a> {
    All,
    Task(&'a str),
    State(TaskState),
    TaskState(&'a str, TaskState),
}

impl<'a> Facet<'a> {
    /// The facets a task `task` in `state` is listed under.
    pub(crate) fn of(task: &'a str, state: TaskState) -> [Facet<'a>; 4] {
        [
            Facet::All,
            Facet::Task(task),
            Facet::State(state),
            Facet::TaskState(task, state),
        ]
    }

    /// The index's key: a backend's table key prefix or sorted set name
    /// (the Redis scripts' `hist_index_keys` make the same).
    pub(crate) fn key(self) -> String {
        match self {
            Facet::All => "all".to_owned(),
            Facet::Task(task) => format!("task:{task}"),
            Facet::State(state) => format!("state:{}", state.as_str()),
            Facet::TaskState(task, state) => format!("task-state:{}:{task}", state.as_str()),
        }
    }
}

/// Where a page of the history ends: the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryCursor {
    /// The last change of the last entry read.
    pub updated_ms: u64,
    /// Its id.
    pub id: String,
}

impl std::fmt::Display for HistoryCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.updated_ms, self.id)
    }
}

impl std::str::FromStr for HistoryCursor {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (ms, id) = value
            .split_once('.')
            .ok_or_else(|| format!("not a history cursor: {value:?}"))?;
        let updated_ms = ms
            .parse()
            .map_err(|_| format!("not a history cursor: {value:?}"))?;
        Ok(HistoryCursor {
            updated_ms,
            id: id.to_owned(),
        })
    }
}

/// What to list of the history. Every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
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
    /// Entries per page (at least 1).
    pub limit: usize,
    /// Go on after this cursor (a previous page's `next`).
    pub after: Option<HistoryCursor>,
}

impl HistoryQuery {
    /// The most selective index the filters name.
    pub(crate) fn facet(&self) -> Facet<'_> {
        match (&self.task, self.state) {
            (Some(task), Some(state)) => Facet::TaskState(task, state),
            (Some(task), None) => Facet::Task(task),
            (None, Some(state)) => Facet::State(state),
            (None, None) => Facet::All,
        }
    }

    /// The newest index position to read, inclusive: (time, id), where an
    /// id of `None` means every id at that time.
    pub(crate) fn start(&self) -> (u64, Option<&str>) {
        let until = self.until_ms.unwrap_or(u64::MAX);
        match &self.after {
            Some(cursor) if cursor.updated_ms <= until => {
                (cursor.updated_ms, Some(cursor.id.as_str()))
            }
            _ => (until, None),
        }
    }

    /// Whether `entry` passes every filter.
    pub(crate) fn matches(&self, entry: &HistoryEntry) -> bool {
        let text = self.text.as_ref().map(|t| t.to_lowercase());
        self.state.is_none_or(|s| entry.state == s)
            && self.task.as_ref().is_none_or(|t| &entry.task == t)
            && self.queue.as_ref().is_none_or(|q| &entry.queue == q)
            && self
                .worker
                .as_ref()
                .is_none_or(|w| entry.worker.as_ref() == Some(w))
            && self.since_ms.is_none_or(|s| entry.updated_ms >= s)
            && self.until_ms.is_none_or(|u| entry.updated_ms <= u)
            && text.is_none_or(|t| {
                entry.id.to_lowercase().contains(&t) || entry.task.to_lowercase().contains(&t)
            })
    }
}

/// A page of the history, newest change first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The entries found.
    pub entries: Vec<HistoryEntry>,
    /// Where the next page starts; `None` when the history ends here.
    pub next: Option<HistoryCursor>,
}

/// The log of one attempt of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// 1 for the first run.
    pub attempt: u32,
    /// What it logged.
    pub log: TaskLogRecord,
}

/// Builds a page from index positions offered newest first, each with the
/// entry it points at (`None`: gone). The page is complete at `limit`
/// entries, at `since_ms`, or after [`MAX_SCANNED`] positions.
pub(crate) struct PageCollector<'q> {
    query: &'q HistoryQuery,
    entries: Vec<HistoryEntry>,
    last: Option<HistoryCursor>,
    scanned: usize,
    /// Set when the page ended before the positions did.
    cut_short: bool,
    /// Set when the positions passed `since_ms`: nothing older matches.
    exhausted: bool,
}

impl<'q> PageCollector<'q> {
    pub(crate) fn new(query: &'q HistoryQuery) -> Self {
        PageCollector {
            query,
            entries: Vec::new(),
            last: None,
            scanned: 0,
            cut_short: false,
            exhausted: false,
        }
    }

    /// Whether the page wants the next position.
    pub(crate) fn wants_more(&self) -> bool {
        !self.cut_short && !self.exhausted
    }

    /// Offers the position (`at_ms`, `id`) and its entry.
    pub(crate) fn offer(&mut self, at_ms: u64, id: String, entry: Option<HistoryEntry>) {
        if at_ms < self.query.since_ms.unwrap_or(0) {
            self.exhausted = true;
            return;
        }
        self.scanned += 1;
        if let Some(entry) = entry
            && entry.updated_ms == at_ms
            && self.query.matches(&entry)
        {
            self.entries.push(entry);
        }
        self.last = Some(HistoryCursor {
            updated_ms: at_ms,
            id,
        });
        self.cut_short =
            self.entries.len() >= self.query.limit.max(1) || self.scanned >= MAX_SCANNED;
    }

    /// The page: a cursor to go on from when it ended before the positions.
    pub(crate) fn page(self) -> HistoryPage {
        HistoryPage {
            entries: self.entries,
            next: if self.cut_short { self.last } else { None },
        }
    }
}
