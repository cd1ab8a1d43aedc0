//! What a task is, shared by the parts that run it and the parts that carry
//! it: its limits ([`Limits`], and [`LimitOverrides`] layered from the
//! manifest, the plugin and the submission), how it failed
//! ([`TaskFailure`]), what it cost ([`ExecStats`]) and how far it got
//! ([`Progress`]), what it logged ([`TaskLogRecord`]), who it acts for
//! ([`acting_user`]), and how such figures add up ([`Histogram`]).
//!
//! This crate is vocabulary only: the runtime (`hippo-runtime`) produces
//! these values and the brokers (`hippo-broker`) store them, so it depends
//! on neither, nor on anything that does I/O.

mod acting;
mod histogram;
mod limits;
mod log;
mod outcome;

pub use acting::{ACTING_USER_FIELD, ActingUserError, acting_user};
pub use histogram::{
    BATCH_BOUNDS_S, FUEL_BOUNDS, Histogram, MEMORY_BOUNDS_BYTES, RUNTIME_BOUNDS_S,
};
pub use limits::{LimitOverrides, Limits, Raise};
pub use log::{LogLevel, LogLine, LogSource, TaskLogRecord};
pub use outcome::{ExecStats, TaskFailure};

/// A progress report from a running task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// The task's note, if any.
    pub message: Option<String>,
}
