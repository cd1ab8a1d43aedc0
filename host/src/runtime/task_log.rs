//! The bounded log of one task: host `log` calls and the guest's captured
//! stdout and stderr, in the order they happened.
//!
//! The log keeps at most `limit` bytes of messages. Past that, lines are
//! counted but dropped, so a chatty or hostile guest cannot grow host memory.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

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

/// One kept log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
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

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: usize,
    record: TaskLogRecord,
}

/// A shared, bounded task log. Cheap to clone: clones append to the same log.
#[derive(Debug, Clone)]
pub struct TaskLog {
    inner: Arc<Mutex<Inner>>,
}

impl TaskLog {
    /// A log that keeps at most `limit` bytes of messages.
    pub fn new(limit: u64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        TaskLog { inner: Arc::new(Mutex::new(Inner { limit, used: 0, record: TaskLogRecord::default() })) }
    }

    /// Appends a line, or counts it as dropped when it does not fit.
    pub fn push(&self, level: LogLevel, source: LogSource, message: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.used.saturating_add(message.len()) > inner.limit {
            inner.record.dropped_lines += 1;
            return;
        }
        inner.used += message.len();
        let message = String::from_utf8_lossy(message).into_owned();
        inner.record.lines.push(LogLine { level, source, message });
    }

    /// A copy of what the log holds so far.
    pub fn snapshot(&self) -> TaskLogRecord {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).record.clone()
    }

    /// Takes what the log holds, leaving it empty.
    pub fn take(&self) -> TaskLogRecord {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.used = 0;
        std::mem::take(&mut inner.record)
    }

    /// A WASI stdout/stderr stream that appends into this log as `source`.
    pub fn stream(&self, source: LogSource) -> CapturedOutput {
        CapturedOutput { log: self.clone(), source }
    }
}

/// Guest stdout or stderr, captured line by line into a [`TaskLog`].
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    log: TaskLog,
    source: LogSource,
}

impl CapturedOutput {
    fn level(&self) -> LogLevel {
        match self.source {
            LogSource::Stderr => LogLevel::Warn,
            LogSource::Guest | LogSource::Stdout => LogLevel::Info,
        }
    }

    fn append(&self, bytes: &[u8]) {
        // Guests write whole lines through Rust's line-buffered stdout; a
        // write without newlines is kept as one line.
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            self.log.push(self.level(), self.source, line);
        }
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Writes never block; the log drops what does not fit.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_limit_are_counted_not_kept() {
        let log = TaskLog::new(10);
        log.push(LogLevel::Info, LogSource::Guest, b"12345");
        log.push(LogLevel::Info, LogSource::Guest, b"67890");
        log.push(LogLevel::Info, LogSource::Guest, b"x");
        let record = log.take();
        assert_eq!(record.lines.len(), 2);
        assert_eq!(record.dropped_lines, 1);
    }

    #[test]
    fn captured_output_splits_lines() {
        let log = TaskLog::new(1024);
        log.stream(LogSource::Stdout).append(b"one\ntwo\n");
        let record = log.take();
        let messages: Vec<_> = record.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["one", "two"]);
    }
}
