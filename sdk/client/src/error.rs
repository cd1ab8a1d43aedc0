//! What can go wrong talking to the API, or with the task itself.

use crate::types::TaskState;
use std::time::Duration;

/// An error of the client: the request could not be made or answered, the
/// API refused it, or the task it waited for did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL given to [`Client::new`](crate::Client::new) is not an
    /// `http://` or `https://` URL.
    #[error("invalid API URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The API key cannot be sent in an HTTP header (it holds a control
    /// character or a non-ASCII byte).
    #[error("the API key cannot be sent in an HTTP header")]
    InvalidKey,
    /// The API answered with an error: `{"error": {"code", "message", "field"}}`.
    ///
    /// `code` is stable (`unauthorized`, `forbidden`, `not_found`,
    /// `invalid_input`, `invalid_body`, `conflict`, `payload_too_large`,
    /// `rate_limited`, `unavailable`, ...); `field` names the request field
    /// at fault for bad input. An error answer that is not in this shape (a
    /// proxy's page, say) has the code `http_error` and the start of the body
    /// as its message.
    #[error("{message} ({status} {code}{})", field.as_deref().map(|f| format!(", field {f}")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code.
        code: String,
        /// What went wrong, for a person.
        message: String,
        /// The request field at fault, for bad input.
        field: Option<String>,
    },
    /// No answer: the connection failed, or the request timed out.
    #[error("request to the API failed")]
    Http(#[from] reqwest::Error),
    /// The task's input could not be encoded as JSON (a map with non-string
    /// keys, say).
    #[error("the input cannot be encoded as JSON")]
    Encode(#[source] serde_json::Error),
    /// A successful answer whose body is not the JSON this client expects
    /// (a client and a server of different versions, or not a hippo API).
    #[error("unexpected answer from the API ({status}): {reason}")]
    Decode {
        /// HTTP status of the answer.
        status: u16,
        /// What did not parse.
        reason: String,
    },
    /// The task failed for good (`FAILURE`): its retries, if any, are spent.
    #[error("task {id} failed: {error}")]
    TaskFailed {
        /// Task id.
        id: String,
        /// Why (`kind`, `message`, ...), as the task status reports it.
        error: serde_json::Value,
    },
    /// The task was revoked (`REVOKED`): cancelled, expired or purged.
    #[error("task {id} was revoked")]
    Revoked {
        /// Task id.
        id: String,
    },
    /// The task had not finished when the wait ran out.
    #[error("task {id} did not finish within {waited:?} (still {state})")]
    Timeout {
        /// Task id.
        id: String,
        /// How long the client waited.
        waited: Duration,
        /// The task's state at the end of the wait.
        state: TaskState,
    },
}

impl ClientError {
    /// The API's error code, for [`ClientError::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for [`ClientError::Api`] and [`ClientError::Decode`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            ClientError::Http(error) => error.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// Whether the API answered 404 (unknown task, plugin, queue or dead letter).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}
