//! The Lua scripts of the Redis backend: every change that must be atomic
//! (leases, fencing, settling, promotion, reclaiming) is one script.

use redis::Script;

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
pub(super) struct Scripts {
    pub(super) submit: Script,
    pub(super) reserve: Script,
    pub(super) heartbeat: Script,
    pub(super) mark_started: Script,
    pub(super) progress: Script,
    pub(super) settle: Script,
    pub(super) release: Script,
    pub(super) revoke: Script,
    pub(super) promote: Script,
    pub(super) reclaim: Script,
    pub(super) purge: Script,
    pub(super) stats: Script,
    pub(super) prune_consumers: Script,
    pub(super) dead_take: Script,
    pub(super) dead_purge: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
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
