//! `bench runtime`: what running a task in the sandbox costs.
//!
//! - Per-task overhead: sequential `bench.noop` tasks through
//!   [`Runtime::execute_blocking`], each timed end to end (pool slot, fresh
//!   store with WASI and limits, instantiation from the plugin's
//!   `InstancePre`, the call, the outcome dropped). Measured with the
//!   default configuration (pooling allocator, fuel and epochs on), with
//!   fuel metering off (epochs only), and on two threads sharing one
//!   runtime and plugin.
//! - Guest speed: `bench.crunch` against the native
//!   [`hippo_bench_workload::crunch`] on the same rounds, best of
//!   [`CPU_REPEATS`] runs each, interleaved.
//! - A Python guest (`examples/python`, CPython inside the component)
//!   beside the Rust one: the first load (compiling the component), the
//!   first task (the first instantiation) and the no-op overhead
//!   (`pyexample.noop`, [`PYTHON_TASKS`] tasks); skipped with `--no-python`.

mod phases;

use crate::report::Report;
use crate::stats::Summary;
use anyhow::{Context as _, anyhow, bail, ensure};
use hippo::runtime::{LoadedPlugin, Manifest, Runtime, RuntimeConfig, TaskOutcome, TaskRequest};
use hippo_bench_workload::crunch;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Noop tasks per measurement unless `--tasks` says otherwise.
const DEFAULT_TASKS: usize = 20_000;
/// Noop tasks run before measuring, so the pool slots, the allocator and
/// the caches are warm.
const WARMUP_TASKS: usize = 1_000;
/// How long one native `crunch` should take; the rounds are calibrated to it.
const CPU_TARGET: Duration = Duration::from_millis(300);
/// Runs of each CPU variant; the best one counts.
const CPU_REPEATS: usize = 5;
/// Noop tasks of the Python guest (each takes milliseconds).
const PYTHON_TASKS: usize = 300;

/// Runs the benchmark with the command-line `args` after its name.
pub fn run(args: &[String]) -> anyhow::Result<Report> {
    let options = parse_options(args)?;
    let tasks = options.tasks;
    let path = guest_path();
    let wasm = std::fs::read(&path).with_context(|| {
        format!(
            "reading the bench guest {} (bench/run builds it with scripts/build-guests)",
            path.display()
        )
    })?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "runtime benchmark: {} ({} KiB), {tasks} noop tasks per figure, {cores} cores",
        path.display(),
        wasm.len() / 1024
    );

    let limits_on = Bench::new(RuntimeConfig::default(), &wasm)?;
    let fuel_off = Bench::new(
        RuntimeConfig {
            fuel_metering: false,
            ..RuntimeConfig::default()
        },
        &wasm,
    )?;
    let mut report = Report::new("runtime");
    report.set("cores", cores);
    report.set("noop_tasks", tasks);

    limits_on.noop_block(WARMUP_TASKS, &mut Vec::new())?;
    fuel_off.noop_block(WARMUP_TASKS, &mut Vec::new())?;
    let fuel = limits_on.noop_fuel()?;
    println!("a noop task burns {fuel} fuel (about one unit per wasm instruction)");
    report.set("noop_fuel_used", fuel);
    let [(on, rate), (off, rate_off)] = noop_interleaved([&limits_on, &fuel_off], tasks)?;
    println!(
        "noop task, fuel + epoch (default): p50 {:.1} us, p99 {:.1} us, mean {:.1} us; {rate:.0} tasks/s on 1 thread",
        on.p50_us, on.p99_us, on.mean_us
    );
    println!(
        "noop task, epoch only (fuel off):  p50 {:.1} us, p99 {:.1} us, mean {:.1} us; {rate_off:.0} tasks/s on 1 thread",
        off.p50_us, off.p99_us, off.mean_us
    );
    report.float("noop_task_p50_us", on.p50_us, 2);
    report.float("noop_task_p99_us", on.p99_us, 2);
    report.float("noop_task_mean_us", on.mean_us, 2);
    report.set("tasks_per_s_1_thread", rate.round() as u64);
    report.float("noop_task_p50_us_fuel_off", off.p50_us, 2);
    report.float("noop_task_p99_us_fuel_off", off.p99_us, 2);

    let rate_2 = limits_on.noop_threads(2, tasks)?;
    println!(
        "noop tasks on 2 threads sharing one runtime and plugin: {rate_2:.0} tasks/s ({:.2}x one thread)",
        rate_2 / rate
    );
    report.set("tasks_per_s_2_threads", rate_2.round() as u64);
    if options.cpu {
        cpu(&limits_on, &fuel_off, &mut report)?;
    }
    if options.python {
        python(&wasm, &mut report)?;
    }
    if options.phases {
        drop((limits_on, fuel_off));
        phases::run(&wasm, &options.variants, &mut report)?;
    }
    Ok(report)
}

/// Guest against native speed on the CPU-bound workload.
fn cpu(limits_on: &Bench, fuel_off: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let rounds = calibrate_rounds(CPU_TARGET);
    let mut native = Duration::MAX;
    let mut wasm_on = Duration::MAX;
    let mut wasm_off = Duration::MAX;
    for _ in 0..CPU_REPEATS {
        let started = Instant::now();
        let expected = black_box(crunch(black_box(rounds)));
        native = native.min(started.elapsed());
        for (bench, best) in [(limits_on, &mut wasm_on), (fuel_off, &mut wasm_off)] {
            let (took, result) = bench.crunch(rounds)?;
            ensure!(
                result == expected,
                "bench.crunch({rounds}) returned {result}, native crunch {expected}"
            );
            *best = (*best).min(took);
        }
    }
    let (ratio_on, ratio_off) = (ms(wasm_on) / ms(native), ms(wasm_off) / ms(native));
    println!(
        "crunch({rounds} rounds), best of {CPU_REPEATS}: native {:.1} ms, wasm with limits {:.1} ms ({ratio_on:.2}x), wasm fuel off {:.1} ms ({ratio_off:.2}x); same result",
        ms(native),
        ms(wasm_on),
        ms(wasm_off)
    );
    report.set("cpu_rounds", rounds);
    report.float("cpu_native_ms", ms(native), 1);
    report.float("cpu_wasm_limits_on_ms", ms(wasm_on), 1);
    report.float("cpu_wasm_fuel_off_ms", ms(wasm_off), 1);
    report.float("cpu_ratio_limits_on", ratio_on, 3);
    report.float("cpu_ratio_fuel_off", ratio_off, 3);
    Ok(())
}

/// Command-line options of `bench runtime`.
#[derive(Debug)]
struct Options {
    /// Noop tasks per figure (`--tasks N`).
    tasks: usize,
    /// Measure guest CPU speed (off with `--no-cpu`).
    cpu: bool,
    /// Then break a noop task into phases and try engine variants (`--phases`).
    phases: bool,
    /// Only these variants of the phase breakdown (`--variant NAME`, repeatable).
    variants: Vec<String>,
    /// Measure the Python guest too (off with `--no-python`).
    python: bool,
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        tasks: DEFAULT_TASKS,
        cpu: true,
        phases: false,
        variants: Vec::new(),
        python: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tasks" => {
                let n = args.next().context("--tasks needs a number")?;
                options.tasks = n.parse().with_context(|| format!("--tasks {n:?}"))?;
                ensure!(options.tasks >= 100, "--tasks must be at least 100");
            }
            "--no-cpu" => options.cpu = false,
            "--no-python" => options.python = false,
            "--phases" => options.phases = true,
            "--variant" => {
                let name = args.next().context("--variant needs a name")?;
                options.phases = true;
                options.variants.push(name.clone());
            }
            _ => bail!(
                "runtime: unknown argument {arg:?} \
                 (options: --tasks N, --no-cpu, --no-python, --phases, --variant NAME)"
            ),
        }
    }
    Ok(options)
}

/// The bench guest that `scripts/build-guests` builds: in
/// `$HIPPO_GUESTS_DIR`, else `$CARGO_TARGET_DIR/wasm32-wasip2/release`, else
/// under the scripts' default target directory.
pub(crate) fn guest_path() -> PathBuf {
    let dir = std::env::var_os("HIPPO_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    let home = std::env::var_os("HOME").unwrap_or_default();
                    PathBuf::from(home).join(".cache/hippo/target")
                })
                .join("wasm32-wasip2/release")
        });
    dir.join("hippo_bench_guest.wasm")
}

/// The Python guest against the Rust one (`rust_wasm`, the bench guest):
/// first load, first task, no-op overhead.
fn python(rust_wasm: &[u8], report: &mut Report) -> anyhow::Result<()> {
    let path = guest_path().with_file_name("python_example.wasm");
    let python_wasm = std::fs::read(&path)
        .with_context(|| format!("{} (bench/run builds it)", path.display()))?;
    for (language, wasm, task) in [
        ("rust", rust_wasm, "bench.noop"),
        ("python", &python_wasm[..], "pyexample.noop"),
    ] {
        // A runtime of its own, without the compiled-component cache: the
        // load compiles the component, as a first deployment does.
        let runtime = Runtime::new(RuntimeConfig::default())?;
        let started = Instant::now();
        let plugin = runtime.load(wasm, Manifest::default(), None, None)?;
        let load = started.elapsed();
        let request = TaskRequest::new(task, Vec::new());
        let started = Instant::now();
        check_noop(runtime.execute_blocking(&plugin, &request))?;
        let first = started.elapsed();
        let mut samples = Vec::with_capacity(PYTHON_TASKS);
        for _ in 0..PYTHON_TASKS {
            let started = Instant::now();
            let checked = check_noop(runtime.execute_blocking(&plugin, &request));
            samples.push(started.elapsed());
            checked?;
        }
        let summary = Summary::of(&samples);
        println!(
            "{language} guest ({} KiB): first load {:.0} ms, first task {:.1} ms, noop p50 {:.1} us, p99 {:.1} us",
            wasm.len() / 1024,
            ms(load),
            ms(first),
            summary.p50_us,
            summary.p99_us
        );
        report.float(&format!("first_load_ms_{language}"), ms(load), 1);
        report.float(&format!("first_task_ms_{language}"), ms(first), 2);
        report.float(&format!("noop_task_p50_us_{language}"), summary.p50_us, 1);
        report.float(&format!("noop_task_p99_us_{language}"), summary.p99_us, 1);
    }
    Ok(())
}

/// Native rounds of `crunch` that take about `target` on this machine.
fn calibrate_rounds(target: Duration) -> u64 {
    let mut rounds = 8u64;
    loop {
        let started = Instant::now();
        black_box(crunch(black_box(rounds)));
        let took = started.elapsed();
        if took >= target / 10 {
            return (rounds as f64 * target.as_secs_f64() / took.as_secs_f64()).ceil() as u64;
        }
        rounds *= 2;
    }
}

/// A duration in milliseconds.
fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Noop tasks on each runtime of `benches`, in alternating blocks so that
/// drift (frequency, other load on the machine) hits them alike: each one's
/// per-task summary and tasks per second on one thread.
fn noop_interleaved<const N: usize>(
    benches: [&Bench; N],
    tasks: usize,
) -> anyhow::Result<[(Summary, f64); N]> {
    const BLOCKS: usize = 10;
    let per_block = tasks.div_ceil(BLOCKS);
    let mut samples: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(tasks));
    let mut busy = [Duration::ZERO; N];
    for _ in 0..BLOCKS {
        for ((bench, samples), busy) in benches.iter().zip(&mut samples).zip(&mut busy) {
            let started = Instant::now();
            bench.noop_block(per_block, samples)?;
            *busy += started.elapsed();
        }
    }
    let ran = (per_block * BLOCKS) as f64;
    Ok(std::array::from_fn(|i| {
        (Summary::of(&samples[i]), ran / busy[i].as_secs_f64())
    }))
}

/// One runtime with the bench guest loaded.
struct Bench {
    runtime: Runtime,
    plugin: LoadedPlugin,
}

impl Bench {
    fn new(config: RuntimeConfig, wasm: &[u8]) -> anyhow::Result<Self> {
        let runtime = Runtime::new(config)?;
        let plugin = runtime.load(wasm, Manifest::default(), None, None)?;
        ensure!(
            plugin.name == "bench",
            "expected the bench guest, loaded plugin {:?}",
            plugin.name
        );
        Ok(Bench { runtime, plugin })
    }

    /// Runs `tasks` noop tasks one after the other, adding each one's time
    /// to `samples`.
    fn noop_block(&self, tasks: usize, samples: &mut Vec<Duration>) -> anyhow::Result<()> {
        let request = TaskRequest::new("bench.noop", Vec::new());
        for _ in 0..tasks {
            let started = Instant::now();
            let checked = check_noop(self.runtime.execute_blocking(&self.plugin, &request));
            samples.push(started.elapsed());
            checked?;
        }
        Ok(())
    }

    /// The fuel one noop task burns (about one unit per wasm instruction).
    fn noop_fuel(&self) -> anyhow::Result<u64> {
        let request = TaskRequest::new("bench.noop", Vec::new());
        let outcome = self.runtime.execute_blocking(&self.plugin, &request);
        outcome.stats.fuel_used.context("fuel metering is off")
    }

    /// Tasks per second of `threads` threads each running its share of
    /// `tasks` noop tasks on this one runtime and plugin.
    fn noop_threads(&self, threads: usize, tasks: usize) -> anyhow::Result<f64> {
        let per_thread = tasks / threads;
        let request = TaskRequest::new("bench.noop", Vec::new());
        let started = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        (0..per_thread).try_for_each(|_| {
                            check_noop(self.runtime.execute_blocking(&self.plugin, &request))
                        })
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })?;
        Ok((per_thread * threads) as f64 / started.elapsed().as_secs_f64())
    }

    /// Runs `bench.crunch` once: the time end to end and its result.
    fn crunch(&self, rounds: u64) -> anyhow::Result<(Duration, u64)> {
        let request = TaskRequest::new("bench.crunch", format!(r#"{{"rounds": {rounds}}}"#));
        let started = Instant::now();
        let outcome = self.runtime.execute_blocking(&self.plugin, &request);
        let took = started.elapsed();
        let output = outcome
            .result
            .map_err(|failure| anyhow!("bench.crunch failed: {failure}"))?;
        let output: serde_json::Value = serde_json::from_slice(&output)?;
        let result = output["result"]
            .as_u64()
            .with_context(|| format!("bench.crunch returned {output}"))?;
        Ok((took, result))
    }
}

/// Checks that a noop task returned `null`, and drops its outcome.
fn check_noop(outcome: TaskOutcome) -> anyhow::Result<()> {
    match &outcome.result {
        Ok(output) if output == b"null" => Ok(()),
        Ok(output) => bail!(
            "bench.noop returned {:?}, not null",
            String::from_utf8_lossy(output)
        ),
        Err(failure) => bail!("bench.noop failed: {failure}"),
    }
}
