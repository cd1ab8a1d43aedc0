//! Benchmark plugin `bench`, built by `scripts/build-guests` as
//! `hippo_bench_guest.wasm` (it stays in the target directory: it is not a
//! plugin to deploy).
//!
//! - `bench.noop`: ignores its input and returns `null`, so running it costs
//!   only the runtime's per-task overhead.
//! - `bench.crunch` `{"rounds": N}` → `{"result": u64}`: runs
//!   [`hippo_bench_workload::crunch`], the same code the bench driver runs
//!   natively.

use hippo_sdk::{Context, Plugin, Task, TaskError};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

fn noop(_ctx: &Context, _input: IgnoredAny) -> Result<(), TaskError> {
    Ok(())
}

/// Input of `bench.crunch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CrunchInput {
    rounds: u64,
}

/// Output of `bench.crunch`.
#[derive(Debug, Serialize)]
struct CrunchOutput {
    result: u64,
}

fn crunch(_ctx: &Context, input: CrunchInput) -> Result<CrunchOutput, TaskError> {
    Ok(CrunchOutput {
        result: hippo_bench_workload::crunch(input.rounds),
    })
}

fn plugin() -> Plugin {
    Plugin::new("bench", env!("CARGO_PKG_VERSION"))
        .task(Task::new(
            "bench.noop",
            "Does nothing: measures the per-task overhead",
            noop,
        ))
        .task(Task::new(
            "bench.crunch",
            "Runs the CPU-bound benchmark workload for `rounds` rounds",
            crunch,
        ))
}

hippo_sdk::export_plugin!(plugin);
