//! The key-value store of the embedded broker: two tables in the same redb
//! file, written through the group-commit writer like everything else.

use super::*;
use crate::broker::kv::{KeyValue, KvError, check, incremented};

/// Key -> [`KvEntry`] (JSON).
pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// (expiry ms, key) -> (): keys with a TTL, soonest first, swept on writes.
pub(super) const KV_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("kv_expiry");

/// Expired keys one write removes on its way, so the sweep stays cheap.
const SWEEP_PER_WRITE: usize = 64;

#[derive(Debug, Serialize, Deserialize)]
struct KvEntry {
    value: Vec<u8>,
    expires_ms: Option<u64>,
}

impl KvEntry {
    fn live(self, now: u64) -> Option<KvEntry> {
        match self.expires_ms {
            Some(at) if at <= now => None,
            _ => Some(self),
        }
    }
}

fn read_entry(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
    now: u64,
) -> Result<Option<KvEntry>, BrokerError> {
    let Some(bytes) = table.get(key).map_err(storage)? else {
        return Ok(None);
    };
    let entry: KvEntry = serde_json::from_slice(bytes.value()).map_err(corrupt)?;
    Ok(entry.live(now))
}

/// Replaces `key`'s entry (or removes it), keeping the expiry index in step.
fn write_entry(txn: &Tx, key: &str, entry: Option<&KvEntry>) -> Result<bool, BrokerError> {
    let mut table = txn.open(KV)?;
    let mut expiry = txn.open(KV_EXPIRY)?;
    let previous = match table.get(key).map_err(storage)? {
        Some(bytes) => Some(serde_json::from_slice::<KvEntry>(bytes.value()).map_err(corrupt)?),
        None => None,
    };
    if let Some(at) = previous.as_ref().and_then(|p| p.expires_ms) {
        expiry.remove((at, key))?;
    }
    match entry {
        Some(entry) => {
            let bytes = serde_json::to_vec(entry).map_err(corrupt)?;
            table.insert(key, bytes.as_slice())?;
            if let Some(at) = entry.expires_ms {
                expiry.insert((at, key), ())?;
            }
        }
        None => {
            table.remove(key)?;
        }
    }
    Ok(previous.is_some_and(|p| p.live(now_ms()).is_some()))
}

/// Removes a few keys whose TTL has passed.
fn sweep(txn: &Tx, now: u64) -> Result<(), BrokerError> {
    let due: Vec<(u64, String)> = {
        let expiry = txn.open(KV_EXPIRY)?;
        let mut due = Vec::new();
        for entry in expiry.range((0u64, "")..).map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            let (at, name) = key.value();
            if at > now || due.len() >= SWEEP_PER_WRITE {
                break;
            }
            due.push((at, name.to_string()));
        }
        due
    };
    let mut table = txn.open(KV)?;
    let mut expiry = txn.open(KV_EXPIRY)?;
    for (at, name) in due {
        expiry.remove((at, name.as_str()))?;
        table.remove(name.as_str())?;
    }
    Ok(())
}

fn expiry_after(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| now_ms().saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64))
}

#[async_trait::async_trait]
impl KeyValue for EmbeddedBroker {
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check(key, None)?;
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(KV).map_err(storage)?;
        Ok(read_entry(&table, key, now_ms())?.map(|entry| entry.value))
    }

    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        check(key, Some(value))?;
        let key = key.to_string();
        let entry = KvEntry {
            value: value.to_vec(),
            expires_ms: expiry_after(ttl),
        };
        Ok(self
            .write(true, move |txn, _| {
                sweep(txn, now_ms())?;
                write_entry(txn, &key, Some(&entry))?;
                Ok(((), None))
            })
            .await?)
    }

    async fn kv_incr(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        check(key, None)?;
        let key = key.to_string();
        self.write(true, move |txn, _| {
            let now = now_ms();
            sweep(txn, now)?;
            let current = read_entry(&*txn.open(KV)?, &key, now)?;
            let next = match incremented(current.as_ref().map(|e| e.value.as_slice()), delta) {
                Ok(next) => next,
                Err(error) => return Ok((Err(error), None)),
            };
            let entry = KvEntry {
                value: next.to_string().into_bytes(),
                expires_ms: current.and_then(|e| e.expires_ms),
            };
            write_entry(txn, &key, Some(&entry))?;
            Ok((Ok(next), None))
        })
        .await?
    }

    async fn kv_delete(&self, key: &str) -> Result<bool, KvError> {
        check(key, None)?;
        let key = key.to_string();
        Ok(self
            .write(true, move |txn, _| {
                sweep(txn, now_ms())?;
                Ok((write_entry(txn, &key, None)?, None))
            })
            .await?)
    }
}
