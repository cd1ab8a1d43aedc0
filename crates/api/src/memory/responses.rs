//! The answers of the inline memory routes: the memory plugin's outputs,
//! typed. A handler reads the plugin's JSON into these types (unknown
//! fields refused), so the OpenAPI document states exactly what is served,
//! and a plugin that answers another shape is a 502, not a silent change of
//! the API.

use super::requests::RecallMode;
use hippo_store::{MemoryType, Visibility};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A memory as every memory route returns it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryRecord {
    /// A UUID.
    pub id: String,
    pub text: String,
    pub user_id: String,
    pub session_id: Option<String>,
    /// The kind of memory (the request's `memory_type`).
    #[serde(rename = "type")]
    pub memory_type: MemoryType,
    /// 0 to 10 (after decay).
    pub importance: f32,
    /// 0 to 1.
    pub confidence: f32,
    pub tags: Vec<String>,
    /// RFC 3339 times (UTC).
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: Option<String>,
    /// When importance decay was last applied.
    pub decayed_at: Option<String>,
    pub access_count: u64,
    /// Characters of `text`.
    pub text_length: u64,
    /// An estimate: a token per four characters.
    pub token_count: u64,
    /// The JSON object given at creation (merged by updates).
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub agent_id: Option<String>,
    pub run_id: Option<String>,
    pub visibility: Option<Visibility>,
    pub is_archived: bool,
    /// How many times consolidation promoted it.
    pub promotion_count: u32,
}

/// What creating a memory did.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreateAction {
    /// Stored as a new memory.
    Created,
    /// A stored memory already said the same: nothing was written.
    SkippedDuplicate,
    /// A stored memory said it differently: it took the new text.
    UpdatedExisting,
}

/// The answer to a creation: the memory it ended up as.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Created {
    pub memory: MemoryRecord,
    pub action: CreateAction,
    /// The stored memory this one duplicated (unless `created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Cosine similarity to that duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

/// The answer to a batch creation (the result of `memory.batch-create`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreated {
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    /// One per memory of the batch, in its order.
    pub results: Vec<Created>,
}

/// One memory found by a lookup.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Found {
    /// Always true here (a memory not found is a 404).
    pub found: bool,
    pub memory: MemoryRecord,
}

/// An updated memory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Updated {
    /// Always true here (a memory not found is a 404).
    pub found: bool,
    pub memory: MemoryRecord,
    /// Whether the text changed, so the memory was embedded again.
    pub reembedded: bool,
}

/// A deleted memory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deleted {
    /// Always true here (a memory not found is a 404).
    pub deleted: bool,
    pub memory_id: String,
}

/// The weights of a recall score's parts (they sum to 1; intent words in
/// the query shift them).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreWeights {
    pub relevance: f64,
    /// 0 without a reranker.
    pub rerank: f64,
    pub recency: f64,
    pub importance: f64,
}

/// How a recalled memory's score was made.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreBreakdown {
    /// How well the mode's search matched it, 0..1 over the candidates (the
    /// best 1): by cosine (`vector`), by BM25 (`keyword`), by cosine and how
    /// far its BM25 score stands out (`hybrid`).
    pub relevance: f64,
    /// Cosine similarity of the query and the memory.
    pub similarity: f64,
    /// The BM25 score, when keyword search found it (keyword and hybrid modes).
    pub keyword: Option<f64>,
    /// The cross-encoder's score in 0..1, when reranked.
    pub rerank: Option<f64>,
    /// 0..1, higher for newer memories.
    pub recency: f64,
    /// The importance in 0..1.
    pub importance: f64,
    pub weights: ScoreWeights,
}

/// One recalled memory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallHit {
    pub memory: MemoryRecord,
    /// The weighted final score the results are ordered by.
    pub score: f64,
    pub breakdown: ScoreBreakdown,
}

/// The answer to a recall.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recalled {
    /// Best first, at most `k`.
    pub results: Vec<RecallHit>,
    pub mode: RecallMode,
    /// Whether a cross-encoder scored the candidates.
    pub reranked: bool,
    /// How many candidates were scored.
    pub candidates: u64,
}

/// A page of a user's memories.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryPage {
    pub memories: Vec<MemoryRecord>,
    /// The `cursor` of the next page; null on the last page.
    pub next: Option<String>,
}
