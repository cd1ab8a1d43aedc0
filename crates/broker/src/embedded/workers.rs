//! The embedded broker's worker registry: heartbeats that expire unless renewed.

use super::*;
use crate::WorkerRegistry;

#[async_trait::async_trait]
impl WorkerRegistry for EmbeddedBroker {
    async fn record_worker(
        &self,
        heartbeat: &WorkerHeartbeat,
        ttl: Duration,
    ) -> Result<(), BrokerError> {
        let value = encode(&(heartbeat, now_ms() + ttl.as_millis() as u64))?;
        let name = heartbeat.name.clone();
        self.write(false, move |txn, _| {
            txn.open(WORKERS)?.insert(name.as_str(), value.as_slice())?;
            Ok(((), None))
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<WorkerHeartbeat>, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let now = now_ms();
        let mut workers = Vec::new();
        for entry in txn
            .open_table(WORKERS)
            .map_err(storage)?
            .iter()
            .map_err(storage)?
        {
            let (_, value) = entry.map_err(storage)?;
            let (heartbeat, expires_ms): (WorkerHeartbeat, u64) = decode(value.value())?;
            if expires_ms > now {
                workers.push(heartbeat);
            }
        }
        Ok(workers)
    }
}
