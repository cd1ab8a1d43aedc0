//! The one wasmtime [`Engine`] every task shares, and the epoch ticker that
//! drives time limits.

use super::RuntimeConfig;
use super::watchdog::Watches;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Core instances a component may need: a Rust `wasm32-wasip2` guest has its
/// own module plus a few small shim modules from `wasm-component-ld`; a
/// Python one from componentize-py 0.25 has 14 (CPython, its libc, the
/// WASI adapter, shims).
const CORE_INSTANCES_PER_COMPONENT: u32 = 20;
/// Linear memory kept resident (reset with `memset`, not `madvise`) when a
/// pool slot is reused: most tasks touch less than this, and skipping the
/// syscall is the cheapest part of a fresh store.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Stack a guest's fiber has beyond the wasm stack limit, for the host
/// calls it makes (an embedding model runs on it): what a thread has.
const HOST_STACK_BYTES: usize = 8 << 20;

/// Builds the engine: component model, pooling allocator sized to the
/// concurrency cap, epoch interruption and, when enabled, fuel.
pub(crate) fn build_engine(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    // The task slots, and the few kept for `describe` at load.
    let slots = config.max_concurrent_tasks.max(1) + super::DESCRIBE_SLOTS;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * 2)
        .max_memories_per_component(2)
        .total_tables(slots * 4)
        .max_tables_per_component(4)
        .max_memory_size(usize::try_from(config.ceilings.memory_bytes).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        // Reset only the pages a task dirtied (Linux 6.7+ PAGEMAP_SCAN),
        // instead of memset-ing the kept megabyte and madvise-ing the rest:
        // a no-op task goes from ~36 us to ~10 us and two threads scale
        // (bench/RESULTS.md). Older kernels keep the plain reset.
        .pagemap_scan(Enabled::Auto)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        // One fiber stack per running task (guests run as futures).
        .total_stacks(slots);

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel_metering)
        .max_wasm_stack(config.max_wasm_stack_bytes)
        .async_stack_size(config.max_wasm_stack_bytes + HOST_STACK_BYTES)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm)
}

/// Advances the engine's epoch every `tick`, on one thread for the whole
/// host. Each running task's epoch callback then checks its hard deadline
/// and cancellation, so interrupting a task costs one tick at most. The
/// same tick checks the watchdogs of tasks waiting outside wasm
/// ([`Watches`]), which no epoch reaches.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    watches: Arc<Watches>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine, tick: std::time::Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let watches = Arc::new(Watches::default());
        let weak = engine.weak();
        let thread = std::thread::Builder::new()
            .name("hippo-epoch".into())
            .spawn({
                let stop = stop.clone();
                let watches = watches.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        match weak.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => return,
                        }
                        watches.check(std::time::Instant::now());
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            watches,
            thread: Some(thread),
        })
    }

    /// The watches this ticker checks.
    pub(crate) fn watches(&self) -> &Arc<Watches> {
        &self.watches
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
