//! The shared key-value store (`hippo:tasks/kv`): small values that outlive
//! a task, such as where a long scan stopped. Keys are namespaced per plugin
//! by the host, so two plugins never see each other's keys. Each plugin has
//! a quota of keys and bytes (its manifest's `[kv]`); a write past it fails
//! with [`ServiceError::QuotaExceeded`], which is not retried.

use std::time::Duration;

use crate::ServiceError;
use crate::bindings::hippo::tasks::kv;

fn error(message: String) -> ServiceError {
    ServiceError::from_message("kv", message)
}

/// The value at `key`, if set and not expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, ServiceError> {
    kv::get(key).map_err(error)
}

/// Sets `key` to `value`; with `ttl` it expires after that long (rounded up
/// to whole milliseconds).
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), ServiceError> {
    kv::set(key, value, ttl.map(crate::time::ceil_ms)).map_err(error)
}

/// Adds `delta` to the integer at `key` (0 when missing); returns the new value.
pub fn incr(key: &str, delta: i64) -> Result<i64, ServiceError> {
    kv::incr(key, delta).map_err(error)
}

/// Deletes `key`; true when it existed.
pub fn delete(key: &str) -> Result<bool, ServiceError> {
    kv::delete(key).map_err(error)
}
