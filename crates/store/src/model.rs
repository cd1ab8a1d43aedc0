//! The records the store keeps: memories with their vectors, search hits,
//! scroll pages and snapshots, and how a memory is laid out as a Qdrant
//! payload.

use super::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// What kind of memory a record is; it decides the record's [`Collection`].
/// The API takes the same names (hence its schema).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MemoryType {
    Preference,
    Fact,
    Goal,
    Habit,
    Event,
    Context,
    Summary,
    Procedural,
    Prospective,
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

    /// The name stored in the payload's `type` field (and used by the API).
    pub fn as_str(self) -> &'static str {
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
}

impl fmt::Display for MemoryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemoryType {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MemoryType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| StoreError::Invalid(format!("unknown memory type {s:?}")))
    }
}

/// Who may see a memory besides its owner (the reference's `visibility`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Private,
    Shared,
    Public,
}

/// One of the two vector collections. `prefs` holds preference, goal, habit,
/// procedural and prospective memories; `facts` holds the rest (as the
/// reference splits them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    Facts,
    Prefs,
}

impl Collection {
    /// Both collections, in scroll order.
    pub const ALL: [Collection; 2] = [Collection::Facts, Collection::Prefs];

    /// The collection a memory of this type lives in.
    pub fn of(memory_type: MemoryType) -> Collection {
        match memory_type {
            MemoryType::Preference
            | MemoryType::Goal
            | MemoryType::Habit
            | MemoryType::Procedural
            | MemoryType::Prospective => Collection::Prefs,
            MemoryType::Fact | MemoryType::Event | MemoryType::Context | MemoryType::Summary => {
                Collection::Facts
            }
        }
    }

    /// The collection's name without the configured prefix.
    pub fn base_name(self) -> &'static str {
        match self {
            Collection::Facts => "facts",
            Collection::Prefs => "prefs",
        }
    }

    /// The collection's name with `prefix` (e.g. `hippo_facts`).
    pub fn name(self, prefix: &str) -> String {
        format!("{prefix}{}", self.base_name())
    }

    /// The other collection (where a memory that changed type used to live).
    pub fn other(self) -> Collection {
        match self {
            Collection::Facts => Collection::Prefs,
            Collection::Prefs => Collection::Facts,
        }
    }
}

/// One memory, as stored (the WIT's `memory` record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// A UUID string; it is also the Qdrant point id, so it reads back in
    /// the canonical form (lowercase, hyphenated).
    pub id: String,
    pub text: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub memory_type: MemoryType,
    /// 0 to 10.
    pub importance: f32,
    /// 0 to 1.
    pub confidence: f32,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Milliseconds since the Unix epoch (UTC).
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// When importance decay was last applied (decay counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decayed_at: Option<i64>,
    #[serde(default)]
    pub access_count: u64,
    /// Free-form JSON object.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(default)]
    pub is_archived: bool,
    #[serde(default)]
    pub promotion_count: u32,
}

impl Memory {
    /// A new memory with the reference's defaults (importance 5, confidence
    /// 0.9, created and updated `now_ms`, nothing else set).
    pub fn new(
        id: impl Into<String>,
        user_id: impl Into<String>,
        memory_type: MemoryType,
        text: impl Into<String>,
        now_ms: i64,
    ) -> Memory {
        Memory {
            id: id.into(),
            text: text.into(),
            user_id: user_id.into(),
            session_id: None,
            memory_type,
            importance: 5.0,
            confidence: 0.9,
            tags: Vec::new(),
            created_at: now_ms,
            updated_at: now_ms,
            expires_at: None,
            decayed_at: None,
            access_count: 0,
            metadata: Map::new(),
            agent_id: None,
            run_id: None,
            visibility: None,
            is_archived: false,
            promotion_count: 0,
        }
    }

    /// The collection this memory lives in.
    pub fn collection(&self) -> Collection {
        Collection::of(self.memory_type)
    }
}

/// A memory with its dense vector (the WIT's `stored`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub memory: Memory,
    /// The dense embedding. Cosine collections keep vectors unit length, so
    /// a vector read back is the one written, normalised.
    pub vector: Vec<f32>,
}

/// A search hit (the WIT's `hit`). `score` is the cosine similarity for
/// `search`, the BM25 score for `keyword_search` and the fused
/// reciprocal-rank score for `hybrid_search`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub memory: Memory,
    pub vector: Vec<f32>,
    pub score: f32,
}

/// One page of a scroll; pass `next` back for the following page, `None`
/// when there is nothing more.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Stored>,
    pub next: Option<String>,
}

/// One snapshot of one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The collection's full name (with the prefix).
    pub collection: String,
    /// The snapshot's name (embedded: `<unix-ms>.tar`; server: Qdrant's).
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub size_bytes: u64,
}

/// Payload field names, as the reference stores them; filters and indexes
/// use the same names.
pub(crate) mod field {
    pub const USER_ID: &str = "user_id";
    pub const SESSION_ID: &str = "session_id";
    pub const TYPE: &str = "type";
    pub const IMPORTANCE: &str = "importance";
    pub const TAGS: &str = "tags";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const IS_ARCHIVED: &str = "is_archived";
    pub const TEXT_LENGTH: &str = "text_length";
    pub const TOKEN_COUNT: &str = "token_count";
}

/// The kind of payload index a field gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    Keyword,
    Float,
    /// Unix milliseconds: integer range filters.
    Integer,
    Bool,
}

/// Every payload index both backends create: the reference's (user, type,
/// tags, importance, created/updated) plus session, expiry and the archive
/// flag, which the filters use.
pub(crate) const PAYLOAD_INDEXES: [(&str, IndexKind); 9] = [
    (field::USER_ID, IndexKind::Keyword),
    (field::TYPE, IndexKind::Keyword),
    (field::TAGS, IndexKind::Keyword),
    (field::SESSION_ID, IndexKind::Keyword),
    (field::IMPORTANCE, IndexKind::Float),
    (field::CREATED_AT, IndexKind::Integer),
    (field::UPDATED_AT, IndexKind::Integer),
    (field::EXPIRES_AT, IndexKind::Integer),
    (field::IS_ARCHIVED, IndexKind::Bool),
];

/// The payload a memory is stored as: its fields (the type under `type`,
/// as the reference names it; unset options left out so that range filters
/// never meet a null), plus `text_length` (characters) and `token_count`
/// (characters / 4) as the reference stores them. The id is the point id.
pub(crate) fn to_payload(memory: &Memory) -> Result<Map<String, Value>, StoreError> {
    let Value::Object(mut map) = serde_json::to_value(memory)
        .map_err(|e| StoreError::Invalid(format!("memory {}: {e}", memory.id)))?
    else {
        unreachable!("a struct serialises to an object");
    };
    map.remove("id");
    if let Some(t) = map.remove("memory_type") {
        map.insert(field::TYPE.into(), t);
    }
    let chars = memory.text.chars().count() as u64;
    map.insert(field::TEXT_LENGTH.into(), chars.into());
    map.insert(field::TOKEN_COUNT.into(), (chars / 4).into());
    Ok(map)
}

/// The memory a payload holds (the inverse of [`to_payload`]).
pub(crate) fn from_payload(id: String, mut map: Map<String, Value>) -> Result<Memory, StoreError> {
    if let Some(t) = map.remove(field::TYPE) {
        map.insert("memory_type".into(), t);
    }
    map.remove(field::TEXT_LENGTH);
    map.remove(field::TOKEN_COUNT);
    map.insert("id".into(), Value::String(id.clone()));
    serde_json::from_value(Value::Object(map))
        .map_err(|e| StoreError::Corrupt(format!("memory {id}: {e}")))
}

/// Checks what the store relies on before a record is written: a UUID id,
/// a vector of the configured dimension with finite, not all-zero
/// components (cosine needs a direction), and the documented ranges.
pub(crate) fn validate(item: &Stored, dimension: usize) -> Result<uuid::Uuid, StoreError> {
    let m = &item.memory;
    let id = parse_id(&m.id)?;
    let invalid = |what: String| Err(StoreError::Invalid(format!("memory {}: {what}", m.id)));
    if item.vector.len() != dimension {
        return invalid(format!(
            "vector has {} components, the store expects {dimension}",
            item.vector.len()
        ));
    }
    if item.vector.iter().any(|x| !x.is_finite()) {
        return invalid("vector has a non-finite component".into());
    }
    if item.vector.iter().all(|x| *x == 0.0) {
        return invalid("vector is all zeros".into());
    }
    if !(0.0..=10.0).contains(&m.importance) {
        return invalid(format!("importance {} is outside 0..10", m.importance));
    }
    if !(0.0..=1.0).contains(&m.confidence) {
        return invalid(format!("confidence {} is outside 0..1", m.confidence));
    }
    if m.user_id.is_empty() {
        return invalid("user_id is empty".into());
    }
    Ok(id)
}

/// Parses a memory id (a UUID in any of its textual forms).
pub(crate) fn parse_id(id: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(id).map_err(|_| StoreError::Invalid(format!("id {id:?} is not a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_memory() -> Memory {
        let mut m = Memory::new(
            "0b7f3c1e-5d0a-4c1e-9a55-2f3d4e5f6a7b",
            "u1",
            MemoryType::Habit,
            "runs every morning",
            1_700_000_000_123,
        );
        m.session_id = Some("s".into());
        m.importance = 7.3;
        m.confidence = 0.61;
        m.tags = vec!["a".into(), "b".into()];
        m.expires_at = Some(1_800_000_000_000);
        m.decayed_at = Some(1_750_000_000_000);
        m.access_count = 12;
        m.metadata
            .insert("k".into(), serde_json::json!({"nested": [1, 2]}));
        m.agent_id = Some("agent".into());
        m.run_id = Some("run".into());
        m.visibility = Some(Visibility::Shared);
        m.is_archived = true;
        m.promotion_count = 3;
        m
    }

    #[test]
    fn payload_round_trips_every_field_and_adds_the_reference_counts() {
        let m = full_memory();
        let payload = to_payload(&m).unwrap();
        assert_eq!(payload["type"], "habit");
        assert_eq!(payload["text_length"], 18);
        assert_eq!(payload["token_count"], 4);
        assert!(!payload.contains_key("id"));
        assert_eq!(from_payload(m.id.clone(), payload).unwrap(), m);
    }

    #[test]
    fn unset_options_are_left_out_of_the_payload() {
        let m = Memory::new(
            "0b7f3c1e-5d0a-4c1e-9a55-2f3d4e5f6a7b",
            "u",
            MemoryType::Fact,
            "x",
            1,
        );
        let payload = to_payload(&m).unwrap();
        for key in [
            "expires_at",
            "session_id",
            "decayed_at",
            "visibility",
            "agent_id",
        ] {
            assert!(!payload.contains_key(key), "{key} present");
        }
    }

    #[test]
    fn types_route_as_the_reference_does() {
        let prefs: Vec<_> = MemoryType::ALL
            .into_iter()
            .filter(|t| Collection::of(*t) == Collection::Prefs)
            .map(MemoryType::as_str)
            .collect();
        assert_eq!(
            prefs,
            ["preference", "goal", "habit", "procedural", "prospective"]
        );
        for t in MemoryType::ALL {
            assert_eq!(t.as_str().parse::<MemoryType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert!("facts".parse::<MemoryType>().is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let good = Stored {
            memory: full_memory(),
            vector: vec![0.0, 1.0],
        };
        assert!(validate(&good, 2).is_ok());
        type Breaks = fn(&mut Stored);
        let cases: [(Breaks, &str); 5] = [
            (|s| s.vector.push(1.0), "components"),
            (|s| s.vector = vec![0.0, 0.0], "all zeros"),
            (|s| s.vector[0] = f32::NAN, "non-finite"),
            (|s| s.memory.importance = 11.0, "importance"),
            (|s| s.memory.id = "not-a-uuid".into(), "UUID"),
        ];
        for (break_it, expected) in cases {
            let mut bad = good.clone();
            break_it(&mut bad);
            let err = validate(&bad, 2).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
    }
}
