//! `bench runtime --phases`: where a noop task's time goes, and what engine
//! and pooling settings change it.
//!
//! [`hippo::runtime::Runtime`] builds its engine itself, so this module
//! rebuilds the same task path directly on wasmtime: an engine configured
//! like `crates/runtime/src/engine.rs` (see [`host_like`]), the same linker
//! (WASI p2 plus the `hippo:tasks` imports), and per task the same steps as
//! `crates/runtime/src/task.rs` — build a `WasiCtx` with captured stdio and no
//! network, create the store with the memory limiter, fuel and the epoch
//! deadline callback, instantiate from the `InstancePre`, call `run`, drop
//! the store (which hands the pool slot back and resets its memory). Each
//! step is timed on its own, and each variant changes one setting of that
//! baseline, so its effect can be read off against the first row.

use super::{calibrate_rounds, ms};
use crate::report::Report;
use crate::stats::Summary;
use hippo_bench_workload::crunch;
use std::hint::black_box;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, StoreContextMut, UpdateDeadline, ensure, format_err,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    world: "task-plugin",
    path: "../tasks-wit/wit",
});

use self::hippo::tasks::types as wit;

/// Noop tasks per variant and figure (after a tenth as many to warm up).
const TASKS: usize = 10_000;
/// How long one native `crunch` of the per-variant CPU check takes.
const CPU_CHECK: Duration = Duration::from_millis(100);
/// Runs of the per-variant CPU check; the best one counts.
const CPU_REPEATS: usize = 3;

/// The figures of `crates/runtime/src/engine.rs` with the default
/// `RuntimeConfig` (64 slots, 4 GiB memory ceiling, 1 MiB stack).
const SLOTS: u32 = 64;
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const MAX_MEMORY: usize = 4 << 30;
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;
const TABLE_KEEP_RESIDENT: usize = 64 << 10;
const MAX_WASM_STACK: usize = 1 << 20;
/// `Limits::DEFAULT` of the host.
const FUEL: u64 = 100_000_000_000;
const MEMORY_CAP: usize = 256 << 20;
const TABLE_CAP: usize = 20_000;
const LOG_BYTES: usize = 64 << 10;

/// One engine configuration to measure.
struct Variant {
    name: &'static str,
    /// What the variant changes against the host's configuration.
    change: &'static str,
    fuel: bool,
    /// `None`: the on-demand allocator instead of the pool.
    pool: Option<fn(&mut PoolingAllocationConfig)>,
    config: fn(&mut Config),
}

fn variants() -> Vec<Variant> {
    fn same_pool(_: &mut PoolingAllocationConfig) {}
    fn same_config(_: &mut Config) {}
    vec![
        Variant {
            name: "host",
            change: "none: engine.rs as it is (pool, keep 1 MiB memory + 64 KiB tables resident, CoW images, fuel, epochs)",
            fuel: true,
            pool: Some(same_pool),
            config: same_config,
        },
        Variant {
            name: "fuel_off",
            change: "consume_fuel(false)",
            fuel: false,
            pool: Some(same_pool),
            config: same_config,
        },
        Variant {
            name: "keep_resident_0",
            change: "linear_memory_keep_resident(0), table_keep_resident(0): madvise every slot on reuse",
            fuel: true,
            pool: Some(|pool| {
                pool.linear_memory_keep_resident(0).table_keep_resident(0);
            }),
            config: same_config,
        },
        Variant {
            name: "keep_resident_64k",
            change: "linear_memory_keep_resident(64 KiB)",
            fuel: true,
            pool: Some(|pool| {
                pool.linear_memory_keep_resident(64 << 10);
            }),
            config: same_config,
        },
        Variant {
            name: "pagemap_scan",
            change: "pagemap_scan(Yes): reset only the pages the task dirtied (Linux >= 6.7), keep 1 MiB",
            fuel: true,
            pool: Some(|pool| {
                pool.pagemap_scan(Enabled::Yes);
            }),
            config: same_config,
        },
        Variant {
            name: "pagemap_scan_keep_16m",
            change: "pagemap_scan(Yes), linear_memory_keep_resident(16 MiB)",
            fuel: true,
            pool: Some(|pool| {
                pool.pagemap_scan(Enabled::Yes)
                    .linear_memory_keep_resident(16 << 20);
            }),
            config: same_config,
        },
        Variant {
            name: "no_cow",
            change: "memory_init_cow(false): data segments copied in at instantiation",
            fuel: true,
            pool: Some(same_pool),
            config: |config| {
                config.memory_init_cow(false);
            },
        },
        Variant {
            name: "max_memory_256m",
            change: "max_memory_size(256 MiB) (the default task cap; reservation and guards unchanged)",
            fuel: true,
            pool: Some(|pool| {
                pool.max_memory_size(256 << 20);
            }),
            config: same_config,
        },
        Variant {
            name: "small_guards",
            change: "memory_reservation(256 MiB), memory_guard_size(64 KiB): smaller slots, explicit bounds checks",
            fuel: true,
            pool: Some(|pool| {
                pool.max_memory_size(256 << 20);
            }),
            config: |config| {
                config
                    .memory_reservation(256 << 20)
                    .memory_guard_size(64 << 10);
            },
        },
        Variant {
            name: "on_demand",
            change: "no pool: InstanceAllocationStrategy::OnDemand (mmap per task)",
            fuel: true,
            pool: None,
            config: same_config,
        },
        Variant {
            name: "pagemap_scan_fuel_off",
            change: "pagemap_scan(Yes) and consume_fuel(false)",
            fuel: false,
            pool: Some(|pool| {
                pool.pagemap_scan(Enabled::Yes);
            }),
            config: same_config,
        },
    ]
}

/// Runs the variants named in `only` (all when empty) and adds
/// `phase_*` and `variant_*` figures to `report`.
pub fn run(wasm: &[u8], only: &[String], report: &mut Report) -> anyhow::Result<()> {
    let known: Vec<&str> = variants().iter().map(|v| v.name).collect();
    if let Some(unknown) = only.iter().find(|name| !known.contains(&name.as_str())) {
        anyhow::bail!("no variant {unknown:?}; variants: {}", known.join(", "));
    }
    let chosen = variants()
        .into_iter()
        .filter(|variant| only.is_empty() || only.iter().any(|name| name == variant.name))
        .collect();
    measure(wasm, chosen, report).map_err(|error| anyhow::anyhow!("{error:#}"))
}

fn measure(wasm: &[u8], variants: Vec<Variant>, report: &mut Report) -> wasmtime::Result<()> {
    let rounds = calibrate_rounds(CPU_CHECK);
    println!(
        "\nphases of a noop task on wasmtime directly, {TASKS} tasks per variant (p50 in us), \
         and crunch({rounds} rounds, about {} ms natively) against native:",
        CPU_CHECK.as_millis()
    );
    println!(
        "{:<22} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>6}",
        "variant",
        "p50",
        "mean",
        "wasi",
        "store",
        "inst",
        "call",
        "drop",
        "1 thr/s",
        "2 thr/s",
        "cpu x"
    );
    for variant in &variants {
        let bench = match VariantBench::new(variant, wasm) {
            Ok(bench) => bench,
            Err(error) => {
                println!("{:<22} not available: {error:#}", variant.name);
                continue;
            }
        };
        for _ in 0..TASKS / 10 {
            bench.noop()?;
        }
        let mut phases: [Vec<Duration>; 6] = Default::default();
        let started = Instant::now();
        for _ in 0..TASKS {
            for (samples, took) in phases.iter_mut().zip(bench.noop()?) {
                samples.push(took);
            }
        }
        let rate_1 = TASKS as f64 / started.elapsed().as_secs_f64();
        let rate_2 = bench.rate_2_threads(TASKS)?;
        let [total, wasi, store, instantiate, call, drop] = phases.map(|s| Summary::of(&s));
        let (mut native, mut wasm) = (Duration::MAX, Duration::MAX);
        for _ in 0..CPU_REPEATS {
            let started = Instant::now();
            let expected = black_box(crunch(black_box(rounds)));
            native = native.min(started.elapsed());
            let (took, result) = bench.crunch(rounds)?;
            ensure!(
                result == expected,
                "{}: crunch({rounds}) gave {result}, natively {expected}",
                variant.name
            );
            wasm = wasm.min(took);
        }
        let ratio = ms(wasm) / ms(native);
        println!(
            "{:<22} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>7.0} {:>7.0} {:>6.2}",
            variant.name,
            total.p50_us,
            total.mean_us,
            wasi.p50_us,
            store.p50_us,
            instantiate.p50_us,
            call.p50_us,
            drop.p50_us,
            rate_1,
            rate_2,
            ratio
        );
        let key = |figure: &str| format!("variant_{}_{figure}", variant.name);
        report.float(&key("p50_us"), total.p50_us, 2);
        report.float(&key("mean_us"), total.mean_us, 2);
        report.set(&key("tasks_per_s_1_thread"), rate_1.round() as u64);
        report.set(&key("tasks_per_s_2_threads"), rate_2.round() as u64);
        report.float(&key("cpu_ratio"), ratio, 3);
        if variant.name == "host" {
            for (phase, summary) in [
                ("wasi", wasi),
                ("store", store),
                ("instantiate", instantiate),
                ("call", call),
                ("drop", drop),
            ] {
                report.float(&format!("phase_{phase}_p50_us"), summary.p50_us, 2);
            }
        }
    }
    println!("variants change, against the host's configuration:");
    for variant in &variants {
        println!("  {:<22} {}", variant.name, variant.change);
    }
    Ok(())
}

/// The engine configuration of `crates/runtime/src/engine.rs`, then the
/// variant's changes.
fn host_like(variant: &Variant) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(variant.fuel)
        .max_wasm_stack(MAX_WASM_STACK);
    match variant.pool {
        Some(change) => {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(SLOTS)
                .total_core_instances(SLOTS * CORE_INSTANCES_PER_COMPONENT)
                .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
                .total_memories(SLOTS * 2)
                .max_memories_per_component(2)
                .total_tables(SLOTS * 4)
                .max_tables_per_component(4)
                .max_memory_size(MAX_MEMORY)
                .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
                .table_keep_resident(TABLE_KEEP_RESIDENT)
                .pagemap_scan(Enabled::Auto);
            change(&mut pool);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        None => {
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        }
    }
    (variant.config)(&mut config);
    Engine::new(&config)
}

/// What a task's store holds, like the host's `TaskState`.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    hard_deadline: Instant,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for State {}

impl self::hippo::tasks::log::Host for State {
    fn log(&mut self, _level: self::hippo::tasks::log::Level, _message: String) {}
}

impl self::hippo::tasks::progress::Host for State {
    fn report(&mut self, _done: u64, _total: u64, _message: Option<String>) {}
}

impl self::hippo::tasks::deadline::Host for State {
    fn soft_limit_passed(&mut self) -> bool {
        false
    }

    fn soft_time_left_ms(&mut self) -> u64 {
        u64::MAX
    }

    fn hard_time_left_ms(&mut self) -> u64 {
        u64::MAX
    }
}

/// The host's memory and table caps.
struct Limiter {
    peak_memory: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.peak_memory = self.peak_memory.max(desired);
        Ok(desired <= MEMORY_CAP)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_CAP)
    }
}

fn on_epoch_tick(store: StoreContextMut<'_, State>) -> wasmtime::Result<UpdateDeadline> {
    if Instant::now() >= store.data().hard_deadline {
        return Err(wasmtime::Error::msg("hard time limit reached"));
    }
    Ok(UpdateDeadline::Continue(1))
}

/// A variant's engine with the bench guest ready to instantiate.
struct VariantBench {
    engine: Engine,
    fuel: bool,
    pre: TaskPluginPre<State>,
    _ticker: Ticker,
}

impl VariantBench {
    fn new(variant: &Variant, wasm: &[u8]) -> wasmtime::Result<Self> {
        let engine = host_like(variant)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // Only the interfaces the bench guest can import: the service
        // interfaces (models, stores) are not part of this measurement.
        self::hippo::tasks::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        self::hippo::tasks::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        self::hippo::tasks::progress::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        self::hippo::tasks::deadline::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        let component = Component::new(&engine, wasm)?;
        let pre = TaskPluginPre::new(linker.instantiate_pre(&component)?)?;
        let ticker = Ticker::start(&engine);
        Ok(VariantBench {
            engine,
            fuel: variant.fuel,
            pre,
            _ticker: ticker,
        })
    }

    fn store(&self, wasi: WasiCtx) -> Store<State> {
        let state = State {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter { peak_memory: 0 },
            hard_deadline: Instant::now() + Duration::from_secs(600),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.fuel {
            store
                .set_fuel(FUEL)
                .expect("fuel metering is on in this engine");
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(on_epoch_tick);
        store
    }

    /// Runs one noop task: total, WASI context, store, instantiation, call
    /// and drop times.
    fn noop(&self) -> wasmtime::Result<[Duration; 6]> {
        let started = Instant::now();
        let wasi = wasi();
        let wasi_done = Instant::now();
        let mut store = self.store(wasi);
        let store_done = Instant::now();
        let instance = self.pre.instantiate(&mut store)?;
        let instantiated = Instant::now();
        let output =
            instance
                .hippo_tasks_plugin()
                .call_run(&mut store, &context(), "bench.noop", b"")?;
        let called = Instant::now();
        drop(store);
        let dropped = Instant::now();
        ensure!(
            matches!(&output, Ok(bytes) if bytes == b"null"),
            "bench.noop returned {output:?}"
        );
        Ok([
            dropped - started,
            wasi_done - started,
            store_done - wasi_done,
            instantiated - store_done,
            called - instantiated,
            dropped - called,
        ])
    }

    /// Noop tasks per second on two threads sharing this engine and plugin.
    fn rate_2_threads(&self, tasks: usize) -> wasmtime::Result<f64> {
        let per_thread = tasks / 2;
        let started = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| (0..per_thread).try_for_each(|_| self.noop().map(drop))))
                .collect();
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })?;
        Ok((per_thread * 2) as f64 / started.elapsed().as_secs_f64())
    }

    /// Runs `bench.crunch` once: the time end to end and its result.
    fn crunch(&self, rounds: u64) -> wasmtime::Result<(Duration, u64)> {
        let started = Instant::now();
        let mut store = self.store(wasi());
        let instance = self.pre.instantiate(&mut store)?;
        let input = format!(r#"{{"rounds": {rounds}}}"#);
        let output = instance.hippo_tasks_plugin().call_run(
            &mut store,
            &context(),
            "bench.crunch",
            input.as_bytes(),
        )?;
        drop(store);
        let took = started.elapsed();
        let output = output.map_err(|error| format_err!("bench.crunch failed: {error:?}"))?;
        let output: serde_json::Value = serde_json::from_slice(&output)?;
        let result = output["result"]
            .as_u64()
            .ok_or_else(|| format_err!("bench.crunch returned {output}"))?;
        Ok((took, result))
    }
}

/// A WASI context like the host's: captured stdio, no network, nothing
/// from the host's environment.
fn wasi() -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(MemoryOutputPipe::new(LOG_BYTES))
        .stderr(MemoryOutputPipe::new(LOG_BYTES))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

fn context() -> wit::Context {
    wit::Context {
        task_id: "00000000-0000-4000-8000-000000000000".into(),
        attempt: 1,
        queue: "default".into(),
        soft_deadline_unix_ms: 0,
        hard_deadline_unix_ms: 0,
    }
}

/// The epoch ticker of the host: every 5 ms, on its own thread.
struct Ticker {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: &Engine) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let engine = engine.clone();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    engine.increment_epoch();
                }
            }
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
