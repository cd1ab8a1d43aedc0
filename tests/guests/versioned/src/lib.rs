//! Test plugin `versioned`, built in two versions for hot-reload tests: 1.0.0
//! by default, 2.0.0 with the cargo feature `v2`.
//!
//! `test.version` `{"ms": N}` busy-waits N milliseconds (so a test can
//! replace the plugin while a run is in flight), then returns
//! `{"version": "1.0.0"}` or `{"version": "2.0.0"}`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hippo_sdk::{Context, Plugin, Task, TaskError};
use serde::{Deserialize, Serialize};

/// The version this build reports, from `describe` and from `test.version`.
#[cfg(not(feature = "v2"))]
const VERSION: &str = "1.0.0";
/// The version this build reports, from `describe` and from `test.version`.
#[cfg(feature = "v2")]
const VERSION: &str = "2.0.0";

#[derive(Deserialize)]
struct VersionInput {
    #[serde(default)]
    ms: u64,
}

#[derive(Serialize)]
struct VersionOutput {
    version: &'static str,
}

/// Busy-waits `ms` milliseconds on the monotonic clock, then reports the
/// version.
fn version(_ctx: &Context, input: VersionInput) -> Result<VersionOutput, TaskError> {
    let wait = Duration::from_millis(input.ms);
    let start = Instant::now();
    let mut spins = 0u64;
    while start.elapsed() < wait {
        spins = black_box(spins.wrapping_add(1));
    }
    Ok(VersionOutput { version: VERSION })
}

fn plugin() -> Plugin {
    Plugin::new("versioned", VERSION).task(Task::new(
        "test.version",
        "Busy-waits the given milliseconds, then returns the plugin version",
        version,
    ))
}

hippo_sdk::export_plugin!(plugin);
