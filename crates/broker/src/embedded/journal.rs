//! The write-ahead journal: what makes a commit durable without redb's
//! own durable commit.
//!
//! A durable redb commit rewrites and syncs every B-tree page a group
//! touched: 0.3-0.9 ms here, twice per task (submission and settlement).
//! Instead, every write transaction records the changes it makes (the
//! after-image of each key it inserts or removes) through [`Tx`]; the
//! writer appends them to `broker.journal` as one record (a
//! [`JournalFile`]) and syncs that one sequential write (about 0.1 ms)
//! before it answers, or once a second (see [`JournalSync`]), then commits
//! to redb without a sync. Every few seconds, when the journal
//! grows large, and at shutdown, a durable redb commit (a checkpoint)
//! makes the journal redundant and it is emptied.
//!
//! After a crash redb comes back at its last durable commit and
//! [`Journal::recover`] replays every whole record in order. A replayed
//! change sets a key to the value it had after that change, so replaying
//! records a checkpoint already holds (a crash between the checkpoint and
//! emptying the journal) ends in the same state. A torn last record (a
//! crash in the middle of an append) is dropped: nobody was answered for it.

use super::history::{HISTORY, HISTORY_INDEX, HISTORY_LOGS};
use super::kv::{KV, KV_EXPIRY, KV_USAGE};
use super::tables::*;
use super::{BrokerError, JournalSync, corrupt, storage};
use hippo_journal::JournalFile;
use redb::{Database, Durability, Key, ReadableTable, TableDefinition, TableHandle, Value};
use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

/// Journal size after which the writer checkpoints: bounds the replay after
/// a crash and redb's chain of unsynced commits.
const CHECKPOINT_BYTES: u64 = 16 << 20;
/// Longest time between checkpoints while writes come in.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// Longest time an appended record stays unsynced under
/// [`JournalSync::EverySecond`]; also how often an idle writer looks.
pub(super) const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Every table of the broker, with its types: `create_tables` opens each in
/// a new database and `apply` replays a journaled change into it.
macro_rules! with_tables {
    ($($table:ident),* $(,)?) => {
        /// Creates every table, so that readers never miss one.
        pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), BrokerError> {
            $( txn.open_table($table).map_err(storage)?; )*
            Ok(())
        }

        fn apply(
            txn: &redb::WriteTransaction,
            table: &str,
            key: &[u8],
            value: Option<&[u8]>,
        ) -> Result<(), BrokerError> {
            $( if table == $table.name() { return put(txn, $table, key, value); } )*
            Err(corrupt(format!("journal: unknown table {table}")))
        }
    };
}

with_tables!(
    TASKS,
    READY,
    LEASES,
    DELAYED,
    EXPIRY,
    IDEMPOTENCY,
    DEAD,
    EVENTS,
    WORKERS,
    COUNTERS,
    KV,
    KV_EXPIRY,
    KV_USAGE,
    HISTORY,
    HISTORY_INDEX,
    HISTORY_LOGS,
);

fn put<K: Key + 'static, V: Value + 'static>(
    txn: &redb::WriteTransaction,
    definition: TableDefinition<K, V>,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), BrokerError> {
    let mut table = txn.open_table(definition).map_err(storage)?;
    match value {
        Some(value) => table.insert(K::from_bytes(key), V::from_bytes(value)),
        None => table.remove(K::from_bytes(key)),
    }
    .map_err(storage)?;
    Ok(())
}

/// A write transaction that records every change made through it. The
/// writer's jobs get this, never the bare transaction, so no change can
/// miss the journal.
pub(super) struct Tx<'a> {
    txn: &'a redb::WriteTransaction,
    changes: RefCell<Vec<u8>>,
    open: OpenTables<'a>,
    live: &'a RefCell<LiveTasks>,
}

impl<'a> Tx<'a> {
    pub(super) fn new(txn: &'a redb::WriteTransaction, live: &'a RefCell<LiveTasks>) -> Self {
        Tx {
            txn,
            changes: RefCell::default(),
            open: OpenTables::default(),
            live,
        }
    }

    /// The writer's decoded live tasks (see [`LiveTasks`]).
    pub(super) fn live(&self) -> std::cell::RefMut<'_, LiveTasks> {
        self.live.borrow_mut()
    }

    /// Opens a table for reading and recorded writing. It stays open until
    /// the transaction ends (see [`OpenTables`]).
    pub(super) fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<'static, K, V>,
    ) -> Result<Table<'_, 'a, K, V>, BrokerError>
    where
        OpenTables<'a>: OpenOf<'a, K, V>,
    {
        let open = self.open.of();
        let kept = {
            let mut open = open.borrow_mut();
            let at = open
                .iter()
                .position(|(kept, _)| kept.name() == definition.name());
            at.map(|at| open.swap_remove(at).1)
        };
        let inner = match kept {
            Some(table) => table,
            None => self.txn.open_table(definition).map_err(storage)?,
        };
        Ok(Table {
            inner: Some(inner),
            definition,
            open,
            changes: &self.changes,
        })
    }

    /// The changes recorded so far, encoded for a journal record.
    pub(super) fn into_changes(self) -> Vec<u8> {
        self.changes.into_inner()
    }
}

/// The tables a transaction opened, by key and value types, each with its
/// name. Opening a redb table looks it up in the table tree and closing it
/// stages its new root: a tenth of the writer's time while every step of
/// every operation opened its own (`bench/RESULTS.md`). Kept open, a group
/// commit opens each table once.
macro_rules! open_tables {
    ($($field:ident: $key:ty => $value:ty),* $(,)?) => {
        #[derive(Default)]
        pub(super) struct OpenTables<'a> {
            $( $field: Kept<'a, $key, $value>, )*
        }

        $(
            impl<'a> OpenOf<'a, $key, $value> for OpenTables<'a> {
                fn of(&self) -> &Kept<'a, $key, $value> {
                    &self.$field
                }
            }
        )*
    };
}

open_tables!(
    by_name: &'static str => &'static [u8],
    queued: (&'static str, u8, u64) => &'static str,
    by_time: (u64, &'static str) => (),
    by_seq: u64 => &'static [u8],
    counters: &'static str => u64,
    faceted: (&'static str, u64, &'static str) => (),
);

/// The open tables of one key and value type, each with its definition.
pub(super) type Kept<'a, K, V> =
    RefCell<Vec<(TableDefinition<'static, K, V>, redb::Table<'a, K, V>)>>;

/// The open tables of one key and value type.
pub(super) trait OpenOf<'a, K: Key + 'static, V: Value + 'static> {
    fn of(&self) -> &Kept<'a, K, V>;
}

/// A table of a [`Tx`]: reads through `Deref`, writes recorded. Dropping it
/// hands it back to the transaction's [`OpenTables`].
pub(super) struct Table<'t, 'a, K: Key + 'static, V: Value + 'static> {
    /// Present until dropped.
    inner: Option<redb::Table<'a, K, V>>,
    /// Names the table in each recorded change.
    definition: TableDefinition<'static, K, V>,
    open: &'t Kept<'a, K, V>,
    changes: &'t RefCell<Vec<u8>>,
}

impl<'a, K: Key + 'static, V: Value + 'static> std::ops::Deref for Table<'_, 'a, K, V> {
    type Target = redb::Table<'a, K, V>;

    fn deref(&self) -> &Self::Target {
        self.inner.as_ref().expect("present until dropped")
    }
}

impl<K: Key + 'static, V: Value + 'static> Drop for Table<'_, '_, K, V> {
    fn drop(&mut self) {
        if let Some(table) = self.inner.take() {
            self.open.borrow_mut().push((self.definition, table));
        }
    }
}

impl<'a, K: Key + 'static, V: Value + 'static> Table<'_, 'a, K, V> {
    fn table(&mut self) -> &mut redb::Table<'a, K, V> {
        self.inner.as_mut().expect("present until dropped")
    }

    fn record(&self, key: &[u8], value: Option<&[u8]>) {
        let name = self.definition.name();
        let mut changes = self.changes.borrow_mut();
        changes.push(name.len() as u8);
        changes.extend_from_slice(name.as_bytes());
        changes.extend_from_slice(&(key.len() as u32).to_le_bytes());
        changes.extend_from_slice(key);
        match value {
            Some(value) => {
                changes.push(1);
                changes.extend_from_slice(&(value.len() as u32).to_le_bytes());
                changes.extend_from_slice(value);
            }
            None => changes.push(0),
        }
    }

    pub(super) fn insert<'k, 'v>(
        &mut self,
        key: impl std::borrow::Borrow<K::SelfType<'k>>,
        value: impl std::borrow::Borrow<V::SelfType<'v>>,
    ) -> Result<(), BrokerError> {
        self.record(
            K::as_bytes(key.borrow()).as_ref(),
            Some(V::as_bytes(value.borrow()).as_ref()),
        );
        self.table().insert(key, value).map_err(storage)?;
        Ok(())
    }

    pub(super) fn remove<'k>(
        &mut self,
        key: impl std::borrow::Borrow<K::SelfType<'k>>,
    ) -> Result<(), BrokerError> {
        self.record(K::as_bytes(key.borrow()).as_ref(), None);
        self.table().remove(key).map_err(storage)?;
        Ok(())
    }

    /// Removes every entry `keep` rejects.
    pub(super) fn retain(
        &mut self,
        mut keep: impl for<'f> FnMut(K::SelfType<'f>, V::SelfType<'f>) -> bool,
    ) -> Result<(), BrokerError> {
        let mut doomed = Vec::new();
        for entry in self.iter().map_err(storage)? {
            let (key, value) = entry.map_err(storage)?;
            if !keep(key.value(), value.value()) {
                doomed.push(K::as_bytes(&key.value()).as_ref().to_vec());
            }
        }
        for key in doomed {
            self.remove(K::from_bytes(&key))?;
        }
        Ok(())
    }
}

/// The broker's journal file and when it was last synced and checkpointed.
#[derive(Debug)]
pub(super) struct Journal {
    file: JournalFile,
    policy: JournalSync,
    /// Records appended since the last sync.
    unsynced: bool,
    last_sync: Instant,
    last_checkpoint: Instant,
}

impl Journal {
    /// Opens `path`, replays what it holds into `db` and checkpoints, so
    /// the journal starts empty.
    pub(super) fn recover(
        db: &Database,
        path: &Path,
        policy: JournalSync,
    ) -> Result<Journal, BrokerError> {
        let (file, records) = JournalFile::open(path).map_err(storage)?;
        let mut txn = db.begin_write().map_err(storage)?;
        // The checkpoint below makes it durable: one sync at start-up.
        txn.set_durability(Durability::None).map_err(storage)?;
        create_tables(&txn)?;
        for changes in &records {
            replay(&txn, changes)?;
        }
        txn.commit().map_err(storage)?;
        if !records.is_empty() {
            tracing::info!(records = records.len(), "broker journal replayed");
        }
        let mut journal = Journal {
            file,
            policy,
            unsynced: false,
            last_sync: Instant::now(),
            last_checkpoint: Instant::now(),
        };
        journal.checkpoint(db)?;
        Ok(journal)
    }

    /// Appends one record of changes; synced to disk at once when the
    /// caller relies on them (`durable`) and the policy says so.
    pub(super) fn append(&mut self, changes: &[u8], durable: bool) -> Result<(), BrokerError> {
        let sync = durable && self.policy == JournalSync::Always;
        self.file.append(changes, sync).map_err(storage)?;
        if sync {
            self.synced();
        } else {
            self.unsynced = true;
        }
        Ok(())
    }

    /// Syncs what [`JournalSync::EverySecond`] has left unsynced for a
    /// second or more.
    pub(super) fn sync_if_due(&mut self) -> Result<(), BrokerError> {
        if self.unsynced && self.last_sync.elapsed() >= SYNC_EVERY {
            self.file.sync().map_err(storage)?;
            self.synced();
        }
        Ok(())
    }

    fn synced(&mut self) {
        self.unsynced = false;
        self.last_sync = Instant::now();
    }

    /// Drops the records after `len` (an append whose commit then failed:
    /// nobody was answered for it, and it must not be replayed).
    pub(super) fn truncate_to(&mut self, len: u64) -> Result<(), BrokerError> {
        self.file.truncate(len).map_err(storage)
    }

    /// Bytes of whole records.
    pub(super) fn len(&self) -> u64 {
        self.file.len()
    }

    /// Whether it is time for a checkpoint.
    pub(super) fn wants_checkpoint(&self) -> bool {
        let len = self.file.len();
        len > 0 && (len >= CHECKPOINT_BYTES || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY)
    }

    /// Makes redb durable up to the last commit, then empties the journal.
    pub(super) fn checkpoint(&mut self, db: &Database) -> Result<(), BrokerError> {
        let mut txn = db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        txn.commit().map_err(storage)?;
        self.file.truncate(0).map_err(storage)?;
        self.synced();
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// Applies one record's changes, in order.
fn replay(txn: &redb::WriteTransaction, mut payload: &[u8]) -> Result<(), BrokerError> {
    fn take<'a>(payload: &mut &'a [u8], n: usize) -> Result<&'a [u8], BrokerError> {
        let (head, rest) = payload
            .split_at_checked(n)
            .ok_or_else(|| corrupt("journal: truncated change"))?;
        *payload = rest;
        Ok(head)
    }
    fn length(payload: &mut &[u8]) -> Result<usize, BrokerError> {
        Ok(u32::from_le_bytes(take(payload, 4)?.try_into().expect("4 bytes")) as usize)
    }
    while !payload.is_empty() {
        let name_len = take(&mut payload, 1)?[0] as usize;
        let table = std::str::from_utf8(take(&mut payload, name_len)?).map_err(corrupt)?;
        let key_len = length(&mut payload)?;
        let key = take(&mut payload, key_len)?;
        let value = match take(&mut payload, 1)?[0] {
            0 => None,
            _ => {
                let value_len = length(&mut payload)?;
                Some(take(&mut payload, value_len)?)
            }
        };
        apply(txn, table, key, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::EmbeddedBroker;
    use super::*;
    use crate::{
        BrokerConfig, DeadLetters, Inspection, KeyValue, KvError, KvQuota, KvSpace, LeaseStatus,
        RevokeOutcome, RunMeta, Settlement, TaskMessage, TaskQueue, TaskState,
    };

    /// A plugin's space with room for one key, so a replay that lost the
    /// usage would show.
    const ONE_KEY: KvSpace<'static> = KvSpace::Plugin {
        namespace: "p",
        quota: KvQuota {
            max_keys: 1,
            max_bytes: 100,
        },
    };

    /// The files a process killed now would leave: the journal's frames are
    /// written (in the page cache, where a crash of the process leaves them)
    /// but redb has had no durable commit since the broker opened.
    fn crash_image(from: &Path) -> tempfile::TempDir {
        let image = tempfile::tempdir().unwrap();
        for name in ["broker.redb", "broker.journal"] {
            std::fs::copy(from.join(name), image.path().join(name)).unwrap();
        }
        assert!(
            std::fs::metadata(image.path().join("broker.journal"))
                .unwrap()
                .len()
                > 0,
            "the journal holds the writes, or this test proves nothing"
        );
        image
    }

    fn meta() -> RunMeta {
        RunMeta {
            worker: "w".into(),
            started_ms: 1,
            finished_ms: 2,
            stats: hippo_task::ExecStats {
                fuel_used: None,
                peak_memory_bytes: 0,
                wall_time_us: 1_000,
                soft_limit_passed: false,
            },
            plugin_version: "1".into(),
            log: Default::default(),
        }
    }

    /// Submits six tasks and leaves them in every state a crash can catch.
    /// Returns their ids: two succeeded, one failed to a dead letter, one
    /// leased, one revoked while queued, one ready.
    async fn writes_in_every_state(broker: &EmbeddedBroker) -> Vec<String> {
        let mut ids = Vec::new();
        for n in 0..6 {
            let message = TaskMessage::new("t", "default", serde_json::json!(n));
            ids.push(broker.submit(message).await.unwrap().task_id);
        }
        let queues = ["default".to_string()];
        let lease = Duration::from_secs(60);
        let leased = broker
            .reserve("w", &queues, 4, lease, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(leased.len(), 4);
        for delivery in &leased[..2] {
            let output = crate::TaskOutput::from_value(&serde_json::json!("ok"));
            let settled = broker
                .settle(
                    delivery,
                    Settlement::Success {
                        output,
                        meta: meta(),
                    },
                )
                .await
                .unwrap();
            assert!(settled);
        }
        let failure = hippo_task::TaskFailure::Fatal {
            message: "no".into(),
        };
        let settlement = Settlement::Failure {
            failure,
            dead_letter: true,
            meta: meta(),
        };
        assert!(broker.settle(&leased[2], settlement).await.unwrap());
        assert_eq!(
            broker.heartbeat(&leased[3], lease).await.unwrap(),
            LeaseStatus::Held
        );
        assert_eq!(broker.revoke(&ids[4]).await.unwrap(), RevokeOutcome::Queued);
        broker.kv_set(ONE_KEY, "k", b"v", None).await.unwrap();
        ids
    }

    async fn states(broker: &EmbeddedBroker, ids: &[String]) -> Vec<TaskState> {
        let mut states = Vec::new();
        for id in ids {
            states.push(broker.task(id).await.unwrap().expect("kept").state);
        }
        states
    }

    /// A broker after [`writes_in_every_state`], as a killed process leaves
    /// it: its crash image, the task ids and their states before the crash.
    async fn killed_after_writes() -> (tempfile::TempDir, Vec<String>, Vec<TaskState>) {
        let live = tempfile::tempdir().unwrap();
        let broker = EmbeddedBroker::open(live.path(), BrokerConfig::default())
            .await
            .unwrap();
        let ids = writes_in_every_state(&broker).await;
        let expected = states(&broker, &ids).await;
        (crash_image(live.path()), ids, expected)
    }

    #[tokio::test]
    async fn a_killed_process_loses_no_answered_write() {
        let (image, ids, expected) = killed_after_writes().await;
        assert_eq!(
            expected,
            [
                TaskState::Success,
                TaskState::Success,
                TaskState::Failure,
                TaskState::Received,
                TaskState::Revoked,
                TaskState::Pending,
            ]
        );
        let recovered = EmbeddedBroker::open(image.path(), BrokerConfig::default())
            .await
            .unwrap();
        // The replayed journal was checkpointed and emptied at open.
        assert_eq!(
            std::fs::metadata(image.path().join("broker.journal"))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(states(&recovered, &ids).await, expected);
        assert_eq!(recovered.dead_letters(10).await.unwrap().len(), 1);
        assert_eq!(recovered.reserved().await.unwrap().len(), 1);
        assert_eq!(
            recovered.kv_get(ONE_KEY, "k").await.unwrap(),
            Some(b"v".to_vec())
        );
        // The namespace's usage came back with the key: its one key is taken.
        assert!(matches!(
            recovered.kv_set(ONE_KEY, "k2", b"v", None).await,
            Err(KvError::QuotaExceeded { used: 1, .. })
        ));
        let stats = recovered.queue_stats().await.unwrap();
        let default = stats.iter().find(|s| s.name == "default").unwrap();
        assert_eq!((default.ready, default.reserved), (1, 1));
        // The recovered broker goes on from there: the ready task is next.
        let next = recovered
            .reserve(
                "w2",
                &["default".into()],
                10,
                Duration::from_secs(5),
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].message.id, ids[5]);
    }

    #[tokio::test]
    async fn a_torn_last_record_is_dropped_and_the_rest_replayed() {
        let (image, ids, expected) = killed_after_writes().await;
        // A crash in the middle of an append: a header promising more bytes
        // than made it to the file.
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(image.path().join("broker.journal"))
            .unwrap();
        use std::io::Write;
        journal.write_all(&100u32.to_le_bytes()).unwrap();
        journal.write_all(&[7; 20]).unwrap();
        drop(journal);
        let recovered = EmbeddedBroker::open(image.path(), BrokerConfig::default())
            .await
            .unwrap();
        assert_eq!(states(&recovered, &ids).await, expected);
    }
}
