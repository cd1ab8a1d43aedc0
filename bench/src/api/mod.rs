//! `bench api`: what the REST API costs on top of the broker. hippo runs
//! in this process as `hippo serve` runs it (broker, worker, API on a
//! loopback port), once on the embedded broker and once on Redis, and for
//! each workload (the no-op task, and `memory.create` when the memory
//! plugin and the models are there) it measures:
//!
//! - sequential round trips straight through the broker (`Broker::submit`
//!   then `Broker::wait`, as `bench queues` does) and through the API
//!   (`POST …?wait=` on one keep-alive connection), alternating in blocks:
//!   `api_overhead_p50_ms` is the difference of their medians, of which
//!   `health_rtt_p50_ms` (`GET /healthz` on that connection: no key, no
//!   broker) is what HTTP itself costs;
//! - `submit_per_s`: submissions without wait from concurrent clients
//!   (each its own connection), then the time until the worker has run
//!   them all (`tasks_per_s`);
//! - `rtt_p50_ms`, `rtt_p99_ms`: submit-to-result latency of `?wait=`
//!   round trips from the same concurrent clients.

pub(crate) mod load;
pub(crate) mod memory;
pub(crate) mod stack;

use crate::report::Report;
use crate::stats::Summary;
use anyhow::{Context, bail};
use load::{Client, Workload};
use memory::Memory;
use stack::{Backend, Stack};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug)]
struct Options {
    /// Submissions without wait, per backend.
    submits: usize,
    /// Sequential round trips of each kind (broker, HTTP).
    rtt: usize,
    /// Concurrent round trips per client.
    rounds: usize,
    clients: usize,
    /// Worker slots.
    concurrency: usize,
    redis: Option<String>,
    /// Fail unless the `memory.create` part runs.
    memory: bool,
    memory_plugin: PathBuf,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        submits: 20_000,
        rtt: 2_000,
        rounds: 50,
        clients: 64,
        concurrency: 32,
        redis: None,
        memory: false,
        memory_plugin: PathBuf::from("plugins/memory.wasm"),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--submits" => options.submits = value()?.parse()?,
            "--rtt" => options.rtt = value()?.parse()?,
            "--rounds" => options.rounds = value()?.parse()?,
            "--clients" => options.clients = value()?.parse()?,
            "--concurrency" => options.concurrency = value()?.parse()?,
            "--redis" => options.redis = Some(value()?.clone()),
            "--memory" => options.memory = true,
            "--memory-plugin" => options.memory_plugin = value()?.into(),
            other => bail!("unknown option {other}"),
        }
    }
    if options.clients == 0 || options.submits == 0 || options.rtt == 0 || options.rounds == 0 {
        bail!("--clients, --submits, --rtt and --rounds must be at least 1");
    }
    Ok(options)
}

/// How much of each measurement a workload gets: `memory.create` embeds
/// and stores every memory, so it runs a tenth of the submissions,
/// half of the sequential and a fifth of the concurrent round trips.
#[derive(Debug, Clone, Copy)]
struct Counts {
    submits: usize,
    rtt: usize,
    rounds: usize,
}

impl Counts {
    fn of(options: &Options, workload: Workload) -> Counts {
        let scale = |n: usize, by: usize| match workload {
            Workload::Noop => n,
            Workload::MemoryCreate => n.div_ceil(by),
        };
        Counts {
            submits: scale(options.submits, 10),
            rtt: scale(options.rtt, 2),
            rounds: scale(options.rounds, 5),
        }
    }
}

/// What one workload measured on one backend.
#[derive(Debug)]
struct Figures {
    broker_rtt: Summary,
    http_rtt: Summary,
    /// `GET /healthz` on the same connection.
    health_rtt: Summary,
    submit_per_s: f64,
    tasks_per_s: f64,
    rtt: Summary,
    round_trips_per_s: f64,
    /// `memory.create`: the share of the submitted and concurrent tasks
    /// that stored a new memory (the others matched a stored one).
    created_pct: Option<f64>,
}

impl Figures {
    fn print(&self, backend: &Backend, workload: Workload) {
        let ms = |us: f64| us / 1e3;
        println!(
            "{} {}: round trip broker p50 {:.3} ms, API p50 {:.3} ms (overhead {:.3} ms, of it HTTP alone {:.3} ms); \
             {:.0} submits/s, {:.0} tasks/s; concurrent round trip p50 {:.3} ms, p99 {:.3} ms ({:.0}/s)",
            backend.name(),
            workload.task(),
            ms(self.broker_rtt.p50_us),
            ms(self.http_rtt.p50_us),
            ms(self.http_rtt.p50_us - self.broker_rtt.p50_us),
            ms(self.health_rtt.p50_us),
            self.submit_per_s,
            self.tasks_per_s,
            ms(self.rtt.p50_us),
            ms(self.rtt.p99_us),
            self.round_trips_per_s,
        );
        if let Some(pct) = self.created_pct {
            println!("  {pct:.1} % of these memories were new (the rest matched a stored one)");
        }
    }

    /// Records every figure as `{prefix}{name}`.
    fn record(&self, report: &mut Report, prefix: &str) {
        let mut ms = |name: &str, us: f64| report.float(&format!("{prefix}{name}"), us / 1e3, 3);
        ms("rtt_p50_ms", self.rtt.p50_us);
        ms("rtt_p99_ms", self.rtt.p99_us);
        ms(
            "api_overhead_p50_ms",
            self.http_rtt.p50_us - self.broker_rtt.p50_us,
        );
        ms("broker_rtt_p50_ms", self.broker_rtt.p50_us);
        ms("broker_rtt_p99_ms", self.broker_rtt.p99_us);
        ms("http_rtt_p50_ms", self.http_rtt.p50_us);
        ms("http_rtt_p99_ms", self.http_rtt.p99_us);
        ms("health_rtt_p50_ms", self.health_rtt.p50_us);
        for (name, value) in [
            ("submit_per_s", self.submit_per_s),
            ("tasks_per_s", self.tasks_per_s),
            ("round_trips_per_s", self.round_trips_per_s),
        ] {
            report.float(&format!("{prefix}{name}"), value, 0);
        }
        if let Some(pct) = self.created_pct {
            report.float(&format!("{prefix}created_pct"), pct, 1);
        }
    }
}

async fn measure(
    stack: &Stack,
    workload: Workload,
    counts: Counts,
    clients: usize,
) -> anyhow::Result<Figures> {
    let warm_up = (counts.rtt / 10).max(10);
    let sequential = load::sequential(stack, workload, counts.rtt, warm_up).await?;
    // Call numbers go on from the sequential ones, so every memory differs.
    let first = 2 * (warm_up + counts.rtt);

    let submits = load::fan_out(
        &stack.base_url,
        clients,
        first,
        counts.submits,
        move |client: Client, n| async move { client.submit(workload, n).await },
    )
    .await?;
    let draining = Instant::now();
    load::drained(&stack.broker).await?;
    let until_done = submits.elapsed + draining.elapsed();
    let ids: Vec<String> = submits.calls.into_iter().map(|(_, id)| id).collect();
    let mut results = load::results(&stack.broker, &ids).await?;

    let round_trips = clients * counts.rounds;
    let concurrent = load::fan_out(
        &stack.base_url,
        clients,
        first + counts.submits,
        round_trips,
        move |client: Client, n| async move { client.round_trip(workload, n).await },
    )
    .await?;
    let mut latencies = Vec::with_capacity(round_trips);
    for (latency, result) in concurrent.calls {
        latencies.push(latency);
        results.push(result);
    }
    Ok(Figures {
        broker_rtt: Summary::of(&sequential.broker),
        http_rtt: Summary::of(&sequential.http),
        health_rtt: Summary::of(&sequential.health),
        submit_per_s: counts.submits as f64 / submits.elapsed.as_secs_f64(),
        tasks_per_s: counts.submits as f64 / until_done.as_secs_f64(),
        rtt: Summary::of(&latencies),
        round_trips_per_s: round_trips as f64 / concurrent.elapsed.as_secs_f64(),
        created_pct: workload.created_pct(&results),
    })
}

/// Runs every workload on one backend.
async fn on_backend(
    backend: &Backend,
    options: &Options,
    memory: &Memory,
) -> anyhow::Result<Vec<(Workload, Figures)>> {
    let plugins = crate::queues::plugins_dir()?;
    let mut workloads = memory.workloads(plugins.path())?;
    let with_memory = workloads.contains(&Workload::MemoryCreate);
    let stack = Stack::start(backend, plugins.path(), options.concurrency, with_memory).await?;
    let measured = async {
        if with_memory && let Err(why) = memory::probe(&stack).await {
            if options.memory {
                return Err(why.context(format!("memory.create on {}", backend.name())));
            }
            println!("memory.create skipped on {}: {why:#}", backend.name());
            workloads.retain(|w| *w != Workload::MemoryCreate);
        }
        let mut measured = Vec::new();
        for workload in workloads {
            let counts = Counts::of(options, workload);
            let figures = measure(&stack, workload, counts, options.clients)
                .await
                .with_context(|| format!("{} on {}", workload.task(), backend.name()))?;
            figures.print(backend, workload);
            measured.push((workload, figures));
        }
        Ok(measured)
    }
    .await;
    stack.stop().await?;
    measured
}

/// Runs the benchmark.
pub fn run(args: &[String]) -> anyhow::Result<Report> {
    let options = options(args)?;
    let memory = Memory::check(&options.memory_plugin);
    if let Memory::Unavailable(why) = &memory {
        if options.memory {
            bail!("memory.create cannot be measured: {why}");
        }
        println!("memory.create skipped: {why}");
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report::new("api");
    report.set("clients", options.clients);
    report.set("submits", options.submits);
    report.set("sequential_round_trips", options.rtt);
    report.set("concurrent_round_trips", options.clients * options.rounds);
    report.set("worker_concurrency", options.concurrency);
    let mut backends = vec![Backend::Embedded];
    match &options.redis {
        Some(url) => backends.push(Backend::Redis(url.clone())),
        None => println!("Redis skipped: no --redis URL (bench/run api starts one)"),
    }
    for backend in &backends {
        for (workload, figures) in tokio.block_on(on_backend(backend, &options, &memory))? {
            figures.record(
                &mut report,
                &format!("{}_{}", backend.name(), workload.prefix()),
            );
            // The headline figures are the embedded broker's.
            if matches!(backend, Backend::Embedded) {
                figures.record(&mut report, workload.prefix());
            }
        }
    }
    Ok(report)
}
