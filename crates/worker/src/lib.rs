//! Workers: take tasks from the broker under leases, run them on the
//! WebAssembly runtime, and settle them. Options mirror Celery's worker
//! (`--queues`, `--concurrency`, `--prefetch-multiplier`, `--autoscale`).
//!
//! A worker keeps every task it holds alive with heartbeats, interrupts a
//! task at once when it is revoked or its lease is lost, retries by the
//! task's own verdict with backoff, and on shutdown stops taking work,
//! drains what runs (up to a timeout) and hands back the rest.
//!
//! Depends on `hippo-broker` and `hippo-runtime`; never on the API or the
//! scheduler.

mod process;
mod retry;

pub use retry::RetryPolicy;

use hippo_broker::{
    Delivery, LeaseStatus, RunMeta, Settlement, SharedBroker, TaskOutput, WorkerHeartbeat, now_ms,
};
use hippo_runtime::{CancelToken, PluginRegistry, Progress, TaskFailure, TaskRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// How long a task runs before its worker marks it STARTED. Shorter tasks
/// (most memory operations) skip that write: their settlement records the
/// start, which halves the broker writes per task, and a state that lasts
/// less than this is not one anybody can watch.
const MARK_STARTED_AFTER: Duration = Duration::from_millis(10);

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

/// Why the worker interrupted a task it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stop {
    None = 0,
    Revoked = 1,
    LeaseLost = 2,
    Shutdown = 3,
}

#[derive(Debug)]
struct Held {
    delivery: Delivery,
    cancel: CancelToken,
    stop: Arc<AtomicU8>,
}

impl Held {
    fn interrupt(&self, why: Stop) {
        // The first reason wins: a revoked task stays revoked at shutdown.
        let _ = self.stop.compare_exchange(
            Stop::None as u8,
            why as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.cancel.cancel();
    }
}

fn stop_reason(stop: &AtomicU8) -> Stop {
    match stop.load(Ordering::SeqCst) {
        1 => Stop::Revoked,
        2 => Stop::LeaseLost,
        3 => Stop::Shutdown,
        _ => Stop::None,
    }
}

/// Running totals, as the heartbeat reports them.
#[derive(Debug, Default)]
struct Counters {
    processed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
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

    async fn fetch_until_stopped(self: Arc<Self>) {
        while !self.stopping.load(Ordering::SeqCst) {
            let limit =
                self.current.load(Ordering::Relaxed) * self.config.prefetch_multiplier.max(1);
            let room = limit.saturating_sub(self.held_count());
            if room == 0 {
                let released = self.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                if self.held_count() >= limit && !self.stopping.load(Ordering::SeqCst) {
                    released.await;
                }
                continue;
            }
            let reserved = self
                .broker
                .reserve(
                    &self.config.name,
                    &self.config.queues,
                    room,
                    self.config.lease,
                    Duration::from_secs(1),
                )
                .await;
            match reserved {
                Ok(deliveries) => {
                    let fetched = !deliveries.is_empty();
                    for delivery in deliveries {
                        self.hold(delivery);
                    }
                    if fetched {
                        // The tasks just held start first (each runs until
                        // it first waits, a short one until its result is
                        // sent): asking for more is a socket write and, over
                        // Redis, a command Redis runs, neither of which
                        // should come before a result someone waits for.
                        tokio::task::yield_now().await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "reserve failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        // Tasks handed to us after the last reserve go back to the queue
        // with the rest (no task starts after shutdown began).
        match self
            .broker
            .stop_waiting(&self.config.name, &self.config.queues)
            .await
        {
            Ok(late) => late.into_iter().for_each(|delivery| self.hold(delivery)),
            Err(error) => {
                tracing::warn!(%error, "could not end the wait for work; tasks handed meanwhile come back when their lease expires")
            }
        }
    }

    fn held_count(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn hold(self: &Arc<Self>, delivery: Delivery) {
        let cancel = CancelToken::new();
        let stop = Arc::new(AtomicU8::new(Stop::None as u8));
        let held = Held {
            delivery: delivery.clone(),
            cancel: cancel.clone(),
            stop: stop.clone(),
        };
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(delivery.message.id.clone(), held);
        let worker = self.clone();
        tokio::spawn(async move {
            // Waiting here is what "reserved" means: leased, not yet running.
            match worker.slots.clone().acquire_owned().await {
                Ok(slot) if stop_reason(&stop) != Stop::Shutdown => {
                    worker.execute(&delivery, slot, cancel, &stop).await;
                }
                _ => worker.hand_back(&delivery).await,
            }
            worker.let_go(&delivery.message.id);
        });
    }

    fn let_go(&self, task_id: &str) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(task_id);
        self.released.notify_waiters();
    }

    async fn hand_back(&self, delivery: &Delivery) {
        if let Err(error) = self.broker.release(delivery).await {
            tracing::warn!(task = %delivery.message.id, %error, "could not hand a task back; its lease will expire");
        }
    }

    /// Runs a delivery in `slot` and settles it. The slot is free again as
    /// soon as the task has run: writing its outcome is the broker's work,
    /// and holding a slot through that round trip would cap a worker at
    /// `concurrency` tasks per round trip.
    async fn execute(
        &self,
        delivery: &Delivery,
        slot: tokio::sync::OwnedSemaphorePermit,
        cancel: CancelToken,
        stop: &AtomicU8,
    ) {
        if stop_reason(stop) == Stop::Revoked {
            drop(slot);
            self.settle(delivery, Settlement::Revoked { meta: None })
                .await;
            return;
        }
        // A task is marked STARTED only once it has run for a moment: one
        // that ends sooner is settled in one write that records its start
        // too (and ends REVOKED if it was revoked before it started).
        let run = self.run_task(delivery, cancel, stop);
        tokio::pin!(run);
        let settlement = tokio::select! {
            settlement = &mut run => {
                drop(slot);
                settlement
            }
            () = tokio::time::sleep(MARK_STARTED_AFTER) => {
                let started = self.broker.mark_started(delivery, &self.config.name);
                let (settlement, started) = tokio::join!(
                    async {
                        let settlement = run.await;
                        drop(slot);
                        settlement
                    },
                    started
                );
                match started {
                    Ok(LeaseStatus::Held) => settlement,
                    Ok(LeaseStatus::Lost) => return,
                    Ok(LeaseStatus::Revoked) => Some(Settlement::Revoked {
                        meta: settlement.and_then(Settlement::into_meta),
                    }),
                    Err(error) => {
                        tracing::warn!(task = %delivery.message.id, %error, "could not mark a task started; its lease will expire");
                        return;
                    }
                }
            }
        };
        if let Some(settlement) = settlement {
            self.settle(delivery, settlement).await;
        }
    }

    /// Runs the task; `None` when the worker must not settle it (its lease
    /// was lost, or it went back to the queue at shutdown).
    async fn run_task(
        &self,
        delivery: &Delivery,
        cancel: CancelToken,
        stop: &AtomicU8,
    ) -> Option<Settlement> {
        let message = &delivery.message;
        let Some(plugin) = self.registry.resolve(&message.task) else {
            let failure = TaskFailure::UnknownTask {
                task: message.task.clone(),
            };
            let meta = self.meta(now_ms(), None, String::new());
            return Some(Settlement::Failure {
                failure,
                dead_letter: true,
                meta,
            });
        };
        let forwarder = Arc::new(ProgressForwarder {
            runtime: tokio::runtime::Handle::current(),
            broker: self.broker.clone(),
            delivery: delivery.clone(),
            started: std::sync::OnceLock::new(),
        });
        let request = TaskRequest {
            task_id: message.id.clone(),
            task_name: message.task.clone(),
            attempt: message.attempt,
            queue: message.queue.clone(),
            input: serde_json::to_vec(&message.input).unwrap_or_else(|_| b"null".to_vec()),
            limits: message.limits,
            may_raise_limits: message.may_raise_limits,
            acting_for: message.acting_for.clone(),
            cancel,
            progress: Some(Arc::new({
                let forwarder = forwarder.clone();
                move |p: &Progress| forwarder.report(p)
            })),
        };
        let started_ms = now_ms();
        let outcome = self.registry.runtime().execute(plugin, request).await;
        forwarder.stop();
        let meta = self.meta(
            started_ms,
            Some(outcome.stats),
            outcome.plugin_version.clone(),
        );
        let settlement = match outcome.result {
            Ok(bytes) => match TaskOutput::from_bytes(bytes) {
                Ok(output) => Settlement::Success { output, meta },
                Err(error) => Settlement::Failure {
                    failure: TaskFailure::Fatal {
                        message: error.to_string(),
                    },
                    dead_letter: true,
                    meta,
                },
            },
            Err(TaskFailure::Revoked) => match stop_reason(stop) {
                Stop::LeaseLost => return None,
                Stop::Shutdown => {
                    self.hand_back(delivery).await;
                    return None;
                }
                Stop::Revoked | Stop::None => Settlement::Revoked { meta: Some(meta) },
            },
            Err(failure @ TaskFailure::Retry { .. }) if message.attempt <= message.max_retries => {
                let requested = match &failure {
                    TaskFailure::Retry { delay_ms, .. } => delay_ms.map(Duration::from_millis),
                    _ => None,
                };
                let delay = self
                    .config
                    .retry
                    .delay(message.attempt, requested, jitter_unit());
                Settlement::Retry {
                    failure,
                    at_ms: now_ms() + delay.as_millis() as u64,
                    meta,
                }
            }
            Err(failure) => Settlement::Failure {
                failure,
                dead_letter: true,
                meta,
            },
        };
        Some(settlement)
    }

    fn meta(
        &self,
        started_ms: u64,
        stats: Option<hippo_task::ExecStats>,
        plugin_version: String,
    ) -> RunMeta {
        RunMeta {
            worker: self.config.name.clone(),
            started_ms,
            finished_ms: now_ms(),
            stats: stats.unwrap_or(hippo_task::ExecStats {
                fuel_used: None,
                peak_memory_bytes: 0,
                wall_time_us: 0,
                soft_limit_passed: false,
            }),
            plugin_version,
        }
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) {
        let counter = match &settlement {
            Settlement::Success { .. } => Some(&self.counters.succeeded),
            Settlement::Retry { .. } => Some(&self.counters.retried),
            Settlement::Failure { .. } => Some(&self.counters.failed),
            Settlement::Revoked { .. } => None,
        };
        match self.broker.settle(delivery, settlement).await {
            Ok(true) => {
                self.counters.processed.fetch_add(1, Ordering::Relaxed);
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(false) => {
                tracing::warn!(task = %delivery.message.id, "lease lost before the result was written; result discarded")
            }
            Err(error) => {
                tracing::warn!(task = %delivery.message.id, %error, "could not settle a task; its lease will expire and it will run again")
            }
        }
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

    /// Renews every held lease, interrupts tasks that were revoked or lost,
    /// and publishes the worker's own heartbeat.
    async fn beat(self: Arc<Self>) {
        let deliveries: Vec<Delivery> = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|h| h.delivery.clone())
            .collect();
        for delivery in deliveries {
            let why = match self.broker.heartbeat(&delivery, self.config.lease).await {
                Ok(LeaseStatus::Held) => continue,
                Ok(LeaseStatus::Revoked) => Stop::Revoked,
                Ok(LeaseStatus::Lost) => Stop::LeaseLost,
                Err(error) => {
                    tracing::warn!(task = %delivery.message.id, %error, "heartbeat failed");
                    continue;
                }
            };
            if let Some(held) = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&delivery.message.id)
            {
                held.interrupt(why);
            }
        }
        let heartbeat = self.heartbeat();
        if let Err(error) = self
            .broker
            .record_worker(&heartbeat, self.config.heartbeat_interval * 3)
            .await
        {
            tracing::warn!(%error, "could not publish the worker heartbeat");
        }
    }

    /// This worker's current report.
    pub fn heartbeat(&self) -> WorkerHeartbeat {
        let (cpu_seconds, rss_bytes) = process::usage();
        let active = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        WorkerHeartbeat {
            name: self.config.name.clone(),
            hostname: process::hostname(),
            pid: std::process::id(),
            queues: self.config.queues.clone(),
            concurrency: self.current.load(Ordering::Relaxed) as u32,
            active,
            processed: self.counters.processed.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            retried: self.counters.retried.load(Ordering::Relaxed),
            succeeded: self.counters.succeeded.load(Ordering::Relaxed),
            cpu_seconds,
            rss_bytes,
            started_ms: self.started_ms,
            heartbeat_ms: now_ms(),
        }
    }

    async fn maintain(self: Arc<Self>) {
        if let Err(error) = self.broker.maintain().await {
            tracing::warn!(%error, "broker maintenance failed");
        }
    }

    /// Grows concurrency to meet the work waiting while every slot is busy,
    /// and shrinks it by one slot a second while slots sit idle; within
    /// min..=max.
    async fn autoscale(self: Arc<Self>) {
        let current = self.current.load(Ordering::Relaxed);
        let idle = self.slots.available_permits();
        let waiting = self.held_count().saturating_sub(current - idle);
        if idle == 0 && waiting > 0 && current < self.config.concurrency {
            let grow = waiting.min(self.config.concurrency - current);
            self.slots.add_permits(grow);
            self.current.store(current + grow, Ordering::Relaxed);
        } else if idle > 1
            && waiting == 0
            && current > self.config.min_concurrency
            && let Ok(permit) = self.slots.try_acquire()
        {
            permit.forget();
            self.current.store(current - 1, Ordering::Relaxed);
        }
    }

    async fn follow_revocations(self: Arc<Self>, stop: Arc<Notify>) {
        let mut revocations = self.broker.revocations();
        let stopped = stop.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        loop {
            let task_id = tokio::select! {
                () = &mut stopped => return,
                received = revocations.recv() => match received {
                    Ok(task_id) => task_id,
                    // Missed messages are caught by the next heartbeat.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            };
            if let Some(held) = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&task_id)
            {
                held.interrupt(Stop::Revoked);
            }
        }
    }
}

/// Sends a running task's progress reports to the broker, from a task of
/// its own that starts with the first report: most tasks report none, and
/// a task per run would cost more than the run of a short one.
struct ProgressForwarder {
    runtime: tokio::runtime::Handle,
    broker: SharedBroker,
    delivery: Delivery,
    started: std::sync::OnceLock<(
        tokio::sync::watch::Sender<Option<Progress>>,
        tokio::task::AbortHandle,
    )>,
}

impl ProgressForwarder {
    /// Called from the task's thread with each report.
    fn report(&self, progress: &Progress) {
        let (latest, _) = self.started.get_or_init(|| {
            let (latest, reports) = tokio::sync::watch::channel(None);
            let forwarding = self.runtime.spawn(forward_progress(
                self.broker.clone(),
                self.delivery.clone(),
                reports,
            ));
            (latest, forwarding.abort_handle())
        });
        let _ = latest.send(Some(progress.clone()));
    }

    /// Stops forwarding once the task ended.
    fn stop(&self) {
        if let Some((_, forwarding)) = self.started.get() {
            forwarding.abort();
        }
    }
}

/// Sends the latest progress report to the broker, at most every 100 ms.
async fn forward_progress(
    broker: SharedBroker,
    delivery: Delivery,
    mut reports: tokio::sync::watch::Receiver<Option<Progress>>,
) {
    while reports.changed().await.is_ok() {
        let latest = reports.borrow_and_update().clone();
        if let Some(progress) = latest {
            let _ = broker.report_progress(&delivery, &progress).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A uniform number in [0, 1) for retry jitter.
fn jitter_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}
