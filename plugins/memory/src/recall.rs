//! `memory.recall`: the memories that best answer a query, with the
//! breakdown of their scores (see [`crate::scoring`]).

use hippo_sdk::memory::{self, Hit, cosine};
use hippo_sdk::models::{self, TextKind};
use hippo_sdk::time::now_ms;
use hippo_sdk::{Context, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::input::{Filters, bad, check_id, check_text};
use crate::record::memory_json;
use crate::scoring::{Parts, Weights, importance_part, recency_part, rerank_part};

/// Candidates each of vector search and BM25 contribute to hybrid fusion.
const FUSION_CANDIDATES: u32 = 200;
/// Most results one recall returns.
const MAX_K: u32 = 100;

/// How recall finds its candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Vector and BM25 candidates fused by reciprocal rank.
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
    (k * 10).clamp(50, FUSION_CANDIDATES)
}

/// One scored candidate.
struct Scored {
    hit: Hit,
    parts: Parts,
    score: f64,
}

/// `memory.recall`: out `{results: [{memory, score, breakdown}], mode,
/// reranked, candidates}`. `breakdown` holds the parts (`similarity`,
/// `rerank` or null, `recency`, `importance`), the normalised `weights`
/// that combined them, and `rrf`, the fused rank score (hybrid mode only).
pub fn recall(ctx: &Context, input: RecallInput) -> Result<Value, TaskError> {
    check_text("query", &input.query)?;
    check_id("user_id", &input.user_id)?;
    if input.k == 0 || input.k > MAX_K {
        return Err(bad("k", format!("must be between 1 and {MAX_K}")));
    }
    let filter = input.filters.unwrap_or_default().to_filter()?;
    let query = input.query.as_str();
    // Even keyword candidates are scored by their similarity to the query.
    let vector = models::embed_one(query, TextKind::Query)?;
    let pool = pool_size(input.k);
    let hits = match input.mode {
        Mode::Hybrid => memory::hybrid_search(&vector, query, &filter, FUSION_CANDIDATES, pool)?,
        Mode::Vector => memory::search(&vector, &filter, pool)?,
        Mode::Keyword => memory::keyword_search(query, &filter, pool)?,
    };
    let candidates = hits.len();
    let logits = rerank_logits(ctx, query, &hits, input.rerank.unwrap_or(true))?;
    let weights = Weights::for_query(query, logits.is_some());
    let now = now_ms();
    let mut scored: Vec<Scored> = hits
        .into_iter()
        .enumerate()
        .map(|(i, hit)| {
            let parts = Parts {
                similarity: f64::from(cosine(&vector, &hit.vector)),
                rerank: logits.as_ref().map(|l| rerank_part(l[i])),
                recency: recency_part(hit.memory.created_at, now, hit.memory.memory_type),
                importance: importance_part(hit.memory.importance),
            };
            let score = parts.score(&weights);
            Scored { hit, parts, score }
        })
        .collect();
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.parts.similarity.total_cmp(&a.parts.similarity))
    });
    scored.truncate(input.k as usize);
    let results: Vec<Value> = scored
        .iter()
        .map(|s| {
            let rrf = (input.mode == Mode::Hybrid).then_some(s.hit.score);
            json!({
                "memory": memory_json(&s.hit.memory),
                "score": s.score,
                "breakdown": {
                    "similarity": s.parts.similarity,
                    "rerank": s.parts.rerank,
                    "recency": s.parts.recency,
                    "importance": s.parts.importance,
                    "weights": weights,
                    "rrf": rrf,
                },
            })
        })
        .collect();
    Ok(json!({
        "results": results,
        "mode": input.mode,
        "reranked": logits.is_some(),
        "candidates": candidates,
    }))
}

/// The cross-encoder's logits for the candidates, when asked for and
/// available. A reranker that fails transiently is skipped (with a warning)
/// rather than failing the recall: the other parts still rank.
fn rerank_logits(
    ctx: &Context,
    query: &str,
    hits: &[Hit],
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
