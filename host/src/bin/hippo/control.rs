//! Commands that go through the REST API of a running `hippo serve`
//! (`--api`, default `http://127.0.0.1:8000`, with `--key`): submit, status,
//! result, cancel, inspect, purge, dead letters and plugin deploys. They work
//! alike on the embedded broker and on Redis; for a Redis deployment whose
//! workers run elsewhere, `hippo serve --no-worker` is the API to point at.

use crate::{LimitArgs, TASK_FAILED};
use anyhow::Context;
use clap::{Args, Subcommand};
use hippo_client::{Client, HistoryFilter, Limits, SubmitOptions, TaskLogs, TaskState, TaskStatus};
use std::path::PathBuf;
use std::time::Duration;

/// Where the API is and the key to use.
#[derive(Args, Debug, Clone)]
pub struct Api {
    /// The hippo API.
    #[arg(
        long = "api",
        env = "HIPPO_API_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub url: String,
    /// API key. `hippo serve` prints a generated one when neither
    /// HIPPO_API_KEY nor HIPPO_API_KEYS_FILE is set.
    #[arg(long, env = "HIPPO_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

impl Api {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let key = self.key.as_deref().map(str::trim).unwrap_or_default();
        if key.is_empty() {
            anyhow::bail!(
                "no API key: pass --key or set HIPPO_API_KEY (`hippo serve` prints the key it generated)"
            );
        }
        Ok(Client::new(&self.url, key)?)
    }
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    api: Api,
    /// Task name, e.g. `example.fib`.
    task: String,
    /// JSON input.
    #[arg(long, default_value = "null")]
    input: String,
    /// Queue (default: the plugin's queue for the task).
    #[arg(long)]
    queue: Option<String>,
    /// Priority 0-9, higher first (default 5).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    priority: Option<u8>,
    /// Run no sooner than this many seconds from now.
    #[arg(long)]
    countdown: Option<f64>,
    /// Revoke the task if it has not started within this many seconds.
    #[arg(long)]
    expires: Option<f64>,
    /// Retries after the first attempt (default 3).
    #[arg(long)]
    max_retries: Option<u32>,
    /// Submissions with the same key within 24 h are one task.
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Wait up to this many seconds for the task to finish and print its
    /// status (exit 1 if it failed or was revoked).
    #[arg(long)]
    wait: Option<f64>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    api: Api,
    /// Task id.
    id: String,
    /// Wait up to this many seconds for the task to finish.
    #[arg(long)]
    wait: Option<f64>,
}

#[derive(Args, Debug)]
pub struct TaskArgs {
    #[command(flatten)]
    api: Api,
    /// Task id.
    id: String,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    api: Api,
    /// Task id.
    id: String,
    /// Print the logs as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    api: Api,
    /// Only tasks in this state (SUCCESS, FAILURE, REVOKED, RETRY).
    #[arg(long, value_parser = parse_state)]
    state: Option<TaskState>,
    /// Only tasks of this name.
    #[arg(long)]
    task: Option<String>,
    /// Only tasks of this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only tasks whose last attempt ran on this worker.
    #[arg(long)]
    worker: Option<String>,
    /// Only tasks whose id or name contains this text.
    #[arg(long)]
    search: Option<String>,
    /// Entries per page (1-1000).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Go on from a previous page's `next`.
    #[arg(long)]
    cursor: Option<String>,
}

fn parse_state(value: &str) -> Result<TaskState, String> {
    serde_json::from_value(serde_json::Value::String(value.to_uppercase()))
        .map_err(|_| format!("unknown state {value:?}"))
}

#[derive(Subcommand, Debug)]
pub enum Inspect {
    /// Tasks held by workers: running, and reserved for a free slot.
    Active(Api),
    /// Workers with their heartbeat (queues, counts, CPU, memory).
    Stats(Api),
    /// Ready, reserved and scheduled counts per queue.
    Queues(Api),
    /// Tasks waiting for their ETA, countdown or retry time.
    Scheduled(Api),
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    #[command(flatten)]
    api: Api,
    /// The queue to empty.
    queue: String,
    /// Confirm: purging drops every waiting task of the queue.
    #[arg(long)]
    yes: bool,
}

#[derive(Subcommand, Debug)]
pub enum DeadLetters {
    /// Tasks that failed for good, newest first.
    List(Api),
    /// Submit a dead letter again as a first attempt.
    Replay(TaskArgs),
    /// Forget every dead letter.
    Purge {
        #[command(flatten)]
        api: Api,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    api: Api,
    /// The component (`.wasm`).
    plugin: PathBuf,
    /// Name of the plugin file on the server (`plugins/NAME.wasm`);
    /// default: the file's name without `.wasm`.
    #[arg(long)]
    name: Option<String>,
    /// A manifest (limits, queue, grants) deployed with it, as `plugins/NAME.toml`.
    #[arg(long)]
    manifest: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UndeployArgs {
    #[command(flatten)]
    api: Api,
    /// Name of the plugin file on the server (`plugins/NAME.wasm`).
    name: String,
}

pub(crate) fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{flag} {value} is not a valid number of seconds"))
}

/// Prints a status; exit 1 when the task failed or was revoked.
fn show(status: &TaskStatus) -> anyhow::Result<u8> {
    print(status)?;
    Ok(match status.status {
        TaskState::Failure | TaskState::Revoked => TASK_FAILED,
        _ => 0,
    })
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<u8> {
    let input: serde_json::Value = serde_json::from_str(&args.input)
        .map_err(|e| anyhow::anyhow!("--input is not valid JSON: {e}"))?;
    let wait = args.wait.map(|w| seconds("--wait", w)).transpose()?;
    let limits = args.limits.overrides();
    let options = SubmitOptions {
        queue: args.queue,
        priority: args.priority,
        countdown: args
            .countdown
            .map(|s| seconds("--countdown", s))
            .transpose()?,
        eta_ms: None,
        expires: args.expires.map(|s| seconds("--expires", s)).transpose()?,
        max_retries: args.max_retries,
        idempotency_key: args.idempotency_key,
        limits: Some(Limits {
            soft_time_limit_ms: limits.soft_time_limit_ms,
            hard_time_limit_ms: limits.hard_time_limit_ms,
            fuel: limits.fuel,
            memory_bytes: limits.memory_bytes,
            output_bytes: limits.output_bytes,
        })
        .filter(|limits| *limits != Limits::default()),
    };
    let task = args
        .api
        .client()?
        .submit_with(&args.task, input, &options)
        .await?;
    match wait {
        None => {
            print(&serde_json::json!({ "task_id": task.id, "created": task.created }))?;
            Ok(0)
        }
        Some(wait) => show(&task.wait(wait).await?),
    }
}

pub async fn status(args: StatusArgs) -> anyhow::Result<u8> {
    let client = args.api.client()?;
    let status = match args.wait {
        Some(wait) => client.wait(&args.id, seconds("--wait", wait)?).await?,
        None => client.status(&args.id).await?,
    };
    show(&status)
}

/// Prints just the result; a failure or revocation goes to stderr with exit 1.
pub async fn result(args: StatusArgs) -> anyhow::Result<u8> {
    let wait = seconds("--wait", args.wait.unwrap_or(0.0))?;
    match args.api.client()?.task(&args.id).get(wait).await {
        Ok(value) => {
            print(&value)?;
            Ok(0)
        }
        Err(hippo_client::ClientError::TaskFailed { id, error }) => {
            eprintln!("hippo: task {id} failed: {error}");
            Ok(TASK_FAILED)
        }
        Err(hippo_client::ClientError::Revoked { id }) => {
            eprintln!("hippo: task {id} was revoked");
            Ok(TASK_FAILED)
        }
        Err(other) => Err(other.into()),
    }
}

/// Prints a task's logs, attempt by attempt.
pub async fn logs(args: LogsArgs) -> anyhow::Result<u8> {
    let logs = args.api.client()?.task_log(&args.id).await?;
    if args.json {
        print(&logs)?;
    } else {
        print!("{}", logs_text(&logs));
    }
    Ok(0)
}

/// Logs as lines of text: `HH:MM:SS.mmm level source message` (UTC).
fn logs_text(logs: &TaskLogs) -> String {
    let mut text = String::new();
    if logs.attempts.is_empty() {
        text.push_str(&format!("task {} logged nothing\n", logs.task_id));
    }
    for attempt in &logs.attempts {
        text.push_str(&format!("-- attempt {}\n", attempt.attempt));
        for line in &attempt.log.lines {
            let ms = line.at_ms % 86_400_000;
            let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
            text.push_str(&format!(
                "{h:02}:{m:02}:{s:02}.{:03} {:<5} {:<6} {}\n",
                ms % 1000,
                line.level,
                line.source,
                line.message
            ));
        }
        if attempt.log.dropped_lines > 0 {
            let dropped = attempt.log.dropped_lines;
            text.push_str(&format!(
                "({dropped} more lines dropped: the log was full)\n"
            ));
        }
    }
    text
}

/// Prints a page of the history.
pub async fn history(args: HistoryArgs) -> anyhow::Result<u8> {
    let filter = HistoryFilter {
        state: args.state,
        task: args.task,
        queue: args.queue,
        worker: args.worker,
        text: args.search,
        limit: Some(args.limit),
        cursor: args.cursor,
        ..HistoryFilter::default()
    };
    print(&args.api.client()?.history(&filter).await?)?;
    Ok(0)
}

pub async fn cancel(args: TaskArgs) -> anyhow::Result<u8> {
    print(&args.api.client()?.cancel(&args.id).await?)?;
    Ok(0)
}

pub async fn inspect(what: Inspect) -> anyhow::Result<u8> {
    match what {
        Inspect::Active(api) => print(&api.client()?.inspect_active().await?)?,
        Inspect::Stats(api) => print(&api.client()?.inspect_stats().await?)?,
        Inspect::Queues(api) => print(&api.client()?.inspect_queues().await?)?,
        Inspect::Scheduled(api) => print(&api.client()?.inspect_scheduled().await?)?,
    }
    Ok(0)
}

pub async fn purge(args: PurgeArgs) -> anyhow::Result<u8> {
    if !args.yes {
        anyhow::bail!(
            "purging drops every waiting task of {:?}; pass --yes to confirm",
            args.queue
        );
    }
    let purged = args.api.client()?.purge_queue(&args.queue).await?;
    print(&serde_json::json!({ "queue": args.queue, "purged": purged }))?;
    Ok(0)
}

pub async fn dead_letters(what: DeadLetters) -> anyhow::Result<u8> {
    match what {
        DeadLetters::List(api) => print(&api.client()?.dead_letters().await?)?,
        DeadLetters::Replay(args) => {
            let task = args.api.client()?.replay_dead_letter(&args.id).await?;
            print(&serde_json::json!({ "replayed": args.id, "task_id": task.id }))?;
        }
        DeadLetters::Purge { api, yes } => {
            if !yes {
                anyhow::bail!("purging forgets every dead letter; pass --yes to confirm");
            }
            print(&serde_json::json!({ "purged": api.client()?.purge_dead_letters().await? }))?;
        }
    }
    Ok(0)
}

/// Sends the manifest (if given) with the component, so the component is
/// validated against the grants and limits it comes with.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<u8> {
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .plugin
            .file_stem()
            .and_then(|stem| stem.to_str())
            .ok_or_else(|| anyhow::anyhow!("{}: give the plugin a --name", args.plugin.display()))?
            .to_string(),
    };
    let wasm = std::fs::read(&args.plugin).with_context(|| args.plugin.display().to_string())?;
    let client = args.api.client()?;
    let deployed = match &args.manifest {
        Some(path) => {
            let toml = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            client.deploy_with_manifest(&name, wasm, toml).await
        }
        None => client.deploy(&name, wasm).await,
    }
    .with_context(|| args.plugin.display().to_string())?;
    print(&serde_json::json!({ "deployed": deployed }))?;
    Ok(0)
}

pub async fn undeploy(args: UndeployArgs) -> anyhow::Result<u8> {
    args.api.client()?.remove_plugin(&args.name).await?;
    print(&serde_json::json!({ "removed": args.name }))?;
    Ok(0)
}

/// The plugins a running service has loaded, and the files it refused.
pub async fn remote_plugins(api: &Api) -> anyhow::Result<u8> {
    print(&api.client()?.plugins().await?)?;
    Ok(0)
}
