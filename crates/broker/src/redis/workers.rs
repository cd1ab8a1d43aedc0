//! The Redis broker's worker registry: heartbeats that expire unless renewed.

use super::*;
use crate::WorkerRegistry;

#[async_trait::async_trait]
impl WorkerRegistry for RedisBroker {
    async fn record_worker(
        &self,
        heartbeat: &WorkerHeartbeat,
        ttl: Duration,
    ) -> Result<(), BrokerError> {
        let json = to_json(heartbeat)?;
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.key(&format!("worker:{}", heartbeat.name)))
            .arg(json)
            .arg("PX")
            .arg(millis(ttl).max(1))
            .ignore()
            .sadd(self.key("workers"), &heartbeat.name)
            .ignore()
            .query_async::<()>(&mut self.con())
            .await
            .map_err(storage)
    }

    async fn workers(&self) -> Result<Vec<WorkerHeartbeat>, BrokerError> {
        let mut con = self.con();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key("workers"))
            .query_async(&mut con)
            .await
            .map_err(storage)?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        names.sort();
        let keys: Vec<String> = names
            .iter()
            .map(|n| self.key(&format!("worker:{n}")))
            .collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(storage)?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (name, value) in names.iter().zip(values) {
            match value {
                Some(json) => out.push(
                    serde_json::from_str(&json)
                        .map_err(|e| corrupt(format!("worker {name}: {e}")))?,
                ),
                None => gone.push(name),
            }
        }
        if !gone.is_empty() {
            let _: () = redis::cmd("SREM")
                .arg(self.key("workers"))
                .arg(gone)
                .query_async(&mut con)
                .await
                .map_err(storage)?;
        }
        Ok(out)
    }
}
