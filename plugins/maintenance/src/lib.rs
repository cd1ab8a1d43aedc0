//! The maintenance plugin: memory housekeeping across users (queue
//! `scheduled`) and the health check (queue `background`), the tasks the
//! built-in schedules submit.
//!
//! The plugin is granted `memory-maintenance`, so its memory-store calls act
//! across users; each pass may still be limited to one with `user_id`.
//! Every input is optional: the schedules submit `{}`.
//!
//! | task | input | output |
//! |---|---|---|
//! | `maintenance.dedup` | `{user_id?, page_size=256, restart=false}` | `{clusters, removed, exact, near, complete, resumed, scanned, total}` |
//! | `maintenance.consolidate` | same | `{groups, merged, complete, resumed, scanned, total}` |
//! | `maintenance.decay` | same | `{decayed, unchanged, complete, resumed, scanned, total}` |
//! | `maintenance.expire` | `{user_id?, page_size=500}` | `{deleted, expired_at_start, complete}` |
//! | `maintenance.snapshot` | `{keep=24}` | `{keep, snapshots}` |
//! | `maintenance.health` | anything | `{status, checked_at, components}` |
//!
//! The long tasks check the soft time limit after every page and then
//! return what they did with `"complete": false`. The passes (dedup,
//! consolidate, decay) save where they stopped and the next run resumes
//! there (see [`scan`]); expiry needs no cursor, the expired memories left
//! are still expired. Progress is reported after every page.
//!
//! The algorithms: [`merge`] (deduplication and consolidation, on
//! [`cluster`]), [`decay`], [`expire`].

pub mod cluster;
pub mod decay;
pub mod expire;
pub mod merge;
mod ops;
pub mod scan;

use hippo_sdk::{Plugin, Task};

/// The reference's global limits, for the passes over every memory.
const PASS_SOFT_MS: u64 = 300_000;
const PASS_HARD_MS: u64 = 600_000;

/// The plugin: five scheduled tasks and the health check.
fn plugin() -> Plugin {
    let pass = |task: Task| {
        task.queue("scheduled")
            .soft_time_limit_ms(PASS_SOFT_MS)
            .hard_time_limit_ms(PASS_HARD_MS)
    };
    Plugin::new("maintenance", env!("CARGO_PKG_VERSION"))
        .task(pass(Task::new(
            "maintenance.dedup",
            "Removes duplicate memories of every user (cosine above the model's duplicate threshold), keeping the most important",
            merge::dedup,
        )))
        .task(pass(Task::new(
            "maintenance.consolidate",
            "Merges similar memories of one user and type (cosine >= 0.85) into one",
            merge::consolidate,
        )))
        .task(pass(Task::new(
            "maintenance.expire",
            "Deletes every memory whose expiry has passed",
            expire::expire,
        )))
        .task(pass(Task::new(
            "maintenance.decay",
            "Decays the importance of every memory by its type's half-life",
            decay::decay,
        )))
        .task(pass(Task::new(
            "maintenance.snapshot",
            "Snapshots the memory collections, keeping the newest N of each",
            ops::snapshot,
        )))
        .task(
            Task::new(
                "maintenance.health",
                "Probes the store, broker, embedder and reranker",
                ops::health,
            )
            .queue("background")
            .soft_time_limit_ms(30_000)
            .hard_time_limit_ms(60_000),
        )
}

hippo_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use hippo_sdk::{Context, TaskError};

    fn run(task: &str, input: &str) -> Result<Vec<u8>, TaskError> {
        let ctx = Context::new("00000000-0000-4000-8000-000000000000", 1, "scheduled", 0, 0);
        plugin().run(&ctx, task, input.as_bytes())
    }

    #[test]
    fn queues_follow_the_reference() {
        let info = plugin().info();
        let queues: Vec<(&str, &str)> = info
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t.default_queue.as_str()))
            .collect();
        assert_eq!(
            queues,
            [
                ("maintenance.dedup", "scheduled"),
                ("maintenance.consolidate", "scheduled"),
                ("maintenance.expire", "scheduled"),
                ("maintenance.decay", "scheduled"),
                ("maintenance.snapshot", "scheduled"),
                ("maintenance.health", "background"),
            ]
        );
    }

    #[test]
    fn bad_input_is_refused_before_any_host_call() {
        for task in [
            "maintenance.dedup",
            "maintenance.consolidate",
            "maintenance.decay",
        ] {
            let err = run(task, r#"{"page_size": 0}"#).unwrap_err();
            assert!(err.message().contains("field `page_size`"), "{task}: {err}");
            let err = run(task, r#"{"user": "alice"}"#).unwrap_err();
            assert!(matches!(err, TaskError::BadInput(_)), "{task}: {err}");
        }
        let err = run("maintenance.expire", r#"{"user_id": ""}"#).unwrap_err();
        assert!(err.message().contains("field `user_id`"), "{err}");
        let err = run("maintenance.snapshot", r#"{"keep": 5000}"#).unwrap_err();
        assert!(err.message().contains("field `keep`"), "{err}");
    }
}
