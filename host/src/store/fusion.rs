//! Merging ranked lists: by score (one query over both collections) and by
//! reciprocal rank (vector and keyword candidates).

use super::model::Hit;
use std::cmp::Ordering;
use std::collections::HashMap;

/// The reference's RRF constant: a hit at rank `r` (1 = best) of a list
/// contributes `1 / (60 + r)`.
pub(crate) const RRF_K: usize = 60;

/// The same fusion in Qdrant's terms: Qdrant scores position `p` (0 = best)
/// as `1 / (k + p)`, so `k = 61` gives `1 / (60 + r)`.
pub(crate) const QDRANT_RRF_K: usize = RRF_K + 1;

/// Best first; equal scores by id, so results are deterministic.
fn by_score(a: &Hit, b: &Hit) -> Ordering {
    b.score
        .partial_cmp(&a.score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.memory.id.cmp(&b.memory.id))
}

/// The best `limit` hits of several lists scored on one scale (the same
/// query run on each collection).
pub(crate) fn merge_by_score(lists: Vec<Vec<Hit>>, limit: usize) -> Vec<Hit> {
    let mut all: Vec<Hit> = lists.into_iter().flatten().collect();
    all.sort_by(by_score);
    all.truncate(limit);
    all
}

/// Reciprocal-rank fusion of ranked lists (each best first): every hit
/// scores the sum of `1 / (60 + rank)` over the lists it appears in, so a
/// hit found by one list only is kept. The best `limit`, best first.
pub(crate) fn rrf(lists: Vec<Vec<Hit>>, limit: usize) -> Vec<Hit> {
    let mut fused: HashMap<String, Hit> = HashMap::new();
    for list in lists {
        for (position, hit) in list.into_iter().enumerate() {
            let contribution = 1.0 / (RRF_K + position + 1) as f32;
            fused
                .entry(hit.memory.id.clone())
                .and_modify(|h| h.score += contribution)
                .or_insert(Hit { score: contribution, ..hit });
        }
    }
    let mut all: Vec<Hit> = fused.into_values().collect();
    all.sort_by(by_score);
    all.truncate(limit);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Memory, MemoryType};

    fn hit(id: &str, score: f32) -> Hit {
        Hit {
            memory: Memory::new(id, "u", MemoryType::Fact, "", 0),
            vector: vec![],
            score,
        }
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.memory.id.as_str()).collect()
    }

    #[test]
    fn rrf_sums_reciprocal_ranks_and_keeps_single_list_hits() {
        let dense = vec![hit("a", 0.9), hit("b", 0.8)];
        let keyword = vec![hit("c", 7.0), hit("a", 3.0)];
        let fused = rrf(vec![dense, keyword], 10);
        assert_eq!(ids(&fused), ["a", "c", "b"]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-7);
        assert!((fused[1].score - 1.0 / 61.0).abs() < 1e-7);
        assert!((fused[2].score - 1.0 / 62.0).abs() < 1e-7);
        assert_eq!(rrf(vec![vec![hit("a", 1.0)], vec![]], 0).len(), 0);
    }

    #[test]
    fn merge_keeps_the_best_across_lists() {
        let merged = merge_by_score(
            vec![vec![hit("a", 0.5), hit("b", 0.1)], vec![hit("c", 0.7), hit("d", 0.2)]],
            3,
        );
        assert_eq!(ids(&merged), ["c", "a", "d"]);
    }
}
