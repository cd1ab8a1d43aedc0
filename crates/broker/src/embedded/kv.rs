//! The key-value store of the embedded broker: three tables in the same redb
//! file, written through the group-commit writer like everything else.
//!
//! An entry is stored compactly: a format byte, a flags byte, the expiry
//! (when it has one) and the value's raw bytes. Versions before quotas
//! stored a JSON object (`{"value":[...],"expires_ms":...}`, a value
//! costing up to four times its size); such entries still read, and turn
//! compact when rewritten. Entries written in a plugin's space carry the
//! `ACCOUNTED` flag: they count in [`KV_USAGE`], and whatever removes one
//! (overwrite, delete, expiry sweep) gives its room back in the same
//! transaction. Entries without it (the host's, and the old JSON ones) are
//! not counted.

use super::*;
use hippo_kv::{
    KeyValue, KvError, KvQuota, KvSpace, KvUsage, check, entry_bytes, incremented, ttl_ms,
};
use std::borrow::Cow;

/// Stored key -> entry (see the module docs).
pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// (expiry ms, stored key) -> (): keys with a TTL, soonest first, swept on writes.
pub(super) const KV_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("kv_expiry");
/// Namespace -> its usage (keys then bytes, each a little-endian u64).
pub(super) const KV_USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv_usage");

/// Expired keys one write removes on its way, so the sweep stays cheap. A
/// write that a quota would refuse first sweeps every expired key.
const SWEEP_PER_WRITE: usize = 64;

/// The first byte of a compact entry. An old JSON entry starts with `{`.
const COMPACT: u8 = 1;
/// Flag: an expiry (u64 little-endian, Unix ms) follows the flags byte.
const EXPIRES: u8 = 1;
/// Flag: the entry counts in its namespace's usage.
const ACCOUNTED: u8 = 2;

/// A decoded entry; its value borrows the stored bytes when it can.
#[derive(Debug)]
struct Entry<'a> {
    value: Cow<'a, [u8]>,
    expires_ms: Option<u64>,
    accounted: bool,
}

/// The stored form of versions before quotas.
#[derive(Deserialize)]
struct LegacyEntry {
    value: Vec<u8>,
    expires_ms: Option<u64>,
}

impl Entry<'_> {
    fn live(&self, now: u64) -> bool {
        self.expires_ms.is_none_or(|at| at > now)
    }

    /// What the entry at `stored` counts for in its namespace.
    fn counts(&self, stored: &str) -> Result<KvUsage, BrokerError> {
        if !self.accounted {
            return Ok(KvUsage::default());
        }
        let (_, key) = split_stored(stored)?;
        Ok(KvUsage {
            keys: 1,
            bytes: entry_bytes(key, self.value.len()),
        })
    }
}

fn encode_entry(value: &[u8], expires_ms: Option<u64>, accounted: bool) -> Vec<u8> {
    let mut flags = 0;
    if expires_ms.is_some() {
        flags |= EXPIRES;
    }
    if accounted {
        flags |= ACCOUNTED;
    }
    let mut bytes = Vec::with_capacity(10 + value.len());
    bytes.extend_from_slice(&[COMPACT, flags]);
    if let Some(at) = expires_ms {
        bytes.extend_from_slice(&at.to_le_bytes());
    }
    bytes.extend_from_slice(value);
    bytes
}

fn decode_entry(bytes: &[u8]) -> Result<Entry<'_>, BrokerError> {
    match bytes {
        [COMPACT, flags, rest @ ..] => {
            let (expires_ms, value) = if flags & EXPIRES != 0 {
                let (at, value) = rest
                    .split_first_chunk::<8>()
                    .ok_or_else(|| corrupt("kv entry: truncated expiry"))?;
                (Some(u64::from_le_bytes(*at)), value)
            } else {
                (None, rest)
            };
            Ok(Entry {
                value: Cow::Borrowed(value),
                expires_ms,
                accounted: flags & ACCOUNTED != 0,
            })
        }
        [b'{', ..] => {
            let legacy: LegacyEntry = serde_json::from_slice(bytes).map_err(corrupt)?;
            Ok(Entry {
                value: Cow::Owned(legacy.value),
                expires_ms: legacy.expires_ms,
                accounted: false,
            })
        }
        _ => Err(corrupt("kv entry: unknown format")),
    }
}

/// The namespace and key of an accounted entry's stored key.
fn split_stored(stored: &str) -> Result<(&str, &str), BrokerError> {
    stored.split_once('/').ok_or_else(|| {
        corrupt(format!(
            "kv entry {stored:?} is accounted but has no namespace"
        ))
    })
}

/// The entry at `stored`, if any (expired or not), through `read`.
fn with_entry<R>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    stored: &str,
    read: impl FnOnce(Entry<'_>) -> Result<R, BrokerError>,
) -> Result<Option<R>, BrokerError> {
    match table.get(stored).map_err(storage)? {
        Some(bytes) => read(decode_entry(bytes.value())?).map(Some),
        None => Ok(None),
    }
}

/// The expiry and the count of the entry at `stored`, if any.
fn entry_meta(txn: &Tx, stored: &str) -> Result<Option<(Option<u64>, KvUsage)>, BrokerError> {
    with_entry(&*txn.open(KV)?, stored, |e| {
        Ok((e.expires_ms, e.counts(stored)?))
    })
}

fn usage(txn: &Tx, namespace: &str) -> Result<KvUsage, BrokerError> {
    let table = txn.open(KV_USAGE)?;
    let Some(bytes) = table.get(namespace).map_err(storage)? else {
        return Ok(KvUsage::default());
    };
    let (keys, bytes) = bytes
        .value()
        .split_first_chunk::<8>()
        .and_then(|(keys, rest)| Some((*keys, *rest.first_chunk::<8>()?)))
        .ok_or_else(|| corrupt(format!("kv usage of {namespace:?}")))?;
    Ok(KvUsage {
        keys: u64::from_le_bytes(keys),
        bytes: u64::from_le_bytes(bytes),
    })
}

fn store_usage(txn: &Tx, namespace: &str, usage: KvUsage) -> Result<(), BrokerError> {
    let mut table = txn.open(KV_USAGE)?;
    if usage == KvUsage::default() {
        return table.remove(namespace);
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&usage.keys.to_le_bytes());
    bytes[8..].copy_from_slice(&usage.bytes.to_le_bytes());
    table.insert(namespace, bytes.as_slice())
}

/// `usage` with `removed` taken out and `added` put in.
fn replaced(usage: KvUsage, removed: KvUsage, added: KvUsage) -> KvUsage {
    KvUsage {
        keys: usage.keys.saturating_sub(removed.keys) + added.keys,
        bytes: usage.bytes.saturating_sub(removed.bytes) + added.bytes,
    }
}

/// Replaces the entry at `stored` with `entry` (its stored form), or
/// removes it, keeping the expiry index and the namespace's usage in step.
/// Returns whether an entry was there and live at `now`.
fn write_entry(
    txn: &Tx,
    stored: &str,
    entry: Option<&[u8]>,
    now: u64,
) -> Result<bool, BrokerError> {
    let previous = entry_meta(txn, stored)?;
    let new = match entry {
        Some(bytes) => {
            let entry = decode_entry(bytes)?;
            Some((entry.expires_ms, entry.counts(stored)?))
        }
        None => None,
    };
    let removed = previous.map(|(_, counts)| counts).unwrap_or_default();
    let added = new.map(|(_, counts)| counts).unwrap_or_default();
    if removed != added {
        let (namespace, _) = split_stored(stored)?;
        let usage = usage(txn, namespace)?;
        store_usage(txn, namespace, replaced(usage, removed, added))?;
    }
    let mut expiry = txn.open(KV_EXPIRY)?;
    if let Some((Some(at), _)) = previous {
        expiry.remove((at, stored))?;
    }
    let mut table = txn.open(KV)?;
    match entry {
        Some(bytes) => {
            table.insert(stored, bytes)?;
            if let Some((Some(at), _)) = new {
                expiry.insert((at, stored), ())?;
            }
        }
        None => table.remove(stored)?,
    }
    Ok(previous.is_some_and(|(expires, _)| expires.is_none_or(|at| at > now)))
}

/// Removes up to `max` keys whose TTL has passed.
fn sweep(txn: &Tx, now: u64, max: usize) -> Result<(), BrokerError> {
    let due: Vec<String> = {
        let expiry = txn.open(KV_EXPIRY)?;
        let mut due = Vec::new();
        for entry in expiry.range((0u64, "")..).map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            let (at, stored) = key.value();
            if at > now || due.len() >= max {
                break;
            }
            due.push(stored.to_string());
        }
        due
    };
    for stored in due {
        write_entry(txn, &stored, None, now)?;
    }
    Ok(())
}

/// Writes `entry` (stored form, of a value of `size` bytes) at `key` of
/// `space`, unless the space's quota refuses it.
fn admit_and_write(
    txn: &Tx,
    space: &Space,
    key: &str,
    entry: &[u8],
    size: usize,
    now: u64,
) -> Result<Result<(), KvError>, BrokerError> {
    let stored = space.stored_key(key);
    if let Space::Plugin { namespace, quota } = space {
        let added = KvUsage {
            keys: 1,
            bytes: entry_bytes(key, size),
        };
        let mut swept = false;
        loop {
            let current = usage(txn, namespace)?;
            let removed = entry_meta(txn, &stored)?
                .map(|(_, counts)| counts)
                .unwrap_or_default();
            match quota.admit(current, replaced(current, removed, added)) {
                Ok(()) => break,
                // Keys whose TTL passed but that were not swept yet still
                // count: sweep them all before refusing.
                Err(_) if !swept => {
                    sweep(txn, now, usize::MAX)?;
                    swept = true;
                }
                Err(refused) => return Ok(Err(refused)),
            }
        }
    }
    write_entry(txn, &stored, Some(entry), now)?;
    Ok(Ok(()))
}

/// A [`KvSpace`] the writer's job can own.
enum Space {
    Host,
    Plugin { namespace: String, quota: KvQuota },
}

impl Space {
    fn of(space: KvSpace<'_>) -> Space {
        match space {
            KvSpace::Host => Space::Host,
            KvSpace::Plugin { namespace, quota } => Space::Plugin {
                namespace: namespace.to_string(),
                quota,
            },
        }
    }

    fn stored_key(&self, key: &str) -> String {
        self.borrowed().stored_key(key)
    }

    fn borrowed(&self) -> KvSpace<'_> {
        match self {
            Space::Host => KvSpace::Host,
            Space::Plugin { namespace, quota } => KvSpace::Plugin {
                namespace,
                quota: *quota,
            },
        }
    }

    fn accounted(&self) -> bool {
        matches!(self, Space::Plugin { .. })
    }
}

fn expiry_after(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| now_ms().saturating_add(ttl_ms(ttl)))
}

#[async_trait::async_trait]
impl KeyValue for EmbeddedBroker {
    async fn kv_get(&self, space: KvSpace<'_>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check(space, key, None)?;
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(KV).map_err(storage)?;
        let now = now_ms();
        let value = with_entry(&table, &space.stored_key(key), |entry| {
            Ok(entry.live(now).then(|| entry.value.into_owned()))
        })?;
        Ok(value.flatten())
    }

    async fn kv_set(
        &self,
        space: KvSpace<'_>,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        check(space, key, Some(value))?;
        let space = Space::of(space);
        let (key, size) = (key.to_string(), value.len());
        let entry = encode_entry(value, expiry_after(ttl), space.accounted());
        self.write(true, move |txn, _| {
            let now = now_ms();
            sweep(txn, now, SWEEP_PER_WRITE)?;
            Ok((admit_and_write(txn, &space, &key, &entry, size, now)?, None))
        })
        .await?
    }

    async fn kv_incr(&self, space: KvSpace<'_>, key: &str, delta: i64) -> Result<i64, KvError> {
        check(space, key, None)?;
        let space = Space::of(space);
        let key = key.to_string();
        self.write(true, move |txn, _| {
            let now = now_ms();
            sweep(txn, now, SWEEP_PER_WRITE)?;
            let stored = space.stored_key(&key);
            // (value, expiry) of the live entry, if any.
            let current = with_entry(&*txn.open(KV)?, &stored, |e| {
                Ok(e.live(now)
                    .then(|| (incremented(Some(e.value.as_ref()), delta), e.expires_ms)))
            })?
            .flatten();
            let (next, expires_ms) = match current {
                Some((next, expires_ms)) => (next, expires_ms),
                None => (incremented(None, delta), None),
            };
            let next = match next {
                Ok(next) => next,
                Err(error) => return Ok((Err(error), None)),
            };
            let value = next.to_string().into_bytes();
            let entry = encode_entry(&value, expires_ms, space.accounted());
            let written = admit_and_write(txn, &space, &key, &entry, value.len(), now)?;
            Ok((written.map(|()| next), None))
        })
        .await?
    }

    async fn kv_delete(&self, space: KvSpace<'_>, key: &str) -> Result<bool, KvError> {
        check(space, key, None)?;
        let stored = space.stored_key(key);
        Ok(self
            .write(true, move |txn, _| {
                let now = now_ms();
                sweep(txn, now, SWEEP_PER_WRITE)?;
                Ok((write_entry(txn, &stored, None, now)?, None))
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_its_value_and_a_few_bytes() {
        let value = vec![0xA5; 1 << 20];
        let stored = encode_entry(&value, Some(42), true);
        assert_eq!(stored.len(), value.len() + 10);
        let entry = decode_entry(&stored).unwrap();
        assert_eq!(
            (entry.value.as_ref(), entry.expires_ms, entry.accounted),
            (&value[..], Some(42), true)
        );
        let stored = encode_entry(b"v", None, false);
        assert_eq!(stored, [COMPACT, 0, b'v']);
        let entry = decode_entry(&stored).unwrap();
        assert_eq!((entry.expires_ms, entry.accounted), (None, false));
        assert!(decode_entry(&[COMPACT, EXPIRES, 1, 2]).is_err());
        assert!(decode_entry(b"\x07junk").is_err());
    }

    /// What versions before quotas stored: a JSON object whose value is an
    /// array of numbers.
    fn legacy(value: &[u8], expires_ms: Option<u64>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "value": value, "expires_ms": expires_ms }))
            .unwrap()
    }

    #[tokio::test]
    async fn entries_stored_as_json_by_older_versions_still_read_and_count_once_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let broker = EmbeddedBroker::open(dir.path(), BrokerConfig::default())
            .await
            .unwrap();
        let entries = [
            ("p/old", legacy(b"old value", None)),
            ("p/expired", legacy(b"gone", Some(1))),
            ("p/count", legacy(b"41", Some(u64::MAX))),
            (
                "hippo:schedule:nightly:slot",
                legacy(b"1700000000000", None),
            ),
        ];
        broker
            .write(true, move |txn, _| {
                let mut table = txn.open(KV)?;
                for (key, value) in &entries {
                    table.insert(*key, value.as_slice())?;
                }
                Ok(((), None))
            })
            .await
            .unwrap();
        let two = KvSpace::Plugin {
            namespace: "p",
            quota: KvQuota {
                max_keys: 2,
                max_bytes: 100,
            },
        };
        assert_eq!(
            broker.kv_get(two, "old").await.unwrap().as_deref(),
            Some(&b"old value"[..])
        );
        assert_eq!(broker.kv_get(two, "expired").await.unwrap(), None);
        assert_eq!(
            broker
                .kv_get(KvSpace::Host, "hippo:schedule:nightly:slot")
                .await
                .unwrap()
                .as_deref(),
            Some(&b"1700000000000"[..])
        );
        // Not counted until rewritten: both keys of the quota are free.
        broker.kv_set(two, "a", b"v", None).await.unwrap();
        assert_eq!(broker.kv_incr(two, "count", 1).await.unwrap(), 42);
        assert!(matches!(
            broker.kv_set(two, "b", b"v", None).await,
            Err(KvError::QuotaExceeded { used: 2, .. })
        ));
        // Deleting an uncounted entry gives back nothing it did not take.
        assert!(broker.kv_delete(two, "old").await.unwrap());
        assert!(matches!(
            broker.kv_set(two, "b", b"v", None).await,
            Err(KvError::QuotaExceeded { used: 2, .. })
        ));
        // The rewritten entry is compact, counted, and kept its TTL.
        let txn = broker.db.begin_read().unwrap();
        let table = txn.open_table(KV).unwrap();
        let stored = table.get("p/count").unwrap().unwrap();
        let entry = decode_entry(stored.value()).unwrap();
        assert_eq!(stored.value()[0], COMPACT);
        assert_eq!(
            (entry.value.as_ref(), entry.expires_ms, entry.accounted),
            (&b"42"[..], Some(u64::MAX), true)
        );
    }
}
