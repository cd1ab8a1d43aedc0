//! `maintenance.dedup` and `maintenance.consolidate`: passes over every
//! memory that find each one's similar neighbours (same user; for
//! consolidation also the same type), group them greedily (see
//! [`crate::cluster`]) and fold each group into its leader.
//!
//! - Deduplication groups at cosine above the host model's duplicate
//!   threshold (the reference's 0.88 for BGE; above its `same` threshold,
//!   0.95 there, counts as an exact duplicate, the rest as near). The
//!   leader, the most important then newest memory, is kept and takes the
//!   members' tags; the members are deleted.
//! - Consolidation groups at cosine 0.85 or more. The leader keeps its id,
//!   text and vector (the text of the most important member; no LLM merge)
//!   and becomes the merged memory: importance the highest, confidence the
//!   lowest, tags the union, access counts summed, and
//!   `metadata.consolidated_from` listing the ids merged into it (and those
//!   merged into them before). The members are deleted after the merged
//!   memory is written, so a failure between the two leaves duplicates,
//!   never a loss.

use std::collections::HashSet;

use hippo_sdk::memory::{self, Filter, Memory, MemoryType, Stored};
use hippo_sdk::models::{self, DuplicateThresholds};
use hippo_sdk::time::now_ms;
use hippo_sdk::{Context, TaskError};
use serde_json::{Map, Value, json};

use crate::cluster::{Group, Item, Threshold, greedy_groups};
use crate::scan::{Pass, PassInput, report};

/// Consolidation: at this cosine similarity or more memories merge.
const CONSOLIDATE_AT_LEAST: f32 = 0.85;
/// The metadata key listing the ids a consolidated memory absorbed.
const CONSOLIDATED_FROM: &str = "consolidated_from";

/// Which pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dedup,
    Consolidate,
}

impl Kind {
    fn task(self) -> &'static str {
        match self {
            Kind::Dedup => "dedup",
            Kind::Consolidate => "consolidate",
        }
    }

    fn threshold(self, duplicates: DuplicateThresholds) -> Threshold {
        match self {
            Kind::Dedup => Threshold::Above(duplicates.duplicate),
            Kind::Consolidate => Threshold::AtLeast(CONSOLIDATE_AT_LEAST),
        }
    }

    /// How many neighbours of each memory are compared with it.
    fn neighbours(self) -> u32 {
        match self {
            Kind::Dedup => 10,
            Kind::Consolidate => 20,
        }
    }

    /// Memories group only within one user, and for consolidation one type.
    fn key(self, memory: &Memory) -> (&str, Option<MemoryType>) {
        let memory_type = (self == Kind::Consolidate).then_some(memory.memory_type);
        (memory.user_id.as_str(), memory_type)
    }

    /// Where the neighbours of `memory` are looked for.
    fn neighbour_filter(self, memory: &Memory) -> Filter {
        Filter {
            user_id: Some(memory.user_id.clone()),
            memory_types: match self {
                Kind::Dedup => Vec::new(),
                Kind::Consolidate => vec![memory.memory_type],
            },
            ..Filter::default()
        }
    }
}

/// `maintenance.dedup`: out `{clusters, removed, exact, near}` plus the
/// pass report (`complete`, `resumed`, `scanned`, `total`).
pub fn dedup(ctx: &Context, input: Option<PassInput>) -> Result<Value, TaskError> {
    run(ctx, input.unwrap_or_default(), Kind::Dedup)
}

/// `maintenance.consolidate`: out `{groups, merged}` plus the pass report.
pub fn consolidate(ctx: &Context, input: Option<PassInput>) -> Result<Value, TaskError> {
    run(ctx, input.unwrap_or_default(), Kind::Consolidate)
}

/// What a pass did.
#[derive(Debug, Default)]
struct Counts {
    groups: u64,
    removed: u64,
    exact: u64,
    near: u64,
}

fn run(ctx: &Context, input: PassInput, kind: Kind) -> Result<Value, TaskError> {
    // Archived memories are set aside: neither merged nor merged into.
    let filter = input.filter(false)?;
    let mut pass = Pass::start(ctx, kind.task(), &input, filter)?;
    let mut removed: HashSet<String> = HashSet::new();
    let mut counts = Counts::default();
    let duplicates = models::duplicate_thresholds();
    while let Some(page) = pass.next_page()? {
        for seed in page {
            if removed.contains(&seed.memory.id) {
                continue;
            }
            let filter = kind.neighbour_filter(&seed.memory);
            let hits = memory::search(&seed.vector, &filter, kind.neighbours())?;
            let mut candidates = vec![seed];
            candidates.extend(
                hits.into_iter()
                    .filter(|h| !removed.contains(&h.memory.id))
                    .map(|h| Stored {
                        memory: h.memory,
                        vector: h.vector,
                    }),
            );
            let items: Vec<Item<'_, _>> = candidates
                .iter()
                .map(|c| Item {
                    id: &c.memory.id,
                    key: kind.key(&c.memory),
                    vector: &c.vector,
                    importance: c.memory.importance,
                    updated_at: c.memory.updated_at,
                })
                .collect();
            for group in greedy_groups(&items, kind.threshold(duplicates)) {
                let doomed = fold(kind, duplicates, &candidates, &group, &mut counts)?;
                removed.extend(doomed);
            }
        }
        if pass.page_done() {
            break;
        }
    }
    let done = match kind {
        Kind::Dedup => json!({
            "clusters": counts.groups,
            "removed": counts.removed,
            "exact": counts.exact,
            "near": counts.near,
        }),
        Kind::Consolidate => json!({ "groups": counts.groups, "merged": counts.removed }),
    };
    ctx.info(format!("{}: {done}", kind.task()));
    Ok(report(pass.finish(), done))
}

/// Folds one group into its leader: writes the leader (when it changed),
/// deletes the members and returns their ids.
fn fold(
    kind: Kind,
    duplicates: DuplicateThresholds,
    candidates: &[Stored],
    group: &Group,
    counts: &mut Counts,
) -> Result<Vec<String>, TaskError> {
    let leader = &candidates[group.leader];
    let members: Vec<&Memory> = group
        .members
        .iter()
        .map(|&(m, _)| &candidates[m].memory)
        .collect();
    let now = now_ms();
    let kept = match kind {
        Kind::Dedup => {
            let mut kept = leader.memory.clone();
            let exact = group
                .members
                .iter()
                .filter(|m| m.1 > duplicates.same)
                .count() as u64;
            counts.exact += exact;
            counts.near += members.len() as u64 - exact;
            merge_tags(&mut kept, &members, now).then_some(kept)
        }
        Kind::Consolidate => Some(consolidated(&leader.memory, &members, now)),
    };
    if let Some(memory) = kept {
        memory::upsert(&[Stored {
            memory,
            vector: leader.vector.clone(),
        }])?;
    }
    let doomed: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    counts.removed += memory::delete(&doomed)?;
    counts.groups += 1;
    Ok(doomed)
}

/// Adds the members' tags the leader lacks (in order); true when any was
/// added, and then the leader counts as updated at `now`.
fn merge_tags(leader: &mut Memory, members: &[&Memory], now: i64) -> bool {
    let before = leader.tags.len();
    for tag in members.iter().flat_map(|m| &m.tags) {
        if !leader.tags.contains(tag) {
            leader.tags.push(tag.clone());
        }
    }
    let changed = leader.tags.len() != before;
    if changed {
        leader.updated_at = now;
    }
    changed
}

/// The memory a consolidation group becomes (see the module docs).
fn consolidated(leader: &Memory, members: &[&Memory], now: i64) -> Memory {
    let mut merged = leader.clone();
    merge_tags(&mut merged, members, now);
    for member in members {
        merged.importance = merged.importance.max(member.importance);
        merged.confidence = merged.confidence.min(member.confidence);
        merged.access_count = merged.access_count.saturating_add(member.access_count);
    }
    let mut metadata = object(&leader.metadata);
    let mut from: Vec<Value> = metadata
        .get(CONSOLIDATED_FROM)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for member in members {
        let earlier = object(&member.metadata);
        let absorbed = earlier.get(CONSOLIDATED_FROM).and_then(Value::as_array);
        for id in
            std::iter::once(&Value::from(member.id.as_str())).chain(absorbed.into_iter().flatten())
        {
            if !from.contains(id) {
                from.push(id.clone());
            }
        }
    }
    metadata.insert(CONSOLIDATED_FROM.into(), Value::Array(from));
    merged.metadata = Value::Object(metadata).to_string();
    merged.updated_at = now;
    merged
}

/// A memory's metadata object (empty when it is not one).
fn object(metadata: &str) -> Map<String, Value> {
    match serde_json::from_str(metadata) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: &str, importance: f32, tags: &[&str]) -> Memory {
        Memory {
            id: id.into(),
            text: format!("text of {id}"),
            user_id: "alice".into(),
            session_id: None,
            memory_type: MemoryType::Fact,
            importance,
            confidence: 0.9,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created_at: 0,
            updated_at: 10,
            expires_at: None,
            decayed_at: None,
            access_count: 2,
            metadata: "{}".into(),
            agent_id: None,
            run_id: None,
            visibility: None,
            is_archived: false,
            promotion_count: 0,
        }
    }

    #[test]
    fn dedup_keeps_the_leader_with_every_tag() {
        let mut leader = memory("a", 8.0, &["food"]);
        let (b, c) = (
            memory("b", 5.0, &["sweets", "food"]),
            memory("c", 4.0, &["cocoa"]),
        );
        assert!(merge_tags(&mut leader, &[&b, &c], 99));
        assert_eq!(leader.tags, ["food", "sweets", "cocoa"]);
        assert_eq!((leader.id.as_str(), leader.updated_at), ("a", 99));
        // Nothing new: nothing to write.
        let mut again = leader.clone();
        assert!(!merge_tags(&mut again, &[&b], 100));
        assert_eq!(again.updated_at, 99);
    }

    #[test]
    fn consolidation_follows_the_reference() {
        let leader = memory("a", 8.0, &["x"]);
        let mut b = memory("b", 6.0, &["y"]);
        b.confidence = 0.5;
        b.access_count = 5;
        b.metadata = r#"{"consolidated_from": ["old1", "old2"]}"#.into();
        let c = memory("c", 7.5, &["x", "z"]);
        let merged = consolidated(&leader, &[&b, &c], 1_000);
        assert_eq!(merged.id, "a");
        assert_eq!(merged.text, "text of a");
        assert_eq!(merged.importance, 8.0);
        assert_eq!(merged.confidence, 0.5);
        assert_eq!(merged.access_count, 2 + 5 + 2);
        assert_eq!(merged.tags, ["x", "y", "z"]);
        assert_eq!(merged.updated_at, 1_000);
        assert_eq!(
            object(&merged.metadata)[CONSOLIDATED_FROM],
            json!(["b", "old1", "old2", "c"])
        );
    }

    #[test]
    fn keys_separate_users_and_for_consolidation_types() {
        let fact = memory("a", 5.0, &[]);
        let mut event = memory("b", 5.0, &[]);
        event.memory_type = MemoryType::Event;
        assert_eq!(Kind::Dedup.key(&fact), Kind::Dedup.key(&event));
        assert_ne!(Kind::Consolidate.key(&fact), Kind::Consolidate.key(&event));
        let mut bobs = memory("c", 5.0, &[]);
        bobs.user_id = "bob".into();
        assert_ne!(Kind::Dedup.key(&fact), Kind::Dedup.key(&bobs));
        let filter = Kind::Consolidate.neighbour_filter(&event);
        assert_eq!(filter.user_id.as_deref(), Some("alice"));
        assert_eq!(filter.memory_types, [MemoryType::Event]);
        assert!(Kind::Dedup.neighbour_filter(&event).memory_types.is_empty());
    }
}
