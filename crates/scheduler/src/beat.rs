//! The beat: one loop that sleeps until the soonest due entry, fires what
//! is owed, and sleeps again.

use super::cron::CronSchedule;
use super::{ScheduleEntry, Scheduler, SchedulerError, record};
use hippo_broker::now_ms;
use std::future::Future;
use std::time::Duration;

/// The longest the beat sleeps at once. Sleeps run on the monotonic clock
/// and fire times are wall-clock times: waking at least this often bounds
/// how late a fire can be after the wall clock is stepped.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The first wait after a failed fire; it doubles up to [`MAX_SLEEP`].
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// What a beat did while it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BeatReport {
    /// Fires that created a task.
    pub fired: u64,
    /// Fires another scheduler had already submitted (same entry and slot).
    pub duplicates: u64,
    /// Fires skipped because no loaded plugin offers the task.
    pub skipped: u64,
    /// Fires (or reads of the records) the broker failed; each is retried.
    pub failed: u64,
}

/// One enabled entry, as this beat follows it.
struct Plan<'a> {
    entry: &'a ScheduleEntry,
    /// The latest slot known to be done (`None` until read from the broker).
    handled: Option<u64>,
    /// When to look at the entry next (Unix ms).
    due_ms: u64,
    /// The wait before retrying a failure.
    retry: Duration,
}

/// The slot owed at `now` when every slot up to `handled` is done: the
/// latest fire time at or before `now`, if later than `handled`. Never
/// more than one, however many were missed.
fn owed(cron: &CronSchedule, handled: u64, now: u64) -> Option<u64> {
    cron.latest_at_or_before(now).filter(|&slot| slot > handled)
}

impl Scheduler {
    /// Runs the beat over the enabled entries until `shutdown` resolves;
    /// returns what it did.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> BeatReport {
        let mut report = BeatReport::default();
        let mut plans: Vec<Plan<'_>> = self
            .table()
            .entries()
            .iter()
            .filter(|entry| entry.enabled)
            .map(|entry| Plan {
                entry,
                handled: None,
                due_ms: 0,
                retry: FIRST_RETRY,
            })
            .collect();
        tracing::info!(entries = plans.len(), "scheduler running");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let now = now_ms();
            for plan in plans.iter_mut().filter(|plan| plan.due_ms <= now) {
                self.step(plan, now, &mut report).await;
            }
            let wake = plans.iter().map(|plan| plan.due_ms).min();
            let delay = wake.map_or(MAX_SLEEP, |wake| {
                Duration::from_millis(wake.saturating_sub(now_ms())).min(MAX_SLEEP)
            });
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        tracing::info!(?report, "scheduler stopped");
        report
    }

    /// Fires what `plan` owes at `now` and sets when to look again.
    async fn step(&self, plan: &mut Plan<'_>, now: u64, report: &mut BeatReport) {
        let entry = plan.entry;
        let mut done = match plan.handled {
            Some(done) => done,
            None => match record::last_slot(&*self.broker, &entry.name).await {
                Ok(Some(slot)) => slot,
                // Never fired: nothing from before this start is owed.
                Ok(None) => entry.cron.latest_at_or_before(now).unwrap_or(0),
                Err(error) => return retry(plan, now, &SchedulerError::from(error), report),
            },
        };
        plan.handled = Some(done);
        if let Some(slot) = owed(&entry.cron, done, now) {
            match self.fire(entry, Some(slot)).await {
                Ok(fired) => {
                    tracing::info!(schedule = %entry.name, slot = %super::rfc3339(slot),
                        task_id = %fired.task_id, created = fired.created, "fired");
                    if fired.created {
                        report.fired += 1;
                    } else {
                        report.duplicates += 1;
                    }
                }
                Err(error @ SchedulerError::TaskNotRegistered { .. }) => {
                    tracing::warn!(slot = %super::rfc3339(slot), "skipped: {error}");
                    report.skipped += 1;
                }
                Err(error) => return retry(plan, now, &error, report),
            }
            done = slot;
            plan.handled = Some(done);
            plan.retry = FIRST_RETRY;
        }
        plan.due_ms = entry.cron.next_after(done.max(now)).unwrap_or(u64::MAX);
    }
}

/// Looks at `plan` again after its retry wait, which then doubles.
fn retry(plan: &mut Plan<'_>, now: u64, error: &SchedulerError, report: &mut BeatReport) {
    tracing::warn!(schedule = %plan.entry.name, retry_in = ?plan.retry, "fire failed: {error}");
    report.failed += 1;
    plan.due_ms = now.saturating_add(plan.retry.as_millis() as u64);
    plan.retry = (plan.retry * 2).min(MAX_SLEEP);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01T00:00:00Z.
    const NEW_YEAR: u64 = 1_735_689_600_000;
    const HOUR: u64 = 3_600_000;

    #[test]
    fn only_the_latest_missed_slot_is_owed() {
        let hourly = CronSchedule::parse("0 * * * *").unwrap();
        // Five hours down: one catch-up fire, for the latest hour.
        let now = NEW_YEAR + 5 * HOUR + 600_000;
        assert_eq!(owed(&hourly, NEW_YEAR, now), Some(NEW_YEAR + 5 * HOUR));
        // Once it is done, nothing more until the next hour.
        assert_eq!(owed(&hourly, NEW_YEAR + 5 * HOUR, now), None);
        assert_eq!(
            hourly.next_after(now),
            Some(NEW_YEAR + 6 * HOUR),
            "the next look is at the next slot"
        );
        // The slot of the present second is owed; a later record owes nothing.
        assert_eq!(owed(&hourly, NEW_YEAR - HOUR, NEW_YEAR), Some(NEW_YEAR));
        assert_eq!(owed(&hourly, NEW_YEAR + HOUR, NEW_YEAR), None);
    }
}
