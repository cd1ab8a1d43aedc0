//! The key-value store on Redis: plain string keys under `{prefix}kv:`,
//! with Redis's own TTLs and `INCRBY`.

use super::RedisBroker;
use crate::broker::BrokerError;
use crate::broker::kv::{KeyValue, KvError, check};
use redis::AsyncCommands;
use std::time::Duration;

fn storage(error: redis::RedisError) -> KvError {
    if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) {
        KvError::NotAnInteger
    } else {
        KvError::Broker(BrokerError::Storage(error.to_string()))
    }
}

impl RedisBroker {
    fn kv_key(&self, key: &str) -> String {
        self.key(&format!("kv:{key}"))
    }
}

#[async_trait::async_trait]
impl KeyValue for RedisBroker {
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check(key, None)?;
        self.conn
            .clone()
            .get(self.kv_key(key))
            .await
            .map_err(storage)
    }

    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        check(key, Some(value))?;
        let mut conn = self.conn.clone();
        match ttl {
            // PSETEX refuses 0; a zero TTL means "already expired".
            Some(ttl) => {
                let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
                conn.pset_ex(self.kv_key(key), value, ms).await
            }
            None => conn.set(self.kv_key(key), value).await,
        }
        .map_err(storage)
    }

    async fn kv_incr(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        check(key, None)?;
        self.conn
            .clone()
            .incr(self.kv_key(key), delta)
            .await
            .map_err(storage)
    }

    async fn kv_delete(&self, key: &str) -> Result<bool, KvError> {
        check(key, None)?;
        let removed: u64 = self
            .conn
            .clone()
            .del(self.kv_key(key))
            .await
            .map_err(storage)?;
        Ok(removed > 0)
    }
}
