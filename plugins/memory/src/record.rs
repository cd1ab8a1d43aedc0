//! A memory as JSON (see the crate docs for the shape), and a new memory
//! from task input.

use hippo_sdk::TaskError;
use hippo_sdk::memory::{Memory, MemoryType, Visibility};
use hippo_sdk::time::{DAY_MS, to_rfc3339};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::importance::score_importance;
use crate::input::{self, bad};

/// Confidence of a memory when the input gives none.
const DEFAULT_CONFIDENCE: f32 = 0.9;
/// Longest time to live, in days (a hundred years).
const MAX_TTL_DAYS: f64 = 36_500.0;

/// A memory in JSON: the shape every memory task returns.
pub fn memory_json(memory: &Memory) -> Value {
    let chars = memory.text.chars().count();
    // Metadata is written by this plugin as a JSON object; anything else
    // (an older writer) is passed on as the string it is rather than lost.
    let metadata = serde_json::from_str::<Value>(&memory.metadata)
        .unwrap_or_else(|_| Value::String(memory.metadata.clone()));
    json!({
        "id": memory.id,
        "text": memory.text,
        "user_id": memory.user_id,
        "session_id": memory.session_id,
        "type": memory.memory_type.name(),
        "importance": decimal(memory.importance),
        "confidence": decimal(memory.confidence),
        "tags": memory.tags,
        "created_at": to_rfc3339(memory.created_at),
        "updated_at": to_rfc3339(memory.updated_at),
        "expires_at": memory.expires_at.map(to_rfc3339),
        "decayed_at": memory.decayed_at.map(to_rfc3339),
        "access_count": memory.access_count,
        "text_length": chars,
        "token_count": chars / 4,
        "metadata": metadata,
        "agent_id": memory.agent_id,
        "run_id": memory.run_id,
        "visibility": memory.visibility.map(Visibility::name),
        "is_archived": memory.is_archived,
        "promotion_count": memory.promotion_count,
    })
}

/// `value` as the decimal it was written as: a confidence of 0.9 is 0.9 in
/// the JSON, not 0.8999999761581421 (the f32's exact value as an f64).
pub fn decimal(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// The metadata object of a stored memory (empty when it is not an object).
pub fn metadata_of(memory: &Memory) -> Map<String, Value> {
    match serde_json::from_str(&memory.metadata) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A memory to create, as `memory.create` and each item of
/// `memory.batch-create` take it. `type` is accepted for `memory_type`, as
/// the reference's batch items spell it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMemory {
    pub text: String,
    /// Required for `memory.create`; in a batch, optional but equal to the
    /// batch's `user_id` when given.
    pub user_id: Option<String>,
    #[serde(alias = "type")]
    memory_type: Option<String>,
    importance: Option<f32>,
    confidence: Option<f32>,
    tags: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    session_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    visibility: Option<String>,
    ttl_days: Option<f64>,
    /// When it was said, for memories imported from an older conversation
    /// (RFC 3339, not in the future); the time it is stored by default.
    created_at: Option<String>,
    check_duplicates: Option<bool>,
}

/// A checked [`NewMemory`]: everything but its id, owner and times.
#[derive(Debug, Clone)]
pub struct Draft {
    pub text: String,
    pub memory_type: MemoryType,
    /// As given; `None` means "scored from the text".
    pub importance: Option<f32>,
    pub confidence: f32,
    pub tags: Vec<String>,
    pub metadata: Map<String, Value>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub run_id: Option<String>,
    pub visibility: Option<Visibility>,
    pub ttl_days: Option<f64>,
    /// When it was said, if not when it is stored (ms since the epoch).
    pub created_at: Option<i64>,
    pub check_duplicates: bool,
}

impl NewMemory {
    /// Checks every field; errors name it as `<prefix><field>`.
    pub fn check(self, prefix: &str) -> Result<Draft, TaskError> {
        let field = |name: &str| format!("{prefix}{name}");
        input::check_text(&field("text"), &self.text)?;
        let memory_type = match &self.memory_type {
            Some(name) => input::memory_type(&field("memory_type"), name)?,
            None => MemoryType::Fact,
        };
        input::check_range(&field("importance"), self.importance, 10.0)?;
        input::check_range(&field("confidence"), self.confidence, 1.0)?;
        let tags = input::tags(&field("tags"), self.tags.unwrap_or_default())?;
        for (name, id) in [
            ("session_id", &self.session_id),
            ("agent_id", &self.agent_id),
            ("run_id", &self.run_id),
        ] {
            input::check_optional_id(&field(name), id.as_deref())?;
        }
        let visibility = self
            .visibility
            .as_deref()
            .map(|name| input::visibility(&field("visibility"), name))
            .transpose()?;
        if let Some(days) = self.ttl_days
            && !(days > 0.0 && days <= MAX_TTL_DAYS)
        {
            return Err(bad(
                &field("ttl_days"),
                format!("must be above 0 and at most {MAX_TTL_DAYS}"),
            ));
        }
        let created_at = self
            .created_at
            .as_deref()
            .map(|text| input::past_time(&field("created_at"), text))
            .transpose()?;
        Ok(Draft {
            text: self.text,
            memory_type,
            importance: self.importance,
            confidence: self.confidence.unwrap_or(DEFAULT_CONFIDENCE),
            tags,
            metadata: self.metadata.unwrap_or_default(),
            session_id: self.session_id,
            agent_id: self.agent_id,
            run_id: self.run_id,
            visibility,
            ttl_days: self.ttl_days,
            created_at,
            check_duplicates: self.check_duplicates.unwrap_or(true),
        })
    }
}

impl Draft {
    /// The importance to store: as given, else scored from the text.
    pub fn importance(&self) -> f32 {
        self.importance
            .unwrap_or_else(|| score_importance(&self.text, self.memory_type))
    }

    /// When a memory written at `now` expires, if it has a time to live.
    pub fn expires_at(&self, now: i64) -> Option<i64> {
        // Rounded to whole milliseconds; 36,500 days fit easily in an i64.
        self.ttl_days
            .map(|days| now.saturating_add((days * DAY_MS as f64).round() as i64))
    }

    /// The new memory `id` of `user_id`, stored at `now` (and created then
    /// unless the input said when). A time to live counts from `now`.
    pub fn into_memory(self, id: String, user_id: &str, now: i64) -> Memory {
        Memory {
            id,
            user_id: user_id.to_owned(),
            importance: self.importance(),
            expires_at: self.expires_at(now),
            metadata: Value::Object(self.metadata).to_string(),
            text: self.text,
            session_id: self.session_id,
            memory_type: self.memory_type,
            confidence: self.confidence,
            tags: self.tags,
            created_at: self.created_at.unwrap_or(now),
            updated_at: now,
            decayed_at: None,
            access_count: 0,
            agent_id: self.agent_id,
            run_id: self.run_id,
            visibility: self.visibility,
            is_archived: false,
            promotion_count: 0,
        }
    }
}

/// A fresh memory id (a random UUID).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(json: &str) -> Result<Draft, TaskError> {
        serde_json::from_str::<NewMemory>(json).unwrap().check("")
    }

    #[test]
    fn defaults_of_a_new_memory() {
        let memory = draft(r#"{"text": "Paris is the capital of France", "user_id": "bob"}"#)
            .unwrap()
            .into_memory("id-1".into(), "bob", 1_000);
        assert_eq!(memory.memory_type, MemoryType::Fact);
        assert_eq!(memory.confidence, DEFAULT_CONFIDENCE);
        assert_eq!((memory.created_at, memory.updated_at), (1_000, 1_000));
        assert_eq!((memory.expires_at, memory.decayed_at), (None, None));
        assert_eq!(memory.metadata, "{}");
        assert!(memory.tags.is_empty() && !memory.is_archived);
    }

    #[test]
    fn ttl_sets_the_expiry_and_type_is_an_alias() {
        let d = draft(r#"{"text": "call mum", "type": "prospective", "ttl_days": 1.5}"#).unwrap();
        assert_eq!(d.memory_type, MemoryType::Prospective);
        assert_eq!(d.expires_at(0), Some(129_600_000));
        assert!(draft(r#"{"text": "x", "ttl_days": 0}"#).is_err());
    }

    #[test]
    fn an_imported_memory_keeps_when_it_was_said() {
        let memory = draft(r#"{"text": "we moved to Lyon", "created_at": "2026-01-31T12:00:00Z"}"#)
            .unwrap()
            .into_memory("id-1".into(), "bob", 1_800_000_000_000);
        assert_eq!(memory.created_at, 1_769_860_800_000);
        assert_eq!(memory.updated_at, 1_800_000_000_000);
        for bad in [r#""yesterday""#, r#""2999-01-01T00:00:00Z""#] {
            let err = draft(&format!(r#"{{"text": "x", "created_at": {bad}}}"#)).unwrap_err();
            assert!(err.message().starts_with("field `created_at`"), "{err:?}");
        }
    }

    #[test]
    fn errors_name_the_field_with_its_prefix() {
        let err = serde_json::from_str::<NewMemory>(r#"{"text": "x", "importance": 12}"#)
            .unwrap()
            .check("memories[3].")
            .unwrap_err();
        assert_eq!(
            err,
            TaskError::bad_input("field `memories[3].importance`: must be between 0 and 10")
        );
        let err = draft(r#"{"text": "x", "visibility": "secret"}"#).unwrap_err();
        assert!(err.message().starts_with("field `visibility`"));
    }

    #[test]
    fn json_shape() {
        let mut memory = draft(
            r#"{"text": "I prefer tea", "memory_type": "preference", "importance": 8,
                "tags": ["drinks"], "metadata": {"source": "chat"}, "visibility": "private"}"#,
        )
        .unwrap()
        .into_memory("id-1".into(), "alice", 1_769_860_800_000);
        memory.expires_at = Some(1_769_860_800_000 + DAY_MS);
        let json = memory_json(&memory);
        assert_eq!(json["type"], "preference");
        assert_eq!(json["created_at"], "2026-01-31T12:00:00.000Z");
        assert_eq!(json["expires_at"], "2026-02-01T12:00:00.000Z");
        assert_eq!(json["decayed_at"], Value::Null);
        assert_eq!(json["metadata"]["source"], "chat");
        assert_eq!(json["visibility"], "private");
        assert_eq!(
            (json["text_length"].as_u64(), json["token_count"].as_u64()),
            (Some(12), Some(3))
        );
        assert_eq!(metadata_of(&memory)["source"], "chat");
    }

    #[test]
    fn decimals_keep_the_digits_they_were_written_with() {
        assert_eq!(decimal(0.9), 0.9);
        assert_eq!(decimal(7.3), 7.3);
        assert_eq!(serde_json::to_string(&decimal(0.1)).unwrap(), "0.1");
    }
}
