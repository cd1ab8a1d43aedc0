//! `memory.recall`: the memories that best answer a query, with the
//! breakdown of their scores (see [`crate::scoring`]).

use std::collections::HashMap;

use hippo_sdk::memory::{self, Hit, cosine};
use hippo_sdk::models::{self, TextKind};
use hippo_sdk::time::now_ms;
use hippo_sdk::{Context, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::input::{Filters, bad, check_id, check_text};
use crate::record::memory_json;
use crate::scoring::{
    LEXICAL_SHARE, Parts, Weights, importance_part, min_max, recency_part, rerank_part, standout,
};

/// Candidates each of vector search and BM25 contribute to hybrid recall,
/// whatever `k`: the lexical standout is measured over as many matches
/// each time.
const HYBRID_CANDIDATES: u32 = 100;
/// Most candidates scored (and reranked) for one recall.
const MAX_POOL: u32 = 200;
/// Most results one recall returns.
const MAX_K: u32 = 100;

/// How recall finds its candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Vector and BM25 candidates, ranked by cosine and specific lexical
    /// matches (see [`crate::scoring`]).
    #[default]
    Hybrid,
    /// Vector similarity only.
    Vector,
    /// BM25 only.
    Keyword,
}

/// Input of `memory.recall`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallInput {
    query: String,
    user_id: String,
    #[serde(default = "default_k")]
    k: u32,
    #[serde(default)]
    filters: Option<Filters>,
    /// Rerank with the cross-encoder when the host has one (default true).
    #[serde(default)]
    rerank: Option<bool>,
    #[serde(default)]
    mode: Mode,
}

fn default_k() -> u32 {
    5
}

/// How many candidates are scored (and reranked) for `k` results: enough
/// that the final score can reorder the search's ranking, few enough that
/// the cross-encoder stays cheap.
fn pool_size(k: u32) -> u32 {
    (k * 10).clamp(50, MAX_POOL)
}

/// A candidate: the memory, its cosine to the query, its BM25 score when
/// keyword search found it, and its relevance in the recall's mode.
struct Candidate {
    hit: Hit,
    similarity: f64,
    bm25: Option<f64>,
    relevance: f64,
}

/// One scored candidate.
struct Scored {
    candidate: Candidate,
    parts: Parts,
    score: f64,
}

/// `memory.recall`: out `{results: [{memory, score, breakdown}], mode,
/// reranked, candidates}`. `breakdown` holds the parts (`relevance`,
/// `rerank` or null, `recency`, `importance`), the normalised `weights`
/// that combined them, and what relevance was made from: `similarity` (the
/// cosine) and `keyword` (the BM25 score, when keyword search found it).
pub fn recall(ctx: &Context, input: RecallInput) -> Result<Value, TaskError> {
    check_text("query", &input.query)?;
    check_id("user_id", &input.user_id)?;
    if input.k == 0 || input.k > MAX_K {
        return Err(bad("k", format!("must be between 1 and {MAX_K}")));
    }
    let filter = input.filters.unwrap_or_default().to_filter()?;
    let query = input.query.as_str();
    // Vector and hybrid search use the query's vector; every mode reports
    // each candidate's cosine to it.
    let vector = models::embed_one(query, TextKind::Query)?;
    let mut candidates = candidates(input.mode, &vector, query, &filter, input.k)?;
    let found = candidates.len();
    // The pool that is reranked and scored: the most relevant.
    candidates.sort_by(|a, b| b.relevance.total_cmp(&a.relevance));
    candidates.truncate(pool_size(input.k) as usize);
    let hits: Vec<&Hit> = candidates.iter().map(|c| &c.hit).collect();
    let logits = rerank_logits(ctx, query, &hits, input.rerank.unwrap_or(true))?;
    let weights = Weights::for_query(query, logits.is_some());
    let now = now_ms();
    let mut scored: Vec<Scored> = candidates
        .into_iter()
        .enumerate()
        .map(|(i, candidate)| {
            let memory = &candidate.hit.memory;
            let parts = Parts {
                relevance: candidate.relevance,
                rerank: logits.as_ref().map(|l| rerank_part(l[i])),
                recency: recency_part(memory.created_at, now, memory.memory_type),
                importance: importance_part(memory.importance),
            };
            let score = parts.score(&weights);
            Scored {
                candidate,
                parts,
                score,
            }
        })
        .collect();
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.parts.relevance.total_cmp(&a.parts.relevance))
            .then(b.candidate.similarity.total_cmp(&a.candidate.similarity))
    });
    scored.truncate(input.k as usize);
    let results: Vec<Value> = scored
        .iter()
        .map(|s| {
            json!({
                "memory": memory_json(&s.candidate.hit.memory),
                "score": s.score,
                "breakdown": {
                    "relevance": s.parts.relevance,
                    "similarity": s.candidate.similarity,
                    "keyword": s.candidate.bm25,
                    "rerank": s.parts.rerank,
                    "recency": s.parts.recency,
                    "importance": s.parts.importance,
                    "weights": weights,
                },
            })
        })
        .collect();
    Ok(json!({
        "results": results,
        "mode": input.mode,
        "reranked": logits.is_some(),
        "candidates": found,
    }))
}

/// The candidates of a recall with their relevance (see [`crate::scoring`]).
fn candidates(
    mode: Mode,
    vector: &[f32],
    query: &str,
    filter: &memory::Filter,
    k: u32,
) -> Result<Vec<Candidate>, TaskError> {
    let (by_vector, by_keyword) = match mode {
        Mode::Vector => (memory::search(vector, filter, pool_size(k))?, Vec::new()),
        Mode::Keyword => (
            Vec::new(),
            memory::keyword_search(query, filter, pool_size(k))?,
        ),
        Mode::Hybrid => (
            memory::search(vector, filter, HYBRID_CANDIDATES)?,
            memory::keyword_search(query, filter, HYBRID_CANDIDATES)?,
        ),
    };
    // Every memory once: keyword search's score added to vector search's hit.
    let mut candidates: Vec<Candidate> = Vec::with_capacity(by_vector.len() + by_keyword.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for (hit, bm25) in by_vector
        .into_iter()
        .map(|h| (h, None))
        .chain(by_keyword.into_iter().map(|h| {
            let score = f64::from(h.score);
            (h, Some(score))
        }))
    {
        if let Some(&i) = at.get(&hit.memory.id) {
            candidates[i].bm25 = bm25;
            continue;
        }
        at.insert(hit.memory.id.clone(), candidates.len());
        candidates.push(Candidate {
            similarity: f64::from(cosine(vector, &hit.vector)),
            hit,
            bm25,
            relevance: 0.0,
        });
    }
    let cosines = min_max(&candidates.iter().map(|c| c.similarity).collect::<Vec<_>>());
    let bm25: Vec<Option<f64>> = candidates.iter().map(|c| c.bm25).collect();
    let relevance: Vec<f64> = match mode {
        Mode::Vector => cosines,
        Mode::Keyword => min_max(&bm25.iter().map(|s| s.unwrap_or(0.0)).collect::<Vec<_>>()),
        Mode::Hybrid => cosines
            .iter()
            .zip(standout(&bm25))
            .map(|(cosine, lexical)| (1.0 - LEXICAL_SHARE) * cosine + LEXICAL_SHARE * lexical)
            .collect(),
    };
    for (candidate, relevance) in candidates.iter_mut().zip(relevance) {
        candidate.relevance = relevance;
    }
    Ok(candidates)
}

/// The cross-encoder's logits for the candidates, when asked for and
/// available. A reranker that fails transiently is skipped (with a warning)
/// rather than failing the recall: the other parts still rank.
fn rerank_logits(
    ctx: &Context,
    query: &str,
    hits: &[&Hit],
    wanted: bool,
) -> Result<Option<Vec<f32>>, TaskError> {
    if !wanted || hits.is_empty() || !models::rerank_available() {
        return Ok(None);
    }
    let passages: Vec<String> = hits.iter().map(|h| h.memory.text.clone()).collect();
    match models::rerank(query, &passages) {
        Ok(logits) => Ok(Some(logits)),
        Err(err) if err.is_transient() => {
            ctx.warn(format!("ranking without the reranker: {err}"));
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_defaults() {
        let input: RecallInput =
            serde_json::from_str(r#"{"query": "tea?", "user_id": "alice"}"#).unwrap();
        assert_eq!((input.k, input.mode, input.rerank), (5, Mode::Hybrid, None));
        let input: RecallInput = serde_json::from_str(
            r#"{"query": "tea?", "user_id": "alice", "mode": "keyword", "rerank": false, "k": 3}"#,
        )
        .unwrap();
        assert_eq!(
            (input.k, input.mode, input.rerank),
            (3, Mode::Keyword, Some(false))
        );
        assert!(
            serde_json::from_str::<RecallInput>(
                r#"{"query": "q", "user_id": "a", "mode": "fuzzy"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn the_pool_grows_with_k_within_bounds() {
        assert_eq!(pool_size(1), 50);
        assert_eq!(pool_size(5), 50);
        assert_eq!(pool_size(12), 120);
        assert_eq!(pool_size(100), 200);
    }
}
