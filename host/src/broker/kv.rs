//! A small key-value store beside the queues, for task plugins (the
//! `hippo:tasks/kv` interface): counters, caches, rate windows. It lives in
//! the broker's own store, so it needs no extra service and is shared by
//! every process that shares the broker.

use super::BrokerError;
use std::time::Duration;

/// Largest key, in bytes: keys are names, not data.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes: big blobs belong in the memory store.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Errors of the key-value store.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The key is empty or longer than [`MAX_KEY_BYTES`].
    #[error("key must be 1 to {MAX_KEY_BYTES} bytes")]
    Key,
    /// The value is longer than [`MAX_VALUE_BYTES`].
    #[error("value of {0} bytes is over the {MAX_VALUE_BYTES}-byte limit")]
    ValueTooLarge(usize),
    /// `incr` on a value that is not a decimal integer, or an overflow.
    #[error("value at key is not an integer or the increment overflows")]
    NotAnInteger,
    /// The backing store failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Keys with values and optional expiry, with Redis semantics: `incr` works
/// on decimal text, a missing key reads as absent (or 0 for `incr`), and
/// `set` without a TTL clears any earlier one.
#[async_trait::async_trait]
pub trait KeyValue: Send + Sync + std::fmt::Debug {
    /// The value at `key`, unless missing or expired.
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Sets `key`, expiring after `ttl` when given.
    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError>;
    /// Adds `delta` to the integer at `key` (0 when missing), keeping its TTL.
    async fn kv_incr(&self, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Deletes `key`; true when it existed (and had not expired).
    async fn kv_delete(&self, key: &str) -> Result<bool, KvError>;
}

/// Checks a key and value against the limits every backend shares.
pub(crate) fn check(key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::Key);
    }
    match value {
        Some(value) if value.len() > MAX_VALUE_BYTES => Err(KvError::ValueTooLarge(value.len())),
        _ => Ok(()),
    }
}

/// `current + delta` for a stored decimal value (`None`: missing key).
pub(crate) fn incremented(current: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
    let current = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or(KvError::NotAnInteger)?,
    };
    current.checked_add(delta).ok_or(KvError::NotAnInteger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incr_reads_decimal_text_and_refuses_the_rest() {
        assert_eq!(incremented(None, 5).unwrap(), 5);
        assert_eq!(incremented(Some(b"-3"), 5).unwrap(), 2);
        assert!(matches!(
            incremented(Some(b"abc"), 1),
            Err(KvError::NotAnInteger)
        ));
        assert!(matches!(
            incremented(Some(i64::MAX.to_string().as_bytes()), 1),
            Err(KvError::NotAnInteger)
        ));
    }

    #[test]
    fn keys_and_values_are_bounded() {
        assert!(check("", None).is_err());
        assert!(check(&"k".repeat(MAX_KEY_BYTES + 1), None).is_err());
        assert!(check("k", Some(&vec![0; MAX_VALUE_BYTES + 1])).is_err());
        assert!(check("k", Some(b"v")).is_ok());
    }
}
