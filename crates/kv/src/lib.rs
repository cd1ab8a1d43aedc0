//! A small key-value store beside the queues, for task plugins (the
//! `hippo:tasks/kv` interface): counters, caches, rate windows. This crate
//! is its contract ([`KeyValue`]) and the rules every backend shares; the
//! brokers (`hippo-broker`) implement it in their own store, so it needs no
//! extra service and is shared by every process that shares the broker.
//! It depends on no backend.
//!
//! Every call names its [`KvSpace`]: the host's own records (the
//! scheduler's), stored under their names, or a plugin's namespace, stored
//! as `{namespace}/{key}` and held to the plugin's [`KvQuota`]. A
//! namespace's usage is its live keys and their bytes (key plus value, as
//! the plugin gave them). Each backend keeps it beside the data and checks
//! and changes it in the same atomic step as the write (one transaction,
//! one Lua script), so concurrent tasks of a plugin cannot overshoot
//! together. Keys whose TTL passed stop counting before any write is
//! refused for lack of room; deletes and overwrites give their room back.
//! Entries stored before quotas existed are not counted until rewritten.

use std::sync::Arc;
use std::time::Duration;

/// Largest key, in bytes: keys are names, not data.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes: big blobs belong in the memory store.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Largest namespace, in bytes (plugin names have at most 128).
pub const MAX_NAMESPACE_BYTES: usize = 256;
/// Longest TTL: about 100 years. Both backends keep expiry as an absolute
/// time in milliseconds; a longer TTL is clamped to this, so the sum cannot
/// overflow (Redis refuses such a `PX`).
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How much of the store one plugin may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KvQuota {
    /// Live keys.
    pub max_keys: u64,
    /// Bytes of those keys and their values.
    pub max_bytes: u64,
}

impl KvQuota {
    /// What a plugin gets when its manifest does not say: room for the
    /// store's intended use (cursors, counters, small caches: a counter per
    /// user for 10,000 users), and 16 values of the largest size. Enough
    /// that no plugin in this repository comes near it, small enough that a
    /// flooding plugin costs the broker little.
    pub const DEFAULT: KvQuota = KvQuota {
        max_keys: 10_000,
        max_bytes: 16 << 20,
    };
    /// The operator's ceiling when not set: a manifest may ask for up to 10
    /// and 16 times the defaults, no more.
    pub const CEILING: KvQuota = KvQuota {
        max_keys: 100_000,
        max_bytes: 256 << 20,
    };

    /// The smaller of each field.
    pub fn min(self, other: KvQuota) -> KvQuota {
        KvQuota {
            max_keys: self.max_keys.min(other.max_keys),
            max_bytes: self.max_bytes.min(other.max_bytes),
        }
    }

    /// Whether a write that takes a namespace from `usage` to `after` may
    /// proceed. A write that frees room always may, so a plugin over a
    /// lowered quota can still clean up.
    pub fn admit(&self, usage: KvUsage, after: KvUsage) -> Result<(), KvError> {
        if after.keys > usage.keys && after.keys > self.max_keys {
            return Err(self.exceeded(QuotaKind::Keys, usage.keys, after.keys - usage.keys));
        }
        if after.bytes > usage.bytes && after.bytes > self.max_bytes {
            return Err(self.exceeded(QuotaKind::Bytes, usage.bytes, after.bytes - usage.bytes));
        }
        Ok(())
    }

    /// The refusal of a write that adds `adding` to `used` of `kind`.
    pub fn exceeded(&self, kind: QuotaKind, used: u64, adding: u64) -> KvError {
        let max = match kind {
            QuotaKind::Keys => self.max_keys,
            QuotaKind::Bytes => self.max_bytes,
        };
        KvError::QuotaExceeded {
            kind,
            used,
            adding,
            max,
        }
    }
}

/// What a namespace holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    /// Live keys.
    pub keys: u64,
    /// Bytes of those keys and their values ([`entry_bytes`]).
    pub bytes: u64,
}

/// The bytes an entry counts for: its key (without the namespace) and value.
pub fn entry_bytes(key: &str, value_len: usize) -> u64 {
    (key.len() + value_len) as u64
}

/// Which quota a write would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// [`KvQuota::max_keys`].
    Keys,
    /// [`KvQuota::max_bytes`].
    Bytes,
}

impl std::fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuotaKind::Keys => "keys",
            QuotaKind::Bytes => "bytes",
        })
    }
}

/// Whose keys a call reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvSpace<'a> {
    /// The host's own records (the scheduler's): stored under their names,
    /// with no quota.
    Host,
    /// A plugin's keys: stored as `{namespace}/{key}` and held to `quota`.
    /// The namespace has no `/`, so it is the stored key up to its first `/`.
    Plugin {
        /// The plugin's namespace.
        namespace: &'a str,
        /// What it may hold.
        quota: KvQuota,
    },
}

impl KvSpace<'_> {
    /// The key `key` is stored under.
    pub fn stored_key(&self, key: &str) -> String {
        match self {
            KvSpace::Host => key.to_string(),
            KvSpace::Plugin { namespace, .. } => format!("{namespace}/{key}"),
        }
    }
}

/// Errors of the key-value store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key is empty or longer than [`MAX_KEY_BYTES`].
    #[error("key must be 1 to {MAX_KEY_BYTES} bytes")]
    Key,
    /// The namespace is empty, longer than [`MAX_NAMESPACE_BYTES`] or has a `/`.
    #[error("namespace must be 1 to {MAX_NAMESPACE_BYTES} bytes without '/'")]
    Namespace,
    /// The value is longer than [`MAX_VALUE_BYTES`].
    #[error("value of {0} bytes is over the {MAX_VALUE_BYTES}-byte limit")]
    ValueTooLarge(usize),
    /// `incr` on a value that is not a decimal integer, or an overflow.
    #[error("value at key is not an integer or the increment overflows")]
    NotAnInteger,
    /// The write would take the plugin past its quota. The message starts
    /// with `quota exceeded: ` (the guest SDK tells this failure apart by
    /// it, as the WIT error is a string) and names the manifest key.
    #[error(
        "quota exceeded: {used} of {max} {kind} used, and this write adds {adding} \
         ([kv] max_{kind} in the plugin's manifest)"
    )]
    QuotaExceeded {
        /// The quota the write would break.
        kind: QuotaKind,
        /// What the plugin holds.
        used: u64,
        /// What the write would add.
        adding: u64,
        /// The quota.
        max: u64,
    },
    /// The backing store failed.
    #[error("key-value store: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Keys with values and optional expiry, with Redis semantics: `incr` works
/// on decimal text, a missing key reads as absent (or 0 for `incr`), and
/// `set` without a TTL clears any earlier one. Writes in a plugin's space
/// are refused with [`KvError::QuotaExceeded`] when they would take it past
/// its quota.
#[async_trait::async_trait]
pub trait KeyValue: Send + Sync + std::fmt::Debug {
    /// The value at `key`, unless missing or expired.
    async fn kv_get(&self, space: KvSpace<'_>, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Sets `key`, expiring after `ttl` when given.
    async fn kv_set(
        &self,
        space: KvSpace<'_>,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), KvError>;
    /// Adds `delta` to the integer at `key` (0 when missing), keeping its TTL.
    async fn kv_incr(&self, space: KvSpace<'_>, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Deletes `key`; true when it existed (and had not expired).
    async fn kv_delete(&self, space: KvSpace<'_>, key: &str) -> Result<bool, KvError>;
}

/// The store as one plugin sees it: its namespace and quota bound in, so
/// the host calls of its tasks cannot name another space.
#[derive(Debug, Clone)]
pub struct PluginKv {
    store: Arc<dyn KeyValue>,
    namespace: Arc<str>,
    quota: KvQuota,
}

impl PluginKv {
    /// `store` in `namespace`, held to `quota`.
    pub fn new(store: Arc<dyn KeyValue>, namespace: Arc<str>, quota: KvQuota) -> Self {
        PluginKv {
            store,
            namespace,
            quota,
        }
    }

    fn space(&self) -> KvSpace<'_> {
        KvSpace::Plugin {
            namespace: &self.namespace,
            quota: self.quota,
        }
    }

    /// [`KeyValue::kv_get`] in this plugin's space.
    pub async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.store.kv_get(self.space(), key).await
    }

    /// [`KeyValue::kv_set`] in this plugin's space.
    pub async fn kv_set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        self.store.kv_set(self.space(), key, value, ttl).await
    }

    /// [`KeyValue::kv_incr`] in this plugin's space.
    pub async fn kv_incr(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.store.kv_incr(self.space(), key, delta).await
    }

    /// [`KeyValue::kv_delete`] in this plugin's space.
    pub async fn kv_delete(&self, key: &str) -> Result<bool, KvError> {
        self.store.kv_delete(self.space(), key).await
    }
}

/// Checks a space, key and value against the limits every backend shares.
pub fn check(space: KvSpace<'_>, key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
    if let KvSpace::Plugin { namespace, .. } = space
        && (namespace.is_empty()
            || namespace.len() > MAX_NAMESPACE_BYTES
            || namespace.contains('/'))
    {
        return Err(KvError::Namespace);
    }
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::Key);
    }
    match value {
        Some(value) if value.len() > MAX_VALUE_BYTES => Err(KvError::ValueTooLarge(value.len())),
        _ => Ok(()),
    }
}

/// A TTL in whole milliseconds, within [`MAX_TTL`].
pub fn ttl_ms(ttl: Duration) -> u64 {
    ttl.min(MAX_TTL).as_millis() as u64
}

/// `current + delta` for a stored decimal value (`None`: missing key).
pub fn incremented(current: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
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
    fn keys_values_and_namespaces_are_bounded() {
        let host = KvSpace::Host;
        assert!(check(host, "", None).is_err());
        assert!(check(host, &"k".repeat(MAX_KEY_BYTES + 1), None).is_err());
        assert!(check(host, "k", Some(&vec![0; MAX_VALUE_BYTES + 1])).is_err());
        assert!(check(host, "k", Some(b"v")).is_ok());
        let plugin = |namespace| KvSpace::Plugin {
            namespace,
            quota: KvQuota::DEFAULT,
        };
        assert!(check(plugin("word-count"), "k", Some(b"v")).is_ok());
        // A `/` would make `a` + `b/c` and `a/b` + `c` the same stored key.
        let long = "n".repeat(MAX_NAMESPACE_BYTES + 1);
        for bad in ["", "a/b", &long] {
            assert!(matches!(
                check(plugin(bad), "k", None),
                Err(KvError::Namespace)
            ));
        }
        assert_eq!(plugin("a").stored_key("b/c"), "a/b/c");
        assert_eq!(
            host.stored_key("hippo:schedule:x:slot"),
            "hippo:schedule:x:slot"
        );
    }

    #[test]
    fn a_quota_refuses_growth_past_it_and_never_a_write_that_frees_room() {
        let quota = KvQuota {
            max_keys: 2,
            max_bytes: 100,
        };
        let usage = |keys, bytes| KvUsage { keys, bytes };
        assert!(quota.admit(usage(1, 50), usage(2, 100)).is_ok());
        let refused = quota.admit(usage(2, 60), usage(3, 70)).unwrap_err();
        assert!(matches!(
            refused,
            KvError::QuotaExceeded {
                kind: QuotaKind::Keys,
                used: 2,
                adding: 1,
                max: 2
            }
        ));
        assert_eq!(
            refused.to_string(),
            "quota exceeded: 2 of 2 keys used, and this write adds 1 \
             ([kv] max_keys in the plugin's manifest)"
        );
        let refused = quota.admit(usage(1, 60), usage(1, 101)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "quota exceeded: 60 of 100 bytes used, and this write adds 41 \
             ([kv] max_bytes in the plugin's manifest)"
        );
        // Over a quota lowered since: shrinking is allowed, growing is not.
        assert!(quota.admit(usage(5, 500), usage(5, 400)).is_ok());
        assert!(quota.admit(usage(5, 500), usage(4, 500)).is_ok());
        assert!(quota.admit(usage(5, 500), usage(5, 501)).is_err());
    }
}
