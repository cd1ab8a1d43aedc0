//! The tables of the embedded broker and the changes every operation is
//! made of, inside one write transaction.

use super::*;

/// Task id -> [`StoredTask`] (JSON).
pub(super) const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// (queue, band, sequence) -> task id: the ready queues, in order.
pub(super) const READY: TableDefinition<(&str, u8, u64), &str> = TableDefinition::new("ready");
/// (lease expiry ms, task id) -> (): leased tasks, soonest expiry first.
pub(super) const LEASES: TableDefinition<(u64, &str), ()> = TableDefinition::new("leases");
/// (due ms, task id) -> (): ETAs, countdowns and retry delays.
pub(super) const DELAYED: TableDefinition<(u64, &str), ()> = TableDefinition::new("delayed");
/// (record expiry ms, task id) -> (): finished tasks, by when they expire.
pub(super) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// Idempotency key -> (task id, expiry ms) (JSON).
pub(super) const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// (sequence, task id) -> (): dead letters, oldest first.
pub(super) const DEAD: TableDefinition<(u64, &str), ()> = TableDefinition::new("dead_letters");
/// Event sequence -> [`Event`] (JSON).
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Worker name -> (heartbeat, expiry ms) (JSON).
pub(super) const WORKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("workers");
/// Counters: next ready, dead-letter and event sequences.
pub(super) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// A task as this backend stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredTask {
    pub(super) record: TaskRecord,
    pub(super) generation: u64,
    /// Set while leased.
    pub(super) lease: Option<Lease>,
    /// Where it waits while ready: its key in `READY`.
    pub(super) ready_seq: Option<u64>,
    /// Where it waits while scheduled: its due time in `DELAYED`.
    pub(super) due_ms: Option<u64>,
    /// When its record expires (finished tasks only).
    pub(super) expires_ms: Option<u64>,
    /// Revoked while leased: the holder must stop.
    pub(super) revoke_requested: bool,
    /// Its key in `DEAD`, when dead-lettered.
    pub(super) dead_seq: Option<u64>,
}

impl StoredTask {
    /// A task just accepted, in no queue yet.
    pub(super) fn pending(message: TaskMessage) -> Self {
        StoredTask {
            record: TaskRecord::pending(message),
            generation: 0,
            lease: None,
            ready_seq: None,
            due_ms: None,
            expires_ms: None,
            revoke_requested: false,
            dead_seq: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Lease {
    pub(super) consumer: String,
    pub(super) expires_ms: u64,
    pub(super) receipt: String,
}

pub(super) fn storage(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BrokerError {
    BrokerError::storage(error)
}

pub(super) fn corrupt(error: impl std::fmt::Display) -> BrokerError {
    BrokerError::Corrupt(error.to_string())
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, BrokerError> {
    serde_json::from_slice(bytes).map_err(corrupt)
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, BrokerError> {
    serde_json::to_vec(value).map_err(corrupt)
}

/// Decoded copies of live tasks, by id, that the writer keeps across its
/// transactions: a task's submission, lease and settlement each load what
/// the step before stored, and decoding it again took a seventh of the
/// writer's time. [`load`] takes a copy out and [`store`] puts one back,
/// so a copy is never older than the table; the writer empties it when a
/// transaction fails.
#[derive(Debug, Default)]
pub(super) struct LiveTasks {
    /// Each copy with the size of its stored form.
    tasks: HashMap<String, (usize, StoredTask)>,
    /// The sum of those sizes.
    bytes: usize,
}

impl LiveTasks {
    /// Bounds the memory of a backlog (by the tasks' stored size, as a
    /// task's input may be large); tasks beyond it are decoded.
    const MAX_BYTES: usize = 64 << 20;

    fn take(&mut self, task_id: &str) -> Option<StoredTask> {
        let (size, task) = self.tasks.remove(task_id)?;
        self.bytes -= size;
        Some(task)
    }

    /// Keeps a copy of `task`, whose stored form is `size` bytes, if there
    /// is room. The caller took any older copy out first: without room,
    /// it must not stay behind.
    fn keep(&mut self, task: &StoredTask, size: usize) {
        if self.bytes + size <= Self::MAX_BYTES {
            self.bytes += size;
            let id = task.record.message.id.clone();
            self.tasks.insert(id, (size, task.clone()));
        }
    }

    pub(super) fn clear(&mut self) {
        self.tasks.clear();
        self.bytes = 0;
    }
}

pub(super) fn load(txn: &Tx, task_id: &str) -> Result<Option<StoredTask>, BrokerError> {
    if let Some(task) = txn.live().take(task_id) {
        return Ok(Some(task));
    }
    let tasks = txn.open(TASKS)?;
    let value = tasks.get(task_id).map_err(storage)?;
    value.map(|v| decode(v.value())).transpose()
}

pub(super) fn store(txn: &Tx, task: &StoredTask) -> Result<(), BrokerError> {
    let bytes = encode(task)?;
    let id = task.record.message.id.as_str();
    txn.open(TASKS)?.insert(id, bytes.as_slice())?;
    let mut live = txn.live();
    live.take(id);
    if !task.record.state.is_terminal() {
        live.keep(task, bytes.len());
    }
    Ok(())
}

pub(super) fn next(txn: &Tx, counter: &str) -> Result<u64, BrokerError> {
    let mut counters = txn.open(COUNTERS)?;
    let value = counters
        .get(counter)
        .map_err(storage)?
        .map(|v| v.value())
        .unwrap_or(0)
        + 1;
    counters.insert(counter, value)?;
    Ok(value)
}

pub(super) fn append_event(
    txn: &Tx,
    config: &BrokerConfig,
    record: &TaskRecord,
    detail: Option<String>,
) -> Result<(), BrokerError> {
    let seq = next(txn, "event")?;
    let event = Event {
        seq,
        at_ms: now_ms(),
        task_id: record.message.id.clone(),
        task: record.message.task.clone(),
        queue: record.message.queue.clone(),
        state: record.state,
        worker: record.worker.clone(),
        detail,
    };
    let mut events = txn.open(EVENTS)?;
    events.insert(seq, encode(&event)?.as_slice())?;
    if seq > config.event_log_capacity {
        events.remove(seq - config.event_log_capacity)?;
    }
    Ok(())
}

/// Puts a task at the back of its ready queue.
pub(super) fn make_ready(
    txn: &Tx,
    config: &BrokerConfig,
    task: &mut StoredTask,
    detail: Option<String>,
) -> Result<(), BrokerError> {
    mark_ready(txn, config, task, detail)?;
    enqueue(txn, task)
}

/// Marks a task ready to run (PENDING, or RETRY when it waits for its next
/// attempt), with its event. [`enqueue`] then puts it in its ready queue,
/// unless it goes straight to a waiting consumer.
pub(super) fn mark_ready(
    txn: &Tx,
    config: &BrokerConfig,
    task: &mut StoredTask,
    detail: Option<String>,
) -> Result<(), BrokerError> {
    task.record.state = if task.record.state == TaskState::Retry {
        TaskState::Retry
    } else {
        TaskState::Pending
    };
    task.record.updated_ms = now_ms();
    append_event(txn, config, &task.record, detail)
}

/// Puts a task marked ready at the back of its ready queue.
pub(super) fn enqueue(txn: &Tx, task: &mut StoredTask) -> Result<(), BrokerError> {
    let seq = next(txn, "ready")?;
    let message = &task.record.message;
    txn.open(READY)?.insert(
        (message.queue.as_str(), message.band() as u8, seq),
        message.id.as_str(),
    )?;
    task.ready_seq = Some(seq);
    Ok(())
}

pub(super) fn schedule(txn: &Tx, task: &mut StoredTask, due_ms: u64) -> Result<(), BrokerError> {
    txn.open(DELAYED)?
        .insert((due_ms, task.record.message.id.as_str()), ())?;
    task.due_ms = Some(due_ms);
    Ok(())
}

pub(super) fn drop_lease(txn: &Tx, task: &mut StoredTask) -> Result<(), BrokerError> {
    if let Some(lease) = task.lease.take() {
        txn.open(LEASES)?
            .remove((lease.expires_ms, task.record.message.id.as_str()))?;
    }
    Ok(())
}

/// Takes a task out of whatever queue, schedule or lease it sits in.
pub(super) fn detach(txn: &Tx, task: &mut StoredTask) -> Result<(), BrokerError> {
    drop_lease(txn, task)?;
    let id = task.record.message.id.clone();
    if let Some(seq) = task.ready_seq.take() {
        let message = &task.record.message;
        txn.open(READY)?
            .remove((message.queue.as_str(), message.band() as u8, seq))?;
    }
    if let Some(due) = task.due_ms.take() {
        txn.open(DELAYED)?.remove((due, id.as_str()))?;
    }
    Ok(())
}

/// Moves a task to a terminal state; its record expires after
/// `result_expires`, its history entry after the history's retention.
/// `run` is the run that ended it, when one did.
pub(super) fn finish(
    txn: &Tx,
    config: &BrokerConfig,
    task: &mut StoredTask,
    state: TaskState,
    detail: Option<&str>,
    run: Option<&RunMeta>,
) -> Result<(), BrokerError> {
    detach(txn, task)?;
    let now = now_ms();
    let expires_ms = now + config.result_expires.as_millis() as u64;
    txn.open(EXPIRY)?
        .insert((expires_ms, task.record.message.id.as_str()), ())?;
    task.expires_ms = Some(expires_ms);
    task.record.state = state;
    task.record.updated_ms = now;
    task.revoke_requested = false;
    append_event(txn, config, &task.record, detail.map(str::to_string))?;
    super::history::remember(txn, &task.record, task.record.message.attempt, run)?;
    store(txn, task)
}

/// Keys of a time-ordered table whose time is at or before `now`.
pub(super) fn keys_before(
    txn: &Tx,
    table: TableDefinition<'static, (u64, &'static str), ()>,
    now: u64,
) -> Result<Vec<(u64, String)>, BrokerError> {
    let table = txn.open(table)?;
    let mut keys = Vec::new();
    for entry in table.range((0u64, "")..).map_err(storage)? {
        let (key, _) = entry.map_err(storage)?;
        let (at, id) = key.value();
        if at > now {
            break;
        }
        keys.push((at, id.to_string()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> StoredTask {
        StoredTask::pending(TaskMessage::new("t", "default", serde_json::Value::Null))
    }

    #[test]
    fn live_tasks_keep_copies_within_their_byte_bound() {
        let mut live = LiveTasks::default();
        let (big, small) = (task(), task());
        live.keep(&big, LiveTasks::MAX_BYTES - 10);
        live.keep(&small, 20);
        assert!(live.take(&small.record.message.id).is_none(), "no room");
        assert!(live.take(&big.record.message.id).is_some());
        assert_eq!(live.bytes, 0);
        live.keep(&small, 20);
        assert_eq!(live.bytes, 20);
        assert!(live.take(&small.record.message.id).is_some());
        assert!(live.take(&small.record.message.id).is_none(), "taken once");
    }
}
