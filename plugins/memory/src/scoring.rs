//! Recall's final score (the reference's formula):
//!
//! ```text
//! score = (0.55 similarity + 0.20 rerank + 0.15 recency + 0.10 importance) / sum of the weights used
//! ```
//!
//! - similarity: cosine of the candidate's vector and the query's;
//! - rerank: the cross-encoder's logit mapped to `clamp((logit + 10) / 20, 0, 1)`;
//!   without a reranker its weight is dropped and the others renormalised;
//! - recency: `exp(-0.693 age_days / half_life(type))`, age from `created_at`;
//! - importance: `importance / 10`.
//!
//! Queries asking for something recent (recent, recently, latest, today,
//! newest, lately) double the recency weight; queries about likes (prefer,
//! like, love, favorite, ...) multiply the importance weight by 1.5.

use hippo_sdk::memory::MemoryType;
use hippo_sdk::time::DAY_MS;
use serde::Serialize;

use crate::importance::words;

const SIMILARITY: f64 = 0.55;
const RERANK: f64 = 0.20;
const RECENCY: f64 = 0.15;
const IMPORTANCE: f64 = 0.10;

/// Query words that ask for recent memories.
const RECENT_WORDS: &[&str] = &["recent", "recently", "latest", "today", "newest", "lately"];
/// Query words that ask about likes and preferences.
const PREFERENCE_WORDS: &[&str] = &[
    "prefer",
    "prefers",
    "preferred",
    "preference",
    "preferences",
    "like",
    "likes",
    "love",
    "loves",
    "favorite",
    "favorites",
    "favourite",
    "favourites",
];

/// The weights of the score's parts, normalised to sum to 1. A part that
/// is not used (rerank without a reranker) weighs 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    pub similarity: f64,
    pub rerank: f64,
    pub recency: f64,
    pub importance: f64,
}

impl Weights {
    /// The weights for `query`, with or without rerank scores.
    pub fn for_query(query: &str, reranked: bool) -> Weights {
        let lower = query.to_lowercase();
        let words = words(&lower);
        let asks = |list: &[&str]| words.iter().any(|w| list.contains(w));
        let recency = if asks(RECENT_WORDS) { 2.0 } else { 1.0 } * RECENCY;
        let importance = if asks(PREFERENCE_WORDS) { 1.5 } else { 1.0 } * IMPORTANCE;
        let rerank = if reranked { RERANK } else { 0.0 };
        let sum = SIMILARITY + rerank + recency + importance;
        Weights {
            similarity: SIMILARITY / sum,
            rerank: rerank / sum,
            recency: recency / sum,
            importance: importance / sum,
        }
    }
}

/// The parts of one candidate's score, each in `[0, 1]` (similarity may
/// dip below 0 for opposite vectors).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Parts {
    pub similarity: f64,
    /// `None` when the candidate was not reranked.
    pub rerank: Option<f64>,
    pub recency: f64,
    pub importance: f64,
}

impl Parts {
    /// The final score under `weights`.
    pub fn score(&self, weights: &Weights) -> f64 {
        weights.similarity * self.similarity
            + weights.rerank * self.rerank.unwrap_or(0.0)
            + weights.recency * self.recency
            + weights.importance * self.importance
    }
}

/// A cross-encoder logit mapped into `[0, 1]`.
pub fn rerank_part(logit: f32) -> f64 {
    ((f64::from(logit) + 10.0) / 20.0).clamp(0.0, 1.0)
}

/// How recent a memory of `memory_type` created at `created_at` is at
/// `now`: 1 when new, 0.5 after one half-life. Memories dated in the future
/// count as new.
pub fn recency_part(created_at: i64, now: i64, memory_type: MemoryType) -> f64 {
    let age_days = (now - created_at).max(0) as f64 / DAY_MS as f64;
    (-0.693 * age_days / memory_type.half_life_days()).exp()
}

/// Importance (0 to 10) mapped into `[0, 1]`.
pub fn importance_part(importance: f32) -> f64 {
    (f64::from(importance) / 10.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn sum(w: &Weights) -> f64 {
        w.similarity + w.rerank + w.recency + w.importance
    }

    #[test]
    fn reference_weights_with_a_reranker() {
        let w = Weights::for_query("where does she work", true);
        assert!(close(w.similarity, 0.55) && close(w.rerank, 0.20));
        assert!(close(w.recency, 0.15) && close(w.importance, 0.10));
    }

    #[test]
    fn without_a_reranker_the_rest_is_renormalised() {
        let w = Weights::for_query("where does she work", false);
        assert_eq!(w.rerank, 0.0);
        assert!(close(sum(&w), 1.0));
        assert!(close(w.similarity, 0.55 / 0.80));
        assert!(close(w.similarity / w.recency, 0.55 / 0.15));
    }

    #[test]
    fn intent_words_shift_the_weights() {
        let w = Weights::for_query("What did I do TODAY?", true);
        assert!(close(w.recency, 0.30 / 1.15));
        let w = Weights::for_query("what is her favourite food", true);
        assert!(close(w.importance, 0.15 / 1.05));
        // Whole words only: "likely" and "unrecent" ask for nothing.
        assert_eq!(
            Weights::for_query("is it likely unrecent", true),
            Weights::for_query("is it", true)
        );
        for query in ["latest things I like", "x", "today I love"] {
            for reranked in [true, false] {
                assert!(close(sum(&Weights::for_query(query, reranked)), 1.0));
            }
        }
    }

    #[test]
    fn rerank_logits_map_into_the_unit_interval() {
        assert_eq!(rerank_part(-10.0), 0.0);
        assert_eq!(rerank_part(0.0), 0.5);
        assert_eq!(rerank_part(10.0), 1.0);
        assert_eq!(rerank_part(-25.0), 0.0);
        assert_eq!(rerank_part(40.0), 1.0);
    }

    #[test]
    fn recency_halves_each_half_life() {
        let now = 100 * DAY_MS;
        assert!(close(recency_part(now, now, MemoryType::Fact), 1.0));
        assert!((recency_part(now - 30 * DAY_MS, now, MemoryType::Fact) - 0.5).abs() < 1e-3);
        assert!((recency_part(now - 14 * DAY_MS, now, MemoryType::Event) - 0.5).abs() < 1e-3);
        assert!((recency_part(now - 90 * DAY_MS, now, MemoryType::Preference) - 0.5).abs() < 1e-3);
        assert!(close(
            recency_part(now + DAY_MS, now, MemoryType::Fact),
            1.0
        ));
    }

    #[test]
    fn the_score_is_the_weighted_mean_of_the_parts() {
        let parts = Parts {
            similarity: 0.8,
            rerank: Some(0.6),
            recency: 0.5,
            importance: 0.7,
        };
        let with = Weights::for_query("what car does he drive", true);
        assert!(close(
            parts.score(&with),
            0.55 * 0.8 + 0.20 * 0.6 + 0.15 * 0.5 + 0.10 * 0.7
        ));
        let unranked = Parts {
            rerank: None,
            ..parts
        };
        let without = Weights::for_query("what car does he drive", false);
        assert!(close(
            unranked.score(&without),
            (0.55 * 0.8 + 0.15 * 0.5 + 0.10 * 0.7) / 0.80
        ));
        // All parts 1 score 1, whatever the weights.
        let full = Parts {
            similarity: 1.0,
            rerank: Some(1.0),
            recency: 1.0,
            importance: 1.0,
        };
        assert!(close(
            full.score(&Weights::for_query("latest favorite", true)),
            1.0
        ));
    }
}
