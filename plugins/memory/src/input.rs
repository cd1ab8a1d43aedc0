//! Checks on task input, each failure a [`TaskError::BadInput`] naming its
//! field, and the filters that recall and query share.
//!
//! The API checks the same bounds before it queues a task; the plugin
//! checks again because tasks can also be submitted directly.

use hippo_sdk::TaskError;
use hippo_sdk::memory::{Filter, MemoryType, Visibility};
use hippo_sdk::time::{now_ms, parse_rfc3339};
use serde::Deserialize;

/// Longest memory text or query, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Most tags on one memory, and the longest tag.
const MAX_TAGS: usize = 64;
const MAX_TAG_CHARS: usize = 100;
/// Longest user, session, agent or run id.
const MAX_ID_CHARS: usize = 128;

/// A bad-input error naming `field`.
pub fn bad(field: &str, message: impl std::fmt::Display) -> TaskError {
    TaskError::bad_input(format!("field `{field}`: {message}"))
}

/// A non-blank text of at most [`MAX_TEXT_CHARS`] characters.
pub fn check_text(field: &str, text: &str) -> Result<(), TaskError> {
    if text.trim().is_empty() {
        return Err(bad(field, "must not be blank"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(bad(
            field,
            format!("longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A user, session, agent or run id: 1-128 characters, no control characters.
pub fn check_id(field: &str, id: &str) -> Result<(), TaskError> {
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
        return Err(bad(
            field,
            format!("must be 1-{MAX_ID_CHARS} characters without control characters"),
        ));
    }
    Ok(())
}

/// The optional ids of a memory, each checked.
pub fn check_optional_id(field: &str, id: Option<&str>) -> Result<(), TaskError> {
    id.map_or(Ok(()), |id| check_id(field, id))
}

/// A memory id: a UUID, returned in the store's canonical form (lower-case,
/// hyphenated) so that `ABC…` and `abc…` name the same memory.
pub fn memory_id(field: &str, id: &str) -> Result<String, TaskError> {
    uuid::Uuid::parse_str(id.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| bad(field, "must be a UUID"))
}

/// A finite number in `0..=max`.
pub fn check_range(field: &str, value: Option<f32>, max: f32) -> Result<(), TaskError> {
    match value {
        Some(v) if !(v.is_finite() && (0.0..=max).contains(&v)) => {
            Err(bad(field, format!("must be between 0 and {max}")))
        }
        _ => Ok(()),
    }
}

/// Tags, trimmed, without repeats (first occurrence kept), at most
/// [`MAX_TAGS`], each 1-[`MAX_TAG_CHARS`] characters.
pub fn tags(field: &str, tags: Vec<String>) -> Result<Vec<String>, TaskError> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
            return Err(bad(
                field,
                format!("each tag must be 1-{MAX_TAG_CHARS} characters and not blank"),
            ));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_owned());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(bad(field, format!("at most {MAX_TAGS} tags")));
    }
    Ok(out)
}

/// The memory type named `name`.
pub fn memory_type(field: &str, name: &str) -> Result<MemoryType, TaskError> {
    MemoryType::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = MemoryType::ALL.iter().map(|t| t.name()).collect();
        bad(
            field,
            format!("unknown type {name:?}; one of {}", known.join(", ")),
        )
    })
}

/// The visibility named `name`.
pub fn visibility(field: &str, name: &str) -> Result<Visibility, TaskError> {
    Visibility::from_name(name).ok_or_else(|| bad(field, "must be one of private, shared, public"))
}

/// An RFC 3339 time, in milliseconds since the Unix epoch.
pub fn time(field: &str, text: &str) -> Result<i64, TaskError> {
    parse_rfc3339(text).ok_or_else(|| {
        bad(
            field,
            "must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
        )
    })
}

/// How far ahead of this host's clock a "past" time may be: the caller's
/// clock may run a little fast.
const CLOCK_SKEW_MS: i64 = 60_000;

/// An RFC 3339 time that is not in the future (beyond [`CLOCK_SKEW_MS`]).
pub fn past_time(field: &str, text: &str) -> Result<i64, TaskError> {
    let ms = time(field, text)?;
    if ms > now_ms().saturating_add(CLOCK_SKEW_MS) {
        return Err(bad(field, "must not be in the future"));
    }
    Ok(ms)
}

/// Conditions on recalled or listed memories, all of which must hold. There
/// is deliberately no `user_id`: a task sees only its own user's memories.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    memory_types: Option<Vec<String>>,
    /// Memories with at least one of these tags.
    tags: Option<Vec<String>>,
    min_importance: Option<f32>,
    max_importance: Option<f32>,
    created_after: Option<String>,
    created_before: Option<String>,
    session_id: Option<String>,
}

impl Filters {
    /// The store filter, every field checked (named `filters.<field>`).
    pub fn to_filter(&self) -> Result<Filter, TaskError> {
        let memory_types = self
            .memory_types
            .iter()
            .flatten()
            .map(|name| memory_type("filters.memory_types", name))
            .collect::<Result<_, _>>()?;
        let tags_any = tags("filters.tags", self.tags.clone().unwrap_or_default())?;
        check_range("filters.min_importance", self.min_importance, 10.0)?;
        check_range("filters.max_importance", self.max_importance, 10.0)?;
        let created_after = self
            .created_after
            .as_deref()
            .map(|t| time("filters.created_after", t))
            .transpose()?;
        let created_before = self
            .created_before
            .as_deref()
            .map(|t| time("filters.created_before", t))
            .transpose()?;
        check_optional_id("filters.session_id", self.session_id.as_deref())?;
        Ok(Filter {
            memory_types,
            tags_any,
            min_importance: self.min_importance,
            max_importance: self.max_importance,
            created_after,
            created_before,
            session_id: self.session_id.clone(),
            ..Filter::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: TaskError) -> String {
        match err {
            TaskError::BadInput(message) => message,
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn memory_ids_are_canonical_uuids() {
        assert_eq!(
            memory_id("memory_id", "6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap(),
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        let err = memory_id("memory_id", "mem_123").unwrap_err();
        assert_eq!(message(err), "field `memory_id`: must be a UUID");
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        let got = tags("tags", vec![" food".into(), "food".into(), "fun ".into()]).unwrap();
        assert_eq!(got, ["food", "fun"]);
        assert!(tags("tags", vec!["  ".into()]).is_err());
        assert!(tags("tags", (0..65).map(|i| i.to_string()).collect()).is_err());
    }

    #[test]
    fn filters_name_the_bad_field() {
        let filters: Filters = serde_json::from_str(r#"{"created_after": "last week"}"#).unwrap();
        let err = message(filters.to_filter().unwrap_err());
        assert!(err.starts_with("field `filters.created_after`"), "{err}");
        let filters: Filters =
            serde_json::from_str(r#"{"memory_types": ["fact", "mood"]}"#).unwrap();
        let err = message(filters.to_filter().unwrap_err());
        assert!(err.contains("unknown type \"mood\""), "{err}");
        let filters: Filters = serde_json::from_str(r#"{"min_importance": 11}"#).unwrap();
        assert!(filters.to_filter().is_err());
    }

    #[test]
    fn filters_cannot_name_a_user() {
        let crafted = serde_json::from_str::<Filters>(r#"{"user_id": "alice"}"#);
        assert!(
            crafted
                .unwrap_err()
                .to_string()
                .contains("unknown field `user_id`")
        );
    }

    #[test]
    fn filters_map_onto_the_store_filter() {
        let filters: Filters = serde_json::from_str(
            r#"{"memory_types": ["preference"], "tags": ["food"], "min_importance": 3,
                "created_after": "2026-01-01T00:00:00Z", "session_id": "s1"}"#,
        )
        .unwrap();
        let filter = filters.to_filter().unwrap();
        assert_eq!(filter.memory_types, [MemoryType::Preference]);
        assert_eq!(filter.tags_any, ["food"]);
        assert_eq!(filter.min_importance, Some(3.0));
        assert_eq!(filter.created_after, Some(1_767_225_600_000));
        assert_eq!(filter.session_id.as_deref(), Some("s1"));
        assert_eq!(filter.user_id, None);
        assert!(!filter.include_archived);
    }

    #[test]
    fn ranges_and_texts() {
        assert!(check_range("importance", Some(10.5), 10.0).is_err());
        assert!(check_range("importance", Some(f32::NAN), 10.0).is_err());
        assert!(check_range("importance", Some(0.0), 10.0).is_ok());
        assert!(check_text("text", " \n ").is_err());
        assert!(check_text("text", &"x".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert!(check_id("user_id", "").is_err());
        assert!(check_id("user_id", "alice").is_ok());
    }
}
