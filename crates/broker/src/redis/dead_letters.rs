//! The Redis broker's dead letters: tasks that failed for good, listed,
//! replayed as a first attempt, or purged.

use super::*;
use crate::DeadLetters;

#[async_trait::async_trait]
impl DeadLetters for RedisBroker {
    async fn dead_letters(&self, limit: usize) -> Result<Vec<TaskRecord>, BrokerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.key("dead"))
            .arg(0)
            .arg(stop)
            .query_async(&mut self.con())
            .await
            .map_err(storage)?;
        self.records(&ids).await
    }

    async fn dead_letter_count(&self) -> Result<u64, BrokerError> {
        redis::cmd("ZCARD")
            .arg(self.key("dead"))
            .query_async(&mut self.con())
            .await
            .map_err(storage)
    }

    async fn replay_dead_letter(&self, task_id: &str) -> Result<Option<String>, BrokerError> {
        let mut inv = self.invocation(&self.scripts.dead_take);
        inv.arg(task_id);
        let Some(msg) = self.run::<Option<String>>(&inv).await? else {
            return Ok(None);
        };
        let old: TaskMessage = serde_json::from_str(&msg)
            .map_err(|e| corrupt(format!("task {task_id}: message: {e}")))?;
        let message = TaskMessage {
            id: new_task_id(),
            attempt: 1,
            eta_ms: None,
            expires_ms: None,
            idempotency_key: None,
            submitted_ms: now_ms(),
            ..old
        };
        Ok(Some(self.submit(message).await?.task_id))
    }

    async fn purge_dead_letters(&self) -> Result<u64, BrokerError> {
        self.run(&self.invocation(&self.scripts.dead_purge)).await
    }
}
