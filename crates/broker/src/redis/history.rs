//! The Redis broker's history (see [`crate::history`]): the scripts that
//! end an attempt write it (`remember` in `scripts.rs`), atomically with
//! the change; this file reads it and prunes it.

use super::*;
use crate::History;
use crate::history::{
    Attempt, AttemptLog, HistoryEntry, HistoryPage, HistoryQuery, PRUNE_BATCH, PageCollector,
    bounded_input,
};

/// Index positions read per round trip while a page fills.
const POSITIONS_PER_READ: usize = 200;

impl RedisBroker {
    fn history_key(&self, task_id: &str) -> String {
        self.key(&format!("hist:{task_id}"))
    }

    /// The entries of `ids`' history hashes (`None`: gone).
    async fn history_entries(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<HistoryEntry>>, BrokerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.history_key(id));
        }
        let hashes: Vec<HashMap<String, String>> =
            pipe.query_async(&mut self.con()).await.map_err(storage)?;
        ids.iter()
            .zip(&hashes)
            .map(|(id, h)| decode_entry(id, h))
            .collect()
    }

    /// Drops what the retention no longer keeps, a batch at a time.
    pub(super) async fn prune_history(&self) -> Result<u64, BrokerError> {
        let retention = self.config.history;
        let oldest_kept = now_ms().saturating_sub(millis(retention.max_age));
        let mut inv = self.invocation(&self.scripts.history_prune);
        inv.arg(oldest_kept)
            .arg(retention.max_tasks)
            .arg(PRUNE_BATCH);
        self.run(&inv).await
    }
}

/// Decodes a history hash; `None` when it does not exist.
fn decode_entry(
    id: &str,
    h: &HashMap<String, String>,
) -> Result<Option<HistoryEntry>, BrokerError> {
    if h.is_empty() {
        return Ok(None);
    }
    let bad = |field: &str, e: &dyn std::fmt::Display| {
        corrupt(format!("history of {id}: field {field}: {e}"))
    };
    let text = |name: &str| h.get(name).map(String::as_str).filter(|s| !s.is_empty());
    let number = |name: &str| -> Result<u64, BrokerError> {
        text(name).map_or(Ok(0), |s| s.parse().map_err(|e| bad(name, &e)))
    };
    let json = |name: &str| -> Result<Option<serde_json::Value>, BrokerError> {
        text(name)
            .map(|s| serde_json::from_str(s).map_err(|e| bad(name, &e)))
            .transpose()
    };
    let msg = text("msg").unwrap_or_default();
    let (input, input_truncated, acting_for, submitted_ms) = if text("cut").is_some() {
        // The message's first bytes: its input starts after its key (a key
        // inside a string before it is escaped, so the first match is it).
        let input = msg.split_once(",\"input\":").map_or("", |(_, rest)| rest);
        let input = serde_json::Value::String(input.to_owned());
        let after = after_input(text("tail").unwrap_or_default())
            .ok_or_else(|| bad("tail", &"no fields after the input"))?;
        (input, true, after.acting_for, after.submitted_ms)
    } else {
        let message: TaskMessage = serde_json::from_str(msg).map_err(|e| bad("msg", &e))?;
        let (input, cut) = bounded_input(&message.input);
        (input, cut, message.acting_for, message.submitted_ms)
    };
    let state = text("state").unwrap_or_default();
    let state: TaskState = serde_json::from_value(serde_json::Value::String(state.to_owned()))
        .map_err(|e| bad("state", &e))?;
    let attempts: Vec<Attempt> = match text("attempts") {
        Some(s) => serde_json::from_str(s).map_err(|e| bad("attempts", &e))?,
        None => Vec::new(),
    };
    let result = match text("result") {
        Some(s) => Some(serde_json::from_str::<TaskOutput>(s).map_err(|e| bad("result", &e))?),
        None => None,
    };
    Ok(Some(HistoryEntry {
        id: id.to_owned(),
        task: text("task").unwrap_or_default().to_owned(),
        queue: text("queue").unwrap_or_default().to_owned(),
        state,
        worker: text("worker").map(str::to_owned),
        acting_for,
        submitted_ms,
        updated_ms: number("updated")?,
        input,
        input_truncated,
        result: result.filter(|r| !r.is_null()),
        result_truncated: text("rcut").is_some(),
        error: json("error")?
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| bad("error", &e))?,
        attempts,
    }))
}

/// The fields of a message that follow its input, which the history keeps
/// of a message it cut.
#[derive(Deserialize)]
struct AfterInput {
    #[serde(default)]
    acting_for: Option<String>,
    submitted_ms: u64,
}

/// Reads [`AfterInput`] from the last bytes of a message: its fields after
/// the input start at the last `"attempt"` key (no key of those fields, nor
/// any escaped text, can hold that key; an object in the input can, but
/// only before it).
fn after_input(tail: &str) -> Option<AfterInput> {
    let at = tail.rfind(",\"attempt\":")?;
    serde_json::from_str(&format!("{{{}", &tail[at + 1..])).ok()
}

#[async_trait::async_trait]
impl History for RedisBroker {
    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, BrokerError> {
        let index = self.key(&format!("hist:ix:{}", query.facet().key()));
        let (start_ms, after_id) = query.start();
        let max = if start_ms == u64::MAX {
            "+inf".to_owned()
        } else {
            start_ms.to_string()
        };
        let min = query.since_ms.unwrap_or(0);
        let mut page = PageCollector::new(query);
        let mut offset = 0;
        while page.wants_more() {
            let positions: Vec<(String, u64)> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&index)
                .arg(&max)
                .arg(min)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(POSITIONS_PER_READ)
                .query_async(&mut self.con())
                .await
                .map_err(storage)?;
            offset += positions.len();
            let last_read = positions.len() < POSITIONS_PER_READ;
            // Positions at the cursor's time sort by id, highest first:
            // those up to the cursor's id were on earlier pages.
            let positions: Vec<(String, u64)> = positions
                .into_iter()
                .filter(|(id, at_ms)| {
                    !(*at_ms == start_ms && after_id.is_some_and(|after| id.as_str() >= after))
                })
                .collect();
            let ids: Vec<String> = positions.iter().map(|(id, _)| id.clone()).collect();
            let entries = self.history_entries(&ids).await?;
            for ((id, at_ms), entry) in positions.into_iter().zip(entries) {
                if !page.wants_more() {
                    break;
                }
                page.offer(at_ms, id, entry);
            }
            if last_read {
                break;
            }
        }
        Ok(page.page())
    }

    async fn history_entry(&self, task_id: &str) -> Result<Option<HistoryEntry>, BrokerError> {
        let mut entries = self.history_entries(&[task_id.to_owned()]).await?;
        Ok(entries.pop().flatten())
    }

    async fn task_log(&self, task_id: &str) -> Result<Vec<AttemptLog>, BrokerError> {
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.history_key(task_id))
            .query_async(&mut self.con())
            .await
            .map_err(storage)?;
        let mut logs = Vec::new();
        for (field, value) in &h {
            let Some(attempt) = field.strip_prefix("log:") else {
                continue;
            };
            let attempt = attempt
                .parse()
                .map_err(|e| corrupt(format!("history of {task_id}: field {field}: {e}")))?;
            let log = serde_json::from_str(value)
                .map_err(|e| corrupt(format!("history of {task_id}: field {field}: {e}")))?;
            logs.push(AttemptLog { attempt, log });
        }
        logs.sort_by_key(|log| log.attempt);
        Ok(logs)
    }
}
