//! Recall's final score (the reference's formula, with relevance in the
//! place of its similarity):
//!
//! ```text
//! score = (0.55 relevance + 0.20 rerank + 0.15 recency + 0.10 importance) / sum of the weights used
//! ```
//!
//! - relevance: how well the search matched the candidate, scaled over
//!   the candidates so that the best is 1 and the worst 0 ([`min_max`]): by
//!   the cosine of its vector and the query's (`vector`), by its BM25 score
//!   (`keyword`), and in `hybrid` by `0.8 cosine + 0.2 lexical`, where
//!   lexical is how far its BM25 score stands out from the keyword
//!   candidates' ([`standout`]). Scaling keeps relevance the larger part
//!   whatever the spread of the raw scores (cosines of one query's
//!   candidates often differ by a few hundredths, less than recency moves);
//!   the standout keeps lexical evidence that is specific (a rare name, a
//!   number: far above the other matches) and ignores words that half the
//!   user's memories share (a speaker's name), which plain rank fusion
//!   counts as much. Measured on tests/data/recall (bench/RESULTS.md).
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

const RELEVANCE: f64 = 0.55;
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

/// Hybrid relevance's share of lexical evidence (the rest is the cosine).
pub const LEXICAL_SHARE: f64 = 0.2;
/// Standard deviations above the keyword candidates' mean BM25 score from
/// which a match counts as specific, and over which its standout grows to 1.
const STANDOUT_FLOOR: f64 = 1.0;
const STANDOUT_SPAN: f64 = 4.0;

/// The weights of the score's parts, normalised to sum to 1. A part that
/// is not used (rerank without a reranker) weighs 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    pub relevance: f64,
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
        let sum = RELEVANCE + rerank + recency + importance;
        Weights {
            relevance: RELEVANCE / sum,
            rerank: rerank / sum,
            recency: recency / sum,
            importance: importance / sum,
        }
    }
}

/// The parts of one candidate's score, each in `[0, 1]` (a cosine
/// relevance may dip below 0 for opposite vectors).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Parts {
    pub relevance: f64,
    /// `None` when the candidate was not reranked.
    pub rerank: Option<f64>,
    pub recency: f64,
    pub importance: f64,
}

impl Parts {
    /// The final score under `weights`.
    pub fn score(&self, weights: &Weights) -> f64 {
        weights.relevance * self.relevance
            + weights.rerank * self.rerank.unwrap_or(0.0)
            + weights.recency * self.recency
            + weights.importance * self.importance
    }
}

/// `scores` scaled to `[0, 1]` over themselves: the best 1, the worst 0;
/// all 1 when they are equal (one candidate is the best there is).
pub fn min_max(scores: &[f64]) -> Vec<f64> {
    let lo = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    scores
        .iter()
        .map(|s| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 })
        .collect()
}

/// How far each candidate's BM25 score stands out from those of the
/// keyword search's candidates (`matched`), in `[0, 1]`: 0 up to
/// [`STANDOUT_FLOOR`] standard deviations above their mean, rising to 1
/// over [`STANDOUT_SPAN`] more. `None` (not a keyword match) is 0.
pub fn standout(bm25: &[Option<f64>]) -> Vec<f64> {
    let matched: Vec<f64> = bm25.iter().flatten().copied().collect();
    if matched.is_empty() {
        return vec![0.0; bm25.len()];
    }
    let n = matched.len() as f64;
    let mean = matched.iter().sum::<f64>() / n;
    let sd = (matched.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
    bm25.iter()
        .map(|s| match s {
            Some(s) if sd > 0.0 => {
                (((s - mean) / sd - STANDOUT_FLOOR) / STANDOUT_SPAN).clamp(0.0, 1.0)
            }
            _ => 0.0,
        })
        .collect()
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
        w.relevance + w.rerank + w.recency + w.importance
    }

    #[test]
    fn reference_weights_with_a_reranker() {
        let w = Weights::for_query("where does she work", true);
        assert!(close(w.relevance, 0.55) && close(w.rerank, 0.20));
        assert!(close(w.recency, 0.15) && close(w.importance, 0.10));
    }

    #[test]
    fn without_a_reranker_the_rest_is_renormalised() {
        let w = Weights::for_query("where does she work", false);
        assert_eq!(w.rerank, 0.0);
        assert!(close(sum(&w), 1.0));
        assert!(close(w.relevance, 0.55 / 0.80));
        assert!(close(w.relevance / w.recency, 0.55 / 0.15));
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
    fn min_max_spans_the_unit_interval() {
        assert_eq!(min_max(&[4.0, 0.0, 2.0]), [1.0, 0.0, 0.5]);
        assert_eq!(min_max(&[0.7]), [1.0]);
        assert_eq!(min_max(&[0.2, 0.2]), [1.0, 1.0]);
        assert!(min_max(&[]).is_empty());
    }

    #[test]
    fn only_a_match_far_above_the_others_stands_out() {
        // Twenty matches on a common word, one on a rare name as well.
        let mut bm25 = vec![Some(5.0); 20];
        bm25.push(Some(18.0));
        bm25.push(None);
        let out = standout(&bm25);
        assert!(out[..20].iter().all(|&s| s == 0.0), "{out:?}");
        assert!(out[20] > 0.8, "{out:?}");
        assert_eq!(out[21], 0.0);
        // Evenly spread scores: nothing far above the rest.
        let even: Vec<Option<f64>> = (0..20).map(|i| Some(f64::from(i))).collect();
        assert!(standout(&even).iter().all(|&s| s < 0.2));
        assert_eq!(standout(&[None, None]), [0.0, 0.0]);
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
            relevance: 0.8,
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
            relevance: 1.0,
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
