//! The writer: every write of the embedded broker goes through it and is
//! group-committed, journaled first (see [`super::journal`]).

use super::journal::{Journal, SYNC_EVERY, Tx};
use super::*;
use redb::Durability;
use std::cell::RefCell;
use std::sync::{Condvar, MutexGuard, TryLockError};
use std::thread::JoinHandle;

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
    pub(super) handed: oneshot::Sender<crate::Delivery>,
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

/// Enough to amortise one sync over many tasks without starving callers.
const MAX_BATCH: usize = 512;

/// The broker's one writer: a thread that runs the queued writes in group
/// commits, except that a write finding nothing queued and no commit
/// running is committed at once by its caller, on the caller's thread
/// (see [`Writer::submit`]).
/// That is a round trip's case: there, the thread cost two wake-ups
/// across threads per write (there and back), more than half a commit.
/// Under load, writes queue up behind a running commit and the thread takes
/// them in groups, as many as came in meanwhile, while the callers' threads
/// go on preparing the next group. A commit on a caller's thread takes
/// tens of microseconds, plus one sync of the journal for a durable write
/// under [`JournalSync::Always`]; checkpoints are the thread's alone.
pub(super) struct Writer {
    queue: Mutex<Queue>,
    /// Wakes the thread when it idles (see [`Queue::thread_idle`]).
    work: Condvar,
    /// Held by whoever commits. Callers only `try_lock` it: their thread
    /// never waits for another's commit.
    state: Mutex<WriterState>,
    db: Arc<Database>,
    config: BrokerConfig,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Queue {
    requests: Vec<Request>,
    /// The thread waits for work: a caller that leaves it a write wakes it.
    thread_idle: bool,
    /// The task that last committed its own write (`None` inside: not
    /// called from a task).
    last_committer: Option<Option<tokio::task::Id>>,
    /// The broker closes: the thread commits what is queued, checkpoints
    /// and ends.
    closed: bool,
}

impl Queue {
    /// The next group to commit: the oldest writes, at most [`MAX_BATCH`].
    fn take_batch(&mut self) -> Vec<Request> {
        let take = self.requests.len().min(MAX_BATCH);
        self.requests.drain(..take).collect()
    }
}

struct WriterState {
    journal: Journal,
    live: RefCell<LiveTasks>,
}

impl Writer {
    /// The writer and its thread, which ends after [`Writer::close`].
    pub(super) fn start(
        db: Arc<Database>,
        journal: Journal,
        config: BrokerConfig,
        shared: Arc<Shared>,
    ) -> std::io::Result<(Arc<Writer>, JoinHandle<()>)> {
        let writer = Arc::new(Writer {
            queue: Mutex::default(),
            work: Condvar::new(),
            state: Mutex::new(WriterState {
                journal,
                live: RefCell::new(LiveTasks::default()),
            }),
            db,
            config,
            shared,
        });
        let thread = std::thread::Builder::new()
            .name("hippo-broker-writer".into())
            .spawn({
                let writer = writer.clone();
                move || writer.run()
            })?;
        Ok((writer, thread))
    }

    /// Commits `request` at once, on the caller's thread, when nothing
    /// else is queued or being committed and the caller's task did not
    /// commit the last write itself; queues it for the thread otherwise.
    /// The last condition keeps a burst of writes from one task (a batch
    /// submitted at once) out of one-write commits: its first write is
    /// committed at once, the rest go to the thread, in groups.
    pub(super) fn submit(&self, request: Request) {
        let task = tokio::task::try_id();
        let alone = {
            let mut queue = self.queue();
            queue.requests.push(request);
            queue.requests.len() == 1 && queue.last_committer != Some(task)
        };
        if alone && let Some(mut state) = self.try_state() {
            let batch = {
                let mut queue = self.queue();
                queue.last_committer = Some(task);
                queue.take_batch()
            };
            self.commit_round(&mut state, batch);
            // Writes queued meanwhile woke the thread themselves.
            return;
        }
        let queue = self.queue();
        if queue.thread_idle && !queue.requests.is_empty() {
            self.work.notify_one();
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_state(&self) -> Option<MutexGuard<'_, WriterState>> {
        match self.state.try_lock() {
            Ok(state) => Some(state),
            // A commit that panicked answered nobody; its state is as the
            // failed-commit path leaves it.
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One group commit and its answers. The journal's periodic work is
    /// left to the thread, which looks at least every [`SYNC_EVERY`]: a
    /// caller's thread never waits for a checkpoint.
    fn commit_round(&self, state: &mut WriterState, batch: Vec<Request>) {
        let durable = batch.iter().any(|r| r.durable);
        let (jobs, answers): (Vec<Job>, Vec<_>) =
            batch.into_iter().map(|r| (r.job, r.done)).unzip();
        let WriterState { journal, live } = state;
        match commit(&self.db, journal, &self.config, live, jobs, durable) {
            Ok(results) => {
                for (result, answer) in results.into_iter().zip(answers) {
                    let _ = answer.send(result.map(|completion| completion(&self.shared)));
                }
            }
            Err(error) => {
                tracing::error!(%error, "broker commit failed");
                let error = BrokerError::storage(error);
                // It holds copies of what the failed transaction stored.
                live.borrow_mut().clear();
                for answer in answers {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    }

    /// The thread: group commits while writes are queued, the journal's
    /// periodic work while none are, and a last checkpoint once closed.
    fn run(&self) {
        loop {
            let closed = {
                let mut queue = self.queue();
                queue.thread_idle = true;
                let (mut queue, _) = self
                    .work
                    .wait_timeout_while(queue, SYNC_EVERY, |q| q.requests.is_empty() && !q.closed)
                    .unwrap_or_else(PoisonError::into_inner);
                queue.thread_idle = false;
                queue.closed
            };
            let mut state = self.lock_state();
            loop {
                let batch = self.queue().take_batch();
                if batch.is_empty() {
                    break;
                }
                self.commit_round(&mut state, batch);
                keep_up(&self.db, &mut state.journal);
            }
            if closed {
                if let Err(error) = state.journal.checkpoint(&self.db) {
                    tracing::error!(%error, "broker checkpoint at shutdown failed; the journal replays at the next start");
                }
                return;
            }
            keep_up(&self.db, &mut state.journal);
        }
    }

    /// Ends the thread (after its last checkpoint); join it next.
    pub(super) fn close(&self) {
        self.queue().closed = true;
        self.work.notify_one();
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
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

#[cfg(test)]
mod tests {
    use super::super::EmbeddedBroker;
    use super::SYNC_EVERY;
    use crate::{BrokerConfig, Inspection, TaskMessage, TaskQueue};
    use std::sync::Arc;
    use std::time::Duration;

    /// Writes from many tasks on two threads, one at a time and in bursts:
    /// whoever commits each (its caller or the thread), every one is
    /// committed, answered, and still there after the broker closes. None
    /// waits for the thread's periodic look (a write queued without waking
    /// it would).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_write_is_committed_whoever_commits_it() {
        const TASKS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(
            EmbeddedBroker::open(dir.path(), BrokerConfig::default())
                .await
                .unwrap(),
        );
        let message = || TaskMessage::new("t", "default", serde_json::Value::Null);
        let callers = (0..TASKS).map(|_| {
            let broker = broker.clone();
            tokio::spawn(async move {
                let (mut ids, mut slowest) = (Vec::new(), Duration::ZERO);
                for n in 0..100 {
                    if n % 25 == 0 {
                        let burst = (0..50).map(|_| broker.submit(message()));
                        for submitted in futures::future::join_all(burst).await {
                            ids.push(submitted.unwrap().task_id);
                        }
                    } else {
                        let sent = std::time::Instant::now();
                        ids.push(broker.submit(message()).await.unwrap().task_id);
                        slowest = slowest.max(sent.elapsed());
                    }
                }
                (ids, slowest)
            })
        });
        let mut ids = Vec::new();
        for caller in futures::future::join_all(callers).await {
            let (written, slowest) = caller.unwrap();
            assert!(slowest < SYNC_EVERY / 2, "a write waited {slowest:?}");
            ids.extend(written);
        }
        assert_eq!(ids.len(), TASKS * (96 + 4 * 50));
        drop(broker);
        let reopened = EmbeddedBroker::open(dir.path(), BrokerConfig::default())
            .await
            .unwrap();
        for id in &ids {
            assert!(reopened.task(id).await.unwrap().is_some(), "{id} lost");
        }
    }
}
