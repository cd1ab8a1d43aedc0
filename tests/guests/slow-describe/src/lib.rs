//! Test plugin `slow-describe`: its `describe` sleeps in WASI for an hour
//! (outside wasm, where no epoch tick reaches), as a plugin that stalls
//! the host's loading would. The host must refuse it within the describe
//! limit and go on loading and serving the others.

use hippo_sdk::{Context, Plugin, Task, TaskError};
use std::time::Duration;

fn noop(_ctx: &Context, _input: serde_json::Value) -> Result<(), TaskError> {
    Ok(())
}

fn plugin() -> Plugin {
    std::thread::sleep(Duration::from_secs(3600));
    Plugin::new("slow-describe", "1.0.0").task(Task::new("slow.noop", "Returns null", noop))
}

hippo_sdk::export_plugin!(plugin);
