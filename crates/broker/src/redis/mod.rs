//! Redis Streams backend, for many worker processes sharing one Redis.
//!
//! # Key layout (every key starts with the prefix, `hippo:` by default)
//! - `q:{queue}:{band}`: a stream per queue and priority band, read through
//!   the consumer group `hippo`. An entry carries only the task id (`id`)
//!   and holds a ready task: a consumer takes it out as it reads it (the
//!   lease tracks the task from then on, see `leases`). A task that finds
//!   a consumer waiting for it never enters a stream (see `waiting:` below).
//! - `task:{id}`: a hash with the task's record, one field per part (see
//!   below), so the scripts change states without decoding JSON.
//! - `delayed:{queue}`: a sorted set of tasks waiting for their ETA,
//!   countdown or retry time (score: when due, Unix ms).
//! - `leases`: a sorted set of leased task ids (score: lease expiry, Unix ms).
//! - `dead`: a sorted set of dead-lettered task ids (score: when they
//!   failed). A dead letter's record expires like any finished task's;
//!   `maintain` drops the ids whose record has expired.
//! - `idem:{key}`: the first task id seen with an idempotency key (expires
//!   after the idempotency window).
//! - `events` and `event-seq`: the bounded event log and its sequence
//!   counter. An entry holds the events of one script, numbered up to its
//!   id `{seq}-0`: field `at` (Unix ms) and field `e`, a JSON array of
//!   `[task id, state, task name, queue, worker, detail]`.
//! - `worker:{name}` (expiring) and `workers` (a set of names): worker heartbeats.
//! - `waiting:{queue}` (a list), `wait:{consumer}` and `room:{consumer}`
//!   (expiring) and `wait-seq`: consumers waiting for work and how many
//!   more tasks each takes, and `inbox:{consumer}` (a list) the tasks leased
//!   to them meanwhile. A task that becomes ready while a consumer of its
//!   queue waits is leased to that consumer in the same script and pushed to
//!   its inbox, which the consumer is blocked reading (`BLMPOP`): it gets the
//!   task in the same round trip, instead of waking up and then asking for
//!   it. The wait stands after that, until it brought as many tasks as the
//!   consumer asked for or its time is up, so a worker that got a task goes
//!   straight back to reading its inbox; one that stops reserving ends its
//!   wait with [`Broker::stop_waiting`].
//! - `kv:{key}` (the host's) and `kv:{namespace}/{key}` (a plugin's): the
//!   key-value store, plain strings with Redis TTLs; `kv-sizes:{namespace}`,
//!   `kv-bytes:{namespace}` and `kv-ttls:{namespace}`: each plugin
//!   namespace's usage, for its quota (see `kv.rs`, whose scripts keep
//!   time by the server's clock, the one Redis expires keys by).
//! - channels `done` (`{id}\n{record}` for tasks that reached a terminal
//!   state, the record as a JSON object when under 4 KiB, so a
//!   [`Broker::wait`] needs no read of its own) and
//!   `revoked` (ids of running tasks revoked). A process follows `done` only
//!   once it submits or waits (see `notify.rs`).
//!
//! Task hash fields: `msg` (the [`TaskMessage`] JSON), `name`, `queue`,
//! `band`, `expires` (copies the scripts read), `state` (Celery name),
//! `phase` (`ready` in a stream, `delayed`, `leased` or `done`), `gen` (the
//! fencing generation), `receipt` (the stream entry it is or was last in;
//! an entry leaves its stream when a consumer takes it),
//! `consumer` (the lease holder), `worker`, `result`, `error`, `progress`,
//! `last_run` (JSON), `runs`, `updated` (Unix ms), `revoked` and `dead`
//! (flags).
//!
//! Every change of a task is one Lua script, so it is atomic and any number
//! of processes may run the same operation (including [`Broker::maintain`])
//! concurrently. Submissions, starts and settlements of one process that
//! come together go to Redis in one script call (`writes.rs`): Redis spends
//! more on starting a script than on most of what one write does, so a busy
//! process pays that once per group. Times are the caller's clock
//! (`now_ms`), like the ETAs callers submit. Keys are built inside the
//! scripts from the prefix, so this backend targets a single Redis (or a
//! primary with replicas), not Redis Cluster.

use super::{
    Band, BrokerConfig, BrokerError, Delivery, Event, LeaseStatus, QueueStats, RevokeOutcome,
    RunMeta, Settlement, Submitted, TaskMessage, TaskOutput, TaskQueue, TaskRecord, TaskState,
    WorkerHeartbeat, new_task_id, now_ms,
};
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSubStream};
use redis::{AsyncConnectionConfig, Client, RedisError, Script, ScriptInvocation, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// Key prefix when none is given.
pub const DEFAULT_PREFIX: &str = "hippo:";

/// Tasks a housekeeping script handles per call (calls repeat until done).
const BATCH: usize = 500;

/// How often one process prunes idle consumers, and after how long idle.
const PRUNE_EVERY_MS: u64 = 60_000;
const CONSUMER_IDLE_MS: u64 = 3_600_000;

/// How long before its end a standing wait is no longer trusted: Redis
/// expires it on its own clock, a moment after ours.
const STANDING_MARGIN: Duration = Duration::from_millis(20);

/// Idle connections kept for blocking reads.
const MAX_IDLE_BLOCKING: usize = 16;

/// Event details longer than this are cut.
const MAX_DETAIL: usize = 500;

mod dead_letters;
mod history;
mod inspection;
mod kv;
mod notify;
mod records;
mod scripts;
mod workers;
mod writes;

use notify::*;
use records::*;
use scripts::Scripts;
use writes::Writes;

// ---------------------------------------------------------------------------
// The broker.
// ---------------------------------------------------------------------------

/// The Redis Streams backend (see the module documentation for the layout).
pub struct RedisBroker {
    config: BrokerConfig,
    prefix: String,
    client: Client,
    /// Non-blocking commands and scripts (reconnects by itself).
    conn: ConnectionManager,
    /// Connections for blocking reads, one per waiting `reserve`.
    blocking: Mutex<Vec<MultiplexedConnection>>,
    /// This process's consumers registered as waiting, by name.
    standing: Mutex<HashMap<String, Standing>>,
    scripts: Scripts,
    /// Submissions, starts and settlements, sent in groups.
    writes: Writes,
    notifications: Arc<Notifications>,
    relay: tokio::task::JoinHandle<()>,
    /// When this process last pruned idle consumers (Unix ms).
    last_prune_ms: AtomicU64,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.prefix)
            .field("server", &self.client.get_connection_info().addr())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

fn storage(e: RedisError) -> BrokerError {
    BrokerError::storage(e)
}

fn corrupt(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Corrupt(what.to_string())
}

fn to_json<T: Serialize>(value: &T) -> Result<String, BrokerError> {
    serde_json::to_string(value).map_err(|e| corrupt(format!("encoding JSON: {e}")))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// A consumer's registration as waiting for work (see the RESERVE script),
/// as this process knows it.
struct Standing {
    queues: Vec<String>,
    lease: Duration,
    /// When the registration ends (at the latest).
    until: Instant,
    /// How many more tasks it may bring.
    room: usize,
}

/// The arguments of the SETTLE script ('' for what does not apply).
struct SettleArgs {
    outcome: TaskState,
    result: String,
    error: String,
    last_run: String,
    worker: String,
    detail: String,
    next: String,
    at_ms: u64,
    dead_letter: bool,
    /// Whether the task ran (it has run metadata).
    ran: bool,
    /// The run's log (JSON), for the history; empty when it logged nothing.
    log: String,
}

impl SettleArgs {
    fn new(outcome: TaskState, meta: Option<&RunMeta>) -> Result<Self, BrokerError> {
        Ok(SettleArgs {
            outcome,
            result: String::new(),
            error: String::new(),
            last_run: meta
                .map(|m| to_json(&m.without_log()))
                .transpose()?
                .unwrap_or_default(),
            worker: meta.map(|m| m.worker.clone()).unwrap_or_default(),
            detail: String::new(),
            next: String::new(),
            at_ms: 0,
            dead_letter: false,
            ran: meta.is_some(),
            log: match meta {
                Some(meta) if !meta.log.is_empty() => to_json(&meta.log)?,
                _ => String::new(),
            },
        })
    }
}

fn lease_status(code: i64) -> Result<LeaseStatus, BrokerError> {
    match code {
        0 => Ok(LeaseStatus::Lost),
        1 => Ok(LeaseStatus::Held),
        2 => Ok(LeaseStatus::Revoked),
        other => Err(corrupt(format!("unexpected lease status {other}"))),
    }
}

impl RedisBroker {
    /// Connects with the default key prefix (`hippo:`).
    pub async fn connect(url: &str, config: BrokerConfig) -> Result<Self, BrokerError> {
        Self::connect_with_prefix(url, config, DEFAULT_PREFIX).await
    }

    /// Connects with all keys under `prefix` (several independent brokers,
    /// e.g. tests, can share one Redis this way).
    pub async fn connect_with_prefix(
        url: &str,
        config: BrokerConfig,
        prefix: &str,
    ) -> Result<Self, BrokerError> {
        let client = Client::open(url).map_err(storage)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let conn = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(storage)?;
        let channels = Channels {
            done: format!("{prefix}done"),
            revoked: format!("{prefix}revoked"),
        };
        // Subscribed before the constructor returns, so no revocation is missed.
        let (notifications, stream) = subscribe(&client, channels, config.result_expires)
            .await
            .map_err(storage)?;
        let relay = tokio::spawn(relay(client.clone(), notifications.clone(), stream));
        let scripts = Scripts::new();
        let writes = Writes::new(
            conn.clone(),
            scripts.writes.clone(),
            prefix.to_owned(),
            config.event_log_capacity,
            millis(config.result_expires).max(1),
        );
        let broker = RedisBroker {
            config,
            prefix: prefix.to_owned(),
            client,
            conn,
            blocking: Mutex::new(Vec::new()),
            standing: Mutex::default(),
            scripts,
            writes,
            notifications,
            relay,
            last_prune_ms: AtomicU64::new(0),
        };
        broker.create_groups().await?;
        Ok(broker)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of a task's record hash.
    pub fn task_key(&self, task_id: &str) -> String {
        format!("{}task:{task_id}", self.prefix)
    }

    fn stream_key(&self, queue: &str, band: Band) -> String {
        format!("{}q:{queue}:{}", self.prefix, band.as_str())
    }

    fn delayed_key(&self, queue: &str) -> String {
        format!("{}delayed:{queue}", self.prefix)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The streams of `queues` in the order they are drained.
    fn streams(&self, queues: &[String]) -> Vec<String> {
        queues
            .iter()
            .flat_map(|q| Band::ALL.map(|band| self.stream_key(q, band)))
            .collect()
    }

    fn check_queue(&self, queue: &str) -> Result<(), BrokerError> {
        if self.config.queues.iter().any(|q| q == queue) {
            Ok(())
        } else {
            Err(BrokerError::UnknownQueue(queue.to_owned()))
        }
    }

    fn con(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Creates every stream and its consumer group (existing ones are kept).
    async fn create_groups(&self) -> Result<(), BrokerError> {
        let mut con = self.con();
        for key in self.streams(&self.config.queues) {
            let created: Result<Value, RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&key)
                .arg("hippo")
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut con)
                .await;
            match created {
                Ok(_) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(storage(e)),
            }
        }
        Ok(())
    }

    /// An invocation of `script` with the common arguments.
    fn invocation<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(now_ms())
            .arg(self.config.event_log_capacity)
            .arg(millis(self.config.result_expires).max(1));
        inv
    }

    /// Applies one write of the `WRITES` script (its kind, then its
    /// arguments) and returns its reply.
    async fn write<T: redis::FromRedisValue>(&self, args: Vec<String>) -> Result<T, BrokerError> {
        let value = self.writes.write(args).await?;
        redis::from_redis_value(value).map_err(|e| corrupt(format!("redis write reply: {e}")))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, BrokerError> {
        inv.invoke_async(&mut self.con()).await.map_err(storage)
    }

    /// Reads several task records (missing ones are skipped).
    async fn records(&self, ids: &[String]) -> Result<Vec<TaskRecord>, BrokerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.task_key(id));
        }
        let hashes: Vec<HashMap<String, String>> =
            pipe.query_async(&mut self.con()).await.map_err(storage)?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, h) in ids.iter().zip(&hashes) {
            out.extend(decode_record(id, h)?);
        }
        Ok(out)
    }

    /// The number of the oldest event the log keeps: it keeps the newest
    /// `event_log_capacity`.
    async fn oldest_event(&self) -> Result<u64, BrokerError> {
        let last = self.newest_event().await?;
        Ok((last + 1).saturating_sub(self.config.event_log_capacity))
    }

    /// The number of the newest event (0 before the first).
    async fn newest_event(&self) -> Result<u64, BrokerError> {
        let last: Option<u64> = redis::cmd("GET")
            .arg(self.key("event-seq"))
            .query_async(&mut self.con())
            .await
            .map_err(storage)?;
        Ok(last.unwrap_or(0))
    }

    /// Waits (up to `wait`) for tasks handed to `consumer` (see the RESERVE
    /// script) and takes up to `max` of them, on a connection of its own: a
    /// blocking read would stall every other command on the shared
    /// multiplexed connection. Returns the inbox entries,
    /// `{entry id}\n{generation}\n{message}`.
    async fn wait_in_inbox(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<String>, BrokerError> {
        let idle = self
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let mut con = match idle {
            Some(con) => con,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(None);
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(storage)?
            }
        };
        let mut cmd = redis::cmd("BLMPOP");
        cmd.arg(wait.as_secs_f64().max(0.001))
            .arg(1)
            .arg(self.key(&format!("inbox:{consumer}")))
            .arg("LEFT")
            .arg("COUNT")
            .arg(max.max(1));
        // A guard against a server that never answers; the connection is
        // then dropped rather than reused.
        let reply = tokio::time::timeout(
            wait + Duration::from_secs(5),
            cmd.query_async::<Option<(String, Vec<String>)>>(&mut con),
        )
        .await;
        match reply {
            Ok(Ok(popped)) => {
                let mut idle = self.blocking.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < MAX_IDLE_BLOCKING {
                    idle.push(con);
                }
                Ok(popped.map(|(_, handed)| handed).unwrap_or_default())
            }
            Ok(Err(e)) => Err(storage(e)),
            Err(_) => Err(BrokerError::storage("redis: blocking read timed out")),
        }
    }

    fn standing_waits(&self) -> MutexGuard<'_, HashMap<String, Standing>> {
        // A panic while holding this lock leaves the map consistent.
        self.standing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rest of `consumer`'s standing wait on exactly `queues` with
    /// `lease`: how long it lasts and how many tasks it may still bring.
    fn standing(
        &self,
        consumer: &str,
        queues: &[String],
        lease: Duration,
    ) -> Option<(Duration, usize)> {
        let standing = self.standing_waits();
        let wait = standing.get(consumer)?;
        // `None` rather than an overflow when less than the margin is left.
        let left = wait
            .until
            .checked_duration_since(Instant::now())?
            .checked_sub(STANDING_MARGIN)?;
        (wait.queues == queues && wait.lease == lease && wait.room > 0 && !left.is_zero())
            .then_some((left, wait.room))
    }

    /// Counts `taken` tasks against `consumer`'s standing wait; it ends
    /// when it brought all it was registered for.
    fn took_from_standing(&self, consumer: &str, taken: usize) {
        let mut standing = self.standing_waits();
        if let Some(wait) = standing.get_mut(consumer) {
            wait.room = wait.room.saturating_sub(taken);
            if wait.room == 0 {
                standing.remove(consumer);
            }
        }
    }

    /// Runs a `{moved, scanned}` housekeeping script until it scans less than a batch.
    async fn drain<'s>(
        &'s self,
        mut call: impl FnMut() -> ScriptInvocation<'s>,
    ) -> Result<u64, BrokerError> {
        let mut total = 0;
        loop {
            let (moved, scanned): (u64, u64) = self.run(&call()).await?;
            total += moved;
            if scanned < BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

#[async_trait::async_trait]
impl TaskQueue for RedisBroker {
    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    async fn submit(&self, message: TaskMessage) -> Result<Submitted, BrokerError> {
        self.check_queue(&message.queue)?;
        let args = vec![
            "submit".to_owned(),
            message.id.clone(),
            to_json(&message)?,
            message.task.clone(),
            message.queue.clone(),
            message.band().as_str().to_owned(),
            message
                .expires_ms
                .map(|t| t.to_string())
                .unwrap_or_default(),
            message.eta_ms.map(|t| t.to_string()).unwrap_or_default(),
            message.idempotency_key.clone().unwrap_or_default(),
            millis(self.config.idempotency_window).max(1).to_string(),
        ];
        // Followed and tracked before the submission, so that its end,
        // however soon, is heard: a `wait` for it then reads nothing.
        self.notifications.follow_results().await.map_err(storage)?;
        self.notifications.track(&message.id);
        let written: Result<(String, i64), _> = self.write(args).await;
        let (task_id, created) =
            written.inspect_err(|_| self.notifications.untrack(&message.id))?;
        if created != 1 || task_id != message.id {
            self.notifications.untrack(&message.id);
        }
        Ok(Submitted {
            task_id,
            created: created == 1,
        })
    }

    async fn reserve(
        &self,
        consumer: &str,
        queues: &[String],
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        for queue in queues {
            self.check_queue(queue)?;
        }
        if max == 0 || queues.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        // A standing wait (see below) brings everything new on our queues
        // to our inbox: there is nothing else to look at.
        if let Some((left, room)) = self
            .standing(consumer, queues, lease)
            .filter(|_| !wait.is_zero())
        {
            let handed = self
                .wait_in_inbox(consumer, max.min(room), left.min(wait))
                .await?;
            self.took_from_standing(consumer, handed.len());
            if !handed.is_empty() || wait < left {
                return handed.iter().map(|h| handed_over(consumer, h)).collect();
            }
        }
        let streams = self.streams(queues);
        loop {
            // With time left, the script registers us as waiting when it
            // finds nothing; without, it ends our wait. A registration
            // stands until the wait ends or it brought `max` tasks, also
            // after this call returns: the next one then reads the inbox.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let registered_at = Instant::now();
            let mut inv = self.invocation(&self.scripts.reserve);
            inv.key(&streams)
                .arg(consumer)
                .arg(max)
                .arg(millis(lease).max(1))
                .arg(millis(remaining))
                .arg(queues);
            let reply: Vec<String> = self.run(&inv).await?;
            if !reply.is_empty() || remaining.is_zero() {
                self.standing_waits().remove(consumer);
                return reserved(consumer, &reply);
            }
            self.standing_waits().insert(
                consumer.to_owned(),
                Standing {
                    queues: queues.to_vec(),
                    lease,
                    until: registered_at + remaining,
                    room: max,
                },
            );
            let handed = self.wait_in_inbox(consumer, max, remaining).await?;
            if !handed.is_empty() {
                self.took_from_standing(consumer, handed.len());
                return handed.iter().map(|h| handed_over(consumer, h)).collect();
            }
        }
    }

    async fn stop_waiting(
        &self,
        consumer: &str,
        queues: &[String],
    ) -> Result<Vec<Delivery>, BrokerError> {
        for queue in queues {
            self.check_queue(queue)?;
        }
        self.standing_waits().remove(consumer);
        // Taking nothing new and not waiting: the script ends the wait and
        // returns the inbox.
        let mut inv = self.invocation(&self.scripts.reserve);
        inv.arg(consumer).arg(0).arg(1).arg(0).arg(queues);
        let reply: Vec<String> = self.run(&inv).await?;
        reserved(consumer, &reply)
    }

    async fn heartbeat(
        &self,
        delivery: &Delivery,
        lease: Duration,
    ) -> Result<LeaseStatus, BrokerError> {
        let mut inv = self.invocation(&self.scripts.heartbeat);
        inv.arg(&delivery.message.id)
            .arg(delivery.generation)
            .arg(millis(lease).max(1));
        lease_status(self.run(&inv).await?)
    }

    async fn mark_started(
        &self,
        delivery: &Delivery,
        worker: &str,
    ) -> Result<LeaseStatus, BrokerError> {
        let args = vec![
            "start".to_owned(),
            delivery.message.id.clone(),
            delivery.generation.to_string(),
            worker.to_owned(),
        ];
        lease_status(self.write(args).await?)
    }

    async fn report_progress(
        &self,
        delivery: &Delivery,
        progress: &hippo_task::Progress,
    ) -> Result<LeaseStatus, BrokerError> {
        let detail = match &progress.message {
            Some(note) => format!("{}/{}: {note}", progress.done, progress.total),
            None => format!("{}/{}", progress.done, progress.total),
        };
        let mut inv = self.invocation(&self.scripts.progress);
        inv.arg(&delivery.message.id)
            .arg(delivery.generation)
            .arg(to_json(progress)?)
            .arg(truncate(detail));
        lease_status(self.run(&inv).await?)
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: Settlement,
    ) -> Result<bool, BrokerError> {
        let args = match &settlement {
            Settlement::Success { output, meta } => SettleArgs {
                result: output.as_str().to_owned(),
                ..SettleArgs::new(TaskState::Success, Some(meta))?
            },
            Settlement::Retry {
                failure,
                at_ms,
                meta,
            } => {
                let mut next = delivery.message.clone();
                next.attempt += 1;
                SettleArgs {
                    error: to_json(failure)?,
                    detail: format!("attempt {} at {at_ms}: {failure}", next.attempt),
                    next: to_json(&next)?,
                    at_ms: *at_ms,
                    ..SettleArgs::new(TaskState::Retry, Some(meta))?
                }
            }
            Settlement::Failure {
                failure,
                dead_letter,
                meta,
            } => SettleArgs {
                error: to_json(failure)?,
                detail: failure.to_string(),
                dead_letter: *dead_letter,
                ..SettleArgs::new(TaskState::Failure, Some(meta))?
            },
            Settlement::Revoked { meta } => SettleArgs {
                detail: "revoked".to_owned(),
                ..SettleArgs::new(TaskState::Revoked, meta.as_ref())?
            },
        };
        // The history's keys for this outcome, made here rather than in
        // the script (see `remember` in scripts.rs).
        let index_keys = crate::history::Facet::of(&delivery.message.task, args.outcome)
            .map(|facet| self.key(&format!("hist:ix:{}", facet.key())));
        let mut args = vec![
            "settle".to_owned(),
            delivery.message.id.clone(),
            delivery.generation.to_string(),
            args.outcome.as_str().to_owned(),
            args.result,
            args.error,
            args.last_run,
            args.worker,
            truncate(args.detail),
            args.next,
            args.at_ms.to_string(),
            if args.dead_letter { "1" } else { "0" }.to_owned(),
            if args.ran { "1" } else { "0" }.to_owned(),
            args.log,
            self.key(&format!("hist:{}", delivery.message.id)),
        ];
        args.extend(index_keys);
        let settled: i64 = self.write(args).await?;
        Ok(settled == 1)
    }

    async fn release(&self, delivery: &Delivery) -> Result<bool, BrokerError> {
        let mut inv = self.invocation(&self.scripts.release);
        inv.arg(&delivery.message.id).arg(delivery.generation);
        let released: i64 = self.run(&inv).await?;
        Ok(released == 1)
    }

    async fn revoke(&self, task_id: &str) -> Result<RevokeOutcome, BrokerError> {
        let mut inv = self.invocation(&self.scripts.revoke);
        inv.arg(task_id);
        match self.run::<i64>(&inv).await? {
            0 => Ok(RevokeOutcome::Queued),
            1 => Ok(RevokeOutcome::Running),
            2 => Ok(RevokeOutcome::AlreadyFinished),
            3 => Ok(RevokeOutcome::Unknown),
            other => Err(corrupt(format!("unexpected revoke outcome {other}"))),
        }
    }

    fn revocations(&self) -> broadcast::Receiver<String> {
        self.notifications.revocations.subscribe()
    }

    async fn purge(&self, queue: &str) -> Result<u64, BrokerError> {
        self.check_queue(queue)?;
        let streams = self.streams(&[queue.to_owned()]);
        let mut total = 0;
        loop {
            let mut inv = self.invocation(&self.scripts.purge);
            inv.key(&streams).arg(BATCH);
            let (purged, scanned): (u64, u64) = self.run(&inv).await?;
            total += purged;
            if scanned < BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn maintain(&self) -> Result<u64, BrokerError> {
        let mut moved = 0;
        for queue in &self.config.queues {
            moved += self
                .drain(|| {
                    let mut inv = self.invocation(&self.scripts.promote);
                    inv.arg(queue).arg(BATCH);
                    inv
                })
                .await?;
        }
        moved += self
            .drain(|| {
                let mut inv = self.invocation(&self.scripts.reclaim);
                inv.arg(BATCH);
                inv
            })
            .await?;
        // Writes trim the event log by whole nodes; this trims it to the
        // entries that hold one of the newest events.
        let oldest = self.oldest_event().await?;
        let _: i64 = redis::cmd("XTRIM")
            .arg(self.key("events"))
            .arg("MINID")
            .arg(oldest)
            .query_async(&mut self.con())
            .await
            .map_err(storage)?;
        // Dead letters whose record expired (they failed before the cut-off).
        let cutoff = now_ms().saturating_sub(millis(self.config.result_expires));
        let _: i64 = redis::cmd("ZREMRANGEBYSCORE")
            .arg(self.key("dead"))
            .arg("-inf")
            .arg(format!("({cutoff}"))
            .query_async(&mut self.con())
            .await
            .map_err(storage)?;
        let now = now_ms();
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= PRUNE_EVERY_MS
            && self
                .last_prune_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let mut inv = self.invocation(&self.scripts.prune_consumers);
            inv.key(self.streams(&self.config.queues))
                .arg(CONSUMER_IDLE_MS);
            let _: i64 = self.run(&inv).await?;
        }
        self.prune_history().await?;
        // Finished records, idempotency keys and worker heartbeats expire by TTL.
        Ok(moved)
    }
}

#[cfg(test)]
mod tests;
