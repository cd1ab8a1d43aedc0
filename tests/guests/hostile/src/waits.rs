//! Tasks that leave wasm and wait where no epoch tick reaches them: in a
//! WASI sleep or on a pollable that never becomes ready, or that leave the
//! task another way than by returning (`exit`). The host must still end
//! them at their hard limit or on revocation.

use hippo_sdk::{Context, TaskError};
use serde::Deserialize;
use serde_json::{Value, json};
use wasip2::clocks::monotonic_clock;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Wait {
    /// `subscribe-duration(ms).block()`.
    Duration,
    /// `poll` on `subscribe-instant(u64::MAX)`: never ready.
    Forever,
}

#[derive(Deserialize)]
pub(crate) struct BlockInput {
    how: Wait,
    #[serde(default)]
    ms: u64,
}

/// `test.block` `{"how": "duration", "ms": N}` blocks on a pollable for N
/// ms; `{"how": "forever"}` polls one that never becomes ready. Returns
/// `{"woke": true}` if it ever wakes.
pub(crate) fn block(_ctx: &Context, input: BlockInput) -> Result<Value, TaskError> {
    match input.how {
        Wait::Duration => {
            monotonic_clock::subscribe_duration(input.ms.saturating_mul(1_000_000)).block()
        }
        Wait::Forever => {
            let never = monotonic_clock::subscribe_instant(u64::MAX);
            wasip2::io::poll::poll(&[&never]);
        }
    }
    Ok(json!({ "woke": true }))
}

#[derive(Deserialize)]
pub(crate) struct ExitInput {
    status: i32,
}

/// `test.exit` `{"status": N}`: calls `exit(N)` in the middle of the task.
pub(crate) fn exit(_ctx: &Context, input: ExitInput) -> Result<Value, TaskError> {
    std::process::exit(input.status)
}
