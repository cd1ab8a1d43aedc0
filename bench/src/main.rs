//! The hippo benchmarks. `bench NAME` runs one (through `bench/run NAME`,
//! which builds the guests and the release binaries first), prints
//! human-readable lines and ends with one JSON object holding every figure.
//!
//! Each benchmark is a module with a `run(args) -> Result<Report>`.

mod api;
mod cluster;
mod dashboard;
mod memory;
mod queues;
mod report;
mod runtime;
mod stats;

use std::process::ExitCode;

const USAGE: &str = "\
usage: bench NAME [OPTIONS]

benchmarks:
  runtime   per-task overhead (noop tasks) and guest against native CPU speed
            --tasks N   noop tasks per figure (default 20000)
            --no-cpu    skip the CPU-bound comparison
            --no-python skip the Python guest (first load, first task, noop)
            --phases    then time each phase of a task on engine variants
            --variant NAME   only this variant of --phases (repeatable)
  queues    end-to-end throughput and round trip of no-op tasks, hippo (Redis,
            embedded) against Celery on the same Redis (run it through
            bench/run queues, which starts Redis and Celery)
            --redis URL --hippo PATH [--celery FILE] [--tasks N] [--rtt N]
            [--concurrency N] [--in-flight N]
            [--only redis|embedded|embedded-always]   one setup (to profile it)
  api       the REST API against the broker it fronts: sequential round trips
            through the broker and through HTTP (the API's overhead), then
            submissions and round trips from concurrent HTTP clients, for the
            no-op task and memory.create, on the embedded broker and on Redis
            (bench/run api starts a private Redis)
            [--redis URL] [--submits N] [--rtt N] [--rounds N] [--clients N]
            [--concurrency N] [--memory] [--memory-plugin PATH]
  cluster   the scale-out topology as processes on one Redis: an API and 1, 2,
            3 workers under a mixed load through the API (tasks/s, p99), then
            failover_s: a killed worker's tasks running elsewhere
            (bench/run cluster starts a private Redis)
            --redis URL --hippo PATH [--tasks N (4000)] [--clients N (16)]
            [--rounds N (100)]
  dashboard the task history at scale on both brokers: fill it with N finished
            tasks through the broker, then time the list, a deep name+state
            search, a task's page and the SSE lag over HTTP; bytes per task
            (bench/run dashboard starts a private Redis)
            [--tasks N (1000000)] [--redis URL]
  embed     embedding throughput at batch 1, 8 and 32: hippo's embedder against
            Python onnxruntime on the same graph (scripts/fetch-models provides both)
            [--threads N] [--batches 1,8,32] [--seconds S] [--graph PATH] [--python PATH]
  memory    the memory engine as `hippo serve` runs it: embedding at batch 32
            against Python, memory.batch-create of 1,000, memory.recall p50/p99
            with 10,000 memories of one user among 100,000, the worker's RSS
            [--user-memories N] [--total N] [--queries N] [--threads N]
            [--embed-seconds S] [--memory-plugin PATH]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let name = args.next();
    let rest: Vec<String> = args.collect();
    let report = match name.as_deref() {
        Some("runtime") => runtime::run(&rest),
        Some("queues") => queues::run(&rest),
        Some("embed") => memory::embed::run(&rest),
        Some("memory") => memory::engine::run(&rest),
        Some("api") => api::run(&rest),
        Some("cluster") => cluster::run(&rest),
        Some("dashboard") => dashboard::run(&rest),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match report {
        Ok(report) => {
            println!("{}", report.json());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
