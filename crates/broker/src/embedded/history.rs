//! The embedded broker's history (see [`crate::history`]): three tables
//! written in the transaction of the change they record, so an entry, its
//! index positions and its logs are never out of step with each other.

use super::*;
use crate::History;
use crate::history::{
    AttemptLog, HistoryEntry, HistoryPage, HistoryQuery, PRUNE_BATCH, PageCollector,
};
use redb::ReadableTableMetadata;

/// Task id -> [`HistoryEntry`] (JSON).
pub(super) const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");
/// (facet, last change ms, task id) -> (): the history's indexes.
pub(super) const HISTORY_INDEX: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("history_index");
/// "{task id}\n{attempt}" -> [`AttemptLog`] (JSON): attempts that logged.
pub(super) const HISTORY_LOGS: TableDefinition<&str, &[u8]> = TableDefinition::new("history_logs");

fn log_key(task_id: &str, attempt: u32) -> String {
    format!("{task_id}\n{attempt}")
}

/// Records in the history that `record`'s attempt `attempt` ended in
/// `record.state`; `run` is that attempt's run, with its log, if it ran.
pub(super) fn remember(
    txn: &Tx,
    record: &TaskRecord,
    attempt: u32,
    run: Option<&RunMeta>,
) -> Result<(), BrokerError> {
    let id = record.message.id.as_str();
    // A first attempt has no entry yet (only a retry makes a second one),
    // so it reads nothing.
    let earlier: Option<HistoryEntry> = if attempt > 1 {
        let history = txn.open(HISTORY)?;
        let value = history.get(id).map_err(storage)?;
        value.map(|v| decode(v.value())).transpose()?
    } else {
        None
    };
    if let Some(earlier) = &earlier {
        unindex(txn, earlier)?;
    }
    if let Some(run) = run.filter(|run| !run.log.is_empty()) {
        let log = AttemptLog {
            attempt,
            log: run.log.clone(),
        };
        txn.open(HISTORY_LOGS)?
            .insert(log_key(id, attempt).as_str(), encode(&log)?.as_slice())?;
    }
    let entry = HistoryEntry::after(earlier, record, attempt, run);
    let mut index = txn.open(HISTORY_INDEX)?;
    for facet in entry.facets() {
        index.insert((facet.as_str(), entry.updated_ms, id), ())?;
    }
    txn.open(HISTORY)?.insert(id, encode(&entry)?.as_slice())
}

/// Takes `entry` out of every index it is listed in.
fn unindex(txn: &Tx, entry: &HistoryEntry) -> Result<(), BrokerError> {
    let mut index = txn.open(HISTORY_INDEX)?;
    for facet in entry.facets() {
        index.remove((facet.as_str(), entry.updated_ms, entry.id.as_str()))?;
    }
    Ok(())
}

/// Drops the oldest entries (and their logs) past the retention's age or
/// count, at most [`PRUNE_BATCH`]; returns how many it dropped.
pub(super) fn prune(txn: &Tx, config: &BrokerConfig, now: u64) -> Result<u64, BrokerError> {
    let retention = config.history;
    let oldest_kept = now.saturating_sub(retention.max_age.as_millis() as u64);
    // redb keeps a table's length in its header: no counter to keep.
    let count = txn.open(HISTORY)?.len().map_err(storage)?;
    let all = crate::history::Facet::All.key();
    let mut doomed = Vec::new();
    {
        let index = txn.open(HISTORY_INDEX)?;
        for position in index
            .range((all.as_str(), 0u64, "")..(all.as_str(), u64::MAX, ""))
            .map_err(storage)?
        {
            let (key, _) = position.map_err(storage)?;
            let (_, at_ms, id) = key.value();
            let over_count = count.saturating_sub(doomed.len() as u64) > retention.max_tasks;
            if (at_ms >= oldest_kept && !over_count) || doomed.len() >= PRUNE_BATCH {
                break;
            }
            doomed.push(id.to_owned());
        }
    }
    for id in &doomed {
        let entry: Option<HistoryEntry> = {
            let history = txn.open(HISTORY)?;
            let value = history.get(id.as_str()).map_err(storage)?;
            value.map(|v| decode(v.value())).transpose()?
        };
        let Some(entry) = entry else { continue };
        unindex(txn, &entry)?;
        let mut logs = txn.open(HISTORY_LOGS)?;
        for attempt in &entry.attempts {
            logs.remove(log_key(id, attempt.attempt).as_str())?;
        }
        txn.open(HISTORY)?.remove(id.as_str())?;
    }
    Ok(doomed.len() as u64)
}

impl EmbeddedBroker {
    fn read_entry(
        history: &impl ReadableTable<&'static str, &'static [u8]>,
        task_id: &str,
    ) -> Result<Option<HistoryEntry>, BrokerError> {
        let value = history.get(task_id).map_err(storage)?;
        value.map(|v| decode(v.value())).transpose()
    }
}

#[async_trait::async_trait]
impl History for EmbeddedBroker {
    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let history = txn.open_table(HISTORY).map_err(storage)?;
        let index = txn.open_table(HISTORY_INDEX).map_err(storage)?;
        let facet = query.facet().key();
        let facet = facet.as_str();
        let lowest = (facet, query.since_ms.unwrap_or(0), "");
        let positions = match query.start() {
            (at_ms, Some(after_id)) => index.range(lowest..(facet, at_ms, after_id)),
            (at_ms, None) => index.range(lowest..(facet, at_ms.saturating_add(1), "")),
        }
        .map_err(storage)?;
        let mut page = PageCollector::new(query);
        for position in positions.rev() {
            if !page.wants_more() {
                break;
            }
            let (key, _) = position.map_err(storage)?;
            let (_, at_ms, id) = key.value();
            page.offer(at_ms, id.to_owned(), Self::read_entry(&history, id)?);
        }
        Ok(page.page())
    }

    async fn history_entry(&self, task_id: &str) -> Result<Option<HistoryEntry>, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let history = txn.open_table(HISTORY).map_err(storage)?;
        Self::read_entry(&history, task_id)
    }

    async fn task_log(&self, task_id: &str) -> Result<Vec<AttemptLog>, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let history = txn.open_table(HISTORY).map_err(storage)?;
        let Some(entry) = Self::read_entry(&history, task_id)? else {
            return Ok(Vec::new());
        };
        let logs = txn.open_table(HISTORY_LOGS).map_err(storage)?;
        let mut found = Vec::new();
        for attempt in &entry.attempts {
            if let Some(value) = logs
                .get(log_key(task_id, attempt.attempt).as_str())
                .map_err(storage)?
            {
                found.push(decode(value.value())?);
            }
        }
        Ok(found)
    }
}
