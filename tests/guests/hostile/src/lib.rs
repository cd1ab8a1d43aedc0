//! Test plugin `hostile` 1.0.0: tasks that misbehave in each of the ways the
//! host's sandbox must contain (spinning, allocating, recursing, panicking,
//! reaching for files and the network, flooding output and logs), plus a few
//! well-behaved ones to check the plumbing. All input and output is JSON.

mod overflow;
mod waits;

use std::hint::black_box;
use std::time::Duration;

use hippo_sdk::{Context, Plugin, Task, TaskError};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize)]
struct SleepInput {
    ms: u64,
}

/// `test.sleep` `{"ms": N}`: sleeps N milliseconds (a task that waits on
/// something, without burning CPU), then returns `{"slept_ms": N}`.
fn sleep(_ctx: &Context, input: SleepInput) -> Result<Value, TaskError> {
    std::thread::sleep(Duration::from_millis(input.ms));
    Ok(json!({ "slept_ms": input.ms }))
}

#[derive(Deserialize)]
struct ProbeInput {
    bytes: usize,
    mode: ProbeMode,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum ProbeMode {
    /// Leave a marker behind.
    Write,
    /// Look for markers in fresh, uninitialised memory.
    Probe,
    /// Both in one task: shows the probe does find what is left in memory.
    WriteThenProbe,
}

/// The byte `test.memory-probe` writes and looks for.
const MARK: u8 = 0xA5;

/// Allocates `size` bytes without initialising them, runs `inspect` on
/// them and frees them.
fn with_uninit<R>(size: usize, inspect: impl FnOnce(&mut [u8]) -> R) -> Result<R, TaskError> {
    let layout = std::alloc::Layout::from_size_align(size.max(1), 8)
        .map_err(|e| TaskError::bad_input(e.to_string()))?;
    #[allow(unsafe_code)]
    // SAFETY: the layout has a non-zero size; the memory is used only as
    // bytes (any bit pattern is a valid u8, which is the point of the probe)
    // and freed with the same layout.
    unsafe {
        let memory = std::alloc::alloc(layout);
        if memory.is_null() {
            return Err(TaskError::fatal("allocation failed"));
        }
        let result = inspect(std::slice::from_raw_parts_mut(memory, layout.size()));
        std::alloc::dealloc(memory, layout);
        Ok(result)
    }
}

/// `test.memory-probe` `{"bytes": N, "mode": "write"|"probe"|"write-then-probe"}`:
/// `write` fills N fresh bytes with a marker (a secret a task leaves
/// behind); `probe` allocates N bytes *without initialising them* and counts
/// the markers in them: above zero is memory leaked from an earlier task in
/// the same pool slot. Returns `{"marked": count}`.
fn memory_probe(_ctx: &Context, input: ProbeInput) -> Result<Value, TaskError> {
    let count = |bytes: &mut [u8]| black_box(&*bytes).iter().filter(|b| **b == MARK).count();
    if input.mode != ProbeMode::Probe {
        // black_box keeps the fill: freed right after, it is otherwise a dead store.
        with_uninit(input.bytes, |bytes| {
            bytes.fill(MARK);
            black_box(&*bytes);
        })?;
    }
    let marked = match input.mode {
        ProbeMode::Write => input.bytes,
        ProbeMode::Probe | ProbeMode::WriteThenProbe => with_uninit(input.bytes, count)?,
    };
    Ok(json!({ "marked": marked }))
}

/// `test.noop`: ignores its input, returns `null`.
fn noop(_ctx: &Context, _input: IgnoredAny) -> Result<(), TaskError> {
    Ok(())
}

/// `test.echo`: returns its input unchanged.
fn echo(_ctx: &Context, input: Value) -> Result<Value, TaskError> {
    Ok(input)
}

/// `test.spin`: loops forever without ever asking the host anything.
fn spin(_ctx: &Context, _input: IgnoredAny) -> Result<(), TaskError> {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// `test.soft-partial`: works in chunks until the soft limit passes, reporting
/// progress towards it (in milliseconds) after each chunk, then returns
/// `{"partial": true, "iterations": n}`.
fn soft_partial(ctx: &Context, _input: IgnoredAny) -> Result<Value, TaskError> {
    let window = ctx.soft_time_left();
    let mut iterations = 0u64;
    while !ctx.soft_limit_passed() {
        let mut acc = iterations;
        for i in 0..10_000u64 {
            acc = black_box(acc.wrapping_mul(31).wrapping_add(i));
        }
        black_box(acc);
        iterations += 1;
        let elapsed = window.saturating_sub(ctx.soft_time_left());
        ctx.progress(millis(elapsed), millis(window), None);
    }
    Ok(json!({ "partial": true, "iterations": iterations }))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Deserialize)]
struct AllocInput {
    bytes: usize,
    #[serde(default)]
    fallible: bool,
}

/// `test.alloc` `{"bytes": N, "fallible": bool}`: allocates N bytes and
/// writes to every 4 KiB page of them. By default the allocation is the
/// ordinary infallible kind, so a refused `memory.grow` aborts the guest (the
/// hostile case); with `"fallible": true` it fails fatally instead.
fn alloc(_ctx: &Context, input: AllocInput) -> Result<Value, TaskError> {
    let mut buf: Vec<u8> = Vec::new();
    if input.fallible {
        buf.try_reserve_exact(input.bytes).map_err(|err| {
            TaskError::fatal(format!("could not allocate {} bytes: {err}", input.bytes))
        })?;
    }
    buf.resize(input.bytes, 0);
    for page in buf.chunks_mut(4096) {
        page[0] = 1;
    }
    black_box(&buf);
    Ok(json!({ "allocated": input.bytes }))
}

#[derive(Deserialize)]
struct RecurseInput {
    depth: u64,
}

/// `test.recurse` `{"depth": N}`: recurses N calls deep, keeping a frame on
/// both the wasm stack and the shadow stack in linear memory at each level;
/// returns `{"depth": N}`.
fn recurse(_ctx: &Context, input: RecurseInput) -> Result<Value, TaskError> {
    Ok(json!({ "depth": descend(black_box(input.depth)) }))
}

#[inline(never)]
fn descend(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    let mut frame = [0u8; 64];
    // Takes the frame's address, so it must live in memory during the call.
    black_box(&mut frame);
    let below = descend(black_box(depth - 1));
    black_box(below + 1 + u64::from(frame[0]))
}

/// `test.panic`: panics.
fn panic(_ctx: &Context, _input: IgnoredAny) -> Result<(), TaskError> {
    panic!("hostile guest panicked on purpose")
}

#[derive(Deserialize)]
struct ReadFileInput {
    path: String,
}

/// `test.read-file` `{"path": "..."}`: tries to read a file.
fn read_file(_ctx: &Context, input: ReadFileInput) -> Result<Value, TaskError> {
    Ok(match std::fs::read_to_string(&input.path) {
        Ok(content) => json!({ "ok": true, "content": content }),
        Err(err) => json!({ "ok": false, "error": err.to_string() }),
    })
}

#[derive(Deserialize)]
struct ConnectInput {
    addr: String,
}

/// `test.connect` `{"addr": "127.0.0.1:1234"}`: tries to open a TCP
/// connection; `error` is `null` when it succeeds.
fn connect(_ctx: &Context, input: ConnectInput) -> Result<Value, TaskError> {
    Ok(match std::net::TcpStream::connect(input.addr.as_str()) {
        Ok(_) => json!({ "ok": true, "error": null }),
        Err(err) => json!({ "ok": false, "error": err.to_string() }),
    })
}

#[derive(Deserialize)]
struct BigOutputInput {
    bytes: usize,
}

/// `test.big-output` `{"bytes": N}`: returns a JSON string of N `x`s.
fn big_output(_ctx: &Context, input: BigOutputInput) -> Result<String, TaskError> {
    Ok("x".repeat(input.bytes))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FailKind {
    Retry,
    Fatal,
    BadInput,
}

#[derive(Deserialize)]
struct FailInput {
    kind: FailKind,
    delay_ms: Option<u64>,
}

/// `test.fail` `{"kind": "retry"|"fatal"|"bad-input", "delay_ms": N?}`:
/// fails with that error; `delay_ms` only applies to `retry`.
fn fail(_ctx: &Context, input: FailInput) -> Result<(), TaskError> {
    Err(match input.kind {
        FailKind::Retry => match input.delay_ms {
            Some(ms) => {
                TaskError::retry_after("hostile guest asked for a retry", Duration::from_millis(ms))
            }
            None => TaskError::retry("hostile guest asked for a retry"),
        },
        FailKind::Fatal => TaskError::fatal("hostile guest failed on purpose"),
        FailKind::BadInput => TaskError::bad_input("hostile guest rejected its input"),
    })
}

#[derive(Deserialize)]
struct LogInput {
    lines: u64,
}

/// `test.log` `{"lines": N}`: for i in 0..N, logs `line i` at info level,
/// prints `stdout i` to stdout and `stderr i` to stderr.
fn log(ctx: &Context, input: LogInput) -> Result<(), TaskError> {
    for i in 0..input.lines {
        ctx.info(format!("line {i}"));
        println!("stdout {i}");
        eprintln!("stderr {i}");
    }
    Ok(())
}

#[derive(Deserialize)]
struct ProgressInput {
    steps: u64,
}

/// `test.progress` `{"steps": N}`: reports progress `i` of N (with note
/// `step i`) for i in 1..=N.
fn progress(ctx: &Context, input: ProgressInput) -> Result<(), TaskError> {
    for i in 1..=input.steps {
        ctx.progress(i, input.steps, Some(&format!("step {i}")));
    }
    Ok(())
}

#[derive(Serialize)]
struct EnvOutput {
    vars: usize,
    args: usize,
}

/// `test.env`: how many environment variables and arguments the guest sees.
fn env(_ctx: &Context, _input: IgnoredAny) -> Result<EnvOutput, TaskError> {
    Ok(EnvOutput {
        vars: std::env::vars().count(),
        args: std::env::args().count(),
    })
}

/// The plugin. No task sets limits: the tests choose them.
fn plugin() -> Plugin {
    Plugin::new("hostile", "1.0.0")
        .task(Task::new("test.noop", "Returns null", noop))
        .task(Task::new("test.echo", "Returns its input", echo))
        .task(Task::new("test.sleep", "Sleeps N milliseconds", sleep))
        .task(Task::new(
            "test.memory-probe",
            "Leaves a marker in memory, or looks for one left by an earlier task",
            memory_probe,
        ))
        .task(Task::new("test.spin", "Loops forever", spin))
        .task(Task::new(
            "test.soft-partial",
            "Works until the soft limit passes, then returns a partial result",
            soft_partial,
        ))
        .task(Task::new(
            "test.alloc",
            "Allocates and touches N bytes",
            alloc,
        ))
        .task(Task::new("test.recurse", "Recurses N calls deep", recurse))
        .task(Task::new(
            "test.recurse-wide",
            "Recurses N calls deep with 16 KiB frames in linear memory",
            overflow::recurse_wide,
        ))
        .task(Task::new("test.panic", "Panics", panic))
        .task(Task::new(
            "test.read-file",
            "Tries to read a file",
            read_file,
        ))
        .task(Task::new(
            "test.connect",
            "Tries to open a TCP connection",
            connect,
        ))
        .task(Task::new(
            "test.big-output",
            "Returns a string of N bytes",
            big_output,
        ))
        .task(Task::new(
            "test.fail",
            "Fails with the requested error",
            fail,
        ))
        .task(Task::new(
            "test.log",
            "Logs N lines to the host, stdout and stderr",
            log,
        ))
        .task(Task::new(
            "test.progress",
            "Reports N progress steps",
            progress,
        ))
        .task(Task::new(
            "test.block",
            "Waits on a WASI pollable (for N ms, or forever)",
            waits::block,
        ))
        .task(Task::new(
            "test.exit",
            "Exits the guest with a status instead of returning",
            waits::exit,
        ))
        .task(Task::new(
            "test.env",
            "Counts the environment variables and arguments",
            env,
        ))
}

hippo_sdk::export_plugin!(plugin);
