//! Importance decay: `importance × 0.5^(Δdays / half_life(type))`, with Δ
//! counted from the last decay written (`decayed_at`), else from creation.
//!
//! A new value is written only when it differs from the stored one by more
//! than 0.1, and only then does `decayed_at` move to now. While the change
//! is smaller, `decayed_at` stays put, so the elapsed time keeps adding up
//! until it matters. Because `0.5^(a/h) × 0.5^(b/h) = 0.5^((a+b)/h)`, the
//! decay does not depend on how often it runs: one 30-day step and thirty
//! 1-day steps give the same value (the reference counted every run from
//! creation, so daily runs compounded).

use hippo_sdk::memory::{self, Memory, Stored};
use hippo_sdk::time::{DAY_MS, now_ms};
use hippo_sdk::{Context, TaskError};
use serde_json::{Value, json};

use crate::scan::{Pass, PassInput, report};

/// Smallest change of importance worth a write.
pub const MIN_CHANGE: f32 = 0.1;

/// `importance` decayed from `since` to `now` with a half-life of
/// `half_life_days`. Time running backwards (a clock step) decays nothing.
pub fn decayed(importance: f32, since: i64, now: i64, half_life_days: f64) -> f32 {
    let days = (now - since).max(0) as f64 / DAY_MS as f64;
    (f64::from(importance) * 0.5f64.powf(days / half_life_days)) as f32
}

/// The importance `memory` has decayed to at `now`, written or not.
pub fn current_importance(memory: &Memory, now: i64) -> f32 {
    let since = memory.decayed_at.unwrap_or(memory.created_at);
    decayed(
        memory.importance,
        since,
        now,
        memory.memory_type.half_life_days(),
    )
}

/// Decays `memory` at `now`: when the importance has dropped by more than
/// [`MIN_CHANGE`], stores the new value, sets `decayed_at` to `now` and
/// returns true; otherwise leaves the memory as it is.
pub fn apply_decay(memory: &mut Memory, now: i64) -> bool {
    let importance = current_importance(memory, now);
    if (memory.importance - importance).abs() <= MIN_CHANGE {
        return false;
    }
    memory.importance = importance;
    memory.decayed_at = Some(now);
    true
}

/// `maintenance.decay`: out `{decayed, unchanged}` plus the pass report
/// (`complete`, `resumed`, `scanned`, `total`). Archived memories decay too.
/// Each page's changed memories are written in one upsert.
pub fn decay(ctx: &Context, input: Option<PassInput>) -> Result<Value, TaskError> {
    let input = input.unwrap_or_default();
    let mut pass = Pass::start(ctx, "decay", &input, input.filter(true)?)?;
    let now = now_ms();
    let (mut decayed, mut unchanged) = (0u64, 0u64);
    while let Some(page) = pass.next_page()? {
        let mut writes: Vec<Stored> = Vec::new();
        for mut stored in page {
            if apply_decay(&mut stored.memory, now) {
                writes.push(stored);
            } else {
                unchanged += 1;
            }
        }
        memory::upsert(&writes)?;
        decayed += writes.len() as u64;
        if pass.page_done() {
            break;
        }
    }
    ctx.info(format!(
        "decay: {decayed} memories decayed, {unchanged} unchanged"
    ));
    Ok(report(
        pass.finish(),
        json!({ "decayed": decayed, "unchanged": unchanged }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hippo_sdk::memory::MemoryType;

    fn memory(importance: f32, memory_type: MemoryType) -> Memory {
        Memory {
            id: "m1".into(),
            text: "text".into(),
            user_id: "alice".into(),
            session_id: None,
            memory_type,
            importance,
            confidence: 0.9,
            tags: Vec::new(),
            created_at: 0,
            updated_at: 0,
            expires_at: None,
            decayed_at: None,
            access_count: 0,
            metadata: "{}".into(),
            agent_id: None,
            run_id: None,
            visibility: None,
            is_archived: false,
            promotion_count: 0,
        }
    }

    /// Runs decay every `step_days` for `days` days; returns the memory.
    fn run(mut memory: Memory, days: i64, step_days: i64) -> Memory {
        let mut now = memory.created_at;
        while now < memory.created_at + days * DAY_MS {
            now += step_days * DAY_MS;
            apply_decay(&mut memory, now);
        }
        memory
    }

    #[test]
    fn one_30_day_step_equals_thirty_1_day_steps() {
        // An event of importance 10 (half-life 14 days) loses more than 0.1
        // every day for 30 days, so every daily run writes.
        let once = run(memory(10.0, MemoryType::Event), 30, 30);
        let daily = run(memory(10.0, MemoryType::Event), 30, 1);
        let expected = 10.0 * 0.5f32.powf(30.0 / 14.0);
        assert!(
            (once.importance - expected).abs() < 1e-4,
            "{}",
            once.importance
        );
        assert!(
            (daily.importance - once.importance).abs() < 1e-4,
            "{} vs {}",
            daily.importance,
            once.importance
        );
        assert_eq!(daily.decayed_at, Some(30 * DAY_MS));
    }

    #[test]
    fn small_daily_changes_accumulate_instead_of_being_lost() {
        // Importance 2 of a preference loses ~0.015 a day: no single daily
        // run would write, yet the decay must not stall.
        let daily = run(memory(2.0, MemoryType::Preference), 90, 1);
        let once = run(memory(2.0, MemoryType::Preference), 90, 90);
        let now = 90 * DAY_MS;
        assert!((once.importance - 1.0).abs() < 1e-4);
        assert!(
            daily.importance < 2.0,
            "decay stalled at {}",
            daily.importance
        );
        // What is stored lags by less than one write's worth, and the value
        // decayed to now is the same whatever the schedule.
        assert!(daily.importance - once.importance <= MIN_CHANGE + 1e-4);
        assert!((current_importance(&daily, now) - current_importance(&once, now)).abs() < 1e-4);
        // Steps that divide 90 days, so every schedule ends on day 90.
        for step in [2, 3, 9, 10, 45] {
            let other = run(memory(2.0, MemoryType::Preference), 90, step);
            assert!(
                (current_importance(&other, now) - 1.0).abs() < 1e-4,
                "step {step}"
            );
        }
    }

    #[test]
    fn no_write_below_the_minimum_change() {
        let mut m = memory(1.0, MemoryType::Fact);
        // One day of a 30-day half-life takes 1.0 to 0.977.
        assert!(!apply_decay(&mut m, DAY_MS));
        assert_eq!((m.importance, m.decayed_at), (1.0, None));
    }

    #[test]
    fn decay_counts_from_the_last_write() {
        let mut m = memory(6.0, MemoryType::Event);
        m.created_at = 0;
        m.decayed_at = Some(28 * DAY_MS);
        // 14 days after the last write: one half-life of an event.
        assert!(apply_decay(&mut m, 42 * DAY_MS));
        assert!((m.importance - 3.0).abs() < 1e-4);
        assert_eq!(m.decayed_at, Some(42 * DAY_MS));
    }

    #[test]
    fn half_lives_differ_by_type() {
        let now = 180 * DAY_MS;
        let after = |t| current_importance(&memory(8.0, t), now);
        assert!((after(MemoryType::Procedural) - 4.0).abs() < 1e-4);
        assert!((after(MemoryType::Goal) - 2.0).abs() < 1e-4);
        assert!(after(MemoryType::Event) < 0.01);
        // A clock step backwards decays nothing.
        assert_eq!(decayed(5.0, now, 0, 30.0), 5.0);
    }
}
