//! A recursion whose frames live mostly in linear memory (the shadow
//! stack), so it runs out of that stack long before wasmtime's own stack
//! limit: the stack pointer wraps below zero and the next access is out of
//! bounds. The host must still call it a stack overflow.

use hippo_sdk::{Context, TaskError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::hint::black_box;

#[derive(Deserialize)]
pub(crate) struct Input {
    depth: u64,
}

/// `test.recurse-wide` `{"depth": N}`: recurses N calls deep with 16 KiB of
/// shadow stack per call; returns `{"depth": N}`.
pub(crate) fn recurse_wide(_ctx: &Context, input: Input) -> Result<Value, TaskError> {
    Ok(json!({ "depth": descend(black_box(input.depth)) }))
}

#[inline(never)]
fn descend(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    let mut frame = [0u8; 16 << 10];
    // Takes the frame's address, so it must live in linear memory.
    black_box(&mut frame);
    let below = descend(black_box(depth - 1));
    black_box(below + 1 + u64::from(frame[0]))
}
