//! A hippo API client: submits `example.fib`, waits for its result, prints
//! it, then shows the queues and the workers.
//!
//! ```sh
//! scripts/serve                        # prints the API key it generated
//! HIPPO_API_KEY=<key> cargo run --release -p hippo-example-client -- 90
//! ```
//!
//! `HIPPO_API_URL` is the API (default `http://127.0.0.1:8000`),
//! `HIPPO_API_KEY` the key; the argument is `n` (default 50).

use hippo_client::{Client, ClientError};
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hippo-example-client: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), ClientError> {
    let url = std::env::var("HIPPO_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let key = std::env::var("HIPPO_API_KEY").unwrap_or_default();
    if key.trim().is_empty() {
        eprintln!(
            "hippo-example-client: HIPPO_API_KEY is not set; `hippo serve` prints the key it generated"
        );
    }
    let n: u32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("hippo-example-client: {arg:?} is not a number; using 50");
            50
        }),
        None => 50,
    };
    let client = Client::new(&url, key)?;

    // delay() ...
    let task = client.submit("example.fib", json!({ "n": n })).await?;
    println!("submitted example.fib(n = {n}) as {}", task.id);
    // ... then get(timeout).
    let result = task.get(Duration::from_secs(30)).await?;
    println!("fib({n}) = {}", result["value"]);
    if let Some(run) = task.status().await?.last_run {
        let wall_ms = run["stats"]["wall_time_us"].as_f64().unwrap_or(0.0) / 1000.0;
        let worker = run["worker"].as_str().unwrap_or("?");
        println!("ran on {worker} in {wall_ms:.2} ms");
    }

    println!("\nqueues (ready / reserved / scheduled):");
    for queue in client.inspect_queues().await? {
        println!(
            "  {:<12} {:>6} {:>6} {:>6}",
            queue.name, queue.ready, queue.reserved, queue.scheduled
        );
    }
    println!("\nworkers:");
    for worker in client.inspect_stats().await? {
        println!(
            "  {} on {:?}: {} succeeded, {} failed, {} running",
            worker.name,
            worker.queues,
            worker.succeeded,
            worker.failed,
            worker.active.len()
        );
    }
    Ok(())
}
