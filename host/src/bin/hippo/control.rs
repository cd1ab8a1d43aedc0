//! Commands that talk to the broker directly: submit, status, result,
//! revoke, inspect, purge and dead letters. With the embedded broker they
//! need the broker's directory to themselves (run them while no `hippo
//! serve` holds it); with Redis they work alongside running workers.

use crate::service::Connection;
use clap::{Args, Subcommand};
use hippo::broker::{SharedBroker, TaskMessage, TaskState, now_ms};
use hippo::runtime::LimitOverrides;
use std::time::Duration;

/// Exit code when the task ended in failure or revocation.
const TASK_FAILED: u8 = 1;

#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    connection: Connection,
    /// Task name.
    task: String,
    /// JSON input.
    #[arg(long, default_value = "null")]
    input: String,
    /// Queue (default: `default`).
    #[arg(long, default_value = "default")]
    queue: String,
    /// Priority 0-9 (higher first).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=9))]
    priority: u8,
    /// Run no sooner than this many seconds from now.
    #[arg(long)]
    countdown: Option<f64>,
    /// Revoke the task if it has not started within this many seconds.
    #[arg(long)]
    expires: Option<f64>,
    /// Retries after the first attempt.
    #[arg(long, default_value_t = 3)]
    max_retries: u32,
    /// Submissions with the same key within the window are one task.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Hard time limit in milliseconds.
    #[arg(long)]
    hard_time_limit_ms: Option<u64>,
    /// Soft time limit in milliseconds.
    #[arg(long)]
    soft_time_limit_ms: Option<u64>,
    /// Wait up to this many seconds for the result and print it.
    #[arg(long)]
    wait: Option<f64>,
}

#[derive(Args, Debug)]
pub struct TaskArgs {
    #[command(flatten)]
    connection: Connection,
    /// Task id.
    id: String,
    /// Wait up to this many seconds for the task to finish.
    #[arg(long)]
    wait: Option<f64>,
}

#[derive(Subcommand, Debug)]
pub enum Inspect {
    /// Tasks running, per worker.
    Active(Connection),
    /// Tasks reserved by a worker but not started yet, per worker.
    Reserved(Connection),
    /// Tasks waiting for their ETA, countdown or retry time.
    Scheduled(Connection),
    /// Ready, reserved and scheduled counts per queue.
    Queues(Connection),
    /// Workers with their heartbeat (queues, counts, CPU, memory).
    Stats(Connection),
    /// The latest events.
    Events(Connection),
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    #[command(flatten)]
    connection: Connection,
    /// The queue to empty.
    queue: String,
    /// Confirm: purging drops every waiting task of the queue.
    #[arg(long)]
    yes: bool,
}

#[derive(Subcommand, Debug)]
pub enum DeadLetters {
    /// Tasks that failed for good, newest first.
    List(Connection),
    /// Submit a dead letter again as a first attempt.
    Replay(TaskArgs),
    /// Forget every dead letter.
    Purge {
        #[command(flatten)]
        connection: Connection,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

async fn open(connection: &Connection) -> anyhow::Result<SharedBroker> {
    Ok(connection
        .target()?
        .open(connection.broker_config())
        .await?)
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn seconds(value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{value} is not a valid number of seconds"))
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<u8> {
    let input: serde_json::Value = serde_json::from_str(&args.input)
        .map_err(|e| anyhow::anyhow!("--input is not valid JSON: {e}"))?;
    let broker = open(&args.connection).await?;
    let mut message = TaskMessage::new(args.task, args.queue, input);
    message.priority = args.priority;
    message.max_retries = args.max_retries;
    message.idempotency_key = args.idempotency_key;
    message.eta_ms = args
        .countdown
        .map(seconds)
        .transpose()?
        .map(|d| now_ms() + d.as_millis() as u64);
    message.expires_ms = args
        .expires
        .map(seconds)
        .transpose()?
        .map(|d| now_ms() + d.as_millis() as u64);
    message.limits = LimitOverrides {
        hard_time_limit_ms: args.hard_time_limit_ms,
        soft_time_limit_ms: args.soft_time_limit_ms,
        ..LimitOverrides::default()
    };
    let submitted = broker.submit(message).await?;
    match args.wait {
        None => {
            print(&submitted)?;
            Ok(0)
        }
        Some(wait) => show_task(&broker, &submitted.task_id, Some(wait)).await,
    }
}

async fn show_task(broker: &SharedBroker, id: &str, wait: Option<f64>) -> anyhow::Result<u8> {
    let record = match wait {
        Some(wait) => broker.wait(id, seconds(wait)?).await?,
        None => broker.task(id).await?,
    };
    let Some(record) = record else {
        anyhow::bail!("unknown task {id} (never submitted, or its result expired)");
    };
    print(&record)?;
    Ok(match record.state {
        TaskState::Failure | TaskState::Revoked => TASK_FAILED,
        _ => 0,
    })
}

pub async fn status(args: TaskArgs) -> anyhow::Result<u8> {
    let broker = open(&args.connection).await?;
    show_task(&broker, &args.id, args.wait).await
}

pub async fn revoke(args: TaskArgs) -> anyhow::Result<u8> {
    let broker = open(&args.connection).await?;
    print(&serde_json::json!({ "task_id": args.id, "outcome": broker.revoke(&args.id).await? }))?;
    Ok(0)
}

pub async fn inspect(what: Inspect) -> anyhow::Result<u8> {
    match what {
        Inspect::Active(connection) => print(&held_by_worker(&connection, true).await?)?,
        Inspect::Reserved(connection) => print(&held_by_worker(&connection, false).await?)?,
        Inspect::Scheduled(connection) => print(&open(&connection).await?.scheduled(1_000).await?)?,
        Inspect::Queues(connection) => print(&open(&connection).await?.queue_stats().await?)?,
        Inspect::Stats(connection) => print(&open(&connection).await?.workers().await?)?,
        Inspect::Events(connection) => {
            let broker = open(&connection).await?;
            let newest: Vec<_> = broker.events(None, usize::MAX).await?;
            let skip = newest.len().saturating_sub(100);
            print(&newest[skip..].to_vec())?;
        }
    }
    Ok(0)
}

/// Leased tasks grouped by the worker holding them: the running ones
/// (`STARTED`, `PROGRESS`) or the ones waiting for a slot (`RECEIVED`).
async fn held_by_worker(
    connection: &Connection,
    running: bool,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<hippo::broker::TaskRecord>>> {
    let broker = open(connection).await?;
    let mut by_worker: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for delivery in broker.reserved().await? {
        let Some(record) = broker.task(&delivery.message.id).await? else {
            continue;
        };
        if matches!(record.state, TaskState::Started | TaskState::Progress) == running {
            by_worker.entry(delivery.consumer).or_default().push(record);
        }
    }
    Ok(by_worker)
}

pub async fn purge(args: PurgeArgs) -> anyhow::Result<u8> {
    if !args.yes {
        anyhow::bail!(
            "purging drops every waiting task of {:?}; pass --yes to confirm",
            args.queue
        );
    }
    let broker = open(&args.connection).await?;
    print(&serde_json::json!({ "queue": args.queue, "purged": broker.purge(&args.queue).await? }))?;
    Ok(0)
}

pub async fn dead_letters(what: DeadLetters) -> anyhow::Result<u8> {
    match what {
        DeadLetters::List(connection) => {
            print(&open(&connection).await?.dead_letters(1_000).await?)?
        }
        DeadLetters::Replay(args) => {
            let broker = open(&args.connection).await?;
            match broker.replay_dead_letter(&args.id).await? {
                Some(task_id) => {
                    print(&serde_json::json!({ "replayed": args.id, "task_id": task_id }))?
                }
                None => anyhow::bail!("{} is not a dead letter", args.id),
            }
        }
        DeadLetters::Purge { connection, yes } => {
            if !yes {
                anyhow::bail!("purging forgets every dead letter; pass --yes to confirm");
            }
            print(
                &serde_json::json!({ "purged": open(&connection).await?.purge_dead_letters().await? }),
            )?;
        }
    }
    Ok(0)
}
