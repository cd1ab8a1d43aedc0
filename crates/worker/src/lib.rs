//! Workers: take tasks from the broker under leases, run them on the
//! WebAssembly runtime, and settle them. Options mirror Celery's worker
//! (`--queues`, `--concurrency`, `--prefetch-multiplier`, `--autoscale`).
//!
//! A worker keeps every task it holds alive with heartbeats, interrupts a
//! task at once when it is revoked or its lease is lost, retries by the
//! task's own verdict with backoff, and on shutdown stops taking work,
//! drains what runs (up to a timeout) and hands back the rest.
//!
//! One module per job: `fetch` takes work and holds it, `execute` runs a
//! held task and settles it (`settlement_of` is the whole policy), `upkeep`
//! beats, maintains, autoscales and follows revocations; this file starts
//! them and drains.
//!
//! Depends on `hippo-broker` and `hippo-runtime`; never on the API or the
//! scheduler.

mod execute;
mod fetch;
mod process;
mod retry;
mod upkeep;

pub use retry::RetryPolicy;

use fetch::{Held, Stop};
use hippo_broker::{SharedBroker, TaskNameFigures, now_ms};
use hippo_runtime::PluginRegistry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// How long shutdown waits for interrupted tasks to hand themselves back
/// after the drain timeout.
const INTERRUPTED_GRACE: Duration = Duration::from_millis(500);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique name, `hostname:pid` by default.
    pub name: String,
    /// Queues to consume, in priority order.
    pub queues: Vec<String>,
    /// Tasks run at once (the autoscale maximum when autoscaling).
    pub concurrency: usize,
    /// Autoscale minimum; equal to `concurrency` when not autoscaling.
    pub min_concurrency: usize,
    /// Tasks reserved ahead per concurrency slot (Celery's prefetch multiplier).
    pub prefetch_multiplier: usize,
    /// Lease of a reserved task; heartbeats renew it.
    pub lease: Duration,
    /// How often held leases are renewed and the worker reports itself.
    pub heartbeat_interval: Duration,
    /// How often the broker's housekeeping runs (due tasks, expired leases).
    pub maintain_interval: Duration,
    /// How long shutdown waits for running tasks before handing them back.
    pub drain_timeout: Duration,
    /// Backoff between retries.
    pub retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());
        WorkerConfig {
            name: format!("{}:{}", process::hostname(), std::process::id()),
            queues: hippo_broker::BrokerConfig::default().queues,
            concurrency,
            min_concurrency: concurrency,
            // The reference's prefetch multiplier.
            prefetch_multiplier: 4,
            // A dead or frozen worker's tasks come back within about this
            // long, instead of Celery's one-hour visibility timeout.
            lease: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(2),
            maintain_interval: Duration::from_millis(250),
            drain_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// Running totals per task name, as the heartbeat reports them (with the
/// worker's totals, their sums).
#[derive(Debug, Default)]
struct Counters {
    per_task: Mutex<BTreeMap<String, TaskNameFigures>>,
}

/// A worker over a broker and a plugin registry.
#[derive(Debug)]
pub struct Worker {
    broker: SharedBroker,
    registry: Arc<PluginRegistry>,
    config: WorkerConfig,
    held: Mutex<HashMap<String, Held>>,
    /// Signalled whenever a held task is let go.
    released: Notify,
    slots: Arc<Semaphore>,
    /// Current concurrency (moves between min and max when autoscaling).
    current: AtomicUsize,
    counters: Counters,
    started_ms: u64,
    /// Set on shutdown: the fetch loop stops after its current reserve.
    stopping: std::sync::atomic::AtomicBool,
}

impl Worker {
    /// A worker; nothing runs until [`run`](Self::run).
    pub fn new(
        broker: SharedBroker,
        registry: Arc<PluginRegistry>,
        config: WorkerConfig,
    ) -> Arc<Self> {
        let min = config.min_concurrency.clamp(1, config.concurrency.max(1));
        Arc::new(Worker {
            broker,
            registry,
            slots: Arc::new(Semaphore::new(min)),
            current: AtomicUsize::new(min),
            config,
            held: Mutex::default(),
            released: Notify::new(),
            counters: Counters::default(),
            started_ms: now_ms(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The worker's settings.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Runs until `shutdown` resolves, then drains: stops taking work, waits
    /// up to the drain timeout for running tasks, interrupts and hands back
    /// what remains.
    pub async fn run(self: &Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let stop_background = Arc::new(Notify::new());
        let background = [
            tokio::spawn(self.clone().every(
                self.config.heartbeat_interval,
                stop_background.clone(),
                Self::beat,
            )),
            tokio::spawn(self.clone().every(
                self.config.maintain_interval,
                stop_background.clone(),
                Self::maintain,
            )),
            tokio::spawn(self.clone().every(
                Duration::from_secs(1),
                stop_background.clone(),
                Self::autoscale,
            )),
            tokio::spawn(self.clone().follow_revocations(stop_background.clone())),
        ];
        // The fetch loop is never dropped in the middle of a reserve: the
        // broker may already have leased tasks to it, which would then sit
        // unseen until their lease ran out. It stops between reserves.
        let fetching = tokio::spawn(self.clone().fetch_until_stopped());
        shutdown.await;
        // The drain timeout runs from the stop, not from the end of the
        // fetch loop's last reserve (up to a second later).
        let drain_deadline = tokio::time::Instant::now() + self.config.drain_timeout;
        self.stopping.store(true, Ordering::SeqCst);
        // No task starts after shutdown began, even one the last reserve
        // brings in: those go back to the queue.
        self.slots.close();
        self.released.notify_waiters();
        let _ = fetching.await;
        self.drain(drain_deadline).await;
        stop_background.notify_waiters();
        for task in background {
            let _ = task.await;
        }
        tracing::info!(worker = %self.config.name, "worker stopped");
    }

    async fn drain(&self, deadline: tokio::time::Instant) {
        // Tasks still waiting for a slot go back at once; running ones may finish.
        self.slots.close();
        if self.all_released_by(deadline).await {
            return;
        }
        tracing::warn!(
            remaining = self.held_count(),
            "drain timeout: interrupting and handing back running tasks"
        );
        for held in self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            held.interrupt(Stop::Shutdown);
        }
        // An interrupted task ends within a tick whatever its guest is doing
        // (the runtime's watchdog), and is handed back. The wait is bounded
        // all the same, so shutdown never hangs on one: what is still held
        // then comes back when its lease runs out.
        if self
            .all_released_by(tokio::time::Instant::now() + INTERRUPTED_GRACE)
            .await
        {
            return;
        }
        tracing::warn!(
            remaining = self.held_count(),
            "tasks still held after their interruption; they come back when their lease expires"
        );
    }

    /// Waits until no task is held or `deadline` passes; whether none is.
    async fn all_released_by(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            // Registered before the count is read, so a release between the
            // two still wakes this wait.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.held_count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return self.held_count() == 0;
            }
        }
    }

    async fn every<F, Fut>(self: Arc<Self>, period: Duration, stop: Arc<Notify>, job: F)
    where
        F: Fn(Arc<Self>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let stopped = stop.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stopped => return,
                _ = ticks.tick() => job(self.clone()).await,
            }
        }
    }
}
