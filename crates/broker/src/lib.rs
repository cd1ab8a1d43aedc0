//! Queues that never lose a task: the [`Broker`] trait and its two backends,
//! [`EmbeddedBroker`] (durable on local disk, the default) and
//! [`RedisBroker`] (Redis Streams, for many processes).
//!
//! A broker has five roles, a trait each, implemented by each backend in a
//! file of its own: [`TaskQueue`] (submit, lease, settle, revoke, purge,
//! housekeeping), [`Inspection`] (records, figures, the event log),
//! [`History`] (finished tasks and their logs, long after their results
//! expired), [`DeadLetters`] and [`WorkerRegistry`]. [`Broker`] is all five
//! plus the key-value store, which the runtime gets on its own as a
//! [`KeyValue`].
//!
//! Both pass one conformance suite (`tests/conformance.rs`). The
//! semantics they share:
//! - a submission is durable when `submit` returns;
//! - a worker takes tasks under a **lease** that its heartbeat extends; a
//!   lease that runs out (dead or frozen worker) goes back to the queue and
//!   is handed out again within seconds;
//! - every hand-out bumps the task's **generation**, and only the holder of
//!   the current generation can settle the task, so a stale worker can
//!   never overwrite a newer result;
//! - tasks are acknowledged when they settle (acks late);
//! - delayed tasks (ETA, countdown, retry backoff) are stored durably and
//!   released on time; revocations are stored durably;
//! - every state change is appended to a bounded event log in the broker;
//! - finished tasks' records expire after `result_expires`; their history
//!   entries and logs after the [`HistoryRetention`], written in the same
//!   atomic step as the change they record.
//!
//! Each backend also keeps the plugins' key-value store (`hippo-kv`'s
//! [`KeyValue`]) in its own storage. A broker knows what a task carries
//! (`hippo-task`), never how it runs: this crate must not depend on the
//! runtime, the models or the vector store.

mod embedded;
mod history;
mod model;
mod output;
mod redis;

pub use embedded::EmbeddedBroker;
pub use hippo_kv::{KeyValue, KvError, KvQuota, KvSpace, PluginKv};
pub use history::{
    Attempt, AttemptLog, HistoryCursor, HistoryEntry, HistoryPage, HistoryQuery, HistoryRetention,
    INPUT_KEPT_BYTES, MAX_SCANNED, OUTPUT_KEPT_BYTES,
};
pub use model::*;
pub use output::{OutputError, TaskOutput};
pub use redis::RedisBroker;

use std::sync::Arc;
use std::time::Duration;

/// Errors of a broker backend.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The backing store failed (disk, Redis connection, ...): the
    /// backend's own error, shared so the error stays `Clone`.
    #[error("broker storage: {0}")]
    Storage(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A stored record could not be decoded.
    #[error("corrupt broker record: {0}")]
    Corrupt(String),
    /// The request names a queue the broker does not serve.
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    /// No task with this id.
    #[error("unknown task {0:?}")]
    UnknownTask(String),
}

impl BrokerError {
    /// A [`BrokerError::Storage`] caused by `source` (an error, or a message).
    pub fn storage(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BrokerError::Storage(Arc::from(source.into()))
    }
}

impl From<BrokerError> for KvError {
    fn from(error: BrokerError) -> Self {
        KvError::Backend(Box::new(error))
    }
}

/// Settings shared by both backends.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Queues in priority order: a worker consuming several drains earlier ones first.
    pub queues: Vec<String>,
    /// How long a finished task's record (its result) is kept.
    pub result_expires: Duration,
    /// How long an idempotency key is remembered.
    pub idempotency_window: Duration,
    /// Events kept in the event log (older ones are dropped).
    pub event_log_capacity: u64,
    /// How long and how many finished tasks the history keeps.
    pub history: HistoryRetention,
    /// When the embedded broker's writes reach the disk. (A Redis server's
    /// are its own `appendfsync` setting.)
    pub journal_sync: JournalSync,
}

/// When the embedded broker syncs its journal to disk. Either way a write
/// is in the journal before it is answered, so it survives a crash of the
/// process; the choice is what a crash of the machine (or a power cut) may
/// take, as with Redis' `appendfsync always` and `everysec`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JournalSync {
    /// Before answering each submission, settlement and other change a
    /// caller relies on (leases and heartbeats excepted: a lost lease means
    /// a redelivery, which leases allow for). Nothing answered is lost.
    Always,
    /// At least once a second. A machine crash may lose the last second.
    /// The default: Redis' default `everysec`, and a sync costs more than
    /// everything else a task needs from the broker.
    #[default]
    EverySecond,
}

impl std::str::FromStr for JournalSync {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "always" => Ok(JournalSync::Always),
            "every-second" | "everysec" => Ok(JournalSync::EverySecond),
            other => Err(format!(
                "unknown journal sync {other:?}: use `always` or `every-second`"
            )),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            // The reference's queues, memory operations first.
            queues: ["memory_ops", "default", "scheduled", "background"]
                .map(String::from)
                .to_vec(),
            // The reference's `result_expires`.
            result_expires: Duration::from_secs(3600),
            idempotency_window: Duration::from_secs(24 * 3600),
            event_log_capacity: 100_000,
            history: HistoryRetention::default(),
            journal_sync: JournalSync::default(),
        }
    }
}

/// Queueing: what producers and workers do with tasks. Submit; reserve
/// under a lease and keep it; report, settle or hand back; revoke and
/// purge; and the housekeeping that moves due and expired tasks.
#[async_trait::async_trait]
pub trait TaskQueue: Send + Sync + std::fmt::Debug + 'static {
    /// The settings the broker runs with.
    fn config(&self) -> &BrokerConfig;

    /// Accepts a task durably: ready now, or scheduled for its ETA. With an
    /// idempotency key seen inside the window, returns the earlier task's id.
    async fn submit(&self, message: TaskMessage) -> Result<Submitted, BrokerError>;

    /// Takes up to `max` ready tasks from `queues` (earlier queues and
    /// higher bands first) under a lease of `lease`, waiting up to `wait`
    /// for one to arrive. Expired or revoked tasks are settled on the way
    /// and not returned.
    async fn reserve(
        &self,
        consumer: &str,
        queues: &[String],
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BrokerError>;

    /// Ends `consumer`'s wait for work on `queues` and returns the tasks
    /// handed to it since its last `reserve`, which it now holds under
    /// their leases. A backend may keep a consumer registered as waiting
    /// after `reserve` returns (until `wait` passes or it brought `max`
    /// tasks), so a consumer that stops reserving calls this; the default
    /// is for backends whose waits end with the call.
    async fn stop_waiting(
        &self,
        consumer: &str,
        queues: &[String],
    ) -> Result<Vec<Delivery>, BrokerError> {
        let _ = (consumer, queues);
        Ok(Vec::new())
    }

    /// Extends the lease of a delivery the caller holds.
    async fn heartbeat(
        &self,
        delivery: &Delivery,
        lease: Duration,
    ) -> Result<LeaseStatus, BrokerError>;

    /// Records that the task started on `worker`.
    async fn mark_started(
        &self,
        delivery: &Delivery,
        worker: &str,
    ) -> Result<LeaseStatus, BrokerError>;

    /// Records a progress report.
    async fn report_progress(
        &self,
        delivery: &Delivery,
        progress: &hippo_task::Progress,
    ) -> Result<LeaseStatus, BrokerError>;

    /// Ends a delivery. Returns false, and changes nothing, when the caller's
    /// lease was lost (the fence against stale workers).
    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: Settlement,
    ) -> Result<bool, BrokerError>;

    /// Hands a delivery back to its queue untouched (graceful shutdown).
    async fn release(&self, delivery: &Delivery) -> Result<bool, BrokerError>;

    /// Revokes a task: a queued one never starts; a running one is
    /// interrupted by its worker. Stored durably.
    async fn revoke(&self, task_id: &str) -> Result<RevokeOutcome, BrokerError>;

    /// A live feed of revoked task ids, for workers to interrupt running
    /// tasks at once. Heartbeats also report revocations, so a missed
    /// message delays the stop by one heartbeat at most.
    fn revocations(&self) -> tokio::sync::broadcast::Receiver<String>;

    /// Removes every ready task of `queue` (they become REVOKED); returns how many.
    async fn purge(&self, queue: &str) -> Result<u64, BrokerError>;

    /// Housekeeping that any worker may run at any time, concurrently with
    /// others: releases due scheduled tasks, returns expired leases to their
    /// queues, and drops expired records. Returns how many tasks it moved.
    async fn maintain(&self) -> Result<u64, BrokerError>;
}

/// Inspection: task records (and waiting for one to finish), queue
/// figures, scheduled and leased tasks, and the event log.
#[async_trait::async_trait]
pub trait Inspection: Send + Sync + 'static {
    /// The task's record, if it exists and has not expired.
    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, BrokerError>;

    /// Waits (without polling) until the task is finished or `timeout`
    /// passes; returns its record either way (`None`: unknown task).
    async fn wait(
        &self,
        task_id: &str,
        timeout: Duration,
    ) -> Result<Option<TaskRecord>, BrokerError>;

    /// Counts per queue, in the configured order.
    async fn queue_stats(&self) -> Result<Vec<QueueStats>, BrokerError>;

    /// Tasks waiting for their ETA, countdown or retry time, soonest first.
    async fn scheduled(&self, limit: usize) -> Result<Vec<TaskRecord>, BrokerError>;

    /// Tasks currently leased, with the consumer holding each.
    async fn reserved(&self) -> Result<Vec<Delivery>, BrokerError>;

    /// Events after `after` (a `seq`), oldest first, at most `limit`.
    async fn events(&self, after: Option<u64>, limit: usize) -> Result<Vec<Event>, BrokerError>;

    /// The `seq` of the newest event (0 before the first): a reader that
    /// wants only what happens from now on starts after it.
    async fn last_event(&self) -> Result<u64, BrokerError>;
}

/// History: finished tasks (and tasks waiting to retry), newest change
/// first, with every attempt's log; see [`HistoryRetention`] for how long.
#[async_trait::async_trait]
pub trait History: Send + Sync + 'static {
    /// A page of the history: entries passing `query`'s filters, newest
    /// change first.
    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, BrokerError>;

    /// One task's entry (`None`: unknown, still queued or running, or pruned).
    async fn history_entry(&self, task_id: &str) -> Result<Option<HistoryEntry>, BrokerError>;

    /// The logs of a task's attempts that logged anything, the first first.
    async fn task_log(&self, task_id: &str) -> Result<Vec<AttemptLog>, BrokerError>;
}

/// Dead letters: tasks that failed for good, listed, replayed or purged.
#[async_trait::async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Tasks that failed for good, newest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<TaskRecord>, BrokerError>;

    /// Submits a dead-lettered task again as a first attempt; returns the new task id.
    async fn replay_dead_letter(&self, task_id: &str) -> Result<Option<String>, BrokerError>;

    /// Forgets every dead letter; returns how many.
    async fn purge_dead_letters(&self) -> Result<u64, BrokerError>;

    /// How many dead letters there are.
    async fn dead_letter_count(&self) -> Result<u64, BrokerError>;
}

/// The worker registry: each worker's heartbeat, expiring unless renewed.
#[async_trait::async_trait]
pub trait WorkerRegistry: Send + Sync + 'static {
    /// Stores a worker's heartbeat (it expires if not renewed).
    async fn record_worker(
        &self,
        heartbeat: &WorkerHeartbeat,
        ttl: Duration,
    ) -> Result<(), BrokerError>;

    /// Workers whose heartbeat has not expired.
    async fn workers(&self) -> Result<Vec<WorkerHeartbeat>, BrokerError>;
}

/// A broker backend: every role above, over one storage, and the
/// plugins' key-value store on the same storage. Both backends implement
/// each role; a caller names the roles it uses (`use hippo_broker::{TaskQueue, Inspection}`).
pub trait Broker:
    TaskQueue + Inspection + History + DeadLetters + WorkerRegistry + KeyValue
{
}

impl<B> Broker for B where
    B: TaskQueue + Inspection + History + DeadLetters + WorkerRegistry + KeyValue + ?Sized
{
}

/// A shared broker.
pub type SharedBroker = Arc<dyn Broker>;

#[cfg(test)]
mod error_tests {
    use super::BrokerError;
    use std::error::Error;
    use std::sync::Arc;

    /// Storage errors were flattened to strings: a caller could neither
    /// walk the chain to the backend's error nor tell a broken pipe from a
    /// full disk.
    #[test]
    fn a_storage_error_was_a_string_and_now_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the pipe broke");
        let error = BrokerError::storage(io);
        assert_eq!(error.to_string(), "broker storage: the pipe broke");
        let source = error.source().expect("the backend's error is the source");
        let shared = source
            .downcast_ref::<Arc<dyn Error + Send + Sync>>()
            .expect("shared, so the error stays Clone");
        let io = shared
            .downcast_ref::<std::io::Error>()
            .expect("the backend's own type");
        assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
        assert!(error.clone().source().is_some());
    }
}
