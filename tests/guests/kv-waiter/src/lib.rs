//! Test plugin `kv-waiter`: reads a key from the host's key-value store, so
//! a test can leave it waiting inside that host call (on a frozen Redis)
//! and check the host still ends it at its hard limit or on revocation.
//! Needs the `kv` grant.

use hippo_sdk::{Context, Plugin, Task, TaskError, kv};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    key: String,
}

/// `wait.kv-get` `{"key": K}`: returns `{"found": bool}`.
fn kv_get(_ctx: &Context, input: Input) -> Result<Value, TaskError> {
    let value = kv::get(&input.key).map_err(|e| TaskError::retry(e.to_string()))?;
    Ok(json!({ "found": value.is_some() }))
}

fn plugin() -> Plugin {
    Plugin::new("kv-waiter", "1.0.0").task(Task::new(
        "wait.kv-get",
        "Reads one key of the key-value store",
        kv_get,
    ))
}

hippo_sdk::export_plugin!(plugin);
