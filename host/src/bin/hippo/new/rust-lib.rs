//! The `%NAME%` hippo plugin.
//!
//! - `%NAME%.hello` `{"name": "Ada"}` → `{"greeting": "Hello, Ada!"}`
//!
//! Build: `cargo build --target wasm32-wasip2 --release`; test the pure
//! parts natively: `cargo test`. See README.md.

use hippo_sdk::{Context, Plugin, Task, TaskError};
use serde::{Deserialize, Serialize};

/// Input of `%NAME%.hello`; an unknown field is refused as bad input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HelloInput {
    name: String,
}

/// Output of `%NAME%.hello`.
#[derive(Debug, PartialEq, Serialize)]
struct HelloOutput {
    greeting: String,
}

/// The task: the host calls it with the task's context and parsed input.
fn hello(ctx: &Context, input: HelloInput) -> Result<HelloOutput, TaskError> {
    let output = greet(&input.name)?;
    ctx.info(format!("greeted {}", input.name));
    Ok(output)
}

/// What the task computes, without host calls, so `cargo test` runs it.
fn greet(name: &str) -> Result<HelloOutput, TaskError> {
    if name.trim().is_empty() {
        return Err(TaskError::bad_input("field `name`: a non-blank name is required"));
    }
    Ok(HelloOutput {
        greeting: format!("Hello, {name}!"),
    })
}

fn plugin() -> Plugin {
    Plugin::new("%NAME%", env!("CARGO_PKG_VERSION")).task(Task::new(
        "%NAME%.hello",
        "Greets `name`",
        hello,
    ))
}

hippo_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name() {
        assert_eq!(greet("Ada").unwrap().greeting, "Hello, Ada!");
    }

    #[test]
    fn refuses_a_blank_name() {
        assert!(greet("  ").is_err());
    }
}
