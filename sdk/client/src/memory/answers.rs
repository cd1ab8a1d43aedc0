//! What the memory routes answer, typed: the inline routes return these,
//! and a queued task's result reads into them with
//! [`TaskHandle::get_as`](crate::TaskHandle::get_as). They mirror the
//! server's documented shapes (its OpenAPI document) without depending on
//! the server's crate; unknown fields are ignored, so a newer server still
//! reads.

use serde::Deserialize;
use serde_json::Value;

/// A memory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Memory {
    /// A UUID.
    pub id: String,
    pub text: String,
    pub user_id: String,
    pub session_id: Option<String>,
    /// `fact`, `preference`, `goal`, `habit`, `event`, `context`, `summary`,
    /// `procedural` or `prospective`.
    #[serde(rename = "type")]
    pub memory_type: String,
    /// 0 to 10.
    pub importance: f64,
    /// 0 to 1.
    pub confidence: f64,
    pub tags: Vec<String>,
    /// RFC 3339 times (UTC).
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: Option<String>,
    pub decayed_at: Option<String>,
    pub access_count: u64,
    pub text_length: u64,
    pub token_count: u64,
    /// The JSON object given at creation (merged by updates).
    pub metadata: Value,
    pub agent_id: Option<String>,
    pub run_id: Option<String>,
    /// `private`, `shared` or `public`.
    pub visibility: Option<String>,
    pub is_archived: bool,
    pub promotion_count: u32,
}

/// What creating a memory did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateAction {
    /// Stored as a new memory.
    Created,
    /// A stored memory already said the same: nothing was written.
    SkippedDuplicate,
    /// A stored memory said it differently: it took the new text.
    UpdatedExisting,
}

/// The outcome of creating one memory: the memory it ended up as.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Created {
    pub memory: Memory,
    pub action: CreateAction,
    /// The stored memory this one duplicated (unless `Created`).
    #[serde(default)]
    pub duplicate_of: Option<String>,
    /// Cosine similarity to that duplicate.
    #[serde(default)]
    pub similarity: Option<f64>,
}

/// The outcome of a batch creation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchCreated {
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    /// One per memory of the batch, in its order.
    pub results: Vec<Created>,
}

/// The weights of a recall score's parts (they sum to 1).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ScoreWeights {
    pub relevance: f64,
    pub rerank: f64,
    pub recency: f64,
    pub importance: f64,
}

/// How a recalled memory's score was made.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ScoreBreakdown {
    /// How well the mode's search matched it, 0..1 (see the server's docs).
    pub relevance: f64,
    /// Cosine similarity of the query and the memory.
    pub similarity: f64,
    /// The BM25 score, when keyword search found it (keyword, hybrid).
    pub keyword: Option<f64>,
    /// When a cross-encoder reranked the candidates.
    pub rerank: Option<f64>,
    pub recency: f64,
    pub importance: f64,
    pub weights: ScoreWeights,
}

/// One recalled memory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecallHit {
    pub memory: Memory,
    /// The final score results are ordered by.
    pub score: f64,
    pub breakdown: ScoreBreakdown,
}

/// The answer to a recall.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recalled {
    /// Best first.
    pub results: Vec<RecallHit>,
    /// `hybrid`, `vector` or `keyword`.
    pub mode: String,
    pub reranked: bool,
    /// How many candidates were scored.
    pub candidates: u64,
}

/// An updated memory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Updated {
    pub memory: Memory,
    /// Whether the text changed, so the memory was embedded again.
    pub reembedded: bool,
}

/// A page of memories; `next` is the cursor of the following page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MemoryPage {
    pub memories: Vec<Memory>,
    pub next: Option<String>,
}

/// `{found, memory}`: what the lookup of one memory answers.
#[derive(Deserialize)]
pub(crate) struct Found {
    pub memory: Memory,
}
