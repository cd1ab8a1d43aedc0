//! `memory.create` and `memory.batch-create`.

use std::collections::HashMap;

use hippo_sdk::memory::{self, Filter, Stored};
use hippo_sdk::models::{self, TextKind};
use hippo_sdk::time::now_ms;
use hippo_sdk::{Context, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::dedup::{Decision, NEIGHBOURS, decide, merge_duplicate};
use crate::input::{bad, check_id};
use crate::record::{Draft, NewMemory, decimal, memory_json, new_id};

/// Most memories one batch may hold: the whole batch is one embedding call,
/// and the host takes at most 1,024 texts per call.
const MAX_BATCH: usize = 1_000;
/// A batch reports progress every this many memories.
const PROGRESS_EVERY: usize = 50;

/// What happened to one new memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stored as a new memory.
    Created,
    /// A stored memory already says the same: nothing written.
    SkippedDuplicate,
    /// A stored memory said it differently: it took the new text.
    UpdatedExisting,
}

/// The output for one new memory: the memory it ended up as, what
/// happened, and the duplicate it matched.
fn outcome(memory: &memory::Memory, action: Action, similarity: Option<f32>) -> Value {
    let mut out = json!({ "memory": memory_json(memory), "action": action });
    if let Some(similarity) = similarity {
        out["duplicate_of"] = json!(memory.id);
        out["similarity"] = json!(decimal(similarity));
    }
    out
}

/// `memory.create`: `NewMemory` in, `{memory, action, duplicate_of?,
/// similarity?}` out.
pub fn create(ctx: &Context, input: NewMemory) -> Result<Value, TaskError> {
    let user = input
        .user_id
        .clone()
        .ok_or_else(|| bad("user_id", "missing: the memory's owner"))?;
    check_id("user_id", &user)?;
    let draft = input.check("")?;
    let vector = models::embed_one(&draft.text, TextKind::Document)?;
    let now = now_ms();
    if draft.check_duplicates {
        let hits = memory::search(&vector, &Filter::default(), NEIGHBOURS)?;
        let thresholds = models::duplicate_thresholds();
        match decide(
            &vector,
            hits.iter().map(|h| h.vector.as_slice()),
            thresholds,
        ) {
            Decision::Store => {}
            Decision::Skip { index, similarity } => {
                ctx.info(format!(
                    "duplicate of {} ({similarity:.3}): skipped",
                    hits[index].memory.id
                ));
                return Ok(outcome(
                    &hits[index].memory,
                    Action::SkippedDuplicate,
                    Some(similarity),
                ));
            }
            Decision::Update { index, similarity } => {
                let mut existing = hits[index].memory.clone();
                merge_duplicate(&mut existing, &draft, now);
                memory::upsert(&[Stored {
                    memory: existing.clone(),
                    vector,
                }])?;
                ctx.info(format!(
                    "paraphrase of {} ({similarity:.3}): updated it",
                    existing.id
                ));
                return Ok(outcome(
                    &existing,
                    Action::UpdatedExisting,
                    Some(similarity),
                ));
            }
        }
    }
    let created = draft.into_memory(new_id(), &user, now);
    memory::upsert(&[Stored {
        memory: created.clone(),
        vector,
    }])?;
    Ok(outcome(&created, Action::Created, None))
}

/// Input of `memory.batch-create`: memories of one user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    user_id: String,
    memories: Vec<NewMemory>,
    #[serde(default = "yes")]
    check_duplicates: bool,
}

fn yes() -> bool {
    true
}

/// A memory the batch has seen: a stored neighbour of one of its memories,
/// or one it creates. `touched` ones are written at the end.
struct Entry {
    stored: Stored,
    touched: bool,
}

/// `memory.batch-create`: one embedding call for the whole batch, each
/// memory deduplicated against the store and the batch's earlier memories
/// (the same rule as `memory.create`), one upsert at the end. Out:
/// `{results: [{memory, action, duplicate_of?, similarity?}], created,
/// updated, skipped}`, one result per input memory in order, each memory
/// as the batch left it.
pub fn batch_create(ctx: &Context, input: BatchInput) -> Result<Value, TaskError> {
    let user = input.user_id;
    check_id("user_id", &user)?;
    if input.memories.is_empty() || input.memories.len() > MAX_BATCH {
        return Err(bad(
            "memories",
            format!("must hold 1 to {MAX_BATCH} memories"),
        ));
    }
    let drafts = check_batch(&user, input.memories)?;
    let texts: Vec<String> = drafts.iter().map(|d| d.text.clone()).collect();
    let vectors = models::embed(&texts, TextKind::Document)?;
    let thresholds = models::duplicate_thresholds();
    let total = drafts.len();
    let now = now_ms();

    let mut entries: Vec<Entry> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut results: Vec<(usize, Action, Option<f32>)> = Vec::with_capacity(total);
    for (i, (draft, vector)) in drafts.into_iter().zip(vectors).enumerate() {
        if i % PROGRESS_EVERY == 0 {
            ctx.progress(i as u64, total as u64, Some("deduplicating"));
        }
        if input.check_duplicates && draft.check_duplicates {
            let mut candidates: Vec<usize> = Vec::new();
            for hit in memory::search(&vector, &Filter::default(), NEIGHBOURS)? {
                // A neighbour the batch already changed is compared as changed.
                let at = *by_id.entry(hit.memory.id.clone()).or_insert_with(|| {
                    entries.push(Entry {
                        stored: Stored {
                            memory: hit.memory,
                            vector: hit.vector,
                        },
                        touched: false,
                    });
                    entries.len() - 1
                });
                candidates.push(at);
            }
            let batch_memories = (0..entries.len()).filter(|&e| entries[e].touched);
            for at in batch_memories.collect::<Vec<_>>() {
                if !candidates.contains(&at) {
                    candidates.push(at);
                }
            }
            let vectors = candidates
                .iter()
                .map(|&c| entries[c].stored.vector.as_slice());
            match decide(&vector, vectors, thresholds) {
                Decision::Store => {}
                Decision::Skip { index, similarity } => {
                    results.push((
                        candidates[index],
                        Action::SkippedDuplicate,
                        Some(similarity),
                    ));
                    continue;
                }
                Decision::Update { index, similarity } => {
                    let entry = &mut entries[candidates[index]];
                    merge_duplicate(&mut entry.stored.memory, &draft, now);
                    entry.stored.vector = vector;
                    entry.touched = true;
                    results.push((candidates[index], Action::UpdatedExisting, Some(similarity)));
                    continue;
                }
            }
        }
        let memory = draft.into_memory(new_id(), &user, now);
        by_id.insert(memory.id.clone(), entries.len());
        entries.push(Entry {
            stored: Stored { memory, vector },
            touched: true,
        });
        results.push((entries.len() - 1, Action::Created, None));
    }

    let writes: Vec<Stored> = entries
        .iter()
        .filter(|e| e.touched)
        .map(|e| e.stored.clone())
        .collect();
    memory::upsert(&writes)?;
    ctx.progress(total as u64, total as u64, Some("stored"));
    let count = |action: Action| results.iter().filter(|r| r.1 == action).count();
    Ok(json!({
        "created": count(Action::Created),
        "updated": count(Action::UpdatedExisting),
        "skipped": count(Action::SkippedDuplicate),
        "results": results
            .iter()
            .map(|&(at, action, similarity)| outcome(&entries[at].stored.memory, action, similarity))
            .collect::<Vec<_>>(),
    }))
}

/// Checks every memory of a batch (errors name `memories[i].<field>`); each
/// that names a user must name the batch's.
fn check_batch(user: &str, memories: Vec<NewMemory>) -> Result<Vec<Draft>, TaskError> {
    memories
        .into_iter()
        .enumerate()
        .map(|(i, memory)| {
            if memory.user_id.as_deref().is_some_and(|u| u != user) {
                return Err(bad(
                    &format!("memories[{i}].user_id"),
                    "differs from the batch's user_id: a batch holds the memories of one user",
                ));
            }
            memory.check(&format!("memories[{i}]."))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_one_user() {
        let memories: Vec<NewMemory> = serde_json::from_str(
            r#"[{"text": "I like tea", "user_id": "alice"}, {"text": "I like coffee"},
                {"text": "I like cocoa", "user_id": "bob"}]"#,
        )
        .unwrap();
        let err = check_batch("alice", memories).unwrap_err();
        assert!(
            err.message().starts_with("field `memories[2].user_id`"),
            "{err}"
        );
    }

    #[test]
    fn batch_errors_name_the_memory() {
        let memories: Vec<NewMemory> =
            serde_json::from_str(r#"[{"text": "fine"}, {"text": "  "}]"#).unwrap();
        let err = check_batch("alice", memories).unwrap_err();
        assert_eq!(
            err,
            TaskError::bad_input("field `memories[1].text`: must not be blank")
        );
    }

    #[test]
    fn actions_serialize_as_the_reference_names_them() {
        let names: Vec<Value> = [
            Action::Created,
            Action::SkippedDuplicate,
            Action::UpdatedExisting,
        ]
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect();
        assert_eq!(names, ["created", "skipped_duplicate", "updated_existing"]);
    }
}
