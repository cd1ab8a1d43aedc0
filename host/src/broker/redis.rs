//! Redis Streams backend, for many worker processes sharing one Redis.
//!
//! # Key layout (every key starts with the prefix, `hippo:` by default)
//! - `q:{queue}:{band}`: a stream per queue and priority band, read through
//!   the consumer group `hippo`. An entry carries only the task id (`id`).
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
//! - `events` and `event-seq`: the bounded event log (a stream whose entry
//!   ids are `{seq}-0`) and its sequence counter.
//! - `worker:{name}` (expiring) and `workers` (a set of names): worker heartbeats.
//! - channels `done` (ids of tasks that reached a terminal state, for
//!   [`Broker::wait`]) and `revoked` (ids of running tasks revoked).
//!
//! Task hash fields: `msg` (the [`TaskMessage`] JSON), `name`, `queue`,
//! `band`, `expires` (copies the scripts read), `state` (Celery name),
//! `phase` (`ready` in a stream, `delayed`, `leased` or `done`), `gen` (the
//! fencing generation), `receipt` (its stream entry while ready or leased),
//! `consumer` (the lease holder), `worker`, `result`, `error`, `progress`,
//! `last_run` (JSON), `runs`, `updated` (Unix ms), `revoked` and `dead`
//! (flags).
//!
//! Every change of a task is one Lua script, so it is atomic and any number
//! of processes may run the same operation (including [`Broker::maintain`])
//! concurrently. Times are the caller's clock (`now_ms`), like the ETAs
//! callers submit. Keys are built inside the scripts from the prefix, so
//! this backend targets a single Redis (or a primary with replicas), not
//! Redis Cluster.

use super::{
    Band, Broker, BrokerConfig, BrokerError, Delivery, Event, LeaseStatus, QueueStats,
    RevokeOutcome, RunMeta, Settlement, Submitted, TaskMessage, TaskRecord, TaskState,
    WorkerHeartbeat, now_ms,
};
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSubStream};
use redis::{AsyncConnectionConfig, Client, RedisError, Script, ScriptInvocation, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
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

/// Idle connections kept for blocking reads.
const MAX_IDLE_BLOCKING: usize = 16;

/// Event details longer than this are cut.
const MAX_DETAIL: usize = 500;

// ---------------------------------------------------------------------------
// Lua scripts. Each is PRELUDE followed by its body; every invocation passes
// the four common arguments first (see `RedisBroker::invocation`).
// ---------------------------------------------------------------------------

/// Shared helpers. ARGV[1] key prefix, ARGV[2] now (Unix ms), ARGV[3] event
/// log capacity, ARGV[4] result_expires (ms).
const PRELUDE: &str = r#"
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local EVENT_CAP = tonumber(ARGV[3])
local RESULT_TTL = tonumber(ARGV[4])
local GROUP = 'hippo'
local LEASES = P .. 'leases'

local function task_key(id) return P .. 'task:' .. id end
local function stream_key(queue, band) return P .. 'q:' .. queue .. ':' .. band end
local function delayed_key(queue) return P .. 'delayed:' .. queue end

-- Appends a state change to the bounded event log (entry id = seq).
local function event(id, state, worker, detail)
  local f = redis.call('HMGET', task_key(id), 'name', 'queue', 'worker')
  local seq = redis.call('INCR', P .. 'event-seq')
  redis.call('XADD', P .. 'events', 'MAXLEN', EVENT_CAP, seq .. '-0',
    'at', NOW, 'id', id, 'task', f[1] or '', 'queue', f[2] or '', 'state', state,
    'worker', worker or f[3] or '', 'detail', detail or '')
end

-- Acknowledges and deletes a stream entry (a no-op when it is gone).
local function drop_entry(skey, eid)
  if eid then
    redis.call('XACK', skey, GROUP, eid)
    redis.call('XDEL', skey, eid)
  end
end

-- Appends a task to its stream, ready to be taken.
local function enqueue(id, queue, band)
  local eid = redis.call('XADD', stream_key(queue, band), '*', 'id', id)
  redis.call('HSET', task_key(id), 'phase', 'ready', 'receipt', eid)
end

-- Ends a task for good: terminal state, record expiry, waiters notified.
local function finish(id, state, worker, detail)
  local t = task_key(id)
  redis.call('HSET', t, 'state', state, 'phase', 'done', 'updated', NOW)
  redis.call('HDEL', t, 'receipt', 'consumer')
  redis.call('ZREM', LEASES, id)
  redis.call('PEXPIRE', t, RESULT_TTL)
  event(id, state, worker, detail)
  redis.call('PUBLISH', P .. 'done', id)
end

-- The fields of a task whose current lease is generation `gen`, else nil:
-- {phase, gen, queue, band, receipt, revoked}.
local function holder(id, gen)
  local f = redis.call('HMGET', task_key(id), 'phase', 'gen', 'queue', 'band', 'receipt', 'revoked')
  if f[1] ~= 'leased' or f[2] ~= gen then return nil end
  return f
end

-- Entries of `key` never delivered to the group (which is created when
-- missing), at most `count`; nil when there are none.
local function read_new(key, consumer, count)
  local res = redis.pcall('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', count, 'STREAMS', key, '>')
  if type(res) == 'table' and res.err then
    if not string.find(res.err, 'NOGROUP', 1, true) then error(res.err) end
    redis.call('XGROUP', 'CREATE', key, GROUP, '0', 'MKSTREAM')
    res = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', count, 'STREAMS', key, '>')
  end
  if not res or #res[1][2] == 0 then return nil end
  return res[1][2]
end
"#;

/// Accepts a task. ARGV[5] id, [6] message JSON, [7] task name, [8] queue,
/// [9] band, [10] expires (ms or ''), [11] ETA (ms or ''), [12] idempotency
/// key or '', [13] idempotency window (ms). Returns {task id, created 0/1}.
const SUBMIT: &str = r#"
local id, queue, idem = ARGV[5], ARGV[8], ARGV[12]
if idem ~= '' then
  local ikey = P .. 'idem:' .. idem
  local first = redis.call('GET', ikey)
  if first then return {first, 0} end
  redis.call('SET', ikey, id, 'PX', ARGV[13])
end
local t = task_key(id)
if redis.call('EXISTS', t) == 1 then return {id, 0} end
redis.call('HSET', t, 'msg', ARGV[6], 'name', ARGV[7], 'queue', queue, 'band', ARGV[9],
  'expires', ARGV[10], 'state', 'PENDING', 'gen', 0, 'runs', 0, 'updated', NOW)
local eta = tonumber(ARGV[11])
if eta and eta > NOW then
  redis.call('HSET', t, 'phase', 'delayed')
  redis.call('ZADD', delayed_key(queue), eta, id)
  event(id, 'PENDING', nil, 'eta ' .. ARGV[11])
else
  enqueue(id, queue, ARGV[9])
  event(id, 'PENDING', nil, nil)
end
return {id, 1}
"#;

/// Takes up to ARGV[6] ready tasks from the streams in KEYS (priority order)
/// for consumer ARGV[5] under a lease of ARGV[7] ms: each gets a new
/// generation, state RECEIVED and a lease. Entries of revoked, expired or
/// vanished tasks are dropped on the way (the task settled REVOKED).
/// Returns {'1', entry id, message JSON, generation, ...} when it took any,
/// else {'0', newest entry id of each stream} (cursors for XREAD BLOCK).
const RESERVE: &str = r#"
local consumer = ARGV[5]
local max = tonumber(ARGV[6])
local lease_until = NOW + tonumber(ARGV[7])
local out = {'1'}
local taken = 0
for _, key in ipairs(KEYS) do
  while taken < max do
    local entries = read_new(key, consumer, max - taken)
    if not entries then break end
    for _, entry in ipairs(entries) do
      local eid, id = entry[1], entry[2][2]
      local f = {}
      if id then f = redis.call('HMGET', task_key(id), 'phase', 'receipt', 'revoked', 'expires', 'msg') end
      if f[1] == 'ready' and f[2] == eid then
        if f[3] then
          drop_entry(key, eid)
          finish(id, 'REVOKED', nil, 'revoked')
        elseif f[4] and f[4] ~= '' and tonumber(f[4]) < NOW then
          drop_entry(key, eid)
          finish(id, 'REVOKED', nil, 'expired')
        else
          local t = task_key(id)
          local gen = redis.call('HINCRBY', t, 'gen', 1)
          redis.call('HSET', t, 'phase', 'leased', 'state', 'RECEIVED', 'consumer', consumer,
            'worker', consumer, 'updated', NOW)
          redis.call('ZADD', LEASES, lease_until, id)
          event(id, 'RECEIVED', consumer, nil)
          out[#out + 1] = eid
          out[#out + 1] = f[5]
          out[#out + 1] = tostring(gen)
          taken = taken + 1
        end
      else
        -- A stale entry: the task moved on (or is gone).
        drop_entry(key, eid)
      end
    end
  end
  if taken >= max then break end
end
if taken > 0 then return out end
local cursors = {'0'}
for i, key in ipairs(KEYS) do
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  cursors[i + 1] = (last[1] and last[1][1]) or '0-0'
end
return cursors
"#;

/// Extends a lease. ARGV[5] id, [6] generation, [7] lease (ms).
/// Returns 0 lost, 1 held, 2 revoked.
const HEARTBEAT: &str = r#"
local f = holder(ARGV[5], ARGV[6])
if not f then return 0 end
redis.call('ZADD', LEASES, NOW + tonumber(ARGV[7]), ARGV[5])
if f[6] then return 2 end
return 1
"#;

/// Marks a leased task STARTED on worker ARGV[7] (not when revoked).
/// ARGV[5] id, [6] generation. Returns as HEARTBEAT.
const MARK_STARTED: &str = r#"
local id = ARGV[5]
local f = holder(id, ARGV[6])
if not f then return 0 end
if f[6] then return 2 end
redis.call('HSET', task_key(id), 'state', 'STARTED', 'worker', ARGV[7], 'updated', NOW)
event(id, 'STARTED', ARGV[7], nil)
return 1
"#;

/// Stores a progress report (not when revoked): state PROGRESS, and an
/// event on the first report only, so a chatty task cannot flush the
/// bounded event log. ARGV[5] id, [6] generation, [7] progress JSON,
/// [8] event detail. Returns as HEARTBEAT.
const PROGRESS: &str = r#"
local id = ARGV[5]
local f = holder(id, ARGV[6])
if not f then return 0 end
if f[6] then return 2 end
local t = task_key(id)
local before = redis.call('HGET', t, 'state')
redis.call('HSET', t, 'state', 'PROGRESS', 'progress', ARGV[7], 'updated', NOW)
if before ~= 'PROGRESS' then event(id, 'PROGRESS', nil, ARGV[8]) end
return 1
"#;

/// Ends a delivery, fenced by generation. ARGV[5] id, [6] generation,
/// [7] outcome (SUCCESS, RETRY, FAILURE, REVOKED), [8] result JSON or '',
/// [9] error JSON or '', [10] run metadata JSON or '', [11] worker or '',
/// [12] event detail, [13] next attempt's message JSON (RETRY), [14] when
/// the next attempt is due (RETRY), [15] '1' to dead-letter (FAILURE).
/// The stream entry is acknowledged, the lease cleared and the run counted.
/// A retry of a revoked task ends it REVOKED. A dead letter expires with its
/// record. Returns 1, or 0 (nothing changed) when the caller does not hold
/// the current lease.
const SETTLE: &str = r#"
local id = ARGV[5]
local f = holder(id, ARGV[6])
if not f then return 0 end
local t = task_key(id)
local outcome = ARGV[7]
local worker = nil
if ARGV[11] ~= '' then worker = ARGV[11] end
drop_entry(stream_key(f[3], f[4]), f[5])
if ARGV[8] ~= '' then redis.call('HSET', t, 'result', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', t, 'error', ARGV[9]) end
if ARGV[10] ~= '' then redis.call('HSET', t, 'last_run', ARGV[10]) else redis.call('HDEL', t, 'last_run') end
redis.call('HINCRBY', t, 'runs', 1)
if worker then redis.call('HSET', t, 'worker', worker) end
if outcome == 'SUCCESS' then redis.call('HDEL', t, 'error') end
if outcome == 'RETRY' and f[6] then outcome = 'REVOKED' end
if outcome == 'RETRY' then
  redis.call('HSET', t, 'state', 'RETRY', 'phase', 'delayed', 'msg', ARGV[13], 'updated', NOW)
  redis.call('HDEL', t, 'receipt', 'consumer')
  redis.call('ZREM', LEASES, id)
  redis.call('ZADD', delayed_key(f[3]), ARGV[14], id)
  event(id, 'RETRY', worker, ARGV[12])
  return 1
end
finish(id, outcome, worker, ARGV[12])
if outcome == 'FAILURE' and ARGV[15] == '1' then
  redis.call('HSET', t, 'dead', '1')
  redis.call('ZADD', P .. 'dead', NOW, id)
end
return 1
"#;

/// Hands a delivery back to the tail of its stream without counting an
/// attempt (a revoked one ends REVOKED). ARGV[5] id, [6] generation.
/// Returns 1, or 0 when the caller does not hold the current lease.
const RELEASE: &str = r#"
local id = ARGV[5]
local f = holder(id, ARGV[6])
if not f then return 0 end
drop_entry(stream_key(f[3], f[4]), f[5])
if f[6] then
  finish(id, 'REVOKED', nil, 'revoked')
  return 1
end
local t = task_key(id)
redis.call('HSET', t, 'state', 'PENDING', 'updated', NOW)
redis.call('HDEL', t, 'consumer')
redis.call('ZREM', LEASES, id)
enqueue(id, f[3], f[4])
event(id, 'PENDING', nil, 'released')
return 1
"#;

/// Revokes task ARGV[5], durably: a queued or delayed one ends REVOKED at
/// once; a leased one is flagged (its heartbeats answer Revoked) and its id
/// published. Returns 0 queued, 1 running, 2 already finished, 3 unknown.
const REVOKE: &str = r#"
local id = ARGV[5]
local t = task_key(id)
local f = redis.call('HMGET', t, 'phase', 'queue', 'band', 'receipt')
if not f[1] then return 3 end
if f[1] == 'done' then return 2 end
redis.call('HSET', t, 'revoked', '1')
if f[1] == 'leased' then
  redis.call('PUBLISH', P .. 'revoked', id)
  return 1
end
if f[1] == 'ready' then
  drop_entry(stream_key(f[2], f[3]), f[4])
else
  redis.call('ZREM', delayed_key(f[2]), id)
end
finish(id, 'REVOKED', nil, 'revoked')
return 0
"#;

/// Moves due tasks of queue ARGV[5]'s delayed set (at most ARGV[6]) to
/// their streams (state unchanged: PENDING or RETRY). Returns {moved, scanned}.
const PROMOTE: &str = r#"
local queue = ARGV[5]
local dkey = delayed_key(queue)
local due = redis.call('ZRANGEBYSCORE', dkey, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[6]))
local moved = 0
for _, id in ipairs(due) do
  redis.call('ZREM', dkey, id)
  local f = redis.call('HMGET', task_key(id), 'phase', 'band', 'revoked', 'state')
  if f[1] == 'delayed' then
    if f[3] then
      finish(id, 'REVOKED', nil, 'revoked')
    else
      enqueue(id, queue, f[2])
      event(id, f[4], nil, 'due')
    end
    moved = moved + 1
  end
end
return {moved, #due}
"#;

/// Returns expired leases (dead or frozen workers), at most ARGV[5], to the
/// tail of their streams as PENDING (a revoked one ends REVOKED). The next
/// reserve bumps the generation, which fences the old holder out.
/// Returns {moved, scanned}.
const RECLAIM: &str = r#"
local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[5]))
local moved = 0
for _, id in ipairs(expired) do
  redis.call('ZREM', LEASES, id)
  local t = task_key(id)
  local f = redis.call('HMGET', t, 'phase', 'queue', 'band', 'receipt', 'revoked', 'consumer')
  if f[1] == 'leased' then
    drop_entry(stream_key(f[2], f[3]), f[4])
    if f[5] then
      finish(id, 'REVOKED', nil, 'revoked; lease expired')
    else
      redis.call('HSET', t, 'state', 'PENDING', 'updated', NOW)
      redis.call('HDEL', t, 'consumer')
      enqueue(id, f[2], f[3])
      event(id, 'PENDING', nil, 'lease of ' .. (f[6] or '?') .. ' expired')
    end
    moved = moved + 1
  end
end
return {moved, #expired}
"#;

/// Revokes the ready tasks of the streams in KEYS, reading at most ARGV[5]
/// entries. Returns {purged, scanned}.
const PURGE: &str = r#"
local budget = tonumber(ARGV[5])
local purged, scanned = 0, 0
for _, key in ipairs(KEYS) do
  while scanned < budget do
    local entries = read_new(key, '__purge', budget - scanned)
    if not entries then break end
    for _, entry in ipairs(entries) do
      scanned = scanned + 1
      local eid, id = entry[1], entry[2][2]
      drop_entry(key, eid)
      if id then
        local f = redis.call('HMGET', task_key(id), 'phase', 'receipt')
        if f[1] == 'ready' and f[2] == eid then
          finish(id, 'REVOKED', nil, 'purged')
          purged = purged + 1
        end
      end
    end
  end
  redis.pcall('XGROUP', 'DELCONSUMER', key, GROUP, '__purge')
end
return {purged, scanned}
"#;

/// Counts per queue. KEYS: for each queue its three streams, then its
/// delayed set. Returns {ready, reserved, scheduled} per queue.
const STATS: &str = r#"
local out = {}
for i = 1, #KEYS, 4 do
  local ready, reserved = 0, 0
  for j = i, i + 2 do
    local len = redis.call('XLEN', KEYS[j])
    local pending = redis.pcall('XPENDING', KEYS[j], GROUP)
    local n = 0
    if type(pending) == 'table' and not pending.err then n = pending[1] end
    ready = ready + len - n
    reserved = reserved + n
  end
  out[#out + 1] = ready
  out[#out + 1] = reserved
  out[#out + 1] = redis.call('ZCARD', KEYS[i + 3])
end
return out
"#;

/// Deletes the consumers of the streams in KEYS that hold no entry and were
/// idle for ARGV[5] ms: every consumer name ever used stays in the group
/// otherwise. Returns how many it deleted.
const PRUNE_CONSUMERS: &str = r#"
local idle_limit = tonumber(ARGV[5])
local removed = 0
for _, key in ipairs(KEYS) do
  local consumers = redis.pcall('XINFO', 'CONSUMERS', key, GROUP)
  if type(consumers) == 'table' and not consumers.err then
    for _, c in ipairs(consumers) do
      local info = {}
      for i = 1, #c - 1, 2 do info[c[i]] = c[i + 1] end
      if info['pending'] == 0 and type(info['idle']) == 'number' and info['idle'] > idle_limit then
        redis.call('XGROUP', 'DELCONSUMER', key, GROUP, info['name'])
        removed = removed + 1
      end
    end
  end
end
return removed
"#;

/// Takes task ARGV[5] out of the dead letters. Returns its message JSON,
/// or nil when it was not there (or its record expired).
const DEAD_TAKE: &str = r#"
local id = ARGV[5]
if redis.call('ZREM', P .. 'dead', id) == 0 then return nil end
local t = task_key(id)
redis.call('HDEL', t, 'dead')
return redis.call('HGET', t, 'msg')
"#;

/// Forgets every dead letter (the records stay until they expire). Returns
/// how many there were (including any whose record already expired).
const DEAD_PURGE: &str = r#"
local ids = redis.call('ZRANGE', P .. 'dead', 0, -1)
for _, id in ipairs(ids) do redis.call('HDEL', task_key(id), 'dead') end
redis.call('DEL', P .. 'dead')
return #ids
"#;

/// The compiled scripts (their SHA1s are computed once).
struct Scripts {
    submit: Script,
    reserve: Script,
    heartbeat: Script,
    mark_started: Script,
    progress: Script,
    settle: Script,
    release: Script,
    revoke: Script,
    promote: Script,
    reclaim: Script,
    purge: Script,
    stats: Script,
    prune_consumers: Script,
    dead_take: Script,
    dead_purge: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            submit: script(SUBMIT),
            reserve: script(RESERVE),
            heartbeat: script(HEARTBEAT),
            mark_started: script(MARK_STARTED),
            progress: script(PROGRESS),
            settle: script(SETTLE),
            release: script(RELEASE),
            revoke: script(REVOKE),
            promote: script(PROMOTE),
            reclaim: script(RECLAIM),
            purge: script(PURGE),
            stats: script(STATS),
            prune_consumers: script(PRUNE_CONSUMERS),
            dead_take: script(DEAD_TAKE),
            dead_purge: script(DEAD_PURGE),
        }
    }
}

// ---------------------------------------------------------------------------
// Notifications: the pub/sub task feeds waiters and the revocation feed.
// ---------------------------------------------------------------------------

/// Callers of `wait`, by task id.
#[derive(Default)]
struct Waiters {
    next_token: u64,
    by_task: HashMap<String, Vec<(u64, oneshot::Sender<()>)>>,
}

/// State shared with the pub/sub task.
struct Notifications {
    waiters: Mutex<Waiters>,
    revocations: broadcast::Sender<String>,
}

impl Notifications {
    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        // A panic while holding this lock leaves the map consistent.
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers interest in `task_id`; the receiver fires when it may have
    /// finished. Dropping the guard unregisters.
    fn register<'a>(&'a self, task_id: &'a str) -> (WaitGuard<'a>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters();
        waiters.next_token += 1;
        let token = waiters.next_token;
        waiters
            .by_task
            .entry(task_id.to_owned())
            .or_default()
            .push((token, tx));
        (
            WaitGuard {
                notifications: self,
                task_id,
                token,
            },
            rx,
        )
    }

    /// Wakes the waiters of one task.
    fn finished(&self, task_id: &str) {
        let senders = self.waiters().by_task.remove(task_id);
        for (_, tx) in senders.into_iter().flatten() {
            let _ = tx.send(());
        }
    }

    /// Wakes every waiter (they read their task again): used when the
    /// subscription was interrupted and notifications may have been missed.
    fn wake_all(&self) {
        let all = std::mem::take(&mut self.waiters().by_task);
        for (_, tx) in all.into_values().flatten() {
            let _ = tx.send(());
        }
    }
}

/// Unregisters a waiter when dropped.
struct WaitGuard<'a> {
    notifications: &'a Notifications,
    task_id: &'a str,
    token: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut waiters = self.notifications.waiters();
        if let Some(list) = waiters.by_task.get_mut(self.task_id) {
            list.retain(|(token, _)| *token != self.token);
            if list.is_empty() {
                waiters.by_task.remove(self.task_id);
            }
        }
    }
}

/// Subscribes to the completion and revocation channels.
async fn subscribe(client: &Client, channels: &[String]) -> Result<PubSubStream, RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    for channel in channels {
        pubsub.subscribe(channel).await?;
    }
    Ok(pubsub.into_on_message())
}

/// Relays published messages until the broker is dropped, resubscribing
/// (with backoff) whenever the connection drops.
async fn relay(
    client: Client,
    channels: [String; 2],
    notifications: Arc<Notifications>,
    mut stream: PubSubStream,
) {
    let [done, revoked] = &channels;
    loop {
        while let Some(msg) = stream.next().await {
            let Ok(id) = msg.get_payload::<String>() else {
                continue;
            };
            let channel = msg.get_channel_name();
            if channel == done {
                notifications.finished(&id);
            } else if channel == revoked {
                // No receiver is fine: heartbeats report revocations too.
                let _ = notifications.revocations.send(id);
            }
        }
        notifications.wake_all();
        let mut backoff = Duration::from_millis(50);
        stream = loop {
            tokio::time::sleep(backoff).await;
            match subscribe(&client, &channels).await {
                Ok(stream) => break stream,
                Err(e) => {
                    tracing::warn!("redis broker: resubscribing failed: {e}");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        // Completions published while we were away were missed.
        notifications.wake_all();
    }
}

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
    scripts: Scripts,
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
    BrokerError::Storage(format!("redis: {e}"))
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

/// Decodes a task hash (`HGETALL`); `None` when the hash does not exist.
fn decode_record(id: &str, h: &HashMap<String, String>) -> Result<Option<TaskRecord>, BrokerError> {
    if h.is_empty() {
        return Ok(None);
    }
    let text = |name: &str| h.get(name).map(String::as_str).filter(|s| !s.is_empty());
    fn json<T: DeserializeOwned>(
        id: &str,
        name: &str,
        s: Option<&str>,
    ) -> Result<Option<T>, BrokerError> {
        s.map(|s| {
            serde_json::from_str(s).map_err(|e| corrupt(format!("task {id}: field {name}: {e}")))
        })
        .transpose()
    }
    let number = |name: &str| -> Result<u64, BrokerError> {
        text(name)
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|e| corrupt(format!("task {id}: field {name}: {e}")))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let message: TaskMessage =
        json(id, "msg", text("msg"))?.ok_or_else(|| corrupt(format!("task {id}: no message")))?;
    let state = text("state").ok_or_else(|| corrupt(format!("task {id}: no state")))?;
    let state: TaskState = serde_json::from_value(serde_json::Value::String(state.to_owned()))
        .map_err(|e| corrupt(format!("task {id}: state {state:?}: {e}")))?;
    Ok(Some(TaskRecord {
        message,
        state,
        result: json(id, "result", text("result"))?,
        error: json(id, "error", text("error"))?,
        progress: json(id, "progress", text("progress"))?,
        worker: text("worker").map(str::to_owned),
        last_run: json(id, "last_run", text("last_run"))?,
        runs: u32::try_from(number("runs")?).unwrap_or(u32::MAX),
        updated_ms: number("updated")?,
    }))
}

/// The arguments of the SETTLE script ('' for what does not apply).
struct SettleArgs {
    outcome: &'static str,
    result: String,
    error: String,
    last_run: String,
    worker: String,
    detail: String,
    next: String,
    at_ms: u64,
    dead_letter: bool,
}

impl SettleArgs {
    fn new(outcome: &'static str, meta: Option<&RunMeta>) -> Result<Self, BrokerError> {
        Ok(SettleArgs {
            outcome,
            result: String::new(),
            error: String::new(),
            last_run: meta.map(to_json).transpose()?.unwrap_or_default(),
            worker: meta.map(|m| m.worker.clone()).unwrap_or_default(),
            detail: String::new(),
            next: String::new(),
            at_ms: 0,
            dead_letter: false,
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
        let channels = [format!("{prefix}done"), format!("{prefix}revoked")];
        // Subscribed before the constructor returns, so no `wait` misses a completion.
        let stream = subscribe(&client, &channels).await.map_err(storage)?;
        let notifications = Arc::new(Notifications {
            waiters: Mutex::new(Waiters::default()),
            revocations: broadcast::channel(1024).0,
        });
        let relay = tokio::spawn(relay(
            client.clone(),
            channels,
            notifications.clone(),
            stream,
        ));
        let broker = RedisBroker {
            config,
            prefix: prefix.to_owned(),
            client,
            conn,
            blocking: Mutex::new(Vec::new()),
            scripts: Scripts::new(),
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

    /// Waits (up to `wait`) until any of `streams` gets an entry newer than
    /// its cursor, on a connection of its own: a blocking read would stall
    /// every other command on the shared multiplexed connection. Reading
    /// without the group consumes nothing, so a cancelled wait loses nothing.
    async fn block_for_new(
        &self,
        streams: &[String],
        cursors: &[String],
        wait: Duration,
    ) -> Result<(), BrokerError> {
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
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(millis(wait).max(1))
            .arg("STREAMS")
            .arg(streams)
            .arg(cursors);
        // A guard against a server that never answers; the connection is
        // then dropped rather than reused.
        let reply = tokio::time::timeout(
            wait + Duration::from_secs(5),
            cmd.query_async::<Value>(&mut con),
        )
        .await;
        match reply {
            Ok(Ok(_)) => {
                let mut idle = self.blocking.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < MAX_IDLE_BLOCKING {
                    idle.push(con);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(storage(e)),
            Err(_) => Err(BrokerError::Storage(
                "redis: blocking read timed out".into(),
            )),
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
impl Broker for RedisBroker {
    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    async fn submit(&self, message: TaskMessage) -> Result<Submitted, BrokerError> {
        self.check_queue(&message.queue)?;
        let mut inv = self.invocation(&self.scripts.submit);
        inv.arg(&message.id)
            .arg(to_json(&message)?)
            .arg(&message.task)
            .arg(&message.queue)
            .arg(message.band().as_str())
            .arg(
                message
                    .expires_ms
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            )
            .arg(message.eta_ms.map(|t| t.to_string()).unwrap_or_default())
            .arg(message.idempotency_key.as_deref().unwrap_or_default())
            .arg(millis(self.config.idempotency_window).max(1));
        let (task_id, created): (String, i64) = self.run(&inv).await?;
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
        let streams = self.streams(queues);
        let deadline = Instant::now() + wait;
        loop {
            let mut inv = self.invocation(&self.scripts.reserve);
            inv.key(&streams)
                .arg(consumer)
                .arg(max)
                .arg(millis(lease).max(1));
            let reply: Vec<String> = self.run(&inv).await?;
            match reply.split_first() {
                Some((took, rest)) if took == "1" => {
                    return rest
                        .chunks(3)
                        .map(|chunk| {
                            let [receipt, message, generation] = chunk else {
                                return Err(corrupt("reserve: truncated reply"));
                            };
                            Ok(Delivery {
                                message: serde_json::from_str(message).map_err(|e| {
                                    corrupt(format!("entry {receipt}: message: {e}"))
                                })?,
                                generation: generation.parse().map_err(|e| {
                                    corrupt(format!("entry {receipt}: generation: {e}"))
                                })?,
                                consumer: consumer.to_owned(),
                                receipt: receipt.clone(),
                            })
                        })
                        .collect();
                }
                Some((_, cursors)) if cursors.len() == streams.len() => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Ok(Vec::new());
                    }
                    self.block_for_new(&streams, cursors, remaining).await?;
                }
                _ => return Err(corrupt("reserve: malformed reply")),
            }
        }
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
        let mut inv = self.invocation(&self.scripts.mark_started);
        inv.arg(&delivery.message.id)
            .arg(delivery.generation)
            .arg(worker);
        lease_status(self.run(&inv).await?)
    }

    async fn report_progress(
        &self,
        delivery: &Delivery,
        progress: &crate::runtime::Progress,
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
                result: to_json(output)?,
                ..SettleArgs::new("SUCCESS", Some(meta))?
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
                    ..SettleArgs::new("RETRY", Some(meta))?
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
                ..SettleArgs::new("FAILURE", Some(meta))?
            },
            Settlement::Revoked { meta } => SettleArgs {
                detail: "revoked".to_owned(),
                ..SettleArgs::new("REVOKED", meta.as_ref())?
            },
        };
        let mut inv = self.invocation(&self.scripts.settle);
        inv.arg(&delivery.message.id)
            .arg(delivery.generation)
            .arg(args.outcome)
            .arg(args.result)
            .arg(args.error)
            .arg(args.last_run)
            .arg(args.worker)
            .arg(truncate(args.detail))
            .arg(args.next)
            .arg(args.at_ms)
            .arg(if args.dead_letter { "1" } else { "0" });
        let settled: i64 = self.run(&inv).await?;
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

    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, BrokerError> {
        let mut con = self.con();
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.task_key(task_id))
            .query_async(&mut con)
            .await
            .map_err(storage)?;
        decode_record(task_id, &h)
    }

    async fn wait(
        &self,
        task_id: &str,
        timeout: Duration,
    ) -> Result<Option<TaskRecord>, BrokerError> {
        let deadline = Instant::now() + timeout;
        let mut first = true;
        loop {
            // Interest first, then the check: a completion in between still wakes us.
            let (_guard, notified) = self.notifications.register(task_id);
            match self.task(task_id).await {
                Ok(Some(record)) if !record.state.is_terminal() => {}
                Ok(record) => return Ok(record),
                // Redis is unreachable from the start: say so at once.
                Err(e) if first => return Err(e),
                // Woken because the subscription dropped: Redis may be
                // restarting. The relay wakes us again once it is back.
                Err(_) => {}
            }
            first = false;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || tokio::time::timeout(remaining, notified).await.is_err() {
                return self.task(task_id).await;
            }
        }
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, BrokerError> {
        let mut inv = self.invocation(&self.scripts.stats);
        for queue in &self.config.queues {
            for band in Band::ALL {
                inv.key(self.stream_key(queue, band));
            }
            inv.key(self.delayed_key(queue));
        }
        let counts: Vec<i64> = self.run(&inv).await?;
        if counts.len() != 3 * self.config.queues.len() {
            return Err(corrupt("queue stats: malformed reply"));
        }
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(self
            .config
            .queues
            .iter()
            .zip(counts.chunks(3))
            .map(|(name, c)| QueueStats {
                name: name.clone(),
                ready: count(c[0]),
                reserved: count(c[1]),
                scheduled: count(c[2]),
            })
            .collect())
    }

    async fn scheduled(&self, limit: usize) -> Result<Vec<TaskRecord>, BrokerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let mut pipe = redis::pipe();
        for queue in &self.config.queues {
            pipe.zrange_withscores(self.delayed_key(queue), 0, stop);
        }
        let per_queue: Vec<Vec<(String, f64)>> =
            pipe.query_async(&mut self.con()).await.map_err(storage)?;
        let mut due: Vec<(String, f64)> = per_queue.into_iter().flatten().collect();
        due.sort_by(|a, b| a.1.total_cmp(&b.1));
        due.truncate(limit);
        let ids: Vec<String> = due.into_iter().map(|(id, _)| id).collect();
        self.records(&ids).await
    }

    async fn reserved(&self) -> Result<Vec<Delivery>, BrokerError> {
        let mut con = self.con();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("leases"))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .map_err(storage)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.task_key(id))
                .arg(&["phase", "msg", "gen", "consumer", "receipt"]);
        }
        type Fields = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Fields> = pipe.query_async(&mut con).await.map_err(storage)?;
        let mut out = Vec::new();
        for (id, row) in ids.iter().zip(rows) {
            let (Some(phase), Some(msg), Some(generation), Some(consumer), Some(receipt)) = row
            else {
                continue;
            };
            if phase != "leased" {
                continue;
            }
            out.push(Delivery {
                message: serde_json::from_str(&msg)
                    .map_err(|e| corrupt(format!("task {id}: message: {e}")))?,
                generation: generation
                    .parse()
                    .map_err(|e| corrupt(format!("task {id}: generation: {e}")))?,
                consumer,
                receipt,
            });
        }
        Ok(out)
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

    async fn dead_letters(&self, limit: usize) -> Result<Vec<TaskRecord>, BrokerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.key("dead"))
            .arg(0)
            .arg(stop)
            .query_async(&mut self.con())
            .await
            .map_err(storage)?;
        self.records(&ids).await
    }

    async fn replay_dead_letter(&self, task_id: &str) -> Result<Option<String>, BrokerError> {
        let mut inv = self.invocation(&self.scripts.dead_take);
        inv.arg(task_id);
        let Some(msg) = self.run::<Option<String>>(&inv).await? else {
            return Ok(None);
        };
        let old: TaskMessage = serde_json::from_str(&msg)
            .map_err(|e| corrupt(format!("task {task_id}: message: {e}")))?;
        let message = TaskMessage {
            id: uuid::Uuid::new_v4().to_string(),
            attempt: 1,
            eta_ms: None,
            expires_ms: None,
            idempotency_key: None,
            submitted_ms: now_ms(),
            ..old
        };
        Ok(Some(self.submit(message).await?.task_id))
    }

    async fn purge_dead_letters(&self) -> Result<u64, BrokerError> {
        self.run(&self.invocation(&self.scripts.dead_purge)).await
    }

    async fn record_worker(
        &self,
        heartbeat: &WorkerHeartbeat,
        ttl: Duration,
    ) -> Result<(), BrokerError> {
        let json = to_json(heartbeat)?;
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.key(&format!("worker:{}", heartbeat.name)))
            .arg(json)
            .arg("PX")
            .arg(millis(ttl).max(1))
            .ignore()
            .sadd(self.key("workers"), &heartbeat.name)
            .ignore()
            .query_async::<()>(&mut self.con())
            .await
            .map_err(storage)
    }

    async fn workers(&self) -> Result<Vec<WorkerHeartbeat>, BrokerError> {
        let mut con = self.con();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key("workers"))
            .query_async(&mut con)
            .await
            .map_err(storage)?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        names.sort();
        let keys: Vec<String> = names
            .iter()
            .map(|n| self.key(&format!("worker:{n}")))
            .collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(storage)?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (name, value) in names.iter().zip(values) {
            match value {
                Some(json) => out.push(
                    serde_json::from_str(&json)
                        .map_err(|e| corrupt(format!("worker {name}: {e}")))?,
                ),
                None => gone.push(name),
            }
        }
        if !gone.is_empty() {
            let _: () = redis::cmd("SREM")
                .arg(self.key("workers"))
                .arg(gone)
                .query_async(&mut con)
                .await
                .map_err(storage)?;
        }
        Ok(out)
    }

    async fn events(&self, after: Option<u64>, limit: usize) -> Result<Vec<Event>, BrokerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = match after {
            Some(seq) => format!("{}-0", seq.saturating_add(1)),
            None => "-".to_owned(),
        };
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(self.key("events"))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.con())
            .await
            .map_err(storage)?;
        entries
            .into_iter()
            .map(|(entry, f)| {
                let bad = |what: &str| corrupt(format!("event {entry}: {what}"));
                let text = |name: &str| f.get(name).filter(|s| !s.is_empty()).cloned();
                let seq = entry
                    .split('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("id"))?;
                let state = text("state").ok_or_else(|| bad("no state"))?;
                Ok(Event {
                    seq,
                    at_ms: text("at")
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad("time"))?,
                    task_id: text("id").ok_or_else(|| bad("no task id"))?,
                    task: text("task").unwrap_or_default(),
                    queue: text("queue").unwrap_or_default(),
                    state: serde_json::from_value(serde_json::Value::String(state))
                        .map_err(|e| bad(&e.to_string()))?,
                    worker: text("worker"),
                    detail: text("detail"),
                })
            })
            .collect()
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
        // Finished records, idempotency keys and worker heartbeats expire by TTL.
        Ok(moved)
    }
}
