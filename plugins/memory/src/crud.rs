//! One memory by id (`memory.get`, `memory.update`, `memory.delete`) and a
//! page of them by filter (`memory.query`).

use hippo_sdk::memory::{self, Memory, MemoryType, Stored};
use hippo_sdk::models::{self, TextKind};
use hippo_sdk::time::now_ms;
use hippo_sdk::{Context, TaskError};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::dedup::merge_metadata;
use crate::input::{self, Filters, bad, check_id};
use crate::record::{memory_json, metadata_of};

/// Page size of `memory.query` when the input names none, and the largest.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000;

/// Input naming one memory of one user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryRef {
    memory_id: String,
    user_id: String,
}

impl MemoryRef {
    /// The memory, if it exists and belongs to the user. The host already
    /// hides other users' memories; the owner is checked here too so that a
    /// mistake there cannot leak one. Someone else's memory reads as absent,
    /// which does not even tell that it exists.
    fn lookup(&self, ctx: &Context) -> Result<(String, Option<Stored>), TaskError> {
        check_id("user_id", &self.user_id)?;
        let id = input::memory_id("memory_id", &self.memory_id)?;
        let stored = memory::get_one(&id)?;
        let owned = stored.filter(|s| {
            let mine = s.memory.user_id == self.user_id;
            if !mine {
                ctx.warn(format!("memory {id} is not {}'s: refused", self.user_id));
            }
            mine
        });
        Ok((id, owned))
    }
}

/// `memory.get`: `{found: true, memory}` or `{found: false, memory_id}`.
pub fn get(ctx: &Context, input: MemoryRef) -> Result<Value, TaskError> {
    Ok(match input.lookup(ctx)? {
        (_, Some(stored)) => json!({ "found": true, "memory": memory_json(&stored.memory) }),
        (id, None) => json!({ "found": false, "memory_id": id }),
    })
}

/// `memory.delete`: `{deleted, memory_id}`; `deleted` is false when the
/// user has no such memory.
pub fn delete(ctx: &Context, input: MemoryRef) -> Result<Value, TaskError> {
    let (id, stored) = input.lookup(ctx)?;
    let deleted = match stored {
        Some(_) => memory::delete(std::slice::from_ref(&id))? > 0,
        None => false,
    };
    Ok(json!({ "deleted": deleted, "memory_id": id }))
}

/// Changes to a memory; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Updates {
    text: Option<String>,
    importance: Option<f32>,
    tags: Option<Vec<String>>,
    /// Merged into the existing metadata (new keys win).
    metadata: Option<Map<String, Value>>,
    /// RFC 3339.
    expires_at: Option<String>,
    memory_type: Option<String>,
}

/// Input of `memory.update`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    memory_id: String,
    user_id: String,
    updates: Updates,
}

/// Checked [`Updates`], ready to apply.
#[derive(Debug)]
struct Change {
    text: Option<String>,
    importance: Option<f32>,
    tags: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    expires_at: Option<i64>,
    memory_type: Option<MemoryType>,
}

impl Updates {
    /// Checks every field (named `updates.<field>`); at least one must be set.
    fn check(self) -> Result<Change, TaskError> {
        // Destructured so that a new field cannot be forgotten here.
        let Updates {
            text,
            importance,
            tags,
            metadata,
            expires_at,
            memory_type,
        } = self;
        if text.is_none()
            && importance.is_none()
            && tags.is_none()
            && metadata.is_none()
            && expires_at.is_none()
            && memory_type.is_none()
        {
            return Err(bad("updates", "names no change"));
        }
        if let Some(text) = &text {
            input::check_text("updates.text", text)?;
        }
        input::check_range("updates.importance", importance, 10.0)?;
        Ok(Change {
            text,
            importance,
            tags: tags.map(|t| input::tags("updates.tags", t)).transpose()?,
            metadata,
            expires_at: expires_at
                .map(|t| input::time("updates.expires_at", &t))
                .transpose()?,
            memory_type: memory_type
                .map(|t| input::memory_type("updates.memory_type", &t))
                .transpose()?,
        })
    }
}

impl Change {
    /// Applies the change to `memory` at `now`. Returns whether the text
    /// changed, i.e. whether the memory must be embedded again. A new
    /// importance restarts decay from `now`.
    fn apply(self, memory: &mut Memory, now: i64) -> bool {
        let mut text_changed = false;
        if let Some(text) = self.text {
            text_changed = text != memory.text;
            memory.text = text;
        }
        if let Some(importance) = self.importance {
            memory.importance = importance;
            memory.decayed_at = Some(now);
        }
        if let Some(tags) = self.tags {
            memory.tags = tags;
        }
        if let Some(changes) = self.metadata {
            let mut merged = metadata_of(memory);
            merge_metadata(&mut merged, &changes);
            memory.metadata = Value::Object(merged).to_string();
        }
        if let Some(expires_at) = self.expires_at {
            memory.expires_at = Some(expires_at);
        }
        if let Some(memory_type) = self.memory_type {
            memory.memory_type = memory_type;
        }
        memory.updated_at = now;
        text_changed
    }
}

/// `memory.update`: `{found: true, memory, reembedded}` with the memory as
/// updated (embedded again only when its text changed), or `{found: false,
/// memory_id}`.
pub fn update(ctx: &Context, input: UpdateInput) -> Result<Value, TaskError> {
    let change = input.updates.check()?;
    let target = MemoryRef {
        memory_id: input.memory_id,
        user_id: input.user_id,
    };
    let (id, stored) = target.lookup(ctx)?;
    let Some(mut stored) = stored else {
        return Ok(json!({ "found": false, "memory_id": id }));
    };
    let reembedded = change.apply(&mut stored.memory, now_ms());
    if reembedded {
        stored.vector = models::embed_one(&stored.memory.text, TextKind::Document)?;
    }
    memory::upsert(std::slice::from_ref(&stored))?;
    Ok(json!({ "found": true, "memory": memory_json(&stored.memory), "reembedded": reembedded }))
}

/// Input of `memory.query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryInput {
    user_id: String,
    #[serde(default)]
    filters: Option<Filters>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `memory.query`: `{memories, next}`, one page of the user's memories that
/// match; pass `next` back as `cursor` for the following page (null at the
/// end).
pub fn query(_ctx: &Context, input: QueryInput) -> Result<Value, TaskError> {
    check_id("user_id", &input.user_id)?;
    let limit = input.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(bad("limit", format!("must be between 1 and {MAX_PAGE}")));
    }
    let filter = input.filters.unwrap_or_default().to_filter()?;
    // The cursor comes from the caller: one the store refuses is their
    // mistake (a bad input), not a failure of the task.
    let page = memory::scroll(&filter, input.cursor.as_deref(), limit).map_err(|e| match e {
        hippo_sdk::ServiceError::Invalid { message, .. } if input.cursor.is_some() => {
            bad("cursor", message)
        }
        other => other.into(),
    })?;
    let memories: Vec<Value> = page.items.iter().map(|s| memory_json(&s.memory)).collect();
    Ok(json!({ "memories": memories, "next": page.next }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewMemory;

    fn stored_memory() -> Memory {
        serde_json::from_str::<NewMemory>(
            r#"{"text": "I live in Lyon", "importance": 6, "tags": ["home"], "metadata": {"a": 1}}"#,
        )
        .unwrap()
        .check("")
        .unwrap()
        .into_memory("m1".into(), "alice", 1_000)
    }

    fn change(json: &str) -> Result<Change, TaskError> {
        serde_json::from_str::<Updates>(json).unwrap().check()
    }

    fn apply(json: &str, memory: &mut Memory, now: i64) -> bool {
        change(json).unwrap().apply(memory, now)
    }

    #[test]
    fn only_a_new_text_needs_a_new_vector() {
        let mut memory = stored_memory();
        let changed = apply(
            r#"{"importance": 9, "tags": ["city"], "metadata": {"b": 2}}"#,
            &mut memory,
            2_000,
        );
        assert!(!changed);
        assert_eq!((memory.importance, memory.decayed_at), (9.0, Some(2_000)));
        assert_eq!(memory.tags, ["city"]);
        assert_eq!(
            metadata_of(&memory),
            serde_json::from_str::<Map<_, _>>(r#"{"a":1,"b":2}"#).unwrap()
        );
        assert_eq!((memory.created_at, memory.updated_at), (1_000, 2_000));

        // The same text again is no change.
        let same = apply(r#"{"text": "I live in Lyon"}"#, &mut memory, 3_000);
        assert!(!same);
        let moved = apply(r#"{"text": "I live in Nantes"}"#, &mut memory, 4_000);
        assert!(moved);
        assert_eq!(memory.text, "I live in Nantes");
    }

    #[test]
    fn type_and_expiry_change_without_touching_the_rest() {
        let mut memory = stored_memory();
        let changed = apply(
            r#"{"memory_type": "event", "expires_at": "2026-02-01T00:00:00Z"}"#,
            &mut memory,
            2_000,
        );
        assert!(!changed);
        assert_eq!(memory.memory_type, MemoryType::Event);
        assert_eq!(memory.expires_at, Some(1_769_904_000_000));
        assert_eq!((memory.importance, memory.decayed_at), (6.0, None));
    }

    #[test]
    fn bad_updates_name_their_field() {
        let err = change("{}").unwrap_err();
        assert_eq!(
            err,
            TaskError::bad_input("field `updates`: names no change")
        );
        let err = change(r#"{"importance": -1}"#).unwrap_err();
        assert!(err.message().starts_with("field `updates.importance`"));
        let err = change(r#"{"expires_at": "soon"}"#).unwrap_err();
        assert!(err.message().starts_with("field `updates.expires_at`"));
        assert!(serde_json::from_str::<Updates>(r#"{"user_id": "bob"}"#).is_err());
    }

    #[test]
    fn update_input_reads_the_reference_shape() {
        let input: UpdateInput = serde_json::from_str(
            r#"{"memory_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff", "user_id": "alice",
                "updates": {"text": "new"}}"#,
        )
        .unwrap();
        assert_eq!(input.user_id, "alice");
        assert!(change(r#"{"tags": [" "]}"#).is_err());
    }
}
