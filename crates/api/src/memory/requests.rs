//! The bodies of the memory routes and their checks: each field is checked
//! here, before anything is queued or run, so a malformed request is a 400
//! naming its field rather than a failed task.

use crate::error::ApiError;
use hippo_store::{MemoryType, Visibility};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Longest memory text, in characters.
const MAX_TEXT_CHARS: usize = 20_000;
/// Most memories one batch may create.
const MAX_BATCH: usize = 1_000;
/// Most tags on one memory, and the longest tag.
const MAX_TAGS: usize = 64;
const MAX_TAG_CHARS: usize = 100;
/// Most results one recall or query returns.
const MAX_K: u32 = 100;
const MAX_QUERY_LIMIT: u32 = 1_000;

/// A memory to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMemory {
    /// The memory's text.
    #[schema(min_length = 1, max_length = 20000, pattern = r"\S")]
    pub text: String,
    /// Owner.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub user_id: String,
    /// Kind (default `fact`); `type` is accepted for it, as the reference's
    /// batch items spell it.
    #[serde(skip_serializing_if = "Option::is_none", alias = "type")]
    pub memory_type: Option<MemoryType>,
    /// 0 to 10; scored from the text when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10)]
    pub importance: Option<f32>,
    /// 0 to 1 (default 0.9).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub confidence: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64, value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    /// A JSON object kept with the memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// Expire this many days from now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 36500)]
    pub ttl_days: Option<f64>,
    /// When it was said, for memories imported from an older conversation
    /// (RFC 3339, any offset; not in the future, more than a minute past this
    /// host's clock); the time it is stored by default. Recency counts from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    /// Look for duplicates first (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_duplicates: Option<bool>,
}

/// Many memories of one user, embedded in one batch and stored in one bulk write.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreate {
    /// 1 to 1,000 memories, all of one user.
    #[schema(min_items = 1, max_items = 1000)]
    pub memories: Vec<NewMemory>,
    /// Skip duplicates within the batch and against stored memories (default true).
    #[serde(default = "yes")]
    pub check_duplicates: bool,
}

fn yes() -> bool {
    true
}

/// Conditions on recalled or listed memories (all must hold).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryFilters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_types: Option<Vec<MemoryType>>,
    /// Memories with at least one of these tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64, value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10)]
    pub min_importance: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10)]
    pub max_importance: Option<f32>,
    /// RFC 3339 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub created_after: Option<String>,
    /// RFC 3339 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub created_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub session_id: Option<String>,
}

/// How recall finds candidates.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecallMode {
    /// Vector and BM25 candidates fused by reciprocal rank (the default).
    Hybrid,
    /// Vector similarity only.
    Vector,
    /// BM25 only.
    Keyword,
}

/// A recall: the memories that best answer `query`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recall {
    #[schema(min_length = 1, max_length = 20000, pattern = r"\S")]
    pub query: String,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub user_id: String,
    /// How many (default 5, at most 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<MemoryFilters>,
    /// Rerank with the cross-encoder when one is configured (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<RecallMode>,
}

/// Changes to a memory; absent fields stay as they are (at least one).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct MemoryUpdates {
    /// New text (the memory is embedded again).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 20000, pattern = r"\S")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10)]
    pub importance: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 64, value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    /// Merged into the existing metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// RFC 3339 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_type: Option<MemoryType>,
}

/// A tag as the checks take it: 1-100 characters, not blank. A schema
/// only (tags are plain strings), written by hand because a derived one
/// cannot constrain a newtype's string.
pub struct Tag;

impl utoipa::PartialSchema for Tag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_TAG_CHARS))
            .pattern(Some(r"\S"))
            .into()
    }
}

impl ToSchema for Tag {}

/// An update of one memory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    #[schema(format = Uuid)]
    pub memory_id: String,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub user_id: String,
    pub updates: MemoryUpdates,
}

/// A deletion of one memory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    #[schema(format = Uuid)]
    pub memory_id: String,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub user_id: String,
}

/// A page of a user's memories that match `filters`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<MemoryFilters>,
    /// Page size (default 100, at most 1,000).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `?user_id=` for the routes that name a memory in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OwnerQuery {
    /// The memory's owner.
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub user_id: String,
}

// ---------------------------------------------------------------------------
// Checks.
// ---------------------------------------------------------------------------

pub(super) fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    // Characters, as the schema's maxLength counts them, not bytes.
    if value.is_empty() || value.chars().count() > 128 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1-128 characters without control characters"),
        ));
    }
    Ok(())
}

pub(super) fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    let chars = text.chars().count();
    if text.trim().is_empty() || chars > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1-{MAX_TEXT_CHARS} characters and not blank"),
        ));
    }
    Ok(())
}

pub(super) fn check_range(field: &str, value: Option<f32>, max: f32) -> Result<(), ApiError> {
    match value {
        Some(v) if !(0.0..=max).contains(&v) => Err(ApiError::invalid(
            field,
            format!("{field} must be between 0 and {max}"),
        )),
        _ => Ok(()),
    }
}

pub(super) fn check_tags(field: &str, tags: Option<&[String]>) -> Result<(), ApiError> {
    let Some(tags) = tags else { return Ok(()) };
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid(field, format!("at most {MAX_TAGS} tags")));
    }
    if tags
        .iter()
        .any(|t| t.trim().is_empty() || t.chars().count() > MAX_TAG_CHARS)
    {
        return Err(ApiError::invalid(
            field,
            format!("each tag must be 1-{MAX_TAG_CHARS} characters and not blank"),
        ));
    }
    Ok(())
}

/// `text` as the memory plugin reads a time (RFC 3339 with any offset;
/// also a space for the `T` and no offset, meaning UTC), in Unix ms.
fn unix_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(time) => Some(time.timestamp_millis()),
        Err(_) => humantime::parse_rfc3339_weak(text)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok()),
    }
}

pub(super) fn check_time(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    time_of(field, value).map(drop)
}

/// The time `value` names, in Unix ms (`None` when absent), or the error
/// naming `field`.
fn time_of(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            unix_ms(text).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("{field} must be an RFC 3339 time such as 2026-01-31T12:00:00Z"),
                )
            })
        })
        .transpose()
}

/// How far ahead of this host's clock a memory's `created_at` may be (the
/// caller's clock may run a little fast); the plugin allows as much.
const CLOCK_SKEW_MS: i64 = 60_000;

fn check_past(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    let now = i64::try_from(hippo_broker::now_ms()).unwrap_or(i64::MAX);
    match time_of(field, value)? {
        Some(ms) if ms > now.saturating_add(CLOCK_SKEW_MS) => Err(ApiError::invalid(
            field,
            format!("{field} must not be in the future"),
        )),
        _ => Ok(()),
    }
}

pub(super) fn check_new(prefix: &str, memory: &NewMemory) -> Result<(), ApiError> {
    let field = |name: &str| format!("{prefix}{name}");
    check_text(&field("text"), &memory.text)?;
    check_id(&field("user_id"), &memory.user_id)?;
    check_range(&field("importance"), memory.importance, 10.0)?;
    check_range(&field("confidence"), memory.confidence, 1.0)?;
    check_tags(&field("tags"), memory.tags.as_deref())?;
    for (name, value) in [
        ("session_id", &memory.session_id),
        ("agent_id", &memory.agent_id),
        ("run_id", &memory.run_id),
    ] {
        if let Some(value) = value {
            check_id(&field(name), value)?;
        }
    }
    check_past(&field("created_at"), memory.created_at.as_deref())?;
    match memory.ttl_days {
        Some(days) if !(days > 0.0 && days <= 36_500.0) => Err(ApiError::invalid(
            field("ttl_days"),
            "ttl_days must be above 0 and at most 36500",
        )),
        _ => Ok(()),
    }
}

pub(super) fn check_filters(filters: Option<&MemoryFilters>) -> Result<(), ApiError> {
    let Some(filters) = filters else {
        return Ok(());
    };
    check_tags("filters.tags", filters.tags.as_deref())?;
    check_range("filters.min_importance", filters.min_importance, 10.0)?;
    check_range("filters.max_importance", filters.max_importance, 10.0)?;
    check_time("filters.created_after", filters.created_after.as_deref())?;
    check_time("filters.created_before", filters.created_before.as_deref())?;
    if let Some(session) = &filters.session_id {
        check_id("filters.session_id", session)?;
    }
    Ok(())
}

pub(super) fn check_recall(recall: &Recall) -> Result<(), ApiError> {
    check_text("query", &recall.query)?;
    check_id("user_id", &recall.user_id)?;
    if matches!(recall.k, Some(k) if k == 0 || k > MAX_K) {
        return Err(ApiError::invalid(
            "k",
            format!("k must be between 1 and {MAX_K}"),
        ));
    }
    check_filters(recall.filters.as_ref())
}

/// A memory's id is a UUID (the store's point id): anything else is the
/// request's fault, named as its field, before any task runs.
pub(super) fn check_memory_id(field: &str, value: &str) -> Result<(), ApiError> {
    uuid::Uuid::try_parse(value)
        .map(drop)
        .map_err(|_| ApiError::invalid(field, format!("{field} must be a memory's id (a UUID)")))
}

pub(super) fn check_delete(delete: &Delete) -> Result<(), ApiError> {
    check_memory_id("memory_id", &delete.memory_id)?;
    check_id("user_id", &delete.user_id)
}

pub(super) fn check_update(update: &Update) -> Result<(), ApiError> {
    check_memory_id("memory_id", &update.memory_id)?;
    check_id("user_id", &update.user_id)?;
    let updates = &update.updates;
    if let Some(text) = &updates.text {
        check_text("updates.text", text)?;
    }
    check_range("updates.importance", updates.importance, 10.0)?;
    check_tags("updates.tags", updates.tags.as_deref())?;
    check_time("updates.expires_at", updates.expires_at.as_deref())
}

pub(super) fn check_query(query: &Query) -> Result<(), ApiError> {
    check_id("user_id", &query.user_id)?;
    if matches!(query.limit, Some(l) if l == 0 || l > MAX_QUERY_LIMIT) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_QUERY_LIMIT}"),
        ));
    }
    check_filters(query.filters.as_ref())
}

/// The batch's one user: every memory must belong to it, because a task
/// acts for one user (the store enforces it).
pub(super) fn check_batch(batch: &BatchCreate) -> Result<String, ApiError> {
    if batch.memories.is_empty() || batch.memories.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "memories",
            format!("1 to {MAX_BATCH} memories"),
        ));
    }
    for (i, memory) in batch.memories.iter().enumerate() {
        check_new(&format!("memories[{i}]."), memory)?;
    }
    let user = batch.memories[0].user_id.clone();
    if let Some(i) = batch.memories.iter().position(|m| m.user_id != user) {
        return Err(ApiError::invalid(
            format!("memories[{i}].user_id"),
            "a batch holds the memories of one user",
        ));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(user: &str) -> NewMemory {
        serde_json::from_value(serde_json::json!({ "text": "I like tea", "user_id": user }))
            .unwrap()
    }

    #[test]
    fn batch_items_take_the_reference_spelling_of_the_type() {
        let item: NewMemory = serde_json::from_value(serde_json::json!(
            { "text": "I like tea", "user_id": "u", "type": "preference" }
        ))
        .unwrap();
        assert_eq!(item.memory_type, Some(MemoryType::Preference));
    }

    #[test]
    fn times_take_offsets_and_created_at_is_not_in_the_future() {
        assert!(check_time("t", Some("2026-01-31T14:00:00+02:00")).is_ok());
        assert!(check_time("t", Some("1969-07-20T20:17:40Z")).is_ok());
        assert!(check_time("t", Some("2026-01-31 12:00:00")).is_ok());
        assert!(check_time("t", Some("yesterday")).is_err());
        let mut item = memory("alice");
        item.created_at = Some("2999-01-01T00:00:00Z".into());
        let error = check_new("memories[0].", &item).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("memories[0].created_at"));
        item.created_at = Some("2026-01-31T14:00:00+02:00".into());
        assert!(check_new("memories[0].", &item).is_ok());
    }

    #[test]
    fn a_batch_of_two_users_is_refused_naming_the_first_stranger() {
        let batch = BatchCreate {
            memories: vec![memory("alice"), memory("alice"), memory("bob")],
            check_duplicates: true,
        };
        let error = check_batch(&batch).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("memories[2].user_id"));
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let mut m = memory("alice");
        m.importance = Some(11.0);
        assert_eq!(
            check_new("", &m).unwrap_err().field.as_deref(),
            Some("importance")
        );
        let mut m = memory("alice");
        m.ttl_days = Some(0.0);
        assert_eq!(
            check_new("", &m).unwrap_err().field.as_deref(),
            Some("ttl_days")
        );
        let mut m = memory("alice");
        m.text = "   ".into();
        assert_eq!(
            check_new("", &m).unwrap_err().field.as_deref(),
            Some("text")
        );
    }

    #[test]
    fn filter_times_must_be_rfc3339() {
        let filters = MemoryFilters {
            created_after: Some("yesterday".into()),
            ..MemoryFilters::default()
        };
        let error = check_filters(Some(&filters)).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("filters.created_after"));
        let filters = MemoryFilters {
            created_after: Some("2026-01-31T12:00:00Z".into()),
            ..MemoryFilters::default()
        };
        assert!(check_filters(Some(&filters)).is_ok());
    }
}
