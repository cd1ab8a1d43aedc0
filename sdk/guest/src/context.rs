//! What a running task knows about itself, and its line to the host.

use std::time::Duration;

use crate::bindings::hippo::tasks::{deadline, log, progress, types};

/// Severity of a log line sent with [`Context::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress information.
    Info,
    /// Something unexpected that the task recovered from.
    Warn,
    /// A failure.
    Error,
}

impl From<Level> for log::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        }
    }
}

/// The execution context of one task run, passed to every task function.
///
/// The accessors ([`task_id`](Self::task_id), [`attempt`](Self::attempt),
/// ...) read what the host sent with the run. The other methods call host
/// imports, so they only work inside the host (natively they panic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    task_id: String,
    attempt: u32,
    queue: String,
    soft_deadline_unix_ms: u64,
    hard_deadline_unix_ms: u64,
}

impl Context {
    /// Builds a context by hand, e.g. to call a task function from a native
    /// unit test. The host normally builds it for you.
    pub fn new(
        task_id: impl Into<String>,
        attempt: u32,
        queue: impl Into<String>,
        soft_deadline_unix_ms: u64,
        hard_deadline_unix_ms: u64,
    ) -> Self {
        Self {
            task_id: task_id.into(),
            attempt,
            queue: queue.into(),
            soft_deadline_unix_ms,
            hard_deadline_unix_ms,
        }
    }

    /// The task's id (a UUID string).
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// 1 for the first run, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The queue the task was taken from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// When the soft time limit passes, in milliseconds since the Unix epoch.
    pub fn soft_deadline_unix_ms(&self) -> u64 {
        self.soft_deadline_unix_ms
    }

    /// When the host interrupts the task, in milliseconds since the Unix epoch.
    pub fn hard_deadline_unix_ms(&self) -> u64 {
        self.hard_deadline_unix_ms
    }

    /// True once the soft time limit has passed: wrap up and return what you
    /// have (a partial result) before the hard limit.
    pub fn soft_limit_passed(&self) -> bool {
        deadline::soft_limit_passed()
    }

    /// Time left before the soft limit (zero once it has passed).
    pub fn soft_time_left(&self) -> Duration {
        Duration::from_millis(deadline::soft_time_left_ms())
    }

    /// Time left before the host interrupts the task.
    pub fn hard_time_left(&self) -> Duration {
        Duration::from_millis(deadline::hard_time_left_ms())
    }

    /// Reports that `done` of `total` units of work are finished, with an
    /// optional note.
    pub fn progress(&self, done: u64, total: u64, message: Option<&str>) {
        progress::report(done, total, message);
    }

    /// Sends one log line to the host. Past the task's `log-bytes` limit the
    /// host drops lines (and records that it did).
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        log::log(level.into(), message.as_ref());
    }

    /// Logs at [`Level::Trace`].
    pub fn trace(&self, message: impl AsRef<str>) {
        self.log(Level::Trace, message);
    }

    /// Logs at [`Level::Debug`].
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Logs at [`Level::Info`].
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at [`Level::Warn`].
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Logs at [`Level::Error`].
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }
}

impl From<types::Context> for Context {
    fn from(ctx: types::Context) -> Self {
        Self {
            task_id: ctx.task_id,
            attempt: ctx.attempt,
            queue: ctx.queue,
            soft_deadline_unix_ms: ctx.soft_deadline_unix_ms,
            hard_deadline_unix_ms: ctx.hard_deadline_unix_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_comes_from_the_wit_record() {
        let ctx = Context::from(types::Context {
            task_id: "0b6c1c1e-0000-4000-8000-000000000001".into(),
            attempt: 2,
            queue: "batch".into(),
            soft_deadline_unix_ms: 1_000,
            hard_deadline_unix_ms: 2_000,
        });
        assert_eq!(
            ctx,
            Context::new(
                "0b6c1c1e-0000-4000-8000-000000000001",
                2,
                "batch",
                1_000,
                2_000
            )
        );
        assert_eq!(ctx.task_id(), "0b6c1c1e-0000-4000-8000-000000000001");
        assert_eq!(ctx.attempt(), 2);
        assert_eq!(ctx.queue(), "batch");
        assert_eq!(ctx.soft_deadline_unix_ms(), 1_000);
        assert_eq!(ctx.hard_deadline_unix_ms(), 2_000);
    }

    #[test]
    fn levels_map_one_to_one() {
        let pairs = [
            (Level::Trace, log::Level::Trace),
            (Level::Debug, log::Level::Debug),
            (Level::Info, log::Level::Info),
            (Level::Warn, log::Level::Warn),
            (Level::Error, log::Level::Error),
        ];
        for (ours, wit) in pairs {
            assert_eq!(log::Level::from(ours), wit);
        }
    }
}
