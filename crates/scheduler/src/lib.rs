//! The scheduler (Celery Beat's replacement): submits each entry's task at
//! every fire time of its cron expression (UTC).
//!
//! Any number of processes may run it on one broker, and each fire time of
//! each entry ("slot") still becomes exactly one task: a fire is submitted
//! with the idempotency key `schedule:{name}:{slot ms}`, and the broker
//! keeps one task per key (the reference's pain: two beat processes fire
//! every job twice). The latest slot submitted is kept in the broker
//! ([`record`]), so a restarted scheduler does not fire a slot again and
//! catches up at most one missed slot per entry (the latest), never a
//! burst; an entry that never fired owes nothing from before the start.
//!
//! Between fires the scheduler sleeps until the soonest due time (at most
//! [`MAX_SLEEP`] at once, so a wall-clock step is noticed within it).
//! A fire whose task no plugin offers is skipped (logged): submitting it
//! would only fill the dead letters.
//!
//! Depends on `hippo-broker` (where fires go and slots are kept) and on
//! `hippo-runtime` only for the registry's task names; never on the API or
//! the worker.

pub mod config;
pub mod cron;
pub mod record;
pub mod sources;

mod beat;

pub use beat::{BeatReport, MAX_SLEEP};
pub use config::{ScheduleConfigError, ScheduleEntry, ScheduleTable};
pub use cron::{CronError, CronSchedule, rfc3339};
pub use record::{LastFire, Trigger};
pub use sources::{interval_cron, parse_bool};

use hippo_broker::{BrokerError, KvError, SharedBroker, TaskMessage, now_ms};
use hippo_runtime::PluginRegistry;
use std::sync::Arc;

/// Fire times a listing shows per entry.
pub const NEXT_FIRES: usize = 5;

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// No entry has this name.
    #[error("unknown schedule {0:?}")]
    UnknownEntry(String),
    /// No loaded plugin offers the entry's task.
    #[error("schedule {entry:?}: no registered plugin offers task {task:?}")]
    TaskNotRegistered {
        /// The entry.
        entry: String,
        /// Its task.
        task: String,
    },
    /// The broker refused or failed the submission.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The broker's key-value store (the scheduler's records) failed.
    #[error("schedule records: {0}")]
    Records(#[from] KvError),
}

/// A task submitted for an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The task's id (the earlier task's when this slot was already submitted).
    pub task_id: String,
    /// False when another scheduler had already submitted this slot.
    pub created: bool,
}

/// An entry with its upcoming fire times and its latest fire.
#[derive(Debug, Clone)]
pub struct ScheduleStatus {
    /// The entry.
    pub entry: ScheduleEntry,
    /// The next [`NEXT_FIRES`] times its expression names (Unix ms); a
    /// disabled entry does not fire at them.
    pub next_fires_ms: Vec<u64>,
    /// Its latest fire, by any process.
    pub last_fire: Option<LastFire>,
    /// Whether a loaded plugin offers its task.
    pub task_registered: bool,
}

/// The schedule table over a broker: lists entries, fires them by hand,
/// and [`run`](Scheduler::run)s the beat.
#[derive(Debug)]
pub struct Scheduler {
    broker: SharedBroker,
    registry: Arc<PluginRegistry>,
    table: ScheduleTable,
}

impl Scheduler {
    /// A scheduler of `table` on `broker`, submitting tasks that `registry`
    /// offers. Refuses entries whose queue the broker does not serve, and
    /// warns about expressions that fire many times in a row.
    pub fn new(
        broker: SharedBroker,
        registry: Arc<PluginRegistry>,
        table: ScheduleTable,
    ) -> Result<Scheduler, ScheduleConfigError> {
        table.check_queues(&broker.config().queues)?;
        for entry in table.entries() {
            if let Some(warning) = entry.cron.lint() {
                tracing::warn!(schedule = %entry.name, "{warning}");
            }
        }
        Ok(Scheduler {
            broker,
            registry,
            table,
        })
    }

    /// The entries.
    pub fn table(&self) -> &ScheduleTable {
        &self.table
    }

    /// Every entry with its next fire times (after now) and latest fire.
    pub async fn statuses(&self) -> Result<Vec<ScheduleStatus>, SchedulerError> {
        let now = now_ms();
        let mut statuses = Vec::with_capacity(self.table.entries().len());
        for entry in self.table.entries() {
            statuses.push(ScheduleStatus {
                next_fires_ms: entry.cron.upcoming(now, NEXT_FIRES),
                last_fire: record::last_fire(&*self.broker, &entry.name).await?,
                task_registered: self.registry.resolve(&entry.task).is_some(),
                entry: entry.clone(),
            });
        }
        Ok(statuses)
    }

    /// Submits entry `name`'s task now (disabled or not), as a new task.
    pub async fn run_now(&self, name: &str) -> Result<Fired, SchedulerError> {
        let entry = self
            .table
            .get(name)
            .ok_or_else(|| SchedulerError::UnknownEntry(name.to_string()))?;
        self.fire(entry, None).await
    }

    /// Submits `entry`'s task: for its fire time `slot` (Unix ms) once
    /// across every scheduler, or by hand (`None`) as a new task each time.
    async fn fire(
        &self,
        entry: &ScheduleEntry,
        slot: Option<u64>,
    ) -> Result<Fired, SchedulerError> {
        if self.registry.resolve(&entry.task).is_none() {
            return Err(SchedulerError::TaskNotRegistered {
                entry: entry.name.clone(),
                task: entry.task.clone(),
            });
        }
        let now = now_ms();
        let mut message = TaskMessage::new(&entry.task, &entry.queue, entry.input.clone());
        message.max_retries = self.registry.runtime().config().default_max_retries;
        message.idempotency_key = slot.map(|slot| format!("schedule:{}:{slot}", entry.name));
        message.expires_ms = entry
            .expires
            .map(|expires| now.saturating_add(expires.as_millis() as u64));
        let submitted = self.broker.submit(message).await?;
        if let Some(slot) = slot {
            record::advance_slot(&*self.broker, &entry.name, slot).await?;
        }
        if submitted.created {
            let fire = LastFire {
                at_ms: now,
                task_id: submitted.task_id.clone(),
                trigger: if slot.is_some() {
                    Trigger::Schedule
                } else {
                    Trigger::Manual
                },
                slot_ms: slot,
            };
            record::record_fire(&*self.broker, &entry.name, &fire).await?;
        }
        Ok(Fired {
            task_id: submitted.task_id,
            created: submitted.created,
        })
    }
}
