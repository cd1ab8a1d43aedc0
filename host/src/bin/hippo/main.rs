//! The `hippo` command: a thin layer over the `hippo` library.

mod control;
mod dashboard;
mod new;
mod schedule;
mod service;

use clap::{Args, Parser, Subcommand};
use hippo::broker::TaskOutput;
use hippo::runtime::{
    Capability, HostServices, LimitOverrides, Manifest, PluginRegistry, Runtime, RuntimeConfig,
    TaskOutcome, TaskRequest, load_plugin_file,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "hippo",
    version,
    about = "A task runtime for an LLM long-term-memory engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the service in one process: the REST API, the embedded broker
    /// (unless --broker names Redis), a worker on every queue, and the
    /// plugin folder watcher.
    Serve(service::ServeArgs),
    /// Runs the dashboard alone (the web page, hippo's and Flower's APIs,
    /// the metrics) against a shared Redis broker, beside workers that run
    /// elsewhere, as Flower runs beside Celery's.
    Dashboard(dashboard::DashboardArgs),
    /// Prints the SHA-256 of an API key, as the keys file stores it.
    HashKey {
        /// The key.
        key: String,
    },
    /// Runs a worker: takes tasks from the broker's queues and runs them.
    Worker(service::WorkerArgs),
    /// Submits a task (through the API: --api, --key).
    Submit(control::SubmitArgs),
    /// Shows a task's state and result.
    Status(control::StatusArgs),
    /// Prints a task's result once it finished (exit 1 if it failed or was revoked).
    Result(control::StatusArgs),
    /// Prints a task's log, attempt by attempt (host `log` calls and its
    /// captured stdout and stderr), once it finished.
    Logs(control::LogsArgs),
    /// Lists finished tasks, newest first, with filters (a page at a time).
    History(control::HistoryArgs),
    /// Cancels a task: a queued one never runs, a running one is interrupted.
    #[command(visible_alias = "revoke")]
    Cancel(control::TaskArgs),
    /// Shows active tasks, scheduled tasks, queues or worker stats.
    #[command(subcommand)]
    Inspect(control::Inspect),
    /// Drops every waiting task of a queue.
    Purge(control::PurgeArgs),
    /// Lists, replays or purges tasks that failed for good.
    #[command(subcommand, name = "deadletters")]
    DeadLetters(control::DeadLetters),
    /// Lists the scheduler's entries, runs one now, or shows when a cron
    /// expression fires.
    #[command(subcommand)]
    Schedule(schedule::Schedule),
    /// Deploys a plugin component (and its manifest) to a running service;
    /// it is validated there before it replaces anything.
    Deploy(control::DeployArgs),
    /// Removes a plugin from a running service.
    Undeploy(control::UndeployArgs),
    /// Runs one task of a plugin locally, with its limits, and prints the
    /// result with the fuel, memory and time it took. A plugin granted `kv`
    /// uses the embedded broker's store in the data directory.
    Run(RunArgs),
    /// Lists what the registry would load from a plugins folder, and why any
    /// file is refused; with --remote, what a running service has loaded.
    Plugins(PluginsArgs),
    /// Creates a plugin project (Rust or Python): the task, its manifest, a
    /// test, and a copy of the guest SDK and of the WIT it builds against.
    New(new::NewArgs),
}

#[derive(Args)]
struct Storage {
    /// Data directory (the precompiled-component cache lives under it).
    #[arg(long, env = "HIPPO_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Compile every component afresh instead of using the cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Args)]
struct RunArgs {
    /// The plugin component (`.wasm`); a manifest beside it (`.toml`) applies.
    plugin: PathBuf,
    /// Task name, e.g. `example.fib`.
    task: String,
    /// JSON input.
    #[arg(long, default_value = "null")]
    input: String,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    storage: Storage,
}

#[derive(Args, Debug)]
struct LimitArgs {
    /// Soft time limit in milliseconds.
    #[arg(long)]
    soft_time_limit_ms: Option<u64>,
    /// Hard time limit in milliseconds.
    #[arg(long)]
    hard_time_limit_ms: Option<u64>,
    /// Fuel budget.
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory cap in bytes.
    #[arg(long)]
    memory_bytes: Option<u64>,
    /// Output size cap in bytes.
    #[arg(long)]
    output_bytes: Option<u64>,
}

impl LimitArgs {
    fn overrides(&self) -> LimitOverrides {
        LimitOverrides {
            soft_time_limit_ms: self.soft_time_limit_ms,
            hard_time_limit_ms: self.hard_time_limit_ms,
            fuel: self.fuel,
            memory_bytes: self.memory_bytes,
            output_bytes: self.output_bytes,
            ..LimitOverrides::default()
        }
    }
}

#[derive(Args)]
struct PluginsArgs {
    /// Ask a running service (through the API: --api, --key) instead of
    /// reading a folder.
    #[arg(long)]
    remote: bool,
    #[command(flatten)]
    api: control::Api,
    /// The plugins folder.
    #[arg(long, env = "HIPPO_PLUGINS_DIR", default_value = "plugins")]
    dir: PathBuf,
    #[command(flatten)]
    storage: Storage,
}

/// Exit codes: 0 success, 1 the task failed (or was revoked), 2 the command
/// could not run (bad arguments, the API refused or did not answer).
const TASK_FAILED: u8 = 1;
const COMMAND_FAILED: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HIPPO_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Plugins(args) => plugins(args),
        Command::New(args) => new::new(args),
        Command::Serve(args) => block_on(service::serve(args)),
        Command::Dashboard(args) => block_on(dashboard::run(args)),
        Command::Worker(args) => block_on(service::run_worker(args)),
        Command::HashKey { key } => {
            println!("{}", hippo::api::hash_key(&key));
            Ok(0)
        }
        Command::Submit(args) => block_on(control::submit(args)),
        Command::Status(args) => block_on(control::status(args)),
        Command::Result(args) => block_on(control::result(args)),
        Command::Cancel(args) => block_on(control::cancel(args)),
        Command::Logs(args) => block_on(control::logs(args)),
        Command::History(args) => block_on(control::history(args)),
        Command::Inspect(what) => block_on(control::inspect(what)),
        Command::Purge(args) => block_on(control::purge(args)),
        Command::DeadLetters(what) => block_on(control::dead_letters(what)),
        Command::Schedule(what) => block_on(schedule::schedule(what)),
        Command::Deploy(args) => block_on(control::deploy(args)),
        Command::Undeploy(args) => block_on(control::undeploy(args)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("hippo: {error:#}");
            ExitCode::from(COMMAND_FAILED)
        }
    }
}

fn block_on(command: impl std::future::Future<Output = anyhow::Result<u8>>) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(command);
    // Dropping a runtime waits for its blocking threads without a bound; the
    // command is done, so whatever still runs there is abandoned.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

fn open_runtime(
    storage: &Storage,
    services: HostServices,
) -> anyhow::Result<(Arc<Runtime>, Option<hippo::runtime::ArtifactCache>)> {
    let runtime = Arc::new(Runtime::with_services(RuntimeConfig::default(), services)?);
    let cache = if storage.no_cache {
        None
    } else {
        Some(runtime.open_cache(storage.data_dir.join("cache").join("components"))?)
    };
    Ok((runtime, cache))
}

/// The key-value store `hippo run` gives a plugin whose manifest grants
/// `kv`: the embedded broker's, under the data directory, as `hippo serve`
/// there has it (so state and quotas carry over between runs), driven by a
/// runtime of its own. `None` for other plugins, which need no broker.
fn local_kv(args: &RunArgs) -> anyhow::Result<Option<(tokio::runtime::Runtime, HostServices)>> {
    // The manifest beside the component, as the registry reads it.
    let path = args.plugin.with_extension("toml");
    let manifest = match std::fs::read_to_string(&path) {
        Ok(text) => Manifest::from_toml(&text)
            .map_err(|e| anyhow::anyhow!("manifest {}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("manifest {}: {e}", path.display())),
    };
    if !manifest.grants.contains(&Capability::Kv) {
        return Ok(None);
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let dir = args.storage.data_dir.join("broker");
    let broker = tokio
        .block_on(hippo::broker::EmbeddedBroker::open(
            &dir,
            hippo::broker::BrokerConfig::default(),
        ))
        .map_err(|e| anyhow::anyhow!("the key-value store in {}: {e}", dir.display()))?;
    let services = HostServices {
        kv: Some(Arc::new(broker)),
        handle: Some(tokio.handle().clone()),
        ..HostServices::default()
    };
    Ok(Some((tokio, services)))
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    let input = serde_json::from_str::<serde_json::Value>(&args.input)
        .map_err(|e| anyhow::anyhow!("--input is not valid JSON: {e}"))?;
    let acting_for = hippo::task::acting_user(&input)
        .map_err(|e| anyhow::anyhow!("--input: {e}"))?
        .map(str::to_owned);
    let (_kv_runtime, services) = match local_kv(&args)? {
        Some((tokio, services)) => (Some(tokio), services),
        None => (None, HostServices::default()),
    };
    let (runtime, cache) = open_runtime(&args.storage, services)?;
    let plugin = load_plugin_file(&runtime, &args.plugin, cache.as_ref())
        .map_err(|reason| anyhow::anyhow!("{}: {reason}", args.plugin.display()))?;
    let mut request = TaskRequest::new(args.task, args.input.into_bytes());
    request.acting_for = acting_for;
    request.limits = args.limits.overrides();
    // The operator runs this on their own machine: their flags may raise
    // the plugin's limits, up to the ceilings.
    request.may_raise_limits = true;
    let outcome = runtime.execute_blocking(&plugin, &request);
    println!("{}", serde_json::to_string_pretty(&report(&outcome))?);
    Ok(if outcome.result.is_ok() {
        0
    } else {
        TASK_FAILED
    })
}

/// The JSON `hippo run` prints.
fn report(outcome: &TaskOutcome) -> Report<'_> {
    let (status, output, error) = match &outcome.result {
        Ok(bytes) => {
            // Printed as the task returned it, not parsed into a tree (see
            // `hippo::broker::TaskOutput`); output that is not JSON is
            // printed as a string.
            let output = TaskOutput::from_bytes(bytes.clone()).map_or_else(
                |_| Printed::Text(String::from_utf8_lossy(bytes).into_owned()),
                Printed::Json,
            );
            ("SUCCESS", Some(output), serde_json::Value::Null)
        }
        Err(failure) => (
            "FAILURE",
            None,
            serde_json::json!({ "message": failure.to_string(), "detail": failure }),
        ),
    };
    Report {
        status,
        output,
        error,
        plugin_version: &outcome.plugin_version,
        stats: &outcome.stats,
        limits: &outcome.limits,
        progress: outcome.progress.as_ref(),
        log: &outcome.log,
    }
}

/// What `hippo run` prints about a run.
#[derive(serde::Serialize)]
struct Report<'a> {
    status: &'static str,
    output: Option<Printed>,
    error: serde_json::Value,
    plugin_version: &'a str,
    stats: &'a hippo::runtime::ExecStats,
    limits: &'a hippo::runtime::Limits,
    progress: Option<&'a hippo::runtime::Progress>,
    log: &'a hippo::runtime::TaskLogRecord,
}

/// A run's output as `hippo run` prints it.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Printed {
    Json(TaskOutput),
    Text(String),
}

fn plugins(args: PluginsArgs) -> anyhow::Result<u8> {
    if args.remote {
        return block_on(control::remote_plugins(&args.api));
    }
    let (runtime, cache) = open_runtime(&args.storage, HostServices::default())?;
    // A listing decides names as the service would, by the folder's ledger,
    // but never records anything there.
    let registry = PluginRegistry::new(runtime, &args.dir, cache).without_recording_names();
    registry
        .scan()
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.dir.display()))?;
    let listing = serde_json::json!({
        "dir": args.dir,
        "plugins": registry.plugins(),
        "refused": registry.rejections(),
    });
    println!("{}", serde_json::to_string_pretty(&listing)?);
    Ok(0)
}
