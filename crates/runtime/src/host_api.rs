//! The host side of the `hippo:tasks` WIT package's `task-host` world (the
//! runtime's own interfaces): generated bindings, the per-task store state,
//! and the task-local host imports. Other capabilities (`memory-host`) are
//! bound by the crates that provide them (see [`super::HostCapability`]).

use super::task_log::{LogLevel, LogSource, TaskLog};
use hippo_task::Progress;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    world: "task-host",
    path: "../../tasks-wit/wit",
    // Guests run as futures: they yield at every epoch tick (see
    // `on_epoch_tick`), so a task can run on the async runtime's own
    // threads without stalling them.
    exports: { default: async },
    // Every service call that can wait (the key-value store, the health
    // probes; the other capabilities do the same) is a future too: a guest waiting
    // in one is suspended, not blocking a thread, so the task's watchdog
    // (`Watchdog`) can stop it at its hard deadline or on revocation by
    // dropping the call. The task-local calls (log, progress, deadline)
    // return at once and stay plain functions.
    imports: {
        "hippo:tasks/kv": async,
        "hippo:tasks/health": async,
    },
});

pub(crate) use self::hippo::tasks::types as wit;

/// Progress messages longer than this are cut, so a guest cannot make the
/// host keep large strings around.
const MAX_PROGRESS_MESSAGE: usize = 1024;

/// Receives a task's progress reports as they happen.
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Cancels a running or not yet started task; cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation; a running task is interrupted at the next epoch tick.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why the host interrupted a running instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Interruption {
    #[error("hard time limit reached")]
    HardTimeLimit,
    #[error("task revoked")]
    Revoked,
}

/// Enforces a task's memory and table caps and records the peak it asked for.
#[derive(Debug)]
pub(crate) struct TaskLimiter {
    memory_cap: usize,
    table_cap: usize,
    pub(crate) peak_memory: usize,
    /// The largest growth the cap refused, if any.
    pub(crate) refused_memory: Option<usize>,
}

impl TaskLimiter {
    pub(crate) fn new(memory_cap: u64, table_cap: u32) -> Self {
        TaskLimiter {
            memory_cap: usize::try_from(memory_cap).unwrap_or(usize::MAX),
            table_cap: table_cap as usize,
            peak_memory: 0,
            refused_memory: None,
        }
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.refused_memory = Some(self.refused_memory.unwrap_or(0).max(desired));
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_cap)
    }
}

/// The deadlines of one task, as instants and as Unix milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    pub(crate) soft: Instant,
    pub(crate) hard: Instant,
}

impl Deadlines {
    pub(crate) fn starting_now(soft: Duration, hard: Duration) -> Self {
        let now = Instant::now();
        Deadlines {
            soft: now + soft,
            hard: now + hard,
        }
    }
}

/// Everything a task's [`wasmtime::Store`] holds. A fresh one per task, so
/// nothing survives from one task to the next. Opaque outside the runtime
/// but for [`GuestState::capability`], the state of one host capability.
pub struct GuestState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: TaskLimiter,
    pub(crate) log: TaskLog,
    pub(crate) deadlines: Deadlines,
    pub(crate) cancel: CancelToken,
    pub(crate) progress: Option<ProgressSink>,
    pub(crate) last_progress: Option<Progress>,
    pub(crate) scope: super::services::TaskScope,
}

impl GuestState {
    /// The task's state of the capability whose state has type `S`: the one
    /// it built for this task ([`super::HostCapability::task_state`]), or a
    /// default one (in `describe`, which acts for nobody).
    pub fn capability<S: std::any::Any + Send + Default>(&mut self) -> &mut S {
        self.scope.capabilities.get_mut()
    }
}

impl std::fmt::Debug for GuestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestState").finish_non_exhaustive()
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Called at every epoch tick while the task runs: interrupts it when it was
/// revoked or its hard deadline passed, otherwise lets it run one more tick.
pub(crate) fn on_epoch_tick(
    store: StoreContextMut<'_, GuestState>,
) -> wasmtime::Result<UpdateDeadline> {
    let state = store.data();
    if state.cancel.is_cancelled() {
        return Err(wasmtime::Error::new(Interruption::Revoked));
    }
    if Instant::now() >= state.deadlines.hard {
        return Err(wasmtime::Error::new(Interruption::HardTimeLimit));
    }
    // A guest run to completion on its own thread has nobody to share it
    // with (see `block_on_here`).
    if super::BlockingExecutor::is_current() {
        return Ok(UpdateDeadline::Continue(1));
    }
    // Hand the thread back to the executor once per tick: a guest that
    // computes for long shares its thread like any other future. Through
    // Tokio's `yield_now`, which lets the runtime poll its timers and I/O
    // first: a plain yield would leave them waiting for dozens of ticks
    // while guests keep every thread busy.
    Ok(UpdateDeadline::YieldCustom(
        1,
        Box::pin(tokio::task::yield_now()),
    ))
}

impl wit::Host for GuestState {}

impl self::hippo::tasks::log::Host for GuestState {
    fn log(&mut self, level: self::hippo::tasks::log::Level, message: String) {
        use self::hippo::tasks::log::Level;
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.log.push(level, LogSource::Guest, message.as_bytes());
    }
}

impl self::hippo::tasks::progress::Host for GuestState {
    fn report(&mut self, done: u64, total: u64, message: Option<String>) {
        let message = message.map(|mut text| {
            if text.len() > MAX_PROGRESS_MESSAGE {
                let cut = (0..=MAX_PROGRESS_MESSAGE)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.truncate(cut);
            }
            text
        });
        let progress = Progress {
            done,
            total,
            message,
        };
        if let Some(sink) = &self.progress {
            sink(&progress);
        }
        self.last_progress = Some(progress);
    }
}

impl self::hippo::tasks::deadline::Host for GuestState {
    fn soft_limit_passed(&mut self) -> bool {
        Instant::now() >= self.deadlines.soft
    }

    fn soft_time_left_ms(&mut self) -> u64 {
        millis_until(self.deadlines.soft)
    }

    fn hard_time_left_ms(&mut self) -> u64 {
        millis_until(self.deadlines.hard)
    }
}

fn millis_until(deadline: Instant) -> u64 {
    deadline
        .saturating_duration_since(Instant::now())
        .as_millis() as u64
}
