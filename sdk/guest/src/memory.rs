//! The memory store (`hippo:tasks/memory-store`): typed memory records with
//! their vectors, searched by vector, by BM25 or by both.
//!
//! Every call acts for the task's user (the `user_id` of the task's input):
//! the host adds that user to every filter and refuses to touch anyone
//! else's memories. Only plugins granted `memory-maintenance` may name
//! another user in [`Filter::user_id`], or none to act across users.
//!
//! ```ignore
//! use hippo_sdk::memory::{self, Filter, MemoryType};
//! use hippo_sdk::models::{self, TextKind};
//!
//! let query = models::embed_one("what does she like to eat?", TextKind::Query)?;
//! let filter = Filter {
//!     memory_types: vec![MemoryType::Preference],
//!     ..Filter::default()
//! };
//! for hit in memory::search(&query, &filter, 5)? {
//!     let similarity = memory::cosine(&query, &hit.vector);
//!     println!("{similarity:.3} {}", hit.memory.text);
//! }
//! ```

use crate::ServiceError;
use crate::bindings::hippo::tasks::memory_store as store;

pub use crate::bindings::hippo::tasks::memory_store::{
    Filter, Hit, Memory, MemoryType, Page, SnapshotInfo, Stored, Visibility,
};

/// Inserts or replaces memories (by id), each in its type's collection.
pub fn upsert(items: &[Stored]) -> Result<(), ServiceError> {
    if items.is_empty() {
        return Ok(());
    }
    Ok(store::upsert(items)?)
}

/// The memories with these ids that exist and the task may see.
pub fn get(ids: &[String]) -> Result<Vec<Stored>, ServiceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store::get(ids)?)
}

/// The memory with this id, if it exists and the task may see it.
pub fn get_one(id: &str) -> Result<Option<Stored>, ServiceError> {
    Ok(get(&[id.to_owned()])?
        .into_iter()
        .find(|s| s.memory.id == id))
}

/// The `limit` memories nearest to `vector` by cosine similarity, best
/// first; each hit's `score` is that similarity.
pub fn search(vector: &[f32], filter: &Filter, limit: u32) -> Result<Vec<Hit>, ServiceError> {
    Ok(store::search(vector, filter, limit)?)
}

/// The `limit` best BM25 matches for `query`, best first; `score` is BM25.
pub fn keyword_search(query: &str, filter: &Filter, limit: u32) -> Result<Vec<Hit>, ServiceError> {
    Ok(store::keyword_search(query, filter, limit)?)
}

/// `candidates` vector and `candidates` BM25 matches fused by reciprocal
/// rank (`1 / (60 + rank)`), keyword-only hits kept; the best `limit`,
/// best first, `score` being the fused score.
pub fn hybrid_search(
    vector: &[f32],
    query: &str,
    filter: &Filter,
    candidates: u32,
    limit: u32,
) -> Result<Vec<Hit>, ServiceError> {
    Ok(store::hybrid_search(
        vector, query, filter, candidates, limit,
    )?)
}

/// One page of the memories that match; pass the page's `next` as `cursor`
/// for the following one (`None` starts from the beginning).
pub fn scroll(filter: &Filter, cursor: Option<&str>, limit: u32) -> Result<Page, ServiceError> {
    Ok(store::scroll(filter, cursor, limit)?)
}

/// How many memories match.
pub fn count(filter: &Filter) -> Result<u64, ServiceError> {
    Ok(store::count(filter)?)
}

/// Deletes these memories; returns how many existed.
pub fn delete(ids: &[String]) -> Result<u64, ServiceError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(store::delete(ids)?)
}

/// Deletes every memory that matches; returns how many.
pub fn delete_matching(filter: &Filter) -> Result<u64, ServiceError> {
    Ok(store::delete_matching(filter)?)
}

/// Snapshots every collection, then keeps the newest `keep` snapshots of
/// each (needs `memory-maintenance`). Returns the snapshots kept.
pub fn snapshot(keep: u32) -> Result<Vec<SnapshotInfo>, ServiceError> {
    Ok(store::snapshot(keep)?)
}

/// Cosine similarity of two vectors, in `[-1, 1]`; 0 when either is all
/// zeros or their lengths differ. Hits carry their vectors so that callers
/// can compare them with a query or with each other.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    // f64 sums: 384 f32 products lose digits that the 0.95 / 0.88
    // thresholds of deduplication care about.
    let (mut dot, mut norm_a, mut norm_b) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    if norm_a == 0.0 || norm_b == 0.0 {
        return 0.0;
    }
    (dot / (norm_a.sqrt() * norm_b.sqrt())).clamp(-1.0, 1.0) as f32
}

/// Every condition unset: all the memories the task may see, archived ones
/// excepted.
impl Default for Filter {
    fn default() -> Self {
        Filter {
            user_id: None,
            ids: Vec::new(),
            memory_types: Vec::new(),
            tags_any: Vec::new(),
            min_importance: None,
            max_importance: None,
            created_after: None,
            created_before: None,
            updated_after: None,
            updated_before: None,
            expires_before: None,
            session_id: None,
            include_archived: false,
        }
    }
}

impl MemoryType {
    /// Every type, in the WIT's order.
    pub const ALL: [MemoryType; 9] = [
        MemoryType::Preference,
        MemoryType::Fact,
        MemoryType::Goal,
        MemoryType::Habit,
        MemoryType::Event,
        MemoryType::Context,
        MemoryType::Summary,
        MemoryType::Procedural,
        MemoryType::Prospective,
    ];

    /// The type's name in JSON and in the WIT (`preference`, `fact`, ...).
    pub fn name(self) -> &'static str {
        match self {
            MemoryType::Preference => "preference",
            MemoryType::Fact => "fact",
            MemoryType::Goal => "goal",
            MemoryType::Habit => "habit",
            MemoryType::Event => "event",
            MemoryType::Context => "context",
            MemoryType::Summary => "summary",
            MemoryType::Procedural => "procedural",
            MemoryType::Prospective => "prospective",
        }
    }

    /// The type named `name` (as [`name`](Self::name) spells it).
    pub fn from_name(name: &str) -> Option<MemoryType> {
        MemoryType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// How many days it takes a memory of this type to lose half of its
    /// weight: its importance under decay, its recency in recall. Lasting
    /// kinds (preferences, goals, habits, procedures) fade slowly, events
    /// fast.
    pub fn half_life_days(self) -> f64 {
        match self {
            MemoryType::Preference | MemoryType::Goal | MemoryType::Habit => 90.0,
            MemoryType::Procedural => 180.0,
            MemoryType::Event => 14.0,
            MemoryType::Fact
            | MemoryType::Context
            | MemoryType::Prospective
            | MemoryType::Summary => 30.0,
        }
    }
}

impl Visibility {
    /// Every visibility, in the WIT's order.
    pub const ALL: [Visibility; 3] = [Visibility::Private, Visibility::Shared, Visibility::Public];

    /// The visibility's name in JSON and in the WIT.
    pub fn name(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Public => "public",
        }
    }

    /// The visibility named `name`.
    pub fn from_name(name: &str) -> Option<Visibility> {
        Visibility::ALL.into_iter().find(|v| v.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in MemoryType::ALL {
            assert_eq!(MemoryType::from_name(t.name()), Some(t));
        }
        for v in Visibility::ALL {
            assert_eq!(Visibility::from_name(v.name()), Some(v));
        }
        assert_eq!(MemoryType::from_name("Fact"), None);
        assert_eq!(Visibility::from_name(""), None);
    }

    #[test]
    fn half_lives_follow_the_reference() {
        let days: Vec<f64> = MemoryType::ALL
            .into_iter()
            .map(MemoryType::half_life_days)
            .collect();
        // preference fact goal habit event context summary procedural prospective
        assert_eq!(
            days,
            [90.0, 30.0, 90.0, 90.0, 14.0, 30.0, 30.0, 180.0, 30.0]
        );
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-3.0, -3.0]) + 1.0).abs() < 1e-6);
        // Scale does not matter, only direction.
        let c = cosine(&[3.0, 4.0], &[6.0, 8.0]);
        assert!((c - 1.0).abs() < 1e-6, "{c}");
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn cosine_of_degenerate_vectors_is_zero() {
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[], &[]), 0.0);
    }

    #[test]
    fn the_default_filter_sets_nothing() {
        let filter = Filter::default();
        assert!(filter.user_id.is_none() && filter.ids.is_empty());
        assert!(filter.memory_types.is_empty() && filter.tags_any.is_empty());
        assert!(filter.expires_before.is_none() && !filter.include_archived);
    }
}
