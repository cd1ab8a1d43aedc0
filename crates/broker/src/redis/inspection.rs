//! What the Redis broker shows of its tasks: records (and waiting for one to finish),
//! queue figures, scheduled and leased tasks, and the event log.

use super::*;
use crate::{BandCounts, Inspection};

#[async_trait::async_trait]
impl Inspection for RedisBroker {
    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, BrokerError> {
        let mut con = self.con();
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.task_key(task_id))
            .query_async(&mut con)
            .await
            .map_err(storage)?;
        decode_record(task_id, &h)
    }

    async fn wait(
        &self,
        task_id: &str,
        timeout: Duration,
    ) -> Result<Option<TaskRecord>, BrokerError> {
        let deadline = Instant::now() + timeout;
        self.notifications.follow_results().await.map_err(storage)?;
        let mut first = true;
        loop {
            // Interest first, then the check: a completion in between still wakes us.
            let (_guard, notified, known) = self.notifications.register(task_id);
            let read = match known {
                Known::Finished(Some(published)) => match published_record(&published) {
                    Some(record) => return Ok(Some(record)),
                    None => true,
                },
                Known::Finished(None) | Known::Nothing => true,
                Known::Unfinished => false,
            };
            if read {
                match self.task(task_id).await {
                    Ok(Some(record)) if !record.state.is_terminal() => {}
                    Ok(record) => return Ok(record),
                    // Redis is unreachable from the start: say so at once.
                    Err(e) if first => return Err(e),
                    // Woken because the subscription dropped: Redis may be
                    // restarting. The relay wakes us again once it is back.
                    Err(_) => {}
                }
            }
            first = false;
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, notified).await {
                Ok(Ok(Some(published))) => {
                    if let Some(record) = published_record(&published) {
                        return Ok(Some(record));
                    }
                }
                Ok(_) => {}
                Err(_) => return self.task(task_id).await,
            }
        }
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, BrokerError> {
        let mut inv = self.invocation(&self.scripts.stats);
        for queue in &self.config.queues {
            for band in Band::ALL {
                inv.key(self.stream_key(queue, band));
            }
            inv.key(self.delayed_key(queue));
        }
        inv.arg(&self.config.queues);
        let counts: Vec<i64> = self.run(&inv).await?;
        // Per queue: ready in each band (Band::ALL's order), reserved, scheduled.
        if counts.len() != 5 * self.config.queues.len() {
            return Err(corrupt("queue stats: malformed reply"));
        }
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(self
            .config
            .queues
            .iter()
            .zip(counts.chunks(5))
            .map(|(name, c)| {
                let bands = BandCounts::from_ordered([count(c[0]), count(c[1]), count(c[2])]);
                QueueStats {
                    name: name.clone(),
                    ready: bands.total(),
                    ready_by_band: bands,
                    reserved: count(c[3]),
                    scheduled: count(c[4]),
                }
            })
            .collect())
    }

    async fn scheduled(&self, limit: usize) -> Result<Vec<TaskRecord>, BrokerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let mut pipe = redis::pipe();
        for queue in &self.config.queues {
            pipe.zrange_withscores(self.delayed_key(queue), 0, stop);
        }
        let per_queue: Vec<Vec<(String, f64)>> =
            pipe.query_async(&mut self.con()).await.map_err(storage)?;
        let mut due: Vec<(String, f64)> = per_queue.into_iter().flatten().collect();
        due.sort_by(|a, b| a.1.total_cmp(&b.1));
        due.truncate(limit);
        let ids: Vec<String> = due.into_iter().map(|(id, _)| id).collect();
        self.records(&ids).await
    }

    async fn reserved(&self) -> Result<Vec<Delivery>, BrokerError> {
        let mut con = self.con();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("leases"))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .map_err(storage)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.task_key(id))
                .arg(&["phase", "msg", "gen", "consumer", "receipt"]);
        }
        type Fields = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Fields> = pipe.query_async(&mut con).await.map_err(storage)?;
        let mut out = Vec::new();
        for (id, row) in ids.iter().zip(rows) {
            // A task handed straight to a waiting consumer has no receipt.
            let (Some(phase), Some(msg), Some(generation), Some(consumer), receipt) = row else {
                continue;
            };
            if phase != "leased" {
                continue;
            }
            out.push(Delivery {
                message: serde_json::from_str(&msg)
                    .map_err(|e| corrupt(format!("task {id}: message: {e}")))?,
                generation: generation
                    .parse()
                    .map_err(|e| corrupt(format!("task {id}: generation: {e}")))?,
                consumer,
                receipt: receipt.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn last_event(&self) -> Result<u64, BrokerError> {
        self.newest_event().await
    }

    async fn events(&self, after: Option<u64>, limit: usize) -> Result<Vec<Event>, BrokerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // An entry holds the events of one script, numbered up to its id
        // (see `flush_events`). Starting the range at the first wanted
        // number, only the first entry can hold events before it, and it
        // holds one after it: `limit` entries bring `limit` events.
        let first = self
            .oldest_event()
            .await?
            .max(after.map_or(0, |seq| seq.saturating_add(1)));
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(self.key("events"))
            .arg(format!("{first}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.con())
            .await
            .map_err(storage)?;
        let mut out = Vec::with_capacity(limit);
        for (entry, fields) in entries {
            let bad = |what: &str| corrupt(format!("event entry {entry}: {what}"));
            let last: u64 = entry
                .split('-')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("id"))?;
            let at_ms = fields
                .get("at")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("time"))?;
            let packed: Vec<[String; 6]> = match fields.get("e") {
                Some(e) => serde_json::from_str(e).map_err(|e| bad(&e.to_string()))?,
                // An entry an earlier version wrote: one event, a field each.
                None => {
                    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
                    vec![["id", "state", "task", "queue", "worker", "detail"].map(field)]
                }
            };
            let count = packed.len() as u64;
            if count == 0 || count > last {
                return Err(bad("event count"));
            }
            let text = |s: String| (!s.is_empty()).then_some(s);
            for (seq, [task_id, state, task, queue, worker, detail]) in
                (last + 1 - count..).zip(packed)
            {
                if seq < first {
                    continue;
                }
                out.push(Event {
                    seq,
                    at_ms,
                    task_id,
                    task,
                    queue,
                    state: serde_json::from_value(serde_json::Value::String(state))
                        .map_err(|e| bad(&e.to_string()))?,
                    worker: text(worker),
                    detail: text(detail),
                });
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}
