//! `hippo dashboard`: the dashboard alone (the web page, hippo's and
//! Flower's APIs, the metrics) against a shared Redis broker, as Flower
//! runs beside Celery's workers; and the listener `hippo serve` starts.

use crate::service::{Connection, MemoryArgs, api_keys, open_parts, stop_on_signal, until};
use clap::Args;
use hippo::api::AppState;
use hippo::api::dashboard::Logins;
use hippo::config::BrokerTarget;
use hippo::runtime::RuntimeConfig;
use hippo::scheduler::Scheduler;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Args, Debug)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Address the dashboard listens on; default 127.0.0.1:5555, or
    /// FLOWER_PORT on loopback. Off loopback it needs a login
    /// (`FLOWER_BASIC_AUTH=user:pass`, or `FLOWER_USER` and
    /// `FLOWER_PASSWORD`) whose password is not a known default.
    #[arg(long, env = "HIPPO_DASHBOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The workers' plugins folder: its task names and queues are what the
    /// dashboard submits to, and deploys from its Plugins tab go there.
    #[arg(long, env = "HIPPO_PLUGINS_DIR", default_value = "plugins")]
    pub plugins: PathBuf,
    #[command(flatten)]
    pub memory: MemoryArgs,
    /// Schedule entries (TOML), as the workers' `--schedules`: listed and
    /// run by hand from the Schedules tab (this process fires none).
    #[arg(long, env = "HIPPO_SCHEDULES_FILE")]
    pub schedules: Option<PathBuf>,
    /// TOML file of API keys (hashed); see `hippo hash-key`.
    #[arg(long, env = "HIPPO_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
}

/// Runs the dashboard until SIGTERM or Ctrl-C.
pub async fn run(args: DashboardArgs) -> anyhow::Result<u8> {
    if let BrokerTarget::Embedded(dir) = args.connection.target()? {
        anyhow::bail!(
            "hippo dashboard needs a shared Redis broker (--broker redis://...): the embedded \
             broker in {} belongs to one `hippo serve`, whose own dashboard is on its \
             --dashboard-listen",
            dir.display()
        );
    }
    let reference = args.connection.reference_settings()?;
    let keys = Arc::new(api_keys(args.api_keys_file.as_deref())?);
    let (broker, registry, _watch, scheduler) = open_parts(
        &args.connection,
        &args.plugins,
        RuntimeConfig::default(),
        &args.memory,
        args.schedules.as_deref(),
    )
    .await?;
    let (signal, stopped) = stop_on_signal();
    let state = AppState {
        broker,
        registry,
        keys,
    };
    let listen = reference.dashboard_listen(args.listen);
    let listening = start(listen, state, &scheduler, stopped).await?;
    let served = listening.await;
    signal.abort();
    served??;
    Ok(0)
}

/// Starts the dashboard's listener on `listen` until `stopped`, after
/// refusing to expose it without a login or with a known default password.
pub async fn start(
    listen: SocketAddr,
    state: AppState,
    scheduler: &Arc<Scheduler>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let logins = Logins::from_env(|name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("dashboard logins: {e}"))?;
    let loopback = listen.ip().is_loopback();
    if !loopback && logins.is_empty() {
        anyhow::bail!(
            "the dashboard would listen on {listen} with no login: set \
             FLOWER_BASIC_AUTH=user:password (or FLOWER_USER and FLOWER_PASSWORD), listen on \
             loopback, or pass --no-dashboard"
        );
    }
    if let Some(user) = logins.weak_login().filter(|_| !loopback) {
        anyhow::bail!(
            "the dashboard login {user:?} has a known default password: choose another before \
             listening on {listen}"
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("dashboard on {listen}: {e}"))?;
    tracing::info!(listen = %listener.local_addr()?, "dashboard listening");
    let app = hippo::api::with_scheduler(
        hippo::api::dashboard::router(state, Arc::new(logins)),
        scheduler.clone(),
    );
    Ok(tokio::spawn(hippo::api::serve_router(
        listener,
        app,
        until(stopped),
    )))
}
