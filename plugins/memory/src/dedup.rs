//! Deduplication on create (the reference's rule): among the user's nearest
//! memories, cosine similarity above 0.88 is a duplicate. When the closest
//! duplicate is above 0.95 the new memory says the same thing: it is skipped
//! and the existing one returned. A duplicate between 0.88 and 0.95 says it
//! differently: the existing memory takes the new text, importance and tags.
//! The two thresholds are the host model's ([`DuplicateThresholds`]): 0.88
//! and 0.95 are the reference's, for BGE.

use hippo_sdk::memory::{Memory, cosine};
use hippo_sdk::models::DuplicateThresholds;
use serde_json::{Map, Value};

use crate::record::{Draft, metadata_of};

/// How many of the user's nearest memories a new one is compared with.
pub const NEIGHBOURS: u32 = 10;

/// What to do with a new memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// No duplicate: store it.
    Store,
    /// Candidate `index` says the same thing: keep it, drop the new one.
    Skip { index: usize, similarity: f32 },
    /// Candidate `index` says it differently: update it with the new one.
    Update { index: usize, similarity: f32 },
}

/// Compares a new memory's `vector` with the `candidates`' vectors (the
/// user's nearest memories) and decides.
pub fn decide<'a>(
    vector: &[f32],
    candidates: impl IntoIterator<Item = &'a [f32]>,
    thresholds: DuplicateThresholds,
) -> Decision {
    let best = candidates
        .into_iter()
        .map(|candidate| cosine(vector, candidate))
        .enumerate()
        .filter(|&(_, similarity)| similarity > thresholds.duplicate)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        None => Decision::Store,
        Some((index, similarity)) if similarity > thresholds.same => {
            Decision::Skip { index, similarity }
        }
        Some((index, similarity)) => Decision::Update { index, similarity },
    }
}

/// Updates `existing` with the new memory `draft` that duplicates it, at
/// `now`: the new text (the caller stores the new text's vector with it);
/// the new importance when the input gave one, else the higher of the old
/// and the scored one, so a paraphrase never lowers what a user stated;
/// tags united; metadata merged (new keys win); the new expiry when the
/// draft has a time to live. Decay restarts from `now`, the importance being
/// fresh.
pub fn merge_duplicate(existing: &mut Memory, draft: &Draft, now: i64) {
    existing.importance = draft
        .importance
        .unwrap_or_else(|| existing.importance.max(draft.importance()));
    existing.text.clone_from(&draft.text);
    for tag in &draft.tags {
        if !existing.tags.contains(tag) {
            existing.tags.push(tag.clone());
        }
    }
    if !draft.metadata.is_empty() {
        let mut metadata = metadata_of(existing);
        merge_metadata(&mut metadata, &draft.metadata);
        existing.metadata = Value::Object(metadata).to_string();
    }
    if let Some(expires_at) = draft.expires_at(now) {
        existing.expires_at = Some(expires_at);
    }
    existing.updated_at = now;
    existing.decayed_at = Some(now);
}

/// Merges `changes` into `metadata`: each key of `changes` replaces the
/// same key of `metadata` (the reference's `dict.update`).
pub fn merge_metadata(metadata: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (key, value) in changes {
        metadata.insert(key.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewMemory;

    /// A unit vector at cosine `similarity` to `[1, 0]`.
    fn at(similarity: f32) -> Vec<f32> {
        vec![similarity, (1.0 - similarity * similarity).sqrt()]
    }

    fn draft(json: &str) -> Draft {
        serde_json::from_str::<NewMemory>(json)
            .unwrap()
            .check("")
            .unwrap()
    }

    const REFERENCE: DuplicateThresholds = DuplicateThresholds::REFERENCE;

    #[test]
    fn thresholds() {
        let new = [1.0, 0.0];
        let none: [&[f32]; 0] = [];
        assert_eq!(decide(&new, none, REFERENCE), Decision::Store);
        assert_eq!(
            decide(&new, [at(0.80).as_slice(), &at(0.88)], REFERENCE),
            Decision::Store
        );
        assert!(matches!(
            decide(&new, [at(0.80).as_slice(), &at(0.90)], REFERENCE),
            Decision::Update { index: 1, .. }
        ));
        assert!(matches!(
            decide(&new, [at(0.90).as_slice(), &at(0.97), &at(0.93)], REFERENCE),
            Decision::Skip { index: 1, .. }
        ));
        // The closest duplicate decides, whatever its position.
        assert!(matches!(
            decide(&new, [at(0.94).as_slice(), &at(0.89)], REFERENCE),
            Decision::Update { index: 0, .. }
        ));
    }

    #[test]
    fn a_paraphrase_updates_text_and_keeps_the_higher_importance() {
        let mut existing =
            draft(r#"{"text": "I like dark chocolate", "importance": 8, "tags": ["food"]}"#)
                .into_memory("m1".into(), "alice", 1_000);
        let paraphrase = draft(
            r#"{"text": "I prefer dark chocolate", "tags": ["sweets", "food"], "metadata": {"via": "chat"}}"#,
        );
        merge_duplicate(&mut existing, &paraphrase, 5_000);
        assert_eq!(existing.text, "I prefer dark chocolate");
        // Scored 6 ("prefer") is below the stated 8.
        assert_eq!(existing.importance, 8.0);
        assert_eq!(existing.tags, ["food", "sweets"]);
        assert_eq!(metadata_of(&existing)["via"], "chat");
        assert_eq!((existing.created_at, existing.updated_at), (1_000, 5_000));
        assert_eq!(existing.decayed_at, Some(5_000));
        assert_eq!(existing.id, "m1");
    }

    #[test]
    fn a_stated_importance_replaces_the_old_one() {
        let mut existing = draft(r#"{"text": "I like tea", "importance": 8}"#).into_memory(
            "m1".into(),
            "alice",
            0,
        );
        merge_duplicate(
            &mut existing,
            &draft(r#"{"text": "I like tea a lot", "importance": 3}"#),
            1,
        );
        assert_eq!(existing.importance, 3.0);
    }

    #[test]
    fn metadata_merge_replaces_keys() {
        let mut metadata = serde_json::from_str(r#"{"a": 1, "b": {"x": 1}}"#).unwrap();
        let changes = serde_json::from_str(r#"{"b": 2, "c": null}"#).unwrap();
        merge_metadata(&mut metadata, &changes);
        assert_eq!(
            Value::Object(metadata),
            serde_json::json!({"a": 1, "b": 2, "c": null})
        );
    }
}
