//! What a task's log holds once it ran: the runtime writes it (host `log`
//! calls and captured stdout and stderr, bounded), the brokers keep it with
//! the task's history, one log per attempt.

use serde::{Deserialize, Serialize};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected but handled.
    Warn,
    /// A failure.
    Error,
}

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The `hippo:tasks/log` import.
    Guest,
    /// Captured guest stdout.
    Stdout,
    /// Captured guest stderr (a Rust guest's panic message lands here).
    Stderr,
}

impl LogSource {
    /// The level captured output is kept at: stdout is info, stderr is warn.
    pub fn level(self) -> LogLevel {
        match self {
            LogSource::Stderr => LogLevel::Warn,
            LogSource::Guest | LogSource::Stdout => LogLevel::Info,
        }
    }
}

/// One kept log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the line was written (Unix ms; 0 in logs kept before lines had times).
    #[serde(default)]
    pub at_ms: u64,
    /// Severity (stdout is `info`, stderr is `warn`).
    pub level: LogLevel,
    /// Origin of the line.
    pub source: LogSource,
    /// The text, lossily decoded as UTF-8.
    pub message: String,
}

/// What a finished task's log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLogRecord {
    /// The lines kept, oldest first.
    pub lines: Vec<LogLine>,
    /// Lines dropped because the log was full.
    pub dropped_lines: u64,
}

impl TaskLogRecord {
    /// Whether the run logged nothing (kept or dropped).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped_lines == 0
    }
}
