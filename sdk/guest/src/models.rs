//! The host's models: text embeddings (`hippo:tasks/embeddings`) and the
//! cross-encoder reranker (`hippo:tasks/rerank`).
//!
//! The plugin's manifest must grant `embeddings` (and `rerank`) for these
//! calls to link. Like every host import they only work inside the host.

use crate::ServiceError;
use crate::bindings::hippo::tasks::{embeddings, rerank as reranker};

pub use crate::bindings::hippo::tasks::embeddings::TextKind;

/// One vector per text, in order, each [`dimension`] long. Documents and
/// queries are embedded differently (`TextKind::Query` may get a prefix).
///
/// The host batches calls from many tasks, so one text per call costs
/// little more than many; still, pass a whole batch when you have one. An
/// empty `texts` returns an empty list without calling the host.
pub fn embed(texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, ServiceError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let vectors = embeddings::embed(texts, kind)
        .map_err(|message| ServiceError::unavailable("embeddings", message))?;
    ServiceError::check_count("embeddings", "vectors", vectors.len(), texts.len())?;
    Ok(vectors)
}

/// The vector of one text.
pub fn embed_one(text: &str, kind: TextKind) -> Result<Vec<f32>, ServiceError> {
    let mut vectors = embed(&[text.to_owned()], kind)?;
    Ok(vectors.pop().expect("embed checked one vector per text"))
}

/// Length of every vector [`embed`] returns (0 when the host has no model).
pub fn dimension() -> u32 {
    embeddings::dimension()
}

/// Cosine similarities calibrated for the host's model (each model spreads
/// similarities its own way).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicateThresholds {
    /// Above this two texts state the same fact, perhaps in other words.
    pub duplicate: f32,
    /// Above this they say it the same way.
    pub same: f32,
}

impl DuplicateThresholds {
    /// The reference's, made for BGE: 0.88 and 0.95.
    pub const REFERENCE: DuplicateThresholds = DuplicateThresholds {
        duplicate: 0.88,
        same: 0.95,
    };
}

/// The host model's [`DuplicateThresholds`] (configured with the model).
pub fn duplicate_thresholds() -> DuplicateThresholds {
    let thresholds = embeddings::thresholds();
    DuplicateThresholds {
        duplicate: thresholds.duplicate,
        same: thresholds.same,
    }
}

/// Whether the host has a reranker; without one, [`rerank`] fails and
/// callers should rank by their own scores.
pub fn rerank_available() -> bool {
    reranker::available()
}

/// One raw cross-encoder logit per passage, in order (higher is more
/// relevant to `query`). An empty `passages` returns an empty list without
/// calling the host.
pub fn rerank(query: &str, passages: &[String]) -> Result<Vec<f32>, ServiceError> {
    if passages.is_empty() {
        return Ok(Vec::new());
    }
    let scores = reranker::score(query, passages)
        .map_err(|message| ServiceError::unavailable("rerank", message))?;
    ServiceError::check_count("rerank", "scores", scores.len(), passages.len())?;
    Ok(scores)
}
