//! Running one task: a fresh store from the plugin's `InstancePre`, limits
//! applied, the outcome classified and measured.

use super::host_api::{
    CancelToken, Deadlines, GuestState, Interruption, ProgressSink, TaskLimiter, on_epoch_tick, wit,
};
use super::plugin::LoadedPlugin;
use super::services::TaskScope;
use super::task_log::{LogSource, TaskLog, TaskLogRecord};
use super::watchdog::{Watchdog, Watches};
use hippo_task::{ExecStats, LimitOverrides, Limits, Progress, TaskFailure};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, WasmBacktrace};
use wasmtime_wasi::WasiCtxBuilder;

/// One task to run on a loaded plugin.
#[derive(Clone)]
pub struct TaskRequest {
    /// The task's id (a UUID string).
    pub task_id: String,
    /// Task name, as the plugin describes it.
    pub task_name: String,
    /// 1 for the first run.
    pub attempt: u32,
    /// Queue the task came from.
    pub queue: String,
    /// JSON input.
    pub input: Vec<u8>,
    /// Limits the submission sets (the highest-priority layer).
    pub limits: LimitOverrides,
    /// Whether `limits` may raise the task's limits above its plugin's
    /// (manifest, `describe`, defaults); otherwise they can only lower them.
    /// Set only for a submitter the operator authorised (an API key with the
    /// `limits` scope, the operator's own `hippo run`).
    pub may_raise_limits: bool,
    /// The user the task acts for, decided where it was submitted
    /// (`hippo_task::acting_user`): its memory-store calls reach only this
    /// user's memories (unless its plugin is granted `memory-maintenance`).
    /// The runtime never reads the input to find it.
    pub acting_for: Option<String>,
    /// Cancels the task when triggered.
    pub cancel: CancelToken,
    /// Receives progress reports while the task runs.
    pub progress: Option<ProgressSink>,
}

impl std::fmt::Debug for TaskRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRequest")
            .field("task_id", &self.task_id)
            .field("task_name", &self.task_name)
            .field("attempt", &self.attempt)
            .field("queue", &self.queue)
            .field("input_bytes", &self.input.len())
            .field("limits", &self.limits)
            .field("may_raise_limits", &self.may_raise_limits)
            .field("acting_for", &self.acting_for)
            .finish_non_exhaustive()
    }
}

impl TaskRequest {
    /// A first attempt of `task_name` with `input`, a fresh id, on the
    /// `default` queue, acting for no user.
    pub fn new(task_name: impl Into<String>, input: impl Into<Vec<u8>>) -> Self {
        TaskRequest {
            task_id: uuid::Uuid::new_v4().to_string(),
            task_name: task_name.into(),
            attempt: 1,
            queue: "default".into(),
            input: input.into(),
            limits: LimitOverrides::default(),
            may_raise_limits: false,
            acting_for: None,
            cancel: CancelToken::new(),
            progress: None,
        }
    }
}

/// The result of running one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// JSON output, or why there is none.
    pub result: Result<Vec<u8>, TaskFailure>,
    /// Costs.
    pub stats: ExecStats,
    /// The limits that applied.
    pub limits: Limits,
    /// The bounded log.
    pub log: TaskLogRecord,
    /// The last progress report.
    pub progress: Option<Progress>,
    /// Version of the plugin that ran the task.
    pub plugin_version: String,
}

/// Runs `request` on `plugin`. The caller holds a pool slot (see
/// [`super::Runtime::execute`]).
///
/// The instantiation and the call race the task's [`Watchdog`]: a guest
/// that waits outside wasm (in WASI or a host service) past its hard
/// deadline, or after a revocation, is stopped there; a guest running wasm
/// is stopped by its epoch callback. Either way the task ends within a tick
/// and its store, slot and instance are freed.
pub(crate) async fn run(
    engine: &wasmtime::Engine,
    fuel_metering: bool,
    watches: &Arc<Watches>,
    plugin: &LoadedPlugin,
    limits: Limits,
    request: &TaskRequest,
    scope: TaskScope,
) -> TaskOutcome {
    let started = Instant::now();
    let log = TaskLog::new(limits.log_bytes);
    let mut store = new_store(engine, fuel_metering, &limits, &log, request, scope);
    let context = wit::Context {
        task_id: request.task_id.clone(),
        attempt: request.attempt,
        queue: request.queue.clone(),
        soft_deadline_unix_ms: unix_ms_after(limits.soft_time_limit),
        hard_deadline_unix_ms: unix_ms_after(limits.hard_time_limit),
    };
    let watchdog = watches.watchdog(store.data().deadlines.hard, request.cancel.clone());
    let called = until_stopped(watchdog, async {
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(GuestCall::Instantiate)?;
        instance
            .hippo_tasks_plugin()
            .call_run(&mut store, &context, &request.task_name, &request.input)
            .await
            .map_err(GuestCall::Trap)
    })
    .await;
    let wall = started.elapsed();
    let result = match called {
        Err(interruption) => Err(interrupted(interruption, &limits)),
        Ok(Err(GuestCall::Instantiate(e))) => Err(TaskFailure::Instantiate {
            message: format!("{e:#}"),
        }),
        Ok(Err(GuestCall::Trap(trap))) => Err(classify_trap(&trap, &store, &limits, &log)),
        Ok(Ok(Ok(output))) if output.len() as u64 > limits.output_bytes => {
            Err(TaskFailure::OutputTooLarge {
                size_bytes: output.len() as u64,
                limit_bytes: limits.output_bytes,
            })
        }
        Ok(Ok(Ok(output))) => Ok(output),
        Ok(Ok(Err(error))) => Err(from_guest_error(error)),
    };
    let state = store.data();
    let stats = ExecStats {
        fuel_used: fuel_metering.then(|| limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0))),
        peak_memory_bytes: state.limiter.peak_memory as u64,
        wall_time_us: wall.as_micros() as u64,
        soft_limit_passed: Instant::now() >= state.deadlines.soft,
    };
    let progress = state.last_progress.clone();
    TaskOutcome {
        result,
        stats,
        limits,
        log: log.take(),
        progress,
        plugin_version: plugin.version.clone(),
    }
}

/// How a guest call failed before returning a value.
pub(crate) enum GuestCall {
    /// The instance could not be created.
    Instantiate(wasmtime::Error),
    /// The guest trapped (or was interrupted by its epoch callback).
    Trap(wasmtime::Error),
}

/// Runs `call` (a guest call and whatever it waits on) until it ends or
/// `watchdog` fires, whichever comes first. When the watchdog wins, the
/// call future (pinned in this function's frame) is dropped as this
/// function returns: wasmtime resumes the suspended guest with an error,
/// which unwinds it, so the store is free again for the caller.
pub(crate) async fn until_stopped<F: std::future::Future>(
    watchdog: Watchdog,
    call: F,
) -> Result<F::Output, Interruption> {
    let call = std::pin::pin!(call);
    let watchdog = std::pin::pin!(watchdog);
    match futures::future::select(call, watchdog).await {
        futures::future::Either::Left((output, _)) => Ok(output),
        futures::future::Either::Right((interruption, _)) => Err(interruption),
    }
}

fn interrupted(interruption: Interruption, limits: &Limits) -> TaskFailure {
    match interruption {
        Interruption::HardTimeLimit => TaskFailure::HardTimeLimit {
            limit_ms: limits.hard_time_limit.as_millis() as u64,
        },
        Interruption::Revoked => TaskFailure::Revoked,
    }
}

/// A fresh store for one task: WASI with nothing from the host (no
/// preopened directory, no environment, no arguments, no network, stdio
/// captured into the bounded log), the memory limiter, fuel and the epoch
/// callback that enforces the hard deadline and revocation.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    fuel_metering: bool,
    limits: &Limits,
    log: &TaskLog,
    request: &TaskRequest,
    scope: TaskScope,
) -> Store<GuestState> {
    let wasi = WasiCtxBuilder::new()
        .stdout(log.stream(LogSource::Stdout))
        .stderr(log.stream(LogSource::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = GuestState {
        wasi,
        table: ResourceTable::new(),
        limiter: TaskLimiter::new(limits.memory_bytes, limits.table_elements),
        log: log.clone(),
        deadlines: Deadlines::starting_now(limits.soft_time_limit, limits.hard_time_limit),
        cancel: request.cancel.clone(),
        progress: request.progress.clone(),
        last_progress: None,
        scope,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    if fuel_metering {
        store
            .set_fuel(limits.fuel)
            .expect("fuel metering is enabled on this engine");
    }
    // Bytes one guest-to-host call may copy into the host, the task's
    // output included: an output over its limit is refused before it is
    // copied whole (see `classify_trap`), while service calls keep room
    // for their own bounded arguments.
    store.set_hostcall_fuel(hostcall_fuel(limits.output_bytes));
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(on_epoch_tick);
    store
}

/// Floor of the bytes a host call may copy: above every service call's own
/// bound (a `kv` value, a batch of texts to embed, a batch of memories).
const HOSTCALL_DATA_FLOOR: u64 = 32 << 20;

/// Bytes beyond the output itself in the return value (its encoding).
const HOSTCALL_SLACK: u64 = 64 << 10;

fn hostcall_fuel(output_bytes: u64) -> usize {
    usize::try_from(output_bytes.max(HOSTCALL_DATA_FLOOR) + HOSTCALL_SLACK).unwrap_or(usize::MAX)
}

fn unix_ms_after(duration: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now + duration).as_millis() as u64
}

fn from_guest_error(error: wit::TaskError) -> TaskFailure {
    match error {
        wit::TaskError::Retry(retry) => TaskFailure::Retry {
            message: retry.message,
            delay_ms: retry.delay_ms,
        },
        wit::TaskError::Fatal(message) => TaskFailure::Fatal { message },
        wit::TaskError::BadInput(message) => TaskFailure::BadInput { message },
    }
}

fn classify_trap(
    error: &wasmtime::Error,
    store: &Store<GuestState>,
    limits: &Limits,
    log: &TaskLog,
) -> TaskFailure {
    if let Some(interruption) = error.downcast_ref::<Interruption>() {
        return interrupted(*interruption, limits);
    }
    if let Some(requested) = store.data().limiter.refused_memory {
        return TaskFailure::MemoryLimit {
            limit_bytes: limits.memory_bytes,
            requested_bytes: requested as u64,
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return TaskFailure::Exited { status: exit.0 };
    }
    let backtrace = error.downcast_ref::<WasmBacktrace>();
    // Wasmtime's own copy limit (the store's hostcall fuel) refuses a
    // return value over it while lifting it, after the guest returned: no
    // wasm frame is left then, unlike a guest call into the host with too
    // large an argument.
    if backtrace.is_none_or(|b| b.frames().is_empty())
        && format!("{error:#}").contains(HOSTCALL_FUEL_EXHAUSTED)
    {
        return TaskFailure::OutputTooLarge {
            size_bytes: hostcall_fuel(limits.output_bytes) as u64,
            limit_bytes: limits.output_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => TaskFailure::FuelExhausted { fuel: limits.fuel },
        Some(Trap::StackOverflow) => TaskFailure::StackOverflow,
        Some(Trap::MemoryOutOfBounds) if backtrace.is_some_and(is_deep_recursion) => {
            TaskFailure::StackOverflow
        }
        trap => match panic_message(log) {
            Some(message) => TaskFailure::Panicked { message },
            // The trap's own words, without the backtrace wasmtime attaches
            // as context: the task's log and the trap code say enough.
            None => TaskFailure::Trapped {
                message: match trap {
                    Some(trap) => trap.to_string(),
                    None => error.root_cause().to_string(),
                },
            },
        },
    }
}

/// Wasmtime's message when a call copies more than the store's hostcall fuel.
const HOSTCALL_FUEL_EXHAUSTED: &str =
    "too much data is being copied between the host and the guest";

/// A guest whose shadow stack (in its linear memory, below its data) runs
/// out does not hit wasmtime's stack limit: its stack pointer wraps and the
/// next access is out of bounds. What gives it away is the backtrace: the
/// frames wasmtime keeps (the innermost ones, up to its cap) are all
/// taken by one or two functions calling each other.
fn is_deep_recursion(backtrace: &WasmBacktrace) -> bool {
    const MIN_FRAMES: usize = 16;
    let frames = backtrace.frames();
    if frames.len() < MIN_FRAMES {
        return false;
    }
    let mut functions: Vec<(Option<&str>, u32)> = frames
        .iter()
        .map(|f| (f.module().name(), f.func_index()))
        .collect();
    functions.sort_unstable();
    functions.dedup();
    functions.len() <= 2
}

/// A Rust guest prints `thread '...' panicked at src/lib.rs:1:2:\nmessage`
/// to stderr before it traps; take the message from the captured log.
fn panic_message(log: &TaskLog) -> Option<String> {
    let record = log.snapshot();
    let stderr: Vec<&str> = record
        .lines
        .iter()
        .filter(|line| line.source == LogSource::Stderr)
        .map(|line| line.message.as_str())
        .collect();
    let at = stderr
        .iter()
        .rposition(|line| line.contains("panicked at"))?;
    let message = stderr.get(at + 1).copied().unwrap_or(stderr[at]);
    Some(message.to_string())
}
