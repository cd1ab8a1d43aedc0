//! The embedded broker's dead letters: tasks that failed for good, listed,
//! replayed as a first attempt, or purged.

use super::*;
use crate::DeadLetters;

#[async_trait::async_trait]
impl DeadLetters for EmbeddedBroker {
    async fn dead_letters(&self, limit: usize) -> Result<Vec<TaskRecord>, BrokerError> {
        Ok(self
            .indexed_tasks(DEAD, limit, true)?
            .into_iter()
            .map(|t| t.record)
            .collect())
    }

    async fn dead_letter_count(&self) -> Result<u64, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let dead = txn.open_table(DEAD).map_err(storage)?;
        redb::ReadableTableMetadata::len(&dead).map_err(storage)
    }

    async fn replay_dead_letter(&self, task_id: &str) -> Result<Option<String>, BrokerError> {
        let task_id = task_id.to_string();
        self.write(true, move |txn, config| {
            let Some(mut dead) = load(txn, &task_id)? else {
                return Ok((None, None));
            };
            let Some(seq) = dead.dead_seq.take() else {
                return Ok((None, None));
            };
            txn.open(DEAD)?.remove((seq, task_id.as_str()))?;
            store(txn, &dead)?;
            let mut message = dead.record.message;
            message.id = new_task_id();
            message.attempt = 1;
            message.eta_ms = None;
            message.idempotency_key = None;
            message.submitted_ms = now_ms();
            let new_id = message.id.clone();
            let mut task = StoredTask::pending(message);
            make_ready(
                txn,
                config,
                &mut task,
                Some(format!("replay of dead letter {task_id}")),
            )?;
            store(txn, &task)?;
            Ok((
                Some(new_id),
                Some(Box::new(|shared: &Shared| shared.work.notify_waiters()) as Completion),
            ))
        })
        .await
    }

    async fn purge_dead_letters(&self) -> Result<u64, BrokerError> {
        self.write(true, |txn, _| {
            let letters: Vec<String> = txn
                .open(DEAD)?
                .iter()
                .map_err(storage)?
                .map(|entry| {
                    entry
                        .map(|(key, _)| key.value().1.to_string())
                        .map_err(storage)
                })
                .collect::<Result<_, _>>()?;
            for id in &letters {
                // The record stays (FAILURE) until it expires; it is just no longer a letter.
                if let Some(mut task) = load(txn, id)? {
                    task.dead_seq = None;
                    store(txn, &task)?;
                }
            }
            txn.open(DEAD)?.retain(|_, _| false)?;
            Ok((letters.len() as u64, None))
        })
        .await
    }
}
