//! Cron expressions, always evaluated in UTC, and intervals.
//!
//! An expression has five fields (`minute hour day-of-month month
//! day-of-week`, firing at second 0) or six (a `second` field first), or is
//! a nickname (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`), or
//! an interval, `@every <n><s|m|h|d>` (`@every 36h`): it fires at every
//! multiple of the interval since the Unix epoch, so that every process
//! running the scheduler computes the same fire times and each is claimed
//! once, as a cron expression's are. Every
//! field is explicit: `0 0 * * *` is once a day at midnight, while `* 0 * * *`
//! is every minute of hour 0 (60 fires a day) — the reference system's
//! mistake, which [`CronSchedule::lint`] points out.

use chrono::{DateTime, SecondsFormat, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron expression or interval. Fire times are whole seconds, in
/// Unix milliseconds (UTC).
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    rule: Rule,
}

#[derive(Debug, Clone)]
enum Rule {
    Cron(Box<Cron>),
    /// Every this many milliseconds (whole seconds), from the epoch.
    Every(u64),
}

/// The interval of `@every <n><unit>` in whole seconds, or why not.
fn every_seconds(spec: &str) -> Result<u64, String> {
    let spec = spec.trim();
    let split = spec
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(spec.len());
    let (number, unit) = spec.split_at(split);
    let unit_s = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err("an interval is `@every <n>s`, `m`, `h` or `d`, e.g. `@every 36h`".into()),
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(unit_s))
        .filter(|s| *s <= 10 * 366 * 86_400)
        .ok_or_else(|| "an interval is a whole number above 0, at most ten years".into())
}

/// An expression that does not parse, or that never fires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {expression:?}: {reason}")]
pub struct CronError {
    /// The expression as given.
    pub expression: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CronSchedule {
    /// Parses `expression` (5 or 6 fields, or a nickname) and checks that
    /// it fires at least once from now on.
    pub fn parse(expression: &str) -> Result<CronSchedule, CronError> {
        let expression = expression.trim().to_string();
        let error = |reason: String| CronError {
            expression: expression.clone(),
            reason,
        };
        let rule = match expression.strip_prefix("@every") {
            Some(spec) => Rule::Every(every_seconds(spec).map_err(error)? * 1_000),
            None => Rule::Cron(Box::new(
                CronParser::builder()
                    .seconds(Seconds::Optional)
                    .year(Year::Disallowed)
                    .build()
                    .parse(&expression)
                    .map_err(|e| error(e.to_string()))?,
            )),
        };
        let schedule = CronSchedule {
            expression: expression.clone(),
            rule,
        };
        if schedule.next_after(hippo_broker::now_ms()).is_none() {
            return Err(error("it names no time that ever comes".into()));
        }
        Ok(schedule)
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The expression in English, e.g. `At 00:00`.
    pub fn describe(&self) -> String {
        match &self.rule {
            Rule::Cron(cron) => cron.describe(),
            Rule::Every(ms) => format!("Every {} seconds, counted from the Unix epoch", ms / 1_000),
        }
    }

    /// The first fire time strictly after `after_ms`.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match &self.rule {
            Rule::Cron(cron) => {
                let after = utc_second(after_ms)?;
                millis(cron.find_next_occurrence(&after, false).ok()?)
            }
            Rule::Every(ms) => (after_ms / ms).checked_add(1)?.checked_mul(*ms),
        }
    }

    /// The latest fire time at or before `at_ms`.
    pub fn latest_at_or_before(&self, at_ms: u64) -> Option<u64> {
        match &self.rule {
            Rule::Cron(cron) => {
                let at = utc_second(at_ms)?;
                millis(cron.find_previous_occurrence(&at, true).ok()?)
            }
            Rule::Every(ms) => Some(at_ms / ms * ms),
        }
    }

    /// The next `count` fire times after `after_ms`, soonest first.
    pub fn upcoming(&self, after_ms: u64, count: usize) -> Vec<u64> {
        std::iter::successors(self.next_after(after_ms), |&at| self.next_after(at))
            .take(count)
            .collect()
    }

    /// A warning when a field is `*` under a fixed coarser one, such as
    /// `* 0 * * *` (every minute of hour 0): that fires many times in a
    /// row, which is rarely what was meant.
    pub fn lint(&self) -> Option<String> {
        let fields: Vec<&str> = self.expression.split_whitespace().collect();
        // Seconds, minutes, hours: six fields have all three, five lack seconds.
        let (names, times): (&[&str], &[&str]) = match fields.len() {
            6 => (&["second", "minute", "hour"], &fields[..3]),
            5 => (&["minute", "hour"], &fields[..2]),
            _ => return None,
        };
        let wild = times.iter().position(|f| *f == "*")?;
        let fixed = times[wild + 1..].iter().position(|f| *f != "*")?;
        let (finer, coarser) = (names[wild], names[wild + 1 + fixed]);
        Some(format!(
            "{:?} fires every {finer} while its {coarser} field matches: \
             set the {finer} field (e.g. 0) to fire once",
            self.expression
        ))
    }
}

impl std::fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.expression)
    }
}

/// `ms` rounded down to its second, as a UTC time.
fn utc_second(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(i64::try_from(ms / 1000).ok()?, 0)
}

fn millis(at: DateTime<Utc>) -> Option<u64> {
    u64::try_from(at.timestamp_millis()).ok()
}

/// `ms` as RFC 3339 in UTC, e.g. `2025-01-31T02:00:00Z`.
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01T00:00:00Z, a Wednesday.
    const NEW_YEAR: u64 = 1_735_689_600_000;
    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;

    fn cron(expression: &str) -> CronSchedule {
        CronSchedule::parse(expression).unwrap()
    }

    fn fires_between(schedule: &CronSchedule, from: u64, to: u64) -> usize {
        std::iter::successors(schedule.next_after(from - 1), |&at| schedule.next_after(at))
            .take_while(|&at| at < to)
            .count()
    }

    #[test]
    fn a_full_daily_expression_fires_once_a_day_but_hour_only_fires_sixty_times() {
        // What the reference configured: only the hour set, so every minute of it.
        let hour_only = cron("* 0 * * *");
        assert_eq!(fires_between(&hour_only, NEW_YEAR, NEW_YEAR + DAY), 60);
        assert!(hour_only.lint().unwrap().contains("every minute"));
        // The full expression: once.
        let daily = cron("0 0 * * *");
        assert_eq!(fires_between(&daily, NEW_YEAR, NEW_YEAR + 7 * DAY), 7);
        assert_eq!(daily.lint(), None);
        assert_eq!(
            daily.upcoming(NEW_YEAR, 3),
            [NEW_YEAR + DAY, NEW_YEAR + 2 * DAY, NEW_YEAR + 3 * DAY]
        );
        // "Hourly" written hour-style fires every minute; written fully, hourly.
        assert_eq!(
            fires_between(&cron("* * * * *"), NEW_YEAR, NEW_YEAR + HOUR),
            60
        );
        assert_eq!(
            fires_between(&cron("0 * * * *"), NEW_YEAR, NEW_YEAR + DAY),
            24
        );
    }

    #[test]
    fn seconds_are_optional_and_times_are_utc() {
        let every_second = cron("* * * * * *");
        assert_eq!(every_second.next_after(NEW_YEAR), Some(NEW_YEAR + 1000));
        assert_eq!(
            every_second.next_after(NEW_YEAR + 500),
            Some(NEW_YEAR + 1000)
        );
        assert_eq!(every_second.lint(), None);
        let decay = cron("0 2 * * *");
        assert_eq!(decay.next_after(NEW_YEAR), Some(NEW_YEAR + 2 * HOUR));
        assert_eq!(rfc3339(NEW_YEAR + 2 * HOUR), "2025-01-01T02:00:00Z");
        let six_fields = cron("30 0 2 * * *");
        assert_eq!(
            six_fields.next_after(NEW_YEAR),
            Some(NEW_YEAR + 2 * HOUR + 30_000)
        );
        // Every 5 minutes, from the top of the hour.
        assert_eq!(
            cron("*/5 * * * *").upcoming(NEW_YEAR, 3),
            [
                NEW_YEAR + 5 * MINUTE,
                NEW_YEAR + 10 * MINUTE,
                NEW_YEAR + 15 * MINUTE
            ]
        );
        // Weekly on Sunday: 2025-01-05.
        assert_eq!(
            cron("0 0 * * 0").next_after(NEW_YEAR),
            Some(NEW_YEAR + 4 * DAY)
        );
        assert_eq!(cron("@hourly").next_after(NEW_YEAR), Some(NEW_YEAR + HOUR));
        assert!(cron("* 0 * * * *").lint().unwrap().contains("every second"));
        assert!(cron("0 * 0 * * *").lint().unwrap().contains("every minute"));
    }

    #[test]
    fn the_latest_fire_time_counts_the_present_second() {
        let hourly = cron("0 * * * *");
        assert_eq!(hourly.latest_at_or_before(NEW_YEAR), Some(NEW_YEAR));
        assert_eq!(hourly.latest_at_or_before(NEW_YEAR + 999), Some(NEW_YEAR));
        assert_eq!(
            hourly.latest_at_or_before(NEW_YEAR + 5 * HOUR + 10 * MINUTE),
            Some(NEW_YEAR + 5 * HOUR)
        );
        assert_eq!(
            hourly.latest_at_or_before(NEW_YEAR - 1),
            Some(NEW_YEAR - HOUR)
        );
    }

    #[test]
    fn an_interval_fires_at_its_multiples_from_the_epoch() {
        let every_36h = cron("@every 36h");
        // 2025-01-01 is day 20,089 since the epoch: 482,136 h, 13,392.67
        // intervals; the next multiple is 13,393 x 36 h.
        let next = 13_393 * 36 * HOUR;
        assert_eq!(every_36h.next_after(NEW_YEAR), Some(next));
        assert_eq!(every_36h.upcoming(NEW_YEAR, 2), [next, next + 36 * HOUR]);
        assert_eq!(every_36h.latest_at_or_before(next), Some(next));
        assert_eq!(
            every_36h.latest_at_or_before(next - 1),
            Some(next - 36 * HOUR)
        );
        // Two processes asking at different moments agree on the slots.
        assert_eq!(
            every_36h.next_after(next - 5 * HOUR),
            every_36h.next_after(next - 30 * HOUR)
        );
        assert_eq!(every_36h.lint(), None);
        assert!(every_36h.describe().contains("129600 seconds"));
        assert_eq!(cron("@every 90m").next_after(0), Some(90 * MINUTE));
        assert_eq!(cron("@every 2d").next_after(DAY), Some(2 * DAY));
        for bad in [
            "@every",
            "@every 0h",
            "@every 5w",
            "@every h",
            "@every -3h",
            "@every 99999d",
        ] {
            assert!(CronSchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for bad in [
            "",
            "0 0 * *",
            "61 * * * *",
            "0 0 * * * * 2030",
            "0 25 * * *",
            "every day",
            "0 0 30 2 *",
        ] {
            let error = CronSchedule::parse(bad).unwrap_err();
            assert_eq!(error.expression, bad.trim());
            assert!(!error.reason.is_empty(), "{bad:?}");
        }
    }
}
