//! The writer thread: every write of the embedded broker goes through it
//! and is group-committed, journaled first (see [`super::journal`]).

use super::journal::{Journal, SYNC_EVERY, Tx};
use super::*;
use redb::Durability;
use std::cell::RefCell;

pub(super) type Completion = Box<dyn FnOnce(&Shared) + Send>;
pub(super) type Job = Box<dyn FnOnce(&Tx, &BrokerConfig) -> Result<Completion, BrokerError> + Send>;

pub(super) struct Request {
    pub(super) job: Job,
    /// Whether the caller needs the change on disk before the answer.
    pub(super) durable: bool,
    pub(super) done: oneshot::Sender<Result<(), BrokerError>>,
}

/// State the writer and the async side share.
#[derive(Debug)]
pub(super) struct Shared {
    /// Wakes reservers when tasks become ready.
    pub(super) work: Notify,
    /// Consumers waiting in `reserve`, longest waiting first: a submission
    /// leases its task to the first one that takes its queue, in its own
    /// transaction, instead of waking them all to ask for it.
    pub(super) idle: Mutex<Vec<Idle>>,
    /// Waiters for one task's end, by task id.
    pub(super) waiters: Mutex<HashMap<String, Arc<Notify>>>,
    pub(super) revocations: broadcast::Sender<String>,
}

/// A consumer waiting in `reserve` (see [`Shared::idle`]).
#[derive(Debug)]
pub(super) struct Idle {
    pub(super) token: u64,
    pub(super) consumer: String,
    pub(super) queues: Vec<String>,
    pub(super) lease: std::time::Duration,
    /// Where the task leased to it goes once its transaction committed.
    pub(super) handed: oneshot::Sender<crate::broker::Delivery>,
}

impl Shared {
    /// Registers a consumer waiting in `reserve`.
    pub(super) fn add_idle(&self, waiting: Idle) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(waiting);
    }

    /// Takes the longest-waiting consumer of `queue`, if any. Waits whose
    /// `reserve` was dropped (cancelled) are forgotten, not handed a task.
    pub(super) fn take_idle(&self, queue: &str) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|i| !i.handed.is_closed());
        let at = idle
            .iter()
            .position(|i| i.queues.iter().any(|q| q == queue))?;
        Some(idle.remove(at))
    }

    /// Ends a wait; false when a submission took it (its task is on the way).
    pub(super) fn cancel_idle(&self, token: u64) -> bool {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let before = idle.len();
        idle.retain(|i| i.token != token);
        idle.len() != before
    }

    pub(super) fn task_finished(&self, task_id: &str) {
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task_id)
            .cloned();
        if let Some(waiter) = waiter {
            waiter.notify_waiters();
        }
    }
}

/// The writer thread: group commits until every sender is gone, then a
/// last checkpoint.
pub(super) fn write_loop(
    db: &Database,
    mut journal: Journal,
    config: &BrokerConfig,
    shared: &Shared,
    requests: std::sync::mpsc::Receiver<Request>,
) {
    /// Enough to amortise one sync over many tasks without starving callers.
    const MAX_BATCH: usize = 512;
    let live = RefCell::new(LiveTasks::default());
    loop {
        let first = match requests.recv_timeout(SYNC_EVERY) {
            Ok(first) => first,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                keep_up(db, &mut journal);
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|r| r.durable);
        let (jobs, answers): (Vec<Job>, Vec<_>) =
            batch.into_iter().map(|r| (r.job, r.done)).unzip();
        match commit(db, &mut journal, config, &live, jobs, durable) {
            Ok(results) => {
                for (result, answer) in results.into_iter().zip(answers) {
                    let _ = answer.send(result.map(|completion| completion(shared)));
                }
            }
            Err(error) => {
                tracing::error!(%error, "broker commit failed");
                // It holds copies of what the failed transaction stored.
                live.borrow_mut().clear();
                for answer in answers {
                    let _ = answer.send(Err(BrokerError::Storage(error.to_string())));
                }
            }
        }
        keep_up(db, &mut journal);
    }
    if let Err(error) = journal.checkpoint(db) {
        tracing::error!(%error, "broker checkpoint at shutdown failed; the journal replays at the next start");
    }
}

/// Runs `jobs` in one transaction, journals their changes (see
/// [`JournalSync`] for when they are synced; `durable` says whether a
/// caller relies on them) and commits without a sync of redb's own.
fn commit(
    db: &Database,
    journal: &mut Journal,
    config: &BrokerConfig,
    live: &RefCell<LiveTasks>,
    jobs: Vec<Job>,
    durable: bool,
) -> Result<Vec<Result<Completion, BrokerError>>, BrokerError> {
    let mut txn = db.begin_write().map_err(storage)?;
    txn.set_durability(Durability::None).map_err(storage)?;
    let tx = Tx::new(&txn, live);
    let results: Vec<_> = jobs.into_iter().map(|job| job(&tx, config)).collect();
    let changes = tx.into_changes();
    let before = journal.len();
    if !changes.is_empty() {
        journal.append(&changes, durable)?;
    }
    if let Err(error) = txn.commit() {
        journal.truncate_to(before)?;
        return Err(storage(error));
    }
    Ok(results)
}

/// The journal's periodic work: its sync and redb's checkpoint, when due.
fn keep_up(db: &Database, journal: &mut Journal) {
    if let Err(error) = journal.sync_if_due() {
        tracing::error!(%error, "broker journal sync failed; retrying later");
    }
    if journal.wants_checkpoint()
        && let Err(error) = journal.checkpoint(db)
    {
        tracing::error!(%error, "broker checkpoint failed; retrying later");
    }
}
