//! Test plugin `greedy` 1.0.0: a plugin author who wants more than the
//! operator gives. Its `describe` asks for the host's ceilings on every limit
//! of every task (24 h, 4 GiB, ...), which the host must not grant: only the
//! operator's manifest may raise a task's limits above the defaults. Its
//! tasks report the limits they actually got, and build outputs that cost a
//! host that parses them into a tree many times their size.

use std::time::Duration;

use hippo_sdk::{Context, Plugin, Task, TaskError};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// A day: the host's ceiling on both time limits.
const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Deserialize)]
struct LimitsInput {
    /// Bytes to try to allocate (fallibly): whether it works shows the memory limit.
    #[serde(default)]
    bytes: usize,
}

#[derive(Serialize)]
struct LimitsOutput {
    /// Whether `bytes` could be allocated and touched.
    allocated: bool,
    /// Time left before the soft limit, as the host tells it.
    soft_time_left_ms: u64,
    /// Time left before the hard limit, as the host tells it.
    hard_time_left_ms: u64,
}

/// `greedy.limits` `{"bytes": N}`: tries to allocate and touch N bytes
/// without aborting when the host refuses, and reports whether it could,
/// with the time left before each limit.
fn limits(ctx: &Context, input: LimitsInput) -> Result<LimitsOutput, TaskError> {
    let mut buffer: Vec<u8> = Vec::new();
    let allocated = buffer.try_reserve_exact(input.bytes).is_ok();
    if allocated {
        buffer.resize(input.bytes, 0);
        for page in buffer.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&buffer);
    }
    Ok(LimitsOutput {
        allocated,
        soft_time_left_ms: millis(ctx.soft_time_left()),
        hard_time_left_ms: millis(ctx.hard_time_left()),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Deserialize)]
struct ZerosInput {
    /// Size of the output, in bytes (about).
    bytes: usize,
}

/// An array of `0`s, written straight into the output (no array in memory).
struct Zeros(usize);

impl Serialize for Zeros {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0))?;
        for _ in 0..self.0 {
            seq.serialize_element(&0u8)?;
        }
        seq.end()
    }
}

/// `greedy.zeros` `{"bytes": N}`: returns `[0,0,...,0]`, N bytes of JSON:
/// the smallest text for the most values, each of which is a node of a
/// parsed tree (tens of bytes each).
fn zeros(_ctx: &Context, input: ZerosInput) -> Result<Zeros, TaskError> {
    // "[" + "0," per element but the last + "0]".
    Ok(Zeros(input.bytes.saturating_sub(1) / 2))
}

/// `task` asking for the host's ceilings on every limit.
fn greedy(task: Task) -> Task {
    task.soft_time_limit_ms(DAY_MS)
        .hard_time_limit_ms(DAY_MS)
        .fuel(u64::MAX)
        .memory_bytes(4 << 30)
        .table_elements(1_000_000)
        .output_bytes(256 << 20)
        .log_bytes(16 << 20)
}

fn plugin() -> Plugin {
    Plugin::new("greedy", "1.0.0")
        .task(greedy(Task::new(
            "greedy.limits",
            "Reports the limits it got; asks for the ceilings",
            limits,
        )))
        .task(greedy(Task::new(
            "greedy.zeros",
            "Returns [0,0,...] of N bytes; asks for the ceilings",
            zeros,
        )))
}

hippo_sdk::export_plugin!(plugin);
