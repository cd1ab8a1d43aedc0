//! When a failed attempt runs again: the task's own delay when it asks for
//! one, else exponential backoff with full jitter, capped.

use std::time::Duration;

/// Exponential backoff with jitter and a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // The reference retried after a flat 60 s; backoff from 1 s reaches
        // that by the sixth attempt and keeps a failing dependency from
        // being hammered afterwards.
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1` after attempt `attempt` failed.
    /// `requested` (the task's own delay) wins, within the cap; `unit` in
    /// [0, 1) draws the jitter.
    pub fn delay(&self, attempt: u32, requested: Option<Duration>, unit: f64) -> Duration {
        if let Some(requested) = requested {
            return requested.min(self.cap);
        }
        let exponent = attempt.saturating_sub(1).min(32);
        let ceiling = self
            .base
            .saturating_mul(1u32 << exponent.min(31))
            .min(self.cap);
        // Half fixed, half random: never zero, and retries of many tasks
        // that failed together spread out.
        ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        assert_eq!(policy.delay(1, None, 1.0), Duration::from_secs(1));
        assert_eq!(policy.delay(2, None, 1.0), Duration::from_secs(2));
        assert_eq!(policy.delay(3, None, 1.0), Duration::from_secs(4));
        assert_eq!(policy.delay(9, None, 1.0), Duration::from_secs(10));
        assert_eq!(policy.delay(1_000, None, 1.0), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(3, None, 0.0), Duration::from_secs(2));
        assert_eq!(policy.delay(3, None, 0.5), Duration::from_secs(3));
    }

    #[test]
    fn the_tasks_own_delay_wins_within_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        assert_eq!(
            policy.delay(5, Some(Duration::from_millis(250)), 0.9),
            Duration::from_millis(250)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600)), 0.9),
            Duration::from_secs(60)
        );
    }
}
