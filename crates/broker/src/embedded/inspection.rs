//! What the embedded broker shows of its tasks: records (and waiting for one to finish),
//! queue figures, scheduled and leased tasks, and the event log.

use super::*;
use crate::{BandCounts, Inspection};

#[async_trait::async_trait]
impl Inspection for EmbeddedBroker {
    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, BrokerError> {
        Ok(self.read_task(task_id)?.map(|t| t.record))
    }

    async fn wait(
        &self,
        task_id: &str,
        timeout: Duration,
    ) -> Result<Option<TaskRecord>, BrokerError> {
        let waiter = self
            .shared
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(task_id.to_string())
            .or_default()
            .clone();
        let finished = waiter.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        let record = match self.task(task_id).await? {
            Some(record) if !record.state.is_terminal() => {
                let _ = tokio::time::timeout(timeout, finished).await;
                self.task(task_id).await?
            }
            other => other,
        };
        let mut waiters = self
            .shared
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Ours and the map's: nobody else waits, so the entry can go.
        if Arc::strong_count(&waiter) <= 2 {
            waiters.remove(task_id);
        }
        Ok(record)
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let ready = txn.open_table(READY).map_err(storage)?;
        let mut stats: Vec<QueueStats> = self
            .config
            .queues
            .iter()
            .map(|name| QueueStats {
                name: name.clone(),
                ready: 0,
                ready_by_band: BandCounts::default(),
                reserved: 0,
                scheduled: 0,
            })
            .collect();
        for stat in &mut stats {
            let mut bands = [0; 3];
            for (count, band) in bands.iter_mut().zip(Band::ALL) {
                let (name, band) = (stat.name.as_str(), band as u8);
                *count = ready
                    .range((name, band, 0u64)..=(name, band, u64::MAX))
                    .map_err(storage)?
                    .count() as u64;
            }
            stat.ready_by_band = BandCounts::from_ordered(bands);
            stat.ready = stat.ready_by_band.total();
        }
        drop(ready);
        for (table, reserved) in [(LEASES, true), (DELAYED, false)] {
            for task in self.indexed_tasks(table, usize::MAX, false)? {
                let Some(stat) = stats
                    .iter_mut()
                    .find(|s| s.name == task.record.message.queue)
                else {
                    continue;
                };
                if reserved {
                    stat.reserved += 1;
                } else {
                    stat.scheduled += 1;
                }
            }
        }
        Ok(stats)
    }

    async fn scheduled(&self, limit: usize) -> Result<Vec<TaskRecord>, BrokerError> {
        Ok(self
            .indexed_tasks(DELAYED, limit, false)?
            .into_iter()
            .map(|t| t.record)
            .collect())
    }

    async fn reserved(&self) -> Result<Vec<Delivery>, BrokerError> {
        let leased = self.indexed_tasks(LEASES, usize::MAX, false)?;
        Ok(leased
            .into_iter()
            .filter_map(|task| {
                let lease = task.lease?;
                Some(Delivery {
                    message: task.record.message,
                    generation: task.generation,
                    consumer: lease.consumer,
                    receipt: lease.receipt,
                })
            })
            .collect())
    }

    async fn events(&self, after: Option<u64>, limit: usize) -> Result<Vec<Event>, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let start = after.map_or(0, |seq| seq + 1);
        txn.open_table(EVENTS)
            .map_err(storage)?
            .range(start..)
            .map_err(storage)?
            .take(limit)
            .map(|entry| entry.map_err(storage).and_then(|(_, v)| decode(v.value())))
            .collect()
    }

    async fn last_event(&self) -> Result<u64, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let counters = txn.open_table(COUNTERS).map_err(storage)?;
        Ok(counters
            .get("event")
            .map_err(storage)?
            .map_or(0, |v| v.value()))
    }
}
