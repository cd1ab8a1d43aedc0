//! How a task ended when it did not succeed, and what it cost.

use serde::{Deserialize, Serialize};

/// Why a task did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskFailure {
    /// The task asked to be retried.
    #[error("retry requested: {message}")]
    Retry {
        /// The task's reason.
        message: String,
        /// Delay the task asked for, if any.
        delay_ms: Option<u64>,
    },
    /// The task failed for good.
    #[error("failed: {message}")]
    Fatal {
        /// The task's reason.
        message: String,
    },
    /// The task refused its input.
    #[error("bad input: {message}")]
    BadInput {
        /// What is wrong with the input.
        message: String,
    },
    /// No loaded plugin offers the task.
    #[error("unknown task {task:?}")]
    UnknownTask {
        /// The name asked for.
        task: String,
    },
    /// The hard time limit passed and the instance was interrupted.
    #[error("hard time limit of {limit_ms} ms exceeded; the task was interrupted")]
    HardTimeLimit {
        /// The limit that was applied.
        limit_ms: u64,
    },
    /// The task was revoked while it ran.
    #[error("revoked while running")]
    Revoked,
    /// The task burned all its fuel.
    #[error("fuel limit of {fuel} exhausted")]
    FuelExhausted {
        /// The budget that was applied.
        fuel: u64,
    },
    /// The guest asked for more linear memory than its cap and then trapped.
    #[error("memory limit of {limit_bytes} bytes exceeded (asked for {requested_bytes})")]
    MemoryLimit {
        /// The cap that was applied.
        limit_bytes: u64,
        /// The largest size the guest asked for.
        requested_bytes: u64,
    },
    /// The guest overflowed its wasm stack.
    #[error("stack overflow (deep recursion)")]
    StackOverflow,
    /// The guest panicked (its panic message is the last stderr line).
    #[error("guest panicked: {message}")]
    Panicked {
        /// The panic message, from the captured stderr.
        message: String,
    },
    /// Any other trap.
    #[error("guest trapped: {message}")]
    Trapped {
        /// Wasmtime's description of the trap.
        message: String,
    },
    /// The task's output exceeded its size limit.
    #[error("output of {size_bytes} bytes exceeds the limit of {limit_bytes}")]
    OutputTooLarge {
        /// Size of the output.
        size_bytes: u64,
        /// The limit that was applied.
        limit_bytes: u64,
    },
    /// The guest called WASI's `exit` instead of returning from the task.
    #[error("the guest exited (status {status}) without returning a result")]
    Exited {
        /// The exit status it gave.
        status: i32,
    },
    /// The instance could not be created (for example the pool is misconfigured).
    #[error("could not instantiate: {message}")]
    Instantiate {
        /// Wasmtime's reason.
        message: String,
    },
}

impl TaskFailure {
    /// Whether running the task again might succeed: only when the task
    /// itself says so. Limits and traps fail the same way next time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TaskFailure::Retry { .. })
    }
}

/// What a task cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStats {
    /// Fuel burned (`None` when fuel metering is off).
    pub fuel_used: Option<u64>,
    /// Largest linear memory the task had, in bytes.
    pub peak_memory_bytes: u64,
    /// Wall time from store creation to the end of the call, in microseconds.
    pub wall_time_us: u64,
    /// Whether the soft time limit passed before the task returned.
    pub soft_limit_passed: bool,
}
