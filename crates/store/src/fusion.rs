//! Merging ranked lists: by score (one query over both collections) and by
//! reciprocal rank (vector and keyword candidates).

use super::model::{Collection, Hit};
use std::cmp::Ordering;
use std::collections::HashMap;
use uuid::Uuid;

/// The reference's RRF constant: a hit at rank `r` (1 = best) of a list
/// contributes `1 / (60 + r)`.
pub(crate) const RRF_K: usize = 60;

/// The same fusion in Qdrant's terms: Qdrant scores position `p` (0 = best)
/// as `1 / (k + p)`, so `k = 61` gives `1 / (60 + r)`.
pub(crate) const QDRANT_RRF_K: usize = RRF_K + 1;

/// Something with a score that lists are ranked by.
pub(crate) trait Ranked {
    fn score(&self) -> f32;
    /// Orders equal scores, so that results are deterministic.
    fn tie_break(&self, other: &Self) -> Ordering;
}

impl Ranked for Hit {
    fn score(&self) -> f32 {
        self.score
    }

    fn tie_break(&self, other: &Self) -> Ordering {
        self.memory.id.cmp(&other.memory.id)
    }
}

/// A search result before its memory is read: where it is, and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub collection: Collection,
    pub id: Uuid,
    pub score: f32,
}

impl Ranked for Candidate {
    fn score(&self) -> f32 {
        self.score
    }

    fn tie_break(&self, other: &Self) -> Ordering {
        self.id.cmp(&other.id)
    }
}

/// Best first.
fn best_first<T: Ranked>(a: &T, b: &T) -> Ordering {
    b.score()
        .partial_cmp(&a.score())
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.tie_break(b))
}

/// The best `limit` of several lists scored on one scale (the same query
/// run on each collection).
pub(crate) fn merge_by_score<T: Ranked>(lists: Vec<Vec<T>>, limit: usize) -> Vec<T> {
    let mut all: Vec<T> = lists.into_iter().flatten().collect();
    all.sort_by(best_first);
    all.truncate(limit);
    all
}

/// Reciprocal-rank fusion of ranked lists (each best first): every
/// candidate scores the sum of `1 / (60 + rank)` over the lists it appears
/// in, so one found by a single list is kept. The best `limit`, best first.
pub(crate) fn rrf(lists: Vec<Vec<Candidate>>, limit: usize) -> Vec<Candidate> {
    let mut fused: HashMap<Uuid, Candidate> = HashMap::new();
    for list in lists {
        for (position, c) in list.into_iter().enumerate() {
            let contribution = 1.0 / (RRF_K + position + 1) as f32;
            fused
                .entry(c.id)
                .and_modify(|f| f.score += contribution)
                .or_insert(Candidate {
                    score: contribution,
                    ..c
                });
        }
    }
    merge_by_score(vec![fused.into_values().collect()], limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(n: u128, score: f32) -> Candidate {
        Candidate {
            collection: Collection::Facts,
            id: Uuid::from_u128(n),
            score,
        }
    }

    fn ids(list: &[Candidate]) -> Vec<u128> {
        list.iter().map(|c| c.id.as_u128()).collect()
    }

    #[test]
    fn rrf_sums_reciprocal_ranks_and_keeps_single_list_hits() {
        let dense = vec![candidate(1, 0.9), candidate(2, 0.8)];
        let keyword = vec![candidate(3, 7.0), candidate(1, 3.0)];
        let fused = rrf(vec![dense, keyword], 10);
        assert_eq!(ids(&fused), [1, 3, 2]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-7);
        assert!((fused[1].score - 1.0 / 61.0).abs() < 1e-7);
        assert!((fused[2].score - 1.0 / 62.0).abs() < 1e-7);
        assert!(rrf(vec![vec![candidate(1, 1.0)], vec![]], 0).is_empty());
    }

    #[test]
    fn merge_keeps_the_best_across_lists_and_breaks_ties_by_id() {
        let merged = merge_by_score(
            vec![
                vec![candidate(1, 0.5), candidate(2, 0.1)],
                vec![candidate(4, 0.7), candidate(3, 0.5)],
            ],
            3,
        );
        assert_eq!(ids(&merged), [4, 1, 3]);
    }
}
