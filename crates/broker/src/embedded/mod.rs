//! The embedded broker: durable on local disk in one [redb] file, for a
//! single `hippo serve` process with no server to run.
//!
//! One writer (see [`writer`]) applies every write in group commits: it
//! takes all operations waiting and runs them in one transaction, whose
//! changes it appends to a journal before it answers (see [`journal`]), so
//! a busy broker pays one append (and at most one sync) for many tasks.
//! Reads run concurrently on snapshots.

use super::model::*;
use super::{BrokerConfig, BrokerError, JournalSync, TaskQueue};
use hippo_task::Progress;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, oneshot};

mod dead_letters;
mod history;
mod inspection;
mod journal;
mod kv;
mod tables;
mod workers;
mod writer;

use journal::{Journal, Tx};
use tables::*;
use writer::*;

/// redb's page cache. Its default, 1 GiB, is what the process grew by as
/// the task history filled (`bench/run dashboard`); what the broker reads
/// often (live tasks, the newest index pages) is a small part of the file,
/// and the writer keeps live tasks decoded besides (`LiveTasks`).
const CACHE_BYTES: usize = 64 << 20;

/// The embedded, durable broker. See the module docs.
#[derive(Debug)]
pub struct EmbeddedBroker {
    db: Arc<Database>,
    config: BrokerConfig,
    shared: Arc<Shared>,
    writer: Arc<Writer>,
    /// The writer's thread, joined at drop (after its last checkpoint).
    writer_thread: Option<std::thread::JoinHandle<()>>,
    /// Names each wait in `reserve` (see `Shared::idle`).
    next_idle_token: AtomicU64,
}

impl EmbeddedBroker {
    /// Opens (or creates) the broker database in `dir`. One process owns it
    /// at a time (the file is locked).
    pub async fn open(dir: &Path, config: BrokerConfig) -> Result<Self, BrokerError> {
        std::fs::create_dir_all(dir).map_err(storage)?;
        let path = dir.join("broker.redb");
        let db = tokio::task::spawn_blocking(move || {
            Database::builder().set_cache_size(CACHE_BYTES).create(path)
        })
        .await
        .map_err(storage)?
        .map_err(storage)?;
        let db = Arc::new(db);
        let journal = {
            let db = db.clone();
            let path = dir.join("broker.journal");
            let policy = config.journal_sync;
            tokio::task::spawn_blocking(move || Journal::recover(&db, &path, policy))
                .await
                .map_err(storage)??
        };
        let (revocations, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            work: Notify::new(),
            idle: Mutex::default(),
            waiters: Mutex::default(),
            revocations,
        });
        let (writer, writer_thread) =
            Writer::start(db.clone(), journal, config.clone(), shared.clone()).map_err(storage)?;
        Ok(EmbeddedBroker {
            db,
            config,
            shared,
            writer,
            writer_thread: Some(writer_thread),
            next_idle_token: AtomicU64::new(0),
        })
    }

    /// Runs `job` in a group commit (see [`Writer`]); resolves after commit.
    async fn write<R: Send + 'static>(
        &self,
        durable: bool,
        job: impl FnOnce(&Tx, &BrokerConfig) -> Result<(R, Option<Completion>), BrokerError>
        + Send
        + 'static,
    ) -> Result<R, BrokerError> {
        let (result_tx, result_rx) = oneshot::channel();
        let (done, committed) = oneshot::channel();
        let job: Job = Box::new(move |txn, config| {
            let (value, completion) = job(txn, config)?;
            let _ = result_tx.send(value);
            Ok(completion.unwrap_or_else(|| Box::new(|_: &Shared| {})))
        });
        self.writer.submit(Request { job, durable, done });
        committed
            .await
            .map_err(|_| storage("broker writer stopped"))??;
        result_rx
            .await
            .map_err(|_| storage("broker job lost its result"))
    }

    fn read_task(&self, task_id: &str) -> Result<Option<StoredTask>, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let tasks = txn.open_table(TASKS).map_err(storage)?;
        let stored = tasks
            .get(task_id)
            .map_err(storage)?
            .map(|v| decode(v.value()))
            .transpose()?;
        Ok(stored.filter(|t: &StoredTask| t.expires_ms.is_none_or(|at| at > now_ms())))
    }

    async fn reserve_now(
        &self,
        consumer: &str,
        queues: &[String],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let consumer = consumer.to_string();
        let queues = queues.to_vec();
        self.write(false, move |txn, config| {
            let now = now_ms();
            let mut deliveries = Vec::new();
            let mut finished = Vec::new();
            let mut ready = txn.open(READY)?;
            for queue in &queues {
                // Keys sort by band, highest first, then by arrival. Tasks
                // that expired while they waited end here and are not
                // delivered: look again until the queue or `max` runs out.
                while deliveries.len() < max {
                    let waiting: Vec<(u8, u64, String)> = ready
                        .range((queue.as_str(), 0, 0)..=(queue.as_str(), u8::MAX, u64::MAX))
                        .map_err(storage)?
                        .take(max - deliveries.len())
                        .map(|entry| {
                            let (key, id) = entry.map_err(storage)?;
                            let (_, band, seq) = key.value();
                            Ok((band, seq, id.value().to_string()))
                        })
                        .collect::<Result<_, BrokerError>>()?;
                    if waiting.is_empty() {
                        break;
                    }
                    for (band, seq, task_id) in waiting {
                        ready.remove((queue.as_str(), band, seq))?;
                        let Some(mut task) = load(txn, &task_id)? else {
                            continue;
                        };
                        task.ready_seq = None;
                        if task.record.message.expires_ms.is_some_and(|at| at <= now) {
                            task.record.error = None;
                            finish(
                                txn,
                                config,
                                &mut task,
                                TaskState::Revoked,
                                Some("expired before it started"),
                                None,
                            )?;
                            finished.push(task_id);
                            continue;
                        }
                        deliveries.push(lease_to(txn, config, &mut task, &consumer, lease, now)?);
                        store(txn, &task)?;
                    }
                }
            }
            let completion: Completion = Box::new(move |shared: &Shared| {
                for id in finished {
                    shared.task_finished(&id);
                }
            });
            Ok((deliveries, Some(completion)))
        })
        .await
    }

    /// Checks the fence, then applies `change` to the held task.
    async fn with_lease(
        &self,
        delivery: &Delivery,
        durable: bool,
        change: impl FnOnce(&Tx, &BrokerConfig, &mut StoredTask) -> Result<(), BrokerError>
        + Send
        + 'static,
    ) -> Result<LeaseStatus, BrokerError> {
        let task_id = delivery.message.id.clone();
        let generation = delivery.generation;
        self.write(durable, move |txn, config| {
            let Some(mut task) = load(txn, &task_id)? else {
                return Ok((LeaseStatus::Lost, None));
            };
            if task.generation != generation || task.lease.is_none() {
                return Ok((LeaseStatus::Lost, None));
            }
            if task.revoke_requested {
                return Ok((LeaseStatus::Revoked, None));
            }
            change(txn, config, &mut task)?;
            store(txn, &task)?;
            Ok((LeaseStatus::Held, None))
        })
        .await
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.writer.close();
        if let Some(thread) = self.writer_thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the broker's writer thread panicked");
        }
    }
}

#[async_trait::async_trait]
impl TaskQueue for EmbeddedBroker {
    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    async fn submit(&self, message: TaskMessage) -> Result<Submitted, BrokerError> {
        if !self.config.queues.contains(&message.queue) {
            return Err(BrokerError::UnknownQueue(message.queue));
        }
        let window = self.config.idempotency_window.as_millis() as u64;
        let shared = self.shared.clone();
        self.write(true, move |txn, config| {
            let now = now_ms();
            if let Some(key) = &message.idempotency_key {
                let mut keys = txn.open(IDEMPOTENCY)?;
                let seen: Option<(String, u64)> = keys
                    .get(key.as_str())
                    .map_err(storage)?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                if let Some((task_id, expires_ms)) =
                    seen.filter(|(_, expires_ms)| *expires_ms > now)
                {
                    let _ = expires_ms;
                    return Ok((
                        Submitted {
                            task_id,
                            created: false,
                        },
                        None,
                    ));
                }
                keys.insert(
                    key.as_str(),
                    encode(&(message.id.clone(), now + window))?.as_slice(),
                )?;
            }
            let task_id = message.id.clone();
            let due = message.eta_ms.filter(|eta| *eta > now);
            let mut task = StoredTask::pending(message);
            let completion: Option<Completion> = match due {
                Some(due) => {
                    schedule(txn, &mut task, due)?;
                    append_event(
                        txn,
                        config,
                        &task.record,
                        Some(format!("scheduled for {due}")),
                    )?;
                    None
                }
                None => {
                    mark_ready(txn, config, &mut task, None)?;
                    // (An already expired task is left for `reserve`, which ends it.)
                    let live = task.record.message.expires_ms.is_none_or(|at| at > now);
                    let idle = live.then(|| shared.take_idle(&task.record.message.queue));
                    match idle.flatten() {
                        // A consumer waits for this queue: the task is its
                        // (it found the queue empty when it began to wait),
                        // without passing through the ready queue.
                        Some(idle) => {
                            let delivery =
                                lease_to(txn, config, &mut task, &idle.consumer, idle.lease, now)?;
                            Some(Box::new(move |_: &Shared| {
                                let _ = idle.handed.send(delivery);
                            }) as Completion)
                        }
                        None => {
                            enqueue(txn, &mut task)?;
                            Some(Box::new(|shared: &Shared| shared.work.notify_waiters()))
                        }
                    }
                }
            };
            store(txn, &task)?;
            Ok((
                Submitted {
                    task_id,
                    created: true,
                },
                completion,
            ))
        })
        .await
    }

    async fn reserve(
        &self,
        consumer: &str,
        queues: &[String],
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Listen before looking, so a submit between the two is not missed.
            let work = self.shared.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            let deliveries = self
                .reserve_now(consumer, queues, max.max(1), lease)
                .await?;
            if !deliveries.is_empty() || wait.is_zero() {
                return Ok(deliveries);
            }
            // Wait: the next submission to our queues is leased to us in its
            // own transaction (see `Shared::idle`); others wake us to look.
            let (handed, mut arrives) = oneshot::channel();
            let token = self.next_idle_token.fetch_add(1, Ordering::Relaxed);
            self.shared.add_idle(Idle {
                token,
                consumer: consumer.to_owned(),
                queues: queues.to_vec(),
                lease,
                handed,
            });
            let arrived = tokio::select! {
                arrived = &mut arrives => arrived.ok(),
                () = &mut work => None,
                () = tokio::time::sleep_until(deadline) => None,
            };
            // A submission that took our wait has leased us its task: it
            // arrives once its transaction committed (or never, if it failed).
            let handed = match arrived {
                Some(delivery) => Some(delivery),
                None if self.shared.cancel_idle(token) => None,
                None => arrives.await.ok(),
            };
            if let Some(delivery) = handed {
                return Ok(vec![delivery]);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    async fn heartbeat(
        &self,
        delivery: &Delivery,
        lease: Duration,
    ) -> Result<LeaseStatus, BrokerError> {
        self.with_lease(delivery, false, move |txn, _, task| {
            drop_lease(txn, task)?;
            let expires_ms = now_ms() + lease.as_millis() as u64;
            let id = task.record.message.id.clone();
            txn.open(LEASES)?.insert((expires_ms, id.as_str()), ())?;
            let receipt = format!("{id}:{}", task.generation);
            let consumer = task.record.worker.clone().unwrap_or_default();
            task.lease = Some(Lease {
                consumer,
                expires_ms,
                receipt,
            });
            Ok(())
        })
        .await
    }

    async fn mark_started(
        &self,
        delivery: &Delivery,
        worker: &str,
    ) -> Result<LeaseStatus, BrokerError> {
        let worker = worker.to_string();
        self.with_lease(delivery, false, move |txn, config, task| {
            task.record.state = TaskState::Started;
            task.record.worker = Some(worker);
            task.record.updated_ms = now_ms();
            append_event(txn, config, &task.record, None)
        })
        .await
    }

    async fn report_progress(
        &self,
        delivery: &Delivery,
        progress: &Progress,
    ) -> Result<LeaseStatus, BrokerError> {
        let progress = progress.clone();
        self.with_lease(delivery, false, move |txn, config, task| {
            let detail = format!("{}/{}", progress.done, progress.total);
            task.record.state = TaskState::Progress;
            task.record.progress = Some(progress);
            task.record.updated_ms = now_ms();
            append_event(txn, config, &task.record, Some(detail))
        })
        .await
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: Settlement,
    ) -> Result<bool, BrokerError> {
        let task_id = delivery.message.id.clone();
        let generation = delivery.generation;
        self.write(true, move |txn, config| {
            let Some(mut task) = load(txn, &task_id)? else {
                return Ok((false, None));
            };
            if task.generation != generation || task.lease.is_none() {
                return Ok((false, None));
            }
            task.record.runs += 1;
            let mut finished = true;
            let mut settlement = settlement;
            if task.record.state == TaskState::Received {
                // The worker did not mark it started (it ran briefly): a
                // revocation before the start wins, else the start is
                // recorded now.
                if task.revoke_requested {
                    settlement = Settlement::Revoked {
                        meta: settlement.into_meta(),
                    };
                } else if let Some(meta) = settlement.meta() {
                    task.record.state = TaskState::Started;
                    task.record.worker = Some(meta.worker.clone());
                    task.record.updated_ms = now_ms();
                    append_event(txn, config, &task.record, None)?;
                }
            }
            // The record keeps the run's figures; its log goes to the history only.
            task.record.last_run = settlement.meta().map(RunMeta::without_log);
            match settlement {
                Settlement::Success { output, meta } => {
                    // A `null` output reads as none, as it does from Redis.
                    task.record.result = Some(output).filter(|o| !o.is_null());
                    task.record.error = None;
                    let run = Some(&meta);
                    finish(txn, config, &mut task, TaskState::Success, None, run)?;
                }
                Settlement::Retry {
                    failure,
                    at_ms,
                    meta,
                } => {
                    drop_lease(txn, &mut task)?;
                    let detail = format!(
                        "attempt {} failed ({failure}); retry at {at_ms}",
                        task.record.message.attempt
                    );
                    task.record.error = Some(failure);
                    task.record.state = TaskState::Retry;
                    task.record.updated_ms = now_ms();
                    schedule(txn, &mut task, at_ms)?;
                    append_event(txn, config, &task.record, Some(detail))?;
                    let attempt = task.record.message.attempt;
                    history::remember(txn, &task.record, attempt, Some(&meta))?;
                    task.record.message.attempt += 1;
                    store(txn, &task)?;
                    finished = false;
                }
                Settlement::Failure {
                    failure,
                    dead_letter,
                    meta,
                } => {
                    let detail = failure.to_string();
                    task.record.error = Some(failure);
                    if dead_letter {
                        let seq = next(txn, "dead")?;
                        txn.open(DEAD)?.insert((seq, task_id.as_str()), ())?;
                        task.dead_seq = Some(seq);
                    }
                    let (state, run) = (TaskState::Failure, Some(&meta));
                    finish(txn, config, &mut task, state, Some(&detail), run)?;
                }
                Settlement::Revoked { meta } => {
                    finish(
                        txn,
                        config,
                        &mut task,
                        TaskState::Revoked,
                        None,
                        meta.as_ref(),
                    )?;
                }
            }
            let completion: Option<Completion> = finished.then(|| {
                Box::new(move |shared: &Shared| shared.task_finished(&task_id)) as Completion
            });
            Ok((true, completion))
        })
        .await
    }

    async fn release(&self, delivery: &Delivery) -> Result<bool, BrokerError> {
        let task_id = delivery.message.id.clone();
        let generation = delivery.generation;
        self.write(true, move |txn, config| {
            let Some(mut task) = load(txn, &task_id)? else {
                return Ok((false, None));
            };
            if task.generation != generation || task.lease.is_none() {
                return Ok((false, None));
            }
            drop_lease(txn, &mut task)?;
            make_ready(
                txn,
                config,
                &mut task,
                Some("released by its worker".into()),
            )?;
            store(txn, &task)?;
            Ok((
                true,
                Some(Box::new(|shared: &Shared| shared.work.notify_waiters()) as Completion),
            ))
        })
        .await
    }

    async fn revoke(&self, task_id: &str) -> Result<RevokeOutcome, BrokerError> {
        let task_id = task_id.to_string();
        self.write(true, move |txn, config| {
            let Some(mut task) = load(txn, &task_id)? else {
                return Ok((RevokeOutcome::Unknown, None));
            };
            if task.record.state.is_terminal() {
                return Ok((RevokeOutcome::AlreadyFinished, None));
            }
            if task.lease.is_some() {
                task.revoke_requested = true;
                store(txn, &task)?;
                let id = task_id.clone();
                let completion: Completion = Box::new(move |shared: &Shared| {
                    let _ = shared.revocations.send(id);
                });
                return Ok((RevokeOutcome::Running, Some(completion)));
            }
            finish(
                txn,
                config,
                &mut task,
                TaskState::Revoked,
                Some("revoked before it started"),
                None,
            )?;
            Ok((
                RevokeOutcome::Queued,
                Some(Box::new(move |shared: &Shared| shared.task_finished(&task_id)) as Completion),
            ))
        })
        .await
    }

    fn revocations(&self) -> broadcast::Receiver<String> {
        self.shared.revocations.subscribe()
    }

    async fn purge(&self, queue: &str) -> Result<u64, BrokerError> {
        if !self.config.queues.iter().any(|q| q == queue) {
            return Err(BrokerError::UnknownQueue(queue.to_string()));
        }
        let queue = queue.to_string();
        self.write(true, move |txn, config| {
            let ids: Vec<String> = txn
                .open(READY)?
                .range((queue.as_str(), 0u8, 0u64)..=(queue.as_str(), u8::MAX, u64::MAX))
                .map_err(storage)?
                .map(|entry| entry.map(|(_, id)| id.value().to_string()).map_err(storage))
                .collect::<Result<_, _>>()?;
            for id in &ids {
                if let Some(mut task) = load(txn, id)? {
                    finish(
                        txn,
                        config,
                        &mut task,
                        TaskState::Revoked,
                        Some("purged"),
                        None,
                    )?;
                }
            }
            let purged = ids.len() as u64;
            let completion: Completion = Box::new(move |shared: &Shared| {
                for id in ids {
                    shared.task_finished(&id);
                }
            });
            Ok((purged, Some(completion)))
        })
        .await
    }

    async fn maintain(&self) -> Result<u64, BrokerError> {
        self.write(true, |txn, config| {
            let now = now_ms();
            let mut moved = 0;
            let due: Vec<(u64, String)> = keys_before(txn, DELAYED, now)?;
            for (due_ms, id) in due {
                txn.open(DELAYED)?.remove((due_ms, id.as_str()))?;
                let Some(mut task) = load(txn, &id)? else {
                    continue;
                };
                task.due_ms = None;
                make_ready(txn, config, &mut task, Some("due".into()))?;
                store(txn, &task)?;
                moved += 1;
            }
            let expired: Vec<(u64, String)> = keys_before(txn, LEASES, now)?;
            for (_, id) in expired {
                let Some(mut task) = load(txn, &id)? else {
                    continue;
                };
                let holder = task
                    .lease
                    .as_ref()
                    .map(|l| l.consumer.clone())
                    .unwrap_or_default();
                drop_lease(txn, &mut task)?;
                if task.revoke_requested {
                    finish(
                        txn,
                        config,
                        &mut task,
                        TaskState::Revoked,
                        Some("revoked; its worker stopped answering"),
                        None,
                    )?;
                    continue;
                }
                make_ready(
                    txn,
                    config,
                    &mut task,
                    Some(format!("lease of {holder} expired; redelivering")),
                )?;
                store(txn, &task)?;
                moved += 1;
            }
            for (expires_ms, id) in keys_before(txn, EXPIRY, now)? {
                txn.open(EXPIRY)?.remove((expires_ms, id.as_str()))?;
                let Some(task) = load(txn, &id)? else {
                    continue;
                };
                if let Some(seq) = task.dead_seq {
                    txn.open(DEAD)?.remove((seq, id.as_str()))?;
                }
                txn.open(TASKS)?.remove(id.as_str())?;
            }
            history::prune(txn, config, now)?;
            txn.open(IDEMPOTENCY)?.retain(|_, value| {
                serde_json::from_slice::<(String, u64)>(value)
                    .is_ok_and(|(_, expires_ms)| expires_ms > now)
            })?;
            let completion: Option<Completion> = (moved > 0)
                .then(|| Box::new(|shared: &Shared| shared.work.notify_waiters()) as Completion);
            Ok((moved, completion))
        })
        .await
    }
}

impl EmbeddedBroker {
    /// The tasks an index table (keyed by an ordering number and the task
    /// id) points at, in key order or newest first, at most `limit`.
    fn indexed_tasks(
        &self,
        table: TableDefinition<(u64, &str), ()>,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<StoredTask>, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let tasks = txn.open_table(TASKS).map_err(storage)?;
        let index = txn.open_table(table).map_err(storage)?;
        let entries = index.iter().map_err(storage)?;
        let entries: Box<dyn Iterator<Item = _>> = if newest_first {
            Box::new(entries.rev())
        } else {
            Box::new(entries)
        };
        let mut found = Vec::new();
        for entry in entries {
            if found.len() >= limit {
                break;
            }
            let (key, _) = entry.map_err(storage)?;
            if let Some(value) = tasks.get(key.value().1).map_err(storage)? {
                found.push(decode::<StoredTask>(value.value())?);
            }
        }
        Ok(found)
    }
}

/// Leases `task` (taken off its ready queue) to `consumer` until `lease`
/// from `now`: a new generation, state RECEIVED. The caller stores it.
fn lease_to(
    txn: &Tx,
    config: &BrokerConfig,
    task: &mut StoredTask,
    consumer: &str,
    lease: Duration,
    now: u64,
) -> Result<Delivery, BrokerError> {
    let task_id = task.record.message.id.clone();
    task.generation += 1;
    let expires_ms = now + lease.as_millis() as u64;
    let receipt = format!("{}:{}", task_id, task.generation);
    task.lease = Some(Lease {
        consumer: consumer.to_owned(),
        expires_ms,
        receipt: receipt.clone(),
    });
    txn.open(LEASES)?
        .insert((expires_ms, task_id.as_str()), ())?;
    task.record.state = TaskState::Received;
    task.record.worker = Some(consumer.to_owned());
    task.record.updated_ms = now;
    append_event(txn, config, &task.record, None)?;
    Ok(Delivery {
        message: task.record.message.clone(),
        generation: task.generation,
        consumer: consumer.to_owned(),
        receipt,
    })
}
