//! How a call to a host service (embeddings, rerank, memory store, key-value
//! store) failed, and what that means for the task.

use crate::TaskError;
use crate::bindings::hippo::tasks::memory_store::StoreError;

/// A failed call to a host service. Each variant names the service
/// (`embeddings`, `rerank`, `memory-store`, `kv`) so that the message a task
/// passes on says where it came from.
///
/// Converts into a [`TaskError`] with `?`: [`Unavailable`](Self::Unavailable)
/// asks for a retry, every other variant is fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The task's user may not touch what the call names, or the call needs
    /// the `memory-maintenance` grant. Retrying cannot help.
    #[error("{service}: forbidden: {message}")]
    Forbidden {
        /// The service called.
        service: &'static str,
        /// The host's explanation.
        message: String,
    },
    /// An argument is out of range (wrong vector length, malformed id, ...).
    /// Retrying the same call cannot help.
    #[error("{service}: invalid: {message}")]
    Invalid {
        /// The service called.
        service: &'static str,
        /// The host's explanation.
        message: String,
    },
    /// The call would take the plugin past a quota the host sets (the
    /// key-value store's keys or bytes, see the plugin's manifest). The
    /// message has the numbers. Retrying cannot help until the plugin frees
    /// room (deletes keys, or lets them expire).
    #[error("{service}: quota exceeded: {message}")]
    QuotaExceeded {
        /// The service called.
        service: &'static str,
        /// The host's explanation.
        message: String,
    },
    /// The service failed or is not configured on this host; a later
    /// attempt may succeed. Services whose WIT error is a plain string
    /// (embeddings, rerank, kv) fail this way, but for a kv quota.
    #[error("{service}: unavailable: {message}")]
    Unavailable {
        /// The service called.
        service: &'static str,
        /// The host's explanation.
        message: String,
    },
    /// The host answered, but not as its interface promises (for example
    /// fewer vectors than texts): a host bug, so not worth a retry.
    #[error("{service}: broken answer: {message}")]
    Contract {
        /// The service called.
        service: &'static str,
        /// What was wrong with the answer.
        message: String,
    },
}

impl ServiceError {
    /// True for failures a later attempt may not repeat.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The failure of a service whose WIT error is a plain string.
    pub(crate) fn unavailable(service: &'static str, message: String) -> Self {
        Self::Unavailable { service, message }
    }

    /// The failure of a service whose WIT error is a plain string, where
    /// the host starts a quota's refusal with `quota exceeded: `.
    pub(crate) fn from_message(service: &'static str, message: String) -> Self {
        match message.strip_prefix(QUOTA_EXCEEDED) {
            Some(rest) => Self::QuotaExceeded {
                service,
                message: rest.to_string(),
            },
            None => Self::unavailable(service, message),
        }
    }

    /// Checks that a service returned one answer per input.
    pub(crate) fn check_count(
        service: &'static str,
        what: &str,
        got: usize,
        expected: usize,
    ) -> Result<(), Self> {
        if got == expected {
            return Ok(());
        }
        Err(Self::Contract {
            service,
            message: format!("{got} {what} for {expected} inputs"),
        })
    }
}

/// How the host's message for a refusal by quota starts (see `kv` in
/// `tasks.wit`).
const QUOTA_EXCEEDED: &str = "quota exceeded: ";

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        const SERVICE: &str = "memory-store";
        match err {
            StoreError::Forbidden(message) => Self::Forbidden {
                service: SERVICE,
                message,
            },
            StoreError::Invalid(message) => Self::Invalid {
                service: SERVICE,
                message,
            },
            StoreError::Unavailable(message) => Self::Unavailable {
                service: SERVICE,
                message,
            },
        }
    }
}

/// A transient failure asks the host for a retry (its backoff picks the
/// delay); anything else fails the task for good.
impl From<ServiceError> for TaskError {
    fn from(err: ServiceError) -> Self {
        if err.is_transient() {
            TaskError::retry(err.to_string())
        } else {
            TaskError::fatal(err.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_kind_and_name_the_service() {
        let err = ServiceError::from(StoreError::Unavailable("qdrant is down".into()));
        assert_eq!(err.to_string(), "memory-store: unavailable: qdrant is down");
        assert!(err.is_transient());
        let err = ServiceError::from(StoreError::Forbidden("not yours".into()));
        assert_eq!(err.to_string(), "memory-store: forbidden: not yours");
        assert!(!err.is_transient());
        let err = ServiceError::from(StoreError::Invalid("bad id".into()));
        assert_eq!(err.to_string(), "memory-store: invalid: bad id");
    }

    #[test]
    fn unavailable_retries_and_the_rest_is_fatal() {
        let retry = TaskError::from(ServiceError::from(StoreError::Unavailable("down".into())));
        assert_eq!(retry, TaskError::retry("memory-store: unavailable: down"));
        let fatal = TaskError::from(ServiceError::from(StoreError::Forbidden("no".into())));
        assert_eq!(fatal, TaskError::fatal("memory-store: forbidden: no"));
        let fatal = TaskError::from(ServiceError::from(StoreError::Invalid("no".into())));
        assert!(matches!(fatal, TaskError::Fatal(_)));
        let broken = ServiceError::check_count("embeddings", "vectors", 1, 2).unwrap_err();
        assert_eq!(
            TaskError::from(broken),
            TaskError::fatal("embeddings: broken answer: 1 vectors for 2 inputs")
        );
    }

    #[test]
    fn a_quota_refusal_is_told_apart_and_not_retried() {
        let err = ServiceError::from_message(
            "kv",
            "quota exceeded: 2 of 2 keys used, and this write adds 1 ([kv] max_keys ...)".into(),
        );
        assert_eq!(
            err.to_string(),
            "kv: quota exceeded: 2 of 2 keys used, and this write adds 1 ([kv] max_keys ...)"
        );
        assert!(matches!(err, ServiceError::QuotaExceeded { .. }));
        assert!(matches!(TaskError::from(err), TaskError::Fatal(_)));
        let err = ServiceError::from_message("kv", "broker storage: gone".into());
        assert_eq!(err.to_string(), "kv: unavailable: broker storage: gone");
        assert!(err.is_transient());
    }

    #[test]
    fn matching_counts_pass() {
        assert_eq!(ServiceError::check_count("rerank", "scores", 3, 3), Ok(()));
    }
}
