//! What the scheduler remembers, in the broker's key-value store (so every
//! process sharing the broker sees it, and it survives restarts):
//!
//! - `hippo:schedule:{name}:slot`: the latest fire time (Unix ms, decimal)
//!   that a scheduler submitted; a restarted scheduler fires only slots
//!   after it (and at most the latest of those);
//! - `hippo:schedule:{name}:last`: the latest fire, scheduled or by hand
//!   ([`LastFire`], JSON), for listings.
//!
//! These are the host's own keys ([`KvSpace::Host`]), with no quota. Plugin
//! keys are `{plugin}/{key}` and plugin names have no `:`, so these keys
//! cannot meet a plugin's.

use hippo_broker::{KeyValue, KvError, KvSpace};
use serde::{Deserialize, Serialize};

/// How a fire came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Its cron expression named the time.
    Schedule,
    /// Someone ran it (`POST /api/v1/tasks/scheduled/{name}/run`).
    Manual,
}

impl Trigger {
    /// `schedule` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
}

/// The latest fire of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFire {
    /// When the task was submitted (Unix ms).
    pub at_ms: u64,
    /// The task submitted.
    pub task_id: String,
    /// Scheduled or by hand.
    pub trigger: Trigger,
    /// The fire time it was for, when scheduled (Unix ms).
    pub slot_ms: Option<u64>,
}

fn key(name: &str, what: &str) -> String {
    format!("hippo:schedule:{name}:{what}")
}

/// The latest slot a scheduler submitted for entry `name`.
pub(super) async fn last_slot(kv: &dyn KeyValue, name: &str) -> Result<Option<u64>, KvError> {
    let value = kv.kv_get(KvSpace::Host, &key(name, "slot")).await?;
    Ok(value.and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse().ok()))
}

/// Records `slot` as submitted, unless a later one already is: schedulers
/// on other processes record the same slots, and may be behind.
pub(super) async fn advance_slot(kv: &dyn KeyValue, name: &str, slot: u64) -> Result<(), KvError> {
    if last_slot(kv, name).await?.is_some_and(|last| last >= slot) {
        return Ok(());
    }
    kv.kv_set(
        KvSpace::Host,
        &key(name, "slot"),
        slot.to_string().as_bytes(),
        None,
    )
    .await
}

/// The latest fire of entry `name` (none when the record is unreadable).
pub(super) async fn last_fire(kv: &dyn KeyValue, name: &str) -> Result<Option<LastFire>, KvError> {
    let value = kv.kv_get(KvSpace::Host, &key(name, "last")).await?;
    Ok(value.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Records the latest fire of entry `name`.
pub(super) async fn record_fire(
    kv: &dyn KeyValue,
    name: &str,
    fire: &LastFire,
) -> Result<(), KvError> {
    let bytes = serde_json::to_vec(fire).expect("a LastFire serializes");
    kv.kv_set(KvSpace::Host, &key(name, "last"), &bytes, None)
        .await
}
