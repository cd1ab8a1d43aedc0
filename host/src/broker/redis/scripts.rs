//! The Lua scripts of the Redis backend: every change that must be atomic
//! (leases, fencing, settling, promotion, reclaiming) is one script.

use redis::Script;

// ---------------------------------------------------------------------------
// Lua scripts. Each is PRELUDE followed by its body; every invocation passes
// the four common arguments first (see `RedisBroker::invocation`).
// ---------------------------------------------------------------------------

/// Shared helpers. ARGV[1] key prefix, ARGV[2] now (Unix ms), ARGV[3] event
/// log capacity, ARGV[4] result_expires (ms).
///
/// Numbers that only pass through (times, counts) stay strings: Lua formats
/// a number back into a string with `printf`, which costs more than most
/// Redis commands here.
const PRELUDE: &str = r#"
local P = ARGV[1]
local NOW_S = ARGV[2]
local NOW = tonumber(NOW_S)
local EVENT_CAP = ARGV[3]
local RESULT_TTL = ARGV[4]
local GROUP = 'hippo'
local LEASES = P .. 'leases'

local function task_key(id) return P .. 'task:' .. id end
local function stream_key(queue, band) return P .. 'q:' .. queue .. ':' .. band end
local function delayed_key(queue) return P .. 'delayed:' .. queue end

-- State changes for the event log, appended by `flush_events` when the
-- script ends: one sequence increment for all of them.
local EVENTS = {}
local function event(id, state, name, queue, worker, detail)
  EVENTS[#EVENTS + 1] = {id, state, name or '', queue or '', worker or '', detail or ''}
end
local function flush_events()
  local n = #EVENTS
  if n == 0 then return end
  local last = redis.call('INCRBY', P .. 'event-seq', n)
  for i, e in ipairs(EVENTS) do
    -- Trimming by whole nodes (`~`) is cheap; `maintain` trims exactly.
    redis.call('XADD', P .. 'events', 'MAXLEN', '~', EVENT_CAP, string.format('%d-0', last - n + i),
      'at', NOW_S, 'id', e[1], 'task', e[3], 'queue', e[4], 'state', e[2], 'worker', e[5], 'detail', e[6])
  end
end

-- Acknowledges and deletes a stream entry (a no-op when it is gone).
local function drop_entry(skey, eid)
  if eid then
    redis.call('XACK', skey, GROUP, eid)
    redis.call('XDEL', skey, eid)
  end
end

-- Tells waiters that a task ended, with its record when that is small:
-- then they need no read of their own.
local function announce(t, id)
  local record = cjson.encode(redis.call('HGETALL', t))
  if #record > 4096 then record = '' end
  redis.call('PUBLISH', P .. 'done', id .. '\n' .. record)
end

-- Ends a task for good: terminal state, record expiry, waiters notified.
local function finish(id, state, name, queue, worker, detail)
  local t = task_key(id)
  redis.call('HSET', t, 'state', state, 'phase', 'done', 'updated', NOW_S)
  redis.call('HDEL', t, 'receipt', 'consumer')
  redis.call('ZREM', LEASES, id)
  redis.call('PEXPIRE', t, RESULT_TTL)
  event(id, state, name, queue, worker, detail)
  announce(t, id)
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

-- Leases ready stream entry `eid` of stream `key` (just read for
-- `consumer`) until `lease_until`: a new generation, state RECEIVED. The
-- entry of a revoked, expired or vanished task is dropped instead (the task
-- ends REVOKED). Returns {eid, message JSON, generation} or nil.
local function take(key, eid, id, consumer, lease_until)
  local f = {}
  if id then
    f = redis.call('HMGET', task_key(id), 'phase', 'receipt', 'revoked', 'expires', 'msg', 'name', 'queue')
  end
  if f[1] ~= 'ready' or f[2] ~= eid then
    -- A stale entry: the task moved on (or is gone).
    drop_entry(key, eid)
    return nil
  end
  if f[3] or (f[4] and f[4] ~= '' and tonumber(f[4]) < NOW) then
    drop_entry(key, eid)
    local why = 'expired'
    if f[3] then why = 'revoked' end
    finish(id, 'REVOKED', f[6], f[7], nil, why)
    return nil
  end
  local t = task_key(id)
  local gen = redis.call('HINCRBY', t, 'gen', 1)
  redis.call('HSET', t, 'phase', 'leased', 'state', 'RECEIVED', 'consumer', consumer,
    'worker', consumer, 'updated', NOW_S)
  redis.call('ZADD', LEASES, lease_until, id)
  event(id, 'RECEIVED', f[6], f[7], consumer, nil)
  return {eid, f[5], string.format('%d', gen)}
end

-- Hands the newest entry of `key` (a stream of `queue`) to a consumer
-- waiting for work on that queue, if any: the task is leased to it at once
-- and put in its inbox, which it is blocked reading (or reads next). A
-- consumer waits only after finding its queues empty, and every entry added
-- since went to a waiting consumer, so the entry its group read returns is
-- this one (were it another, that one is handed over instead and this one
-- waits for the next reserve). The consumer stays registered, at the back
-- of the line, until it was handed as many tasks as it asked for.
local function hand_off(key, queue)
  local waiting = P .. 'waiting:' .. queue
  while true do
    local entry = redis.call('LPOP', waiting)
    if not entry then return end
    local consumer, lease_ms = string.match(entry, '^(.*)|%d+|(%d+)$')
    local registration = P .. 'wait:' .. (consumer or '')
    if consumer and redis.call('GET', registration) == entry then
      local entries = read_new(key, consumer, 1)
      local taken = nil
      if entries then
        local lease_until = string.format('%d', NOW + tonumber(lease_ms))
        taken = take(key, entries[1][1], entries[1][2][2], consumer, lease_until)
      end
      if not taken then
        -- Nothing to hand over after all: the consumer keeps its place.
        redis.call('LPUSH', waiting, entry)
        return
      end
      local inbox = P .. 'inbox:' .. consumer
      redis.call('RPUSH', inbox, taken[1] .. '\n' .. taken[3] .. '\n' .. taken[2])
      redis.call('PEXPIRE', inbox, lease_ms)
      if redis.call('DECR', P .. 'room:' .. consumer) > 0 then
        redis.call('RPUSH', waiting, entry)
      else
        redis.call('DEL', registration, P .. 'room:' .. consumer)
      end
      return
    end
  end
end

-- Appends a task to its stream, ready to be taken (by a waiting consumer
-- at once, if there is one).
local function enqueue(id, queue, band)
  local key = stream_key(queue, band)
  local eid = redis.call('XADD', key, '*', 'id', id)
  redis.call('HSET', task_key(id), 'phase', 'ready', 'receipt', eid)
  hand_off(key, queue)
end

-- The fields of a task whose current lease is generation `gen`, else nil:
-- {phase, gen, queue, band, receipt, revoked, name, state, runs}.
local function holder(id, gen)
  local f = redis.call('HMGET', task_key(id), 'phase', 'gen', 'queue', 'band', 'receipt', 'revoked',
    'name', 'state', 'runs')
  if f[1] ~= 'leased' or f[2] ~= gen then return nil end
  return f
end

-- Accepts a task: ready now, or delayed until `eta` (ms, or ''). With an
-- idempotency key seen inside its window, returns the first task's id.
-- Returns {task id, created 0/1}.
local function submit(id, msg, name, queue, band, expires, eta, idem, window)
  if idem ~= '' then
    local ikey = P .. 'idem:' .. idem
    local first = redis.call('GET', ikey)
    if first then return {first, 0} end
    redis.call('SET', ikey, id, 'PX', window)
  end
  local t = task_key(id)
  -- The id was submitted before (a retried submission): keep the first.
  if redis.call('HSETNX', t, 'msg', msg) == 0 then return {id, 0} end
  local due = tonumber(eta)
  if due and due > NOW then
    redis.call('HSET', t, 'name', name, 'queue', queue, 'band', band, 'expires', expires,
      'state', 'PENDING', 'gen', '0', 'runs', '0', 'updated', NOW_S, 'phase', 'delayed')
    redis.call('ZADD', delayed_key(queue), eta, id)
    event(id, 'PENDING', name, queue, nil, 'eta ' .. eta)
  else
    redis.call('HSET', t, 'name', name, 'queue', queue, 'band', band, 'expires', expires,
      'state', 'PENDING', 'gen', '0', 'runs', '0', 'updated', NOW_S)
    event(id, 'PENDING', name, queue, nil, nil)
    enqueue(id, queue, band)
  end
  return {id, 1}
end

-- Marks a leased task STARTED on `worker` (not when revoked).
-- Returns 0 lease lost, 1 held, 2 revoked.
local function start(id, gen, worker)
  local f = holder(id, gen)
  if not f then return 0 end
  if f[6] then return 2 end
  redis.call('HSET', task_key(id), 'state', 'STARTED', 'worker', worker, 'updated', NOW_S)
  event(id, 'STARTED', f[7], f[3], worker, nil)
  return 1
end

-- Ends a delivery, fenced by generation: `outcome` SUCCESS, RETRY, FAILURE
-- or REVOKED; `result`, `err`, `last_run` JSON or ''; `next_msg` and `due`
-- the next attempt (RETRY); `dead` '1' to dead-letter (FAILURE); `ran` '1'
-- when the task ran. The stream entry is
-- acknowledged, the lease cleared and the run counted. A task never marked
-- STARTED (it ran briefly) gets its STARTED event now, or ends REVOKED when
-- it was revoked before it started; so does a revoked task's retry. A dead
-- letter expires with its record. Returns 1, or 0 (nothing changed) when
-- the caller does not hold the current lease.
local function settle(id, gen, outcome, result, err, last_run, worker, detail, next_msg, due, dead, ran)
  local f = holder(id, gen)
  if not f then return 0 end
  local t = task_key(id)
  if worker == '' then worker = nil end
  local name, queue = f[7], f[3]
  drop_entry(stream_key(queue, f[4]), f[5])
  if f[6] and (f[8] == 'RECEIVED' or outcome == 'RETRY') then
    outcome = 'REVOKED'
  elseif f[8] == 'RECEIVED' and ran == '1' then
    event(id, 'STARTED', name, queue, worker, nil)
  end
  local set = {'runs', tostring((tonumber(f[9]) or 0) + 1), 'updated', NOW_S, 'state', outcome}
  local unset = {'receipt', 'consumer'}
  local function put(field, value)
    if value ~= '' then
      set[#set + 1] = field
      set[#set + 1] = value
    else
      unset[#unset + 1] = field
    end
  end
  if worker then put('worker', worker) end
  put('last_run', last_run)
  if outcome == 'SUCCESS' then
    put('result', result)
    unset[#unset + 1] = 'error'
  elseif err ~= '' then
    put('error', err)
  end
  redis.call('ZREM', LEASES, id)
  if outcome == 'RETRY' then
    put('phase', 'delayed')
    put('msg', next_msg)
    redis.call('HSET', t, unpack(set))
    redis.call('HDEL', t, unpack(unset))
    redis.call('ZADD', delayed_key(queue), due, id)
    event(id, 'RETRY', name, queue, worker, detail)
    return 1
  end
  put('phase', 'done')
  if outcome == 'FAILURE' and dead == '1' then
    put('dead', '1')
    redis.call('ZADD', P .. 'dead', NOW_S, id)
  end
  redis.call('HSET', t, unpack(set))
  redis.call('HDEL', t, unpack(unset))
  redis.call('PEXPIRE', t, RESULT_TTL)
  event(id, outcome, name, queue, worker, detail)
  announce(t, id)
  return 1
end
"#;

/// A group of writes, applied in order (see `RedisBroker::write`). From
/// ARGV[5] on, each write is its kind followed by its arguments:
/// `submit` and the nine of `submit`, `start` and the three of `start`,
/// `settle` and the twelve of `settle`. Returns each write's reply, in order.
const WRITES: &str = r#"
local out = {}
local i = 5
local A = ARGV
while i <= #A do
  local kind = A[i]
  if kind == 'submit' then
    out[#out + 1] = submit(A[i + 1], A[i + 2], A[i + 3], A[i + 4], A[i + 5], A[i + 6], A[i + 7], A[i + 8], A[i + 9])
    i = i + 10
  elseif kind == 'start' then
    out[#out + 1] = start(A[i + 1], A[i + 2], A[i + 3])
    i = i + 4
  elseif kind == 'settle' then
    out[#out + 1] = settle(A[i + 1], A[i + 2], A[i + 3], A[i + 4], A[i + 5], A[i + 6], A[i + 7],
      A[i + 8], A[i + 9], A[i + 10], A[i + 11], A[i + 12])
    i = i + 13
  else
    error('unknown write ' .. tostring(kind))
  end
end
return out
"#;

/// Takes work for consumer ARGV[5]: first the tasks handed to it while it
/// waited (its inbox), then up to ARGV[6] ready tasks from the streams in
/// KEYS (priority order), under a lease of ARGV[7] ms. It ends any earlier
/// wait. When it finds none and ARGV[8] (ms) is not 0, the consumer
/// registers as waiting on the queues ARGV[9..] for that long, for up to
/// ARGV[6] tasks: a task that becomes ready meanwhile is leased to it and
/// put in its inbox (see `hand_off`). Returns {entry id, message JSON,
/// generation, ...}.
const RESERVE: &str = r#"
local consumer = ARGV[5]
local max = tonumber(ARGV[6])
local lease_ms = ARGV[7]
local wait_ms = tonumber(ARGV[8])
local lease_until = string.format('%d', NOW + tonumber(lease_ms))
local registration = P .. 'wait:' .. consumer
local room = P .. 'room:' .. consumer
local previous = redis.call('GET', registration)
if previous then
  redis.call('DEL', registration, room)
  for i = 9, #ARGV do redis.call('LREM', P .. 'waiting:' .. ARGV[i], 0, previous) end
end
local out = {}
local inbox = P .. 'inbox:' .. consumer
local handed = redis.call('LRANGE', inbox, 0, -1)
if #handed > 0 then
  redis.call('DEL', inbox)
  for _, delivery in ipairs(handed) do
    local eid, gen, msg = string.match(delivery, '^([^\n]*)\n([^\n]*)\n(.*)$')
    out[#out + 1] = eid
    out[#out + 1] = msg
    out[#out + 1] = gen
  end
end
local taken = #handed
for _, key in ipairs(KEYS) do
  while taken < max do
    local entries = read_new(key, consumer, max - taken)
    if not entries then break end
    for _, entry in ipairs(entries) do
      local got = take(key, entry[1], entry[2][2], consumer, lease_until)
      if got then
        out[#out + 1] = got[1]
        out[#out + 1] = got[2]
        out[#out + 1] = got[3]
        taken = taken + 1
      end
    end
  end
  if taken >= max then break end
end
if #out == 0 and wait_ms > 0 and max > 0 then
  local entry = consumer .. '|' .. redis.call('INCR', P .. 'wait-seq') .. '|' .. lease_ms
  redis.call('SET', registration, entry, 'PX', wait_ms)
  redis.call('SET', room, max, 'PX', wait_ms)
  for i = 9, #ARGV do redis.call('RPUSH', P .. 'waiting:' .. ARGV[i], entry) end
end
return out
"#;

/// Extends a lease. ARGV[5] id, [6] generation, [7] lease (ms).
/// Returns 0 lost, 1 held, 2 revoked.
const HEARTBEAT: &str = r#"
local f = holder(ARGV[5], ARGV[6])
if not f then return 0 end
redis.call('ZADD', LEASES, string.format('%d', NOW + tonumber(ARGV[7])), ARGV[5])
if f[6] then return 2 end
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
redis.call('HSET', task_key(id), 'state', 'PROGRESS', 'progress', ARGV[7], 'updated', NOW_S)
if f[8] ~= 'PROGRESS' then event(id, 'PROGRESS', f[7], f[3], nil, ARGV[8]) end
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
  finish(id, 'REVOKED', f[7], f[3], nil, 'revoked')
  return 1
end
local t = task_key(id)
redis.call('HSET', t, 'state', 'PENDING', 'updated', NOW_S)
redis.call('HDEL', t, 'consumer')
redis.call('ZREM', LEASES, id)
event(id, 'PENDING', f[7], f[3], nil, 'released')
enqueue(id, f[3], f[4])
return 1
"#;

/// Revokes task ARGV[5], durably: a queued or delayed one ends REVOKED at
/// once; a leased one is flagged (its heartbeats answer Revoked) and its id
/// published. Returns 0 queued, 1 running, 2 already finished, 3 unknown.
const REVOKE: &str = r#"
local id = ARGV[5]
local t = task_key(id)
local f = redis.call('HMGET', t, 'phase', 'queue', 'band', 'receipt', 'name')
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
finish(id, 'REVOKED', f[5], f[2], nil, 'revoked')
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
  local f = redis.call('HMGET', task_key(id), 'phase', 'band', 'revoked', 'state', 'name')
  if f[1] == 'delayed' then
    if f[3] then
      finish(id, 'REVOKED', f[5], queue, nil, 'revoked')
    else
      event(id, f[4], f[5], queue, nil, 'due')
      enqueue(id, queue, f[2])
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
  local f = redis.call('HMGET', t, 'phase', 'queue', 'band', 'receipt', 'revoked', 'consumer', 'name')
  if f[1] == 'leased' then
    drop_entry(stream_key(f[2], f[3]), f[4])
    if f[5] then
      finish(id, 'REVOKED', f[7], f[2], f[6], 'revoked; lease expired')
    else
      redis.call('HSET', t, 'state', 'PENDING', 'updated', NOW_S)
      redis.call('HDEL', t, 'consumer')
      event(id, 'PENDING', f[7], f[2], f[6], 'lease of ' .. (f[6] or '?') .. ' expired')
      enqueue(id, f[2], f[3])
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
        local f = redis.call('HMGET', task_key(id), 'phase', 'receipt', 'name', 'queue')
        if f[1] == 'ready' and f[2] == eid then
          finish(id, 'REVOKED', f[3], f[4], nil, 'purged')
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
    pub(super) writes: Script,
    pub(super) reserve: Script,
    pub(super) heartbeat: Script,
    pub(super) progress: Script,
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
        // The body runs as a function so that every way out of it passes
        // through `flush_events`.
        let script = |body: &str| {
            Script::new(&format!(
                "{PRELUDE}\nlocal function main()\n{body}\nend\nlocal reply = main()\nflush_events()\nreturn reply"
            ))
        };
        Scripts {
            writes: script(WRITES),
            reserve: script(RESERVE),
            heartbeat: script(HEARTBEAT),
            progress: script(PROGRESS),
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
