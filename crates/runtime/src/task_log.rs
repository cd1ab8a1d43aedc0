//! The bounded log of one task: host `log` calls and the guest's captured
//! stdout and stderr, in the order they happened.
//!
//! The log keeps at most `limit` bytes of messages. Past that, lines are
//! counted but dropped, so a chatty or hostile guest cannot grow host memory.

use bytes::Bytes;
pub use hippo_task::{LogLevel, LogLine, LogSource, TaskLogRecord};
use std::sync::{Arc, Mutex, PoisonError};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Milliseconds since the Unix epoch, now: when a line was written.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A captured stream's bytes since its last newline: writes may split a
/// line anywhere, and a line is kept whole.
#[derive(Debug, Default)]
struct PartialLines {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// A partial line longer than this is kept as a line of its own.
const MAX_LINE: usize = 4096;

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: usize,
    record: TaskLogRecord,
    partial: PartialLines,
}

impl Inner {
    fn push(&mut self, level: LogLevel, source: LogSource, message: &[u8]) {
        if self.used.saturating_add(message.len()) > self.limit {
            self.record.dropped_lines += 1;
            return;
        }
        self.used += message.len();
        let message = String::from_utf8_lossy(message).into_owned();
        self.record.lines.push(LogLine {
            at_ms: now_ms(),
            level,
            source,
            message,
        });
    }

    fn capture(&mut self, source: LogSource, bytes: &[u8]) {
        let mut pending = std::mem::take(self.partial_of(source));
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(newline) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + newline];
            if !line.is_empty() {
                self.push(source.level(), source, line);
            }
            start += newline + 1;
        }
        pending.drain(..start);
        if pending.len() > MAX_LINE {
            self.push(source.level(), source, &pending);
            pending.clear();
        }
        *self.partial_of(source) = pending;
    }

    fn flush_partial_lines(&mut self) {
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let pending = std::mem::take(self.partial_of(source));
            if !pending.is_empty() {
                self.push(source.level(), source, &pending);
            }
        }
    }

    fn partial_of(&mut self, source: LogSource) -> &mut Vec<u8> {
        match source {
            LogSource::Stderr => &mut self.partial.stderr,
            LogSource::Stdout | LogSource::Guest => &mut self.partial.stdout,
        }
    }
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
        let inner = Inner {
            limit,
            used: 0,
            record: TaskLogRecord::default(),
            partial: PartialLines::default(),
        };
        TaskLog {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// Appends a line, or counts it as dropped when it does not fit.
    pub fn push(&self, level: LogLevel, source: LogSource, message: &[u8]) {
        self.lock().push(level, source, message);
    }

    /// A copy of what the log holds so far, partial lines included.
    pub fn snapshot(&self) -> TaskLogRecord {
        let mut inner = self.lock();
        inner.flush_partial_lines();
        inner.record.clone()
    }

    /// Takes what the log holds, partial lines included, leaving it empty.
    pub fn take(&self) -> TaskLogRecord {
        let mut inner = self.lock();
        inner.flush_partial_lines();
        inner.used = 0;
        std::mem::take(&mut inner.record)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A WASI stdout/stderr stream that appends into this log as `source`.
    pub fn stream(&self, source: LogSource) -> CapturedOutput {
        CapturedOutput {
            log: self.clone(),
            source,
        }
    }
}

/// Guest stdout or stderr, captured line by line into a [`TaskLog`].
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    log: TaskLog,
    source: LogSource,
}

impl CapturedOutput {
    fn append(&self, bytes: &[u8]) {
        self.log.lock().capture(self.source, bytes);
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
    fn captured_output_is_kept_line_by_line_however_it_is_written() {
        let log = TaskLog::new(1024);
        let stdout = log.stream(LogSource::Stdout);
        stdout.append(b"o");
        stdout.append(b"ne\ntw");
        stdout.append(b"o\n\nthr");
        stdout.append(b"ee");
        let record = log.take();
        let messages: Vec<_> = record.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["one", "two", "three"]);
    }
}
