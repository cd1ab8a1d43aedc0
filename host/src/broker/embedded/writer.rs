//! The writer thread: every write of the embedded broker goes through it
//! and is group-committed.

use super::*;

pub(super) type Completion = Box<dyn FnOnce(&Shared) + Send>;
pub(super) type Job =
    Box<dyn FnOnce(&WriteTransaction, &BrokerConfig) -> Result<Completion, BrokerError> + Send>;

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
    /// Waiters for one task's end, by task id.
    pub(super) waiters: Mutex<HashMap<String, Arc<Notify>>>,
    pub(super) revocations: broadcast::Sender<String>,
}

impl Shared {
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

/// The writer thread: group commits until every sender is gone.
pub(super) fn write_loop(
    db: &Database,
    config: &BrokerConfig,
    shared: &Shared,
    requests: std::sync::mpsc::Receiver<Request>,
) {
    /// Enough to amortise one sync over many tasks without starving callers.
    const MAX_BATCH: usize = 512;
    while let Ok(first) = requests.recv() {
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
        let committed = (|| {
            let mut txn = db.begin_write().map_err(storage)?;
            if !durable {
                // Leases and heartbeats only: losing the last few in a crash
                // means a redelivery, which leases already allow for.
                txn.set_durability(Durability::None).map_err(storage)?;
            }
            let results: Vec<_> = jobs.into_iter().map(|job| job(&txn, config)).collect();
            txn.commit().map_err(storage)?;
            Ok::<_, BrokerError>(results)
        })();
        match committed {
            Ok(results) => {
                for (result, answer) in results.into_iter().zip(answers) {
                    let _ = answer.send(result.map(|completion| completion(shared)));
                }
            }
            Err(error) => {
                tracing::error!(%error, "broker commit failed");
                for answer in answers {
                    let _ = answer.send(Err(BrokerError::Storage(error.to_string())));
                }
            }
        }
    }
}
