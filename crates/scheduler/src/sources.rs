//! Where a schedule table comes from: the defaults, then the reference's
//! environment controls, then a TOML file (later layers win).
//!
//! Environment (the reference's `.env`): `AUTO_DEDUP_ENABLED` and
//! `AUTO_CONSOLIDATION_ENABLED` (true/false, 1/0, yes/no, on/off) switch
//! those entries; `DEDUP_INTERVAL_HOURS`, `CONSOLIDATION_INTERVAL_HOURS` and
//! `EXPIRATION_INTERVAL_HOURS` set their schedule from any whole number of
//! hours (see [`interval_cron`]): `h` dividing 24 is `0 */h * * *` (minute
//! 0 of every h-th hour from midnight; 1 is `0 * * * *`), 24 is `0 0 * * *`
//! and 168 is `0 0 * * 0`; any other is the interval `@every <h>h`, whose
//! fire times are the multiples of h hours since the Unix epoch.
//!
//! The file (`HIPPO_SCHEDULES_FILE`, else `schedules.toml` in the data
//! directory when it exists) changes entries by name and adds new ones:
//!
//! ```toml
//! [schedules.auto-deduplicate-memories]
//! cron = "0 30 1 * * *"          # 01:30:00 UTC; 5 fields, or 6 with seconds first,
//!                                # or an interval: "@every 36h"
//!
//! [schedules.nightly-report]     # a new entry needs task and cron
//! task = "reports.nightly"
//! cron = "0 3 * * *"
//! queue = "default"              # default: scheduled
//! input = { format = "pdf" }     # default: {}
//! expires_s = 3600               # revoke the task if not started within this
//! enabled = true                 # default: true
//! ```

use super::config::{
    SCHEDULES_FILE_NAME, ScheduleConfigError, ScheduleEntry, ScheduleTable, check_task, parse_cron,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// What an environment control sets.
#[derive(Clone, Copy)]
enum Control {
    Enabled,
    IntervalHours,
}

const ENV_CONTROLS: [(&str, &str, Control); 5] = [
    (
        "AUTO_DEDUP_ENABLED",
        "auto-deduplicate-memories",
        Control::Enabled,
    ),
    (
        "AUTO_CONSOLIDATION_ENABLED",
        "consolidate-memories",
        Control::Enabled,
    ),
    (
        "DEDUP_INTERVAL_HOURS",
        "auto-deduplicate-memories",
        Control::IntervalHours,
    ),
    (
        "CONSOLIDATION_INTERVAL_HOURS",
        "consolidate-memories",
        Control::IntervalHours,
    ),
    (
        "EXPIRATION_INTERVAL_HOURS",
        "cleanup-expired-memories",
        Control::IntervalHours,
    ),
];

/// The schedule of "every `hours` hours": a cron expression when cron says
/// it exactly (divisors of 24 from midnight, a day, a week on Sundays),
/// else the interval `@every <hours>h`. `None` for 0.
pub fn interval_cron(hours: u32) -> Option<String> {
    match hours {
        0 => None,
        1 => Some("0 * * * *".into()),
        2..=12 if 24 % hours == 0 => Some(format!("0 */{hours} * * *")),
        24 => Some("0 0 * * *".into()),
        168 => Some("0 0 * * 0".into()),
        _ => Some(format!("@every {hours}h")),
    }
}

/// One entry of the file: every field optional, so a known entry can change
/// just one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    task: Option<String>,
    cron: Option<String>,
    queue: Option<String>,
    input: Option<serde_json::Value>,
    enabled: Option<bool>,
    expires_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    #[serde(default)]
    schedules: BTreeMap<String, FileEntry>,
}

impl ScheduleTable {
    /// The table a process runs: the defaults, then the process
    /// environment, then `file` (or `schedules.toml` in `data_dir` if it
    /// exists).
    pub fn load(
        file: Option<&Path>,
        data_dir: &Path,
    ) -> Result<ScheduleTable, ScheduleConfigError> {
        let mut table = ScheduleTable::defaults();
        table.apply_env(|var| std::env::var(var).ok())?;
        let default_file = data_dir.join(SCHEDULES_FILE_NAME);
        let file = match file {
            Some(file) => Some(file),
            None => default_file.is_file().then_some(default_file.as_path()),
        };
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ScheduleConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
            table.apply_toml(&text, path)?;
        }
        Ok(table)
    }

    /// Applies the reference's environment controls, read through `var`.
    pub fn apply_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ScheduleConfigError> {
        for (name, entry, control) in ENV_CONTROLS {
            let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let error = |message: &str| ScheduleConfigError::Env {
                var: name,
                value: value.clone(),
                message: message.to_string(),
            };
            let entry = self
                .entry_mut(entry)
                .expect("controls name default entries");
            match control {
                Control::Enabled => {
                    entry.enabled = parse_bool(&value).ok_or_else(|| error("use true or false"))?;
                }
                Control::IntervalHours => {
                    let cron = value
                        .trim()
                        .parse()
                        .ok()
                        .and_then(interval_cron)
                        .ok_or_else(|| {
                            error(&format!(
                                "use a whole number of hours above 0, or set a cron \
                                 expression for {entry:?} in {SCHEDULES_FILE_NAME}",
                                entry = entry.name
                            ))
                        })?;
                    entry.cron = parse_cron(&entry.name, &cron)?;
                }
            }
        }
        Ok(())
    }

    /// Applies a schedules file's `text` (`path` names it in errors).
    pub fn apply_toml(&mut self, text: &str, path: &Path) -> Result<(), ScheduleConfigError> {
        let file: ScheduleFile = toml::from_str(text).map_err(|e| ScheduleConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        for (name, change) in file.schedules {
            let entry = match self.entry_mut(&name) {
                Some(entry) => entry,
                None => {
                    let missing = |field: &str| ScheduleConfigError::Field {
                        entry: name.clone(),
                        message: format!("a new entry needs `{field}`"),
                    };
                    let task = change.task.as_deref().ok_or_else(|| missing("task"))?;
                    let cron = change.cron.as_deref().ok_or_else(|| missing("cron"))?;
                    self.entries.push(ScheduleEntry::new(&name, task, cron)?);
                    self.entries.last_mut().expect("just pushed")
                }
            };
            if let Some(task) = change.task {
                entry.task = check_task(&name, &task)?;
            }
            if let Some(cron) = change.cron {
                entry.cron = parse_cron(&name, &cron)?;
            }
            if let Some(queue) = change.queue {
                entry.queue = queue;
            }
            if let Some(input) = change.input {
                entry.input = input;
            }
            if let Some(enabled) = change.enabled {
                entry.enabled = enabled;
            }
            if let Some(seconds) = change.expires_s {
                entry.expires = Some(
                    Duration::try_from_secs_f64(seconds)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| ScheduleConfigError::Field {
                            entry: name.clone(),
                            message: format!("expires_s {seconds} must be a positive number"),
                        })?,
                );
            }
        }
        Ok(())
    }
}

/// A switch of the reference's `.env`: true/false, 1/0, yes/no, on/off, in
/// any case. Also read by the host for the reference's other switches.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |var| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    fn cron_of<'a>(table: &'a ScheduleTable, name: &str) -> &'a str {
        table.get(name).unwrap().cron.expression()
    }

    #[test]
    fn environment_controls_map_to_cron_expressions() {
        let mut table = ScheduleTable::defaults();
        table
            .apply_env(env(&[
                ("AUTO_DEDUP_ENABLED", "false"),
                ("AUTO_CONSOLIDATION_ENABLED", "true"),
                ("DEDUP_INTERVAL_HOURS", "12"),
                ("CONSOLIDATION_INTERVAL_HOURS", "168"),
                ("EXPIRATION_INTERVAL_HOURS", "1"),
            ]))
            .unwrap();
        assert!(!table.get("auto-deduplicate-memories").unwrap().enabled);
        assert!(table.get("consolidate-memories").unwrap().enabled);
        assert_eq!(cron_of(&table, "auto-deduplicate-memories"), "0 */12 * * *");
        assert_eq!(cron_of(&table, "consolidate-memories"), "0 0 * * 0");
        assert_eq!(cron_of(&table, "cleanup-expired-memories"), "0 * * * *");
        // The reference's own .env values give the defaults back.
        let mut table = ScheduleTable::defaults();
        table
            .apply_env(env(&[
                ("AUTO_DEDUP_ENABLED", "true"),
                ("AUTO_CONSOLIDATION_ENABLED", "false"),
                ("DEDUP_INTERVAL_HOURS", "24"),
                ("CONSOLIDATION_INTERVAL_HOURS", "168"),
                ("EXPIRATION_INTERVAL_HOURS", "1"),
            ]))
            .unwrap();
        let defaults = ScheduleTable::defaults();
        for (a, b) in table.entries().iter().zip(defaults.entries()) {
            assert_eq!(
                (a.cron.expression(), a.enabled),
                (b.cron.expression(), b.enabled)
            );
        }
        assert_eq!(
            [1, 2, 3, 4, 6, 8, 12, 24, 168].map(|h| interval_cron(h).is_some()),
            [true; 9]
        );
        assert_eq!(interval_cron(0), None);
        assert_eq!(interval_cron(36).as_deref(), Some("@every 36h"));
        assert_eq!(interval_cron(5).as_deref(), Some("@every 5h"));
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let mut table = ScheduleTable::defaults();
        let error = table
            .apply_env(env(&[("DEDUP_INTERVAL_HOURS", "1.5")]))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("DEDUP_INTERVAL_HOURS=\"1.5\""),
            "{error}"
        );
        // Any whole number of hours is an interval.
        table
            .apply_env(env(&[("DEDUP_INTERVAL_HOURS", "36")]))
            .unwrap();
        let dedup = table.get("auto-deduplicate-memories").unwrap();
        assert_eq!(dedup.cron.expression(), "@every 36h");
        let error = table
            .apply_env(env(&[("AUTO_DEDUP_ENABLED", "maybe")]))
            .unwrap_err();
        assert!(error.to_string().contains("AUTO_DEDUP_ENABLED"), "{error}");
    }

    #[test]
    fn the_file_changes_entries_and_adds_new_ones() {
        let mut table = ScheduleTable::defaults();
        let text = r#"
            [schedules.auto-deduplicate-memories]
            cron = "0 30 1 * * *"

            [schedules.health-check]
            enabled = false

            [schedules.fib-every-second]
            task = "example.fib"
            cron = "* * * * * *"
            queue = "default"
            input = { n = 10 }
            expires_s = 0.5
        "#;
        table.apply_toml(text, Path::new("schedules.toml")).unwrap();
        assert_eq!(cron_of(&table, "auto-deduplicate-memories"), "0 30 1 * * *");
        assert!(!table.get("health-check").unwrap().enabled);
        let fib = table.get("fib-every-second").unwrap();
        assert_eq!(
            (fib.task.as_str(), fib.queue.as_str()),
            ("example.fib", "default")
        );
        assert_eq!(fib.input, serde_json::json!({"n": 10}));
        assert_eq!(fib.expires, Some(Duration::from_millis(500)));
        assert!(fib.enabled);
        assert_eq!(table.entries().len(), 7);
        table
            .check_queues(&hippo_broker::BrokerConfig::default().queues)
            .unwrap();
    }

    #[test]
    fn file_errors_name_the_entry() {
        let path = Path::new("schedules.toml");
        let mut table = ScheduleTable::defaults();
        let error = table
            .apply_toml("[schedules.health-check]\ncron = \"0 25 * * *\"", path)
            .unwrap_err();
        assert!(
            matches!(&error, ScheduleConfigError::Cron { entry, .. } if entry == "health-check"),
            "{error}"
        );
        assert!(error.to_string().contains("health-check"), "{error}");
        let error = table
            .apply_toml("[schedules.new-one]\ncron = \"0 0 * * *\"", path)
            .unwrap_err();
        assert!(error.to_string().contains("needs `task`"), "{error}");
        let error = table
            .apply_toml(
                "[schedules.Bad_Name]\ntask = \"t\"\ncron = \"0 0 * * *\"",
                path,
            )
            .unwrap_err();
        assert!(matches!(error, ScheduleConfigError::Name(_)), "{error}");
        let error = table
            .apply_toml("[schedules.health-check]\ncorn = \"0 0 * * *\"", path)
            .unwrap_err();
        assert!(error.to_string().contains("corn"), "{error}");
        let error = table
            .apply_toml("[schedules.health-check]\nexpires_s = -1", path)
            .unwrap_err();
        assert!(error.to_string().contains("expires_s"), "{error}");
        table
            .apply_toml("[schedules.health-check]\nqueue = \"nowhere\"", path)
            .unwrap();
        let error = table.check_queues(&["scheduled".to_string()]).unwrap_err();
        assert!(error.to_string().contains("health-check"), "{error}");
    }
}
