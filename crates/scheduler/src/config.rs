//! The schedule table: the built-in maintenance entries, the reference's
//! environment controls, and a TOML file.
//!
//! | entry | task | queue | cron (UTC) | enabled |
//! |---|---|---|---|---|
//! | `auto-deduplicate-memories` | `maintenance.dedup` | scheduled | `0 0 * * *` (daily 00:00) | yes |
//! | `consolidate-memories` | `maintenance.consolidate` | scheduled | `0 0 * * 0` (Sundays 00:00) | no |
//! | `cleanup-expired-memories` | `maintenance.expire` | scheduled | `0 * * * *` (hourly, minute 0) | yes |
//! | `decay-memory-importance` | `maintenance.decay` | scheduled | `0 2 * * *` (daily 02:00) | yes |
//! | `create-collection-snapshots` | `maintenance.snapshot` | scheduled | `0 * * * *` (hourly, minute 0) | yes |
//! | `health-check` | `maintenance.health` | background | `*/5 * * * *` (every 5 minutes; expires after 240 s) | yes |
//!
//! The environment controls and the schedules file: [`sources`](super::sources).

use super::cron::{CronError, CronSchedule};
use std::path::PathBuf;
use std::time::Duration;

/// The schedules file looked for in the data directory.
pub const SCHEDULES_FILE_NAME: &str = "schedules.toml";
/// The queue of an entry that names none.
pub const DEFAULT_QUEUE: &str = "scheduled";

/// One entry: a task submitted at every fire time of a cron expression.
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    /// Unique name, 1-128 characters of a-z, 0-9, `.`, `-`, `_`.
    pub name: String,
    /// The task submitted.
    pub task: String,
    /// Its JSON input.
    pub input: serde_json::Value,
    /// The queue it goes to.
    pub queue: String,
    /// When it fires (UTC).
    pub cron: CronSchedule,
    /// Disabled entries never fire on their own (they can be run by hand).
    pub enabled: bool,
    /// A submitted task not started within this long is revoked.
    pub expires: Option<Duration>,
}

impl ScheduleEntry {
    /// An enabled entry on the `scheduled` queue with input `{}`.
    pub fn new(name: &str, task: &str, cron: &str) -> Result<ScheduleEntry, ScheduleConfigError> {
        check_name(name)?;
        Ok(ScheduleEntry {
            name: name.to_string(),
            task: check_task(name, task)?,
            input: serde_json::json!({}),
            queue: DEFAULT_QUEUE.to_string(),
            cron: parse_cron(name, cron)?,
            enabled: true,
            expires: None,
        })
    }
}

/// Errors in the schedule configuration; each names what is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleConfigError {
    /// An entry's cron expression does not parse or never fires.
    #[error("schedule {entry:?}: {source}")]
    Cron {
        /// The entry.
        entry: String,
        /// Why.
        source: CronError,
    },
    /// An entry name outside 1-128 characters of a-z, 0-9, `.`, `-`, `_`.
    #[error("schedule name {0:?} must be 1-128 characters of a-z, 0-9, '.', '-', '_'")]
    Name(String),
    /// A field is missing or out of range.
    #[error("schedule {entry:?}: {message}")]
    Field {
        /// The entry.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// Two entries with one name.
    #[error("schedule {0:?} is defined twice")]
    Duplicate(String),
    /// An entry names a queue the broker does not serve.
    #[error("schedule {entry:?}: unknown queue {queue:?} (the broker serves {known})")]
    Queue {
        /// The entry.
        entry: String,
        /// The queue.
        queue: String,
        /// The broker's queues, comma-separated.
        known: String,
    },
    /// An environment control has a value it cannot take.
    #[error("{var}={value:?}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        message: String,
    },
    /// The schedules file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The schedules file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The entries a scheduler runs, by unique name, in a stable order.
#[derive(Debug, Clone, Default)]
pub struct ScheduleTable {
    pub(super) entries: Vec<ScheduleEntry>,
}

/// The defaults: the reference guide's schedules as full cron expressions.
const DEFAULTS: [(&str, &str, &str, &str, bool); 6] = [
    (
        "auto-deduplicate-memories",
        "maintenance.dedup",
        "scheduled",
        "0 0 * * *",
        true,
    ),
    (
        "consolidate-memories",
        "maintenance.consolidate",
        "scheduled",
        "0 0 * * 0",
        false,
    ),
    (
        "cleanup-expired-memories",
        "maintenance.expire",
        "scheduled",
        "0 * * * *",
        true,
    ),
    (
        "decay-memory-importance",
        "maintenance.decay",
        "scheduled",
        "0 2 * * *",
        true,
    ),
    (
        "create-collection-snapshots",
        "maintenance.snapshot",
        "scheduled",
        "0 * * * *",
        true,
    ),
    (
        "health-check",
        "maintenance.health",
        "background",
        "*/5 * * * *",
        true,
    ),
];

/// A health check older than this is stale: the next one is due soon.
const HEALTH_CHECK_EXPIRES: Duration = Duration::from_secs(240);

impl ScheduleTable {
    /// A table of these entries (names must be unique).
    pub fn new(entries: Vec<ScheduleEntry>) -> Result<ScheduleTable, ScheduleConfigError> {
        let mut table = ScheduleTable::default();
        for entry in entries {
            if table.get(&entry.name).is_some() {
                return Err(ScheduleConfigError::Duplicate(entry.name));
            }
            table.entries.push(entry);
        }
        Ok(table)
    }

    /// The built-in entries (see the module docs).
    pub fn defaults() -> ScheduleTable {
        let entries = DEFAULTS
            .iter()
            .map(|&(name, task, queue, cron, enabled)| {
                let mut entry = ScheduleEntry::new(name, task, cron).expect("defaults are valid");
                entry.queue = queue.to_string();
                entry.enabled = enabled;
                if task == "maintenance.health" {
                    entry.expires = Some(HEALTH_CHECK_EXPIRES);
                }
                entry
            })
            .collect();
        ScheduleTable { entries }
    }

    /// Refuses entries whose queue is not among `queues` (the broker's).
    pub fn check_queues(&self, queues: &[String]) -> Result<(), ScheduleConfigError> {
        match self.entries.iter().find(|e| !queues.contains(&e.queue)) {
            Some(entry) => Err(ScheduleConfigError::Queue {
                entry: entry.name.clone(),
                queue: entry.queue.clone(),
                known: queues.join(", "),
            }),
            None => Ok(()),
        }
    }

    /// Every entry, enabled or not.
    pub fn entries(&self) -> &[ScheduleEntry] {
        &self.entries
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&ScheduleEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    pub(super) fn entry_mut(&mut self, name: &str) -> Option<&mut ScheduleEntry> {
        self.entries.iter_mut().find(|e| e.name == name)
    }
}

pub(super) fn parse_cron(entry: &str, cron: &str) -> Result<CronSchedule, ScheduleConfigError> {
    CronSchedule::parse(cron).map_err(|source| ScheduleConfigError::Cron {
        entry: entry.to_string(),
        source,
    })
}

/// Names are keys in the broker's store and segments of API paths.
fn check_name(name: &str) -> Result<(), ScheduleConfigError> {
    let valid = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ScheduleConfigError::Name(name.to_string()))
    }
}

pub(super) fn check_task(entry: &str, task: &str) -> Result<String, ScheduleConfigError> {
    let task = task.trim();
    if task.is_empty() || task.len() > 128 {
        return Err(ScheduleConfigError::Field {
            entry: entry.to_string(),
            message: "task must be 1-128 characters".into(),
        });
    }
    Ok(task.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_guides_schedules_as_full_expressions() {
        let table = ScheduleTable::defaults();
        let summary: Vec<_> = table
            .entries()
            .iter()
            .map(|e| {
                (
                    e.name.as_str(),
                    e.task.as_str(),
                    e.queue.as_str(),
                    e.cron.expression(),
                    e.enabled,
                )
            })
            .collect();
        assert_eq!(summary, DEFAULTS);
        for entry in table.entries() {
            assert_eq!(entry.cron.lint(), None, "{}", entry.name);
            assert_eq!(entry.input, serde_json::json!({}));
        }
        assert_eq!(
            table.get("health-check").unwrap().expires,
            Some(HEALTH_CHECK_EXPIRES)
        );
        assert!(
            table
                .get("consolidate-memories")
                .is_some_and(|e| !e.enabled)
        );
    }

    #[test]
    fn names_are_checked_and_unique() {
        assert!(matches!(
            ScheduleEntry::new("Bad_Name", "t", "0 0 * * *"),
            Err(ScheduleConfigError::Name(_))
        ));
        assert!(ScheduleEntry::new("a", " ", "0 0 * * *").is_err());
        let entry = ScheduleEntry::new("a", "t", "0 0 * * *").unwrap();
        assert!(matches!(
            ScheduleTable::new(vec![entry.clone(), entry]),
            Err(ScheduleConfigError::Duplicate(_))
        ));
    }
}
