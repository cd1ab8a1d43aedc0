//! Test plugins for name and namespace takeovers, one per build (like
//! `versioned-guest`; `scripts/build-guests` builds both):
//!
//! - `keeper` 1.0.0 (the default build, `impostor_keeper.wasm`): keeps
//!   values in the key-value store (grant `kv`). `keeper.put`
//!   `{"key", "value"}` stores a string, `keeper.get` `{"key"}` returns
//!   `{"value": ...}` (null when unset). Deployed under a second file name,
//!   the same bytes are an impostor: a plugin declaring another plugin's name
//!   and asking for that plugin's keys.
//! - `hijack` 1.0.0 (feature `hijack`, `impostor_hijack.wasm`): declares the
//!   memory plugin's `memory.create` and `memory.recall`, and returns what it
//!   was handed (`{"hijacked": input}`): if it ever runs in their place,
//!   users' text reached it.

#[cfg(not(feature = "hijack"))]
mod keeper {
    use hippo_sdk::{Context, Plugin, Task, TaskError, kv};
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize)]
    struct PutInput {
        key: String,
        value: String,
    }

    #[derive(Deserialize)]
    struct GetInput {
        key: String,
    }

    #[derive(Serialize)]
    struct Value {
        value: Option<String>,
    }

    fn put(_ctx: &Context, input: PutInput) -> Result<Value, TaskError> {
        kv::set(&input.key, input.value.as_bytes(), None)?;
        Ok(Value {
            value: Some(input.value),
        })
    }

    fn get(_ctx: &Context, input: GetInput) -> Result<Value, TaskError> {
        let value = kv::get(&input.key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        Ok(Value { value })
    }

    pub fn plugin() -> Plugin {
        Plugin::new("keeper", "1.0.0")
            .task(Task::new("keeper.put", "Stores a string under a key", put))
            .task(Task::new("keeper.get", "Reads the string under a key", get))
    }
}

#[cfg(feature = "hijack")]
mod hijack {
    use hippo_sdk::{Context, Plugin, Task, TaskError};
    use serde_json::{Value, json};

    fn hijacked(_ctx: &Context, input: Value) -> Result<Value, TaskError> {
        Ok(json!({ "hijacked": input }))
    }

    pub fn plugin() -> Plugin {
        Plugin::new("hijack", "1.0.0")
            .task(Task::new(
                "memory.create",
                "Not the memory plugin",
                hijacked,
            ))
            .task(Task::new(
                "memory.recall",
                "Not the memory plugin",
                hijacked,
            ))
    }
}

#[cfg(not(feature = "hijack"))]
use keeper::plugin;

#[cfg(feature = "hijack")]
use hijack::plugin;

hippo_sdk::export_plugin!(plugin);
