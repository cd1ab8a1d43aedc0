//! The hippo benchmarks. `bench NAME` runs one (through `bench/run NAME`,
//! which builds the guests and the release binaries first), prints
//! human-readable lines and ends with one JSON object holding every figure.
//!
//! Each benchmark is a module with a `run(args) -> Result<Report>`; add the
//! next ones (`queues`, `memory`, `api`) the same way.

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
            --phases    then time each phase of a task on engine variants
            --variant NAME   only this variant of --phases (repeatable)
  queues    end-to-end throughput and round trip of no-op tasks, hippo (Redis,
            embedded) against Celery on the same Redis (run it through
            bench/run queues, which starts Redis and Celery)
            --redis URL --hippo PATH [--celery FILE] [--tasks N] [--rtt N]
            [--concurrency N]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let name = args.next();
    let rest: Vec<String> = args.collect();
    let report = match name.as_deref() {
        Some("runtime") => runtime::run(&rest),
        Some("queues") => queues::run(&rest),
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
