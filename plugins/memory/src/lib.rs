//! The memory plugin: hippo's memory tasks, on queue `memory_ops`.
//!
//! Every task acts for the user named by its input's top-level `user_id`:
//! the host scopes every memory-store call to that user, so a task can
//! neither read nor change another user's memories, whatever its filters
//! say (recall and query filters cannot even name a user).
//!
//! | task | input | output |
//! |---|---|---|
//! | `memory.create` | `{text, user_id, memory_type="fact", importance?, confidence?, tags?, metadata?, session_id?, agent_id?, run_id?, visibility?, ttl_days?, created_at?, check_duplicates=true}` | `{memory, action, duplicate_of?, similarity?}` |
//! | `memory.batch-create` | `{user_id, memories: [<create input, user_id optional>], check_duplicates=true}` | `{results: [<create output>], created, updated, skipped}` |
//! | `memory.recall` | `{query, user_id, k=5, filters?, rerank=true, mode="hybrid"}` | `{results: [{memory, score, breakdown}], mode, reranked, candidates}` |
//! | `memory.get` | `{memory_id, user_id}` | `{found, memory?}` |
//! | `memory.query` | `{user_id, filters?, limit=100, cursor?}` | `{memories, next}` |
//! | `memory.update` | `{memory_id, user_id, updates: {text?, importance?, tags?, metadata?, expires_at?, memory_type?}}` | `{found, memory?, reembedded?}` |
//! | `memory.delete` | `{memory_id, user_id}` | `{deleted, memory_id}` |
//!
//! `action` is `created`, `skipped_duplicate` (a stored memory says the same
//! thing, cosine above the model's `same_above`: it is returned, nothing is
//! written) or `updated_existing` (a stored memory says it differently,
//! cosine above the model's `duplicate_above`: it takes the new text,
//! importance and tags). The reference's thresholds are 0.95 and 0.88, for
//! BGE; the default MiniLM's are 0.99 and 0.90 (see the README). `filters` holds
//! `memory_types`, `tags` (any of), `min_importance`, `max_importance`,
//! `created_after`, `created_before` (RFC 3339) and `session_id`.
//! `created_at` (RFC 3339, not in the future) dates a memory imported from
//! an older conversation when it was said; recency counts from it. `type`
//! is accepted for `memory_type`, as the reference's batch items spell it.
//! `mode` is `hybrid` (vector and BM25 candidates, ranked by cosine and
//! specific lexical matches), `vector` or `keyword`. The score and its
//! breakdown are described in [`scoring`];
//! importance scored from the text in [`importance`]; deduplication in
//! [`dedup`].
//!
//! # A memory in JSON
//!
//! Every task returns memories in one shape:
//!
//! ```json
//! {
//!   "id": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
//!   "text": "I prefer dark chocolate over milk chocolate",
//!   "user_id": "alice",
//!   "session_id": null,
//!   "type": "preference",
//!   "importance": 8.0,
//!   "confidence": 0.9,
//!   "tags": ["food"],
//!   "created_at": "2026-01-31T12:00:00.000Z",
//!   "updated_at": "2026-01-31T12:00:00.000Z",
//!   "expires_at": null,
//!   "decayed_at": null,
//!   "access_count": 0,
//!   "text_length": 43,
//!   "token_count": 10,
//!   "metadata": {},
//!   "agent_id": null,
//!   "run_id": null,
//!   "visibility": null,
//!   "is_archived": false,
//!   "promotion_count": 0
//! }
//! ```
//!
//! Every field is always present (`null` when unset). Times are RFC 3339 in
//! UTC with milliseconds. `type` is the reference record's name for what the
//! inputs call `memory_type` (inputs accept `type` too). `text_length` is
//! the text's length in characters and `token_count` that divided by four,
//! both derived when the memory is written out. `decayed_at` is when
//! importance decay last lowered `importance` (decay counts from there).

mod create;
mod crud;
pub mod dedup;
pub mod importance;
mod input;
mod recall;
mod record;
pub mod scoring;

use hippo_sdk::{Plugin, Task};

/// The queue of every memory task.
const QUEUE: &str = "memory_ops";

/// The plugin: every memory task on `memory_ops`. Single-memory tasks get
/// a minute (soft) and two (hard); a batch gets the reference's global
/// limits, 300 s and 600 s.
fn plugin() -> Plugin {
    let quick = |task: Task| {
        task.queue(QUEUE)
            .soft_time_limit_ms(60_000)
            .hard_time_limit_ms(120_000)
    };
    Plugin::new("memory", env!("CARGO_PKG_VERSION"))
        .task(quick(Task::new(
            "memory.create",
            "Stores a memory of a user, deduplicated against the user's memories",
            create::create,
        )))
        .task(
            Task::new(
                "memory.batch-create",
                "Stores up to 1,000 memories of one user: one embedding call, one write",
                create::batch_create,
            )
            .queue(QUEUE)
            .soft_time_limit_ms(300_000)
            .hard_time_limit_ms(600_000),
        )
        .task(quick(Task::new(
            "memory.recall",
            "The k memories of a user that best answer a query, with their score breakdown",
            recall::recall,
        )))
        .task(quick(Task::new(
            "memory.get",
            "One memory of a user, by id",
            crud::get,
        )))
        .task(quick(Task::new(
            "memory.query",
            "A page of a user's memories matching filters",
            crud::query,
        )))
        .task(quick(Task::new(
            "memory.update",
            "Changes a memory of a user; embeds it again only when its text changes",
            crud::update,
        )))
        .task(quick(Task::new(
            "memory.delete",
            "Deletes a memory of a user",
            crud::delete,
        )))
}

hippo_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use hippo_sdk::{Context, TaskError};

    fn run(task: &str, input: &str) -> Result<Vec<u8>, TaskError> {
        let ctx = Context::new("00000000-0000-4000-8000-000000000000", 1, QUEUE, 0, 0);
        plugin().run(&ctx, task, input.as_bytes())
    }

    #[test]
    fn malformed_input_is_refused_before_any_host_call() {
        // Natively a host call would panic, so these prove that input is
        // checked first.
        let err = run("memory.create", r#"{"text": "I like tea"}"#).unwrap_err();
        assert_eq!(
            err,
            TaskError::bad_input("field `user_id`: missing: the memory's owner")
        );
        let err = run(
            "memory.recall",
            r#"{"query": "tea", "user_id": "a", "k": 0}"#,
        )
        .unwrap_err();
        assert!(err.message().contains("field `k`"), "{err}");
        let err = run(
            "memory.recall",
            r#"{"query": "tea", "user_id": "a", "filters": {"user_id": "b"}}"#,
        )
        .unwrap_err();
        assert!(err.message().contains("unknown field `user_id`"), "{err}");
        let err = run("memory.delete", r#"{"memory_id": "mem_1", "user_id": "a"}"#).unwrap_err();
        assert_eq!(
            err,
            TaskError::bad_input("field `memory_id`: must be a UUID")
        );
        let err = run("memory.batch-create", r#"{"user_id": "a", "memories": []}"#).unwrap_err();
        assert!(err.message().starts_with("field `memories`"), "{err}");
        let err = run("memory.query", r#"{"user_id": "a", "limit": 5000}"#).unwrap_err();
        assert!(err.message().starts_with("field `limit`"), "{err}");
    }

    #[test]
    fn every_task_is_on_memory_ops() {
        let info = plugin().info();
        let names: Vec<&str> = info.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "memory.create",
                "memory.batch-create",
                "memory.recall",
                "memory.get",
                "memory.query",
                "memory.update",
                "memory.delete"
            ]
        );
        assert!(info.tasks.iter().all(|t| t.default_queue == QUEUE));
    }
}
