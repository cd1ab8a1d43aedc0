//! Test plugin `kv-hostile` 1.0.0, granted `kv` by its manifest: a task that
//! floods the shared key-value store the way a hostile plugin would, and
//! well-behaved ones that use it as intended. A separate component from
//! `hostile` because importing `kv` makes a plugin need the grant to load.

use hippo_sdk::{Context, Plugin, ServiceError, Task, TaskError, kv};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct FloodInput {
    /// Values to try to store.
    count: u32,
    /// Size of each value.
    bytes: usize,
}

#[derive(Serialize)]
struct FloodOutput {
    /// Values the host accepted.
    stored: u32,
    /// Values it refused.
    refused: u32,
    /// The first refusal, as the guest saw it.
    first_error: Option<String>,
    /// Whether that refusal was a quota's (not a failure worth a retry).
    quota_exceeded: bool,
}

/// `kv.flood` `{"count": N, "bytes": B}`: sets `flood-0` .. `flood-{N-1}` to
/// B bytes each and, as a hostile plugin would, keeps going after a refusal.
fn flood(_ctx: &Context, input: FloodInput) -> Result<FloodOutput, TaskError> {
    let value = vec![0xA5u8; input.bytes];
    let mut output = FloodOutput {
        stored: 0,
        refused: 0,
        first_error: None,
        quota_exceeded: false,
    };
    for i in 0..input.count {
        match kv::set(&format!("flood-{i}"), &value, None) {
            Ok(()) => output.stored += 1,
            Err(error) => {
                output.refused += 1;
                if output.first_error.is_none() {
                    output.quota_exceeded = matches!(error, ServiceError::QuotaExceeded { .. });
                    output.first_error = Some(error.to_string());
                }
            }
        }
    }
    Ok(output)
}

#[derive(Deserialize)]
struct ClearInput {
    count: u32,
}

/// `kv.clear` `{"count": N}`: deletes `flood-0` .. `flood-{N-1}`; returns
/// `{"deleted": how many existed}`.
fn clear(_ctx: &Context, input: ClearInput) -> Result<Deleted, TaskError> {
    let mut deleted = 0;
    for i in 0..input.count {
        if kv::delete(&format!("flood-{i}"))? {
            deleted += 1;
        }
    }
    Ok(Deleted { deleted })
}

#[derive(Serialize)]
struct Deleted {
    deleted: u32,
}

#[derive(Deserialize, Serialize)]
struct Note {
    key: String,
    text: String,
}

/// `kv.note` `{"key": K, "text": T}`: stores T at K, reads it back and
/// returns what it read, as `{"key": K, "text": ...}`.
fn note(_ctx: &Context, input: Note) -> Result<Note, TaskError> {
    kv::set(&input.key, input.text.as_bytes(), None)?;
    let read = kv::get(&input.key)?.ok_or_else(|| {
        TaskError::fatal(format!("{} was just set but reads as missing", input.key))
    })?;
    let text = String::from_utf8(read).map_err(|e| TaskError::fatal(e.to_string()))?;
    Ok(Note {
        key: input.key,
        text,
    })
}

fn plugin() -> Plugin {
    Plugin::new("kv-hostile", "1.0.0")
        .task(Task::new(
            "kv.flood",
            "Sets N values of B bytes, ignoring refusals",
            flood,
        ))
        .task(Task::new("kv.clear", "Deletes what kv.flood set", clear))
        .task(Task::new(
            "kv.note",
            "Stores a text and reads it back",
            note,
        ))
}

hippo_sdk::export_plugin!(plugin);
