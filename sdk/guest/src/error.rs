//! How a task tells the host that it failed, and what to do about it.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::bindings::hippo::tasks::types::{self, RetryRequest};

/// A failed task run. Maps onto the WIT `task-error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// A transient failure: the host runs the task again, after `delay` if
    /// given (otherwise its backoff decides).
    Retry {
        /// What went wrong.
        message: String,
        /// How long to wait before the next attempt.
        delay: Option<Duration>,
    },
    /// A permanent failure: the host does not retry.
    Fatal(String),
    /// The input is malformed or out of range: the host does not retry and
    /// tells the caller.
    BadInput(String),
}

impl TaskError {
    /// A transient failure; the host's backoff picks the delay.
    pub fn retry(message: impl Into<String>) -> Self {
        Self::Retry {
            message: message.into(),
            delay: None,
        }
    }

    /// A transient failure; retry no sooner than `delay` from now.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self::Retry {
            message: message.into(),
            delay: Some(delay),
        }
    }

    /// A permanent failure.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Fatal(message.into())
    }

    /// Malformed or out-of-range input.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadInput(message.into())
    }

    /// The human-readable message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::Retry { message, .. } | Self::Fatal(message) | Self::BadInput(message) => message,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retry {
                message,
                delay: None,
            } => write!(f, "retry: {message}"),
            Self::Retry {
                message,
                delay: Some(delay),
            } => write!(f, "retry after {delay:?}: {message}"),
            Self::Fatal(message) => write!(f, "fatal: {message}"),
            Self::BadInput(message) => write!(f, "bad input: {message}"),
        }
    }
}

impl std::error::Error for TaskError {}

/// JSON that does not parse or does not fit the expected shape is bad
/// input; an I/O failure while reading or writing JSON is fatal.
impl From<serde_json::Error> for TaskError {
    fn from(err: serde_json::Error) -> Self {
        match err.classify() {
            serde_json::error::Category::Io => Self::fatal(err.to_string()),
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Data
            | serde_json::error::Category::Eof => Self::bad_input(err.to_string()),
        }
    }
}

/// I/O errors that may go away on their own (timeouts, interruptions,
/// refused or dropped connections) ask for a retry; all others are fatal.
impl From<io::Error> for TaskError {
    fn from(err: io::Error) -> Self {
        use io::ErrorKind::{
            ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted, TimedOut,
            WouldBlock,
        };
        match err.kind() {
            ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted | TimedOut
            | WouldBlock => Self::retry(err.to_string()),
            _ => Self::fatal(err.to_string()),
        }
    }
}

impl From<TaskError> for types::TaskError {
    fn from(err: TaskError) -> Self {
        match err {
            TaskError::Retry { message, delay } => Self::Retry(RetryRequest {
                message,
                delay_ms: delay.map(crate::time::ceil_ms),
            }),
            TaskError::Fatal(message) => Self::Fatal(message),
            TaskError::BadInput(message) => Self::BadInput(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_map_onto_the_wit_variant() {
        assert_eq!(
            types::TaskError::from(TaskError::retry("busy")),
            types::TaskError::Retry(RetryRequest {
                message: "busy".into(),
                delay_ms: None
            })
        );
        assert_eq!(
            types::TaskError::from(TaskError::retry_after("busy", Duration::from_secs(3))),
            types::TaskError::Retry(RetryRequest {
                message: "busy".into(),
                delay_ms: Some(3_000)
            })
        );
        assert_eq!(
            types::TaskError::from(TaskError::fatal("broken")),
            types::TaskError::Fatal("broken".into())
        );
        assert_eq!(
            types::TaskError::from(TaskError::bad_input("n must be positive")),
            types::TaskError::BadInput("n must be positive".into())
        );
    }

    #[test]
    fn retry_delay_rounds_up_to_whole_milliseconds() {
        let wit = types::TaskError::from(TaskError::retry_after("x", Duration::from_micros(1)));
        assert!(matches!(
            wit,
            types::TaskError::Retry(RetryRequest {
                delay_ms: Some(1),
                ..
            })
        ));
        let wit = types::TaskError::from(TaskError::retry_after("x", Duration::MAX));
        assert!(matches!(
            wit,
            types::TaskError::Retry(RetryRequest {
                delay_ms: Some(u64::MAX),
                ..
            })
        ));
    }

    #[test]
    fn display_and_message() {
        assert_eq!(TaskError::retry("busy").to_string(), "retry: busy");
        assert_eq!(
            TaskError::retry_after("busy", Duration::from_millis(250)).to_string(),
            "retry after 250ms: busy"
        );
        assert_eq!(TaskError::fatal("broken").to_string(), "fatal: broken");
        assert_eq!(TaskError::bad_input("no").to_string(), "bad input: no");
        assert_eq!(TaskError::fatal("broken").message(), "broken");
    }

    #[test]
    fn json_errors_are_bad_input() {
        let err = serde_json::from_str::<u32>("\"seven\"").unwrap_err();
        let TaskError::BadInput(message) = TaskError::from(err) else {
            panic!("expected bad input");
        };
        assert!(message.contains("line 1 column 7"), "{message}");
    }

    #[test]
    fn transient_io_errors_retry_and_others_are_fatal() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            TaskError::from(refused),
            TaskError::Retry { delay: None, .. }
        ));
        let missing = io::Error::new(io::ErrorKind::NotFound, "no such file");
        assert_eq!(TaskError::from(missing), TaskError::fatal("no such file"));
    }
}
