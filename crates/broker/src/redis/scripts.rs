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
-- script ends.
local EVENTS = {}
local function event(id, state, name, queue, worker, detail)
  EVENTS[#EVENTS + 1] = {id, state, name or '', queue or '', worker or '', detail or ''}
end
-- Appends this script's events as one entry: its id is the last event's
-- sequence number and its field `e` the events (a JSON array of
-- {task id, state, name, queue, worker, detail}), numbered up to that one.
-- The log is trimmed by sequence number, so it keeps about EVENT_CAP events
-- however they are grouped (`~`: by whole nodes, which is cheap; `maintain`
-- trims exactly and `events` reads no further back than that).
local function flush_events()
  local n = #EVENTS
  if n == 0 then return end
  local last = redis.call('INCRBY', P .. 'event-seq', n)
  local oldest = math.max(0, last - tonumber(EVENT_CAP) + 1)
  redis.call('XADD', P .. 'events', 'MINID', '~', string.format('%d', oldest),
    string.format('%d-0', last), 'at', NOW_S, 'e', cjson.encode(EVENTS))
end

-- Deletes a stream entry not yet read (a no-op when there is none: a
-- task handed straight to a waiting consumer never had one). Entries that
-- were read are gone already (see `read_new`).
local function drop_entry(skey, eid)
  if eid then redis.call('XDEL', skey, eid) end
end

-- Tells waiters that task `id` ended, with its record when that is small:
-- then they need no read of their own. The record is a JSON object of the
-- fields a record is made of (see `Published`), those holding JSON embedded
-- as they are, so a waiter decodes it in one pass. It is joined in one go:
-- every string a script makes costs Redis about as much as a small command.
-- The fields are the task hash's (nil: absent).
local function publish_record(id, msg, state, result, err, progress, worker, last_run, runs, updated)
  local worker_json = 'null'
  if worker then worker_json = cjson.encode(worker) end
  local record = table.concat({'{"msg":', msg or 'null', ',"state":"', state or '',
    '","result":', result or 'null', ',"error":', err or 'null', ',"progress":', progress or 'null',
    ',"worker":', worker_json, ',"last_run":', last_run or 'null', ',"runs":"', runs or '0',
    '","updated":"', updated or '0', '"}'})
  if #record > 4096 then record = '' end
  redis.call('PUBLISH', P .. 'done', id .. '\n' .. record)
end

-- `publish_record` of what task hash `t` holds.
local function announce(t, id)
  local f = redis.call('HMGET', t, 'msg', 'state', 'result', 'error', 'progress', 'worker',
    'last_run', 'runs', 'updated')
  publish_record(id, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9])
end

-- The task history (see `crate::history` and `redis/history.rs`): hash
-- `hist:{id}` (task, queue, state, worker, updated, msg, cut, tail,
-- result, rcut: the result was cut, error, attempts: their JSON array,
-- log:{n}: an attempt's log) and one sorted set per facet, `hist:ix:{facet}`, of
-- ids scored by their last change. The facet names are
-- `history::Facet::key`'s.
local HIST_INPUT_KEPT = 65536
local HIST_OUTPUT_KEPT = 65536
-- The length of `text`'s longest prefix of at most `max` bytes that ends
-- on a UTF-8 boundary.
local function utf8_cut(text, max)
  local cut = max
  while cut > 0 and string.byte(text, cut + 1) >= 128 and string.byte(text, cut + 1) < 192 do
    cut = cut - 1
  end
  return cut
end
local function hist_key(id) return P .. 'hist:' .. id end
-- The index keys of a task `name` in `state`. A settlement passes them
-- made (see `RedisBroker::settle`): every string a script makes costs.
local function hist_index_keys(name, state)
  local ix = P .. 'hist:ix:'
  return {ix .. 'all', ix .. 'task:' .. name, ix .. 'state:' .. state,
    ix .. 'task-state:' .. state .. ':' .. name}
end

-- Records in the history that attempt `n` of task `id` ended in `state`
-- (RETRY, or a final state): the record's fields as they are now, `run`
-- the attempt's run JSON (nil: it did not run) and `log` its log JSON
-- (nil or '': none). Attempt `n` is the task's run count with this
-- attempt's run counted (every run ends in a settlement; a task ended
-- without running ends the attempt after its last run). A message longer
-- than the input kept is stored cut (`cut` '1': `msg` is its first bytes,
-- on a UTF-8 boundary, and `tail` its last ones, which hold the fields
-- after the input). A first attempt reads nothing: there is no entry yet.
local function remember(id, n, state, name, queue, worker, msg, result, err, run, log, h, keys)
  if result == '' then result = nil end
  if err == '' then err = nil end
  h = h or hist_key(id)
  keys = keys or hist_index_keys(name, state)
  local attempts = nil
  if n > 1 then
    local old = redis.call('HMGET', h, 'state', 'attempts')
    for _, key in ipairs(hist_index_keys(name, old[1] or '')) do redis.call('ZREM', key, id) end
    attempts = old[2]
  end
  local fields = {'task', name, 'queue', queue, 'state', state, 'updated', NOW_S}
  local function put(field, value)
    fields[#fields + 1] = field
    fields[#fields + 1] = value or ''
  end
  put('worker', worker)
  if result and #result > HIST_OUTPUT_KEPT then
    put('result', cjson.encode(string.sub(result, 1, utf8_cut(result, HIST_OUTPUT_KEPT))))
    put('rcut', '1')
  else
    put('result', result)
  end
  put('error', err)
  if n == 1 then
    msg = msg or ''
    if #msg > HIST_INPUT_KEPT + 1024 then
      put('tail', string.sub(msg, -4096))
      msg = string.sub(msg, 1, utf8_cut(msg, HIST_INPUT_KEPT))
      put('cut', '1')
    end
    put('msg', msg)
  end
  local attempt = table.concat({'{"attempt":', n, ',"state":"', state, '","error":', err or 'null',
    ',"run":', run or 'null', '}'})
  if attempts then
    attempts = string.sub(attempts, 1, -2) .. ',' .. attempt .. ']'
  else
    attempts = '[' .. attempt .. ']'
  end
  put('attempts', attempts)
  if log and log ~= '' then put('log:' .. n, log) end
  redis.call('HSET', h, unpack(fields))
  for _, key in ipairs(keys) do redis.call('ZADD', key, NOW_S, id) end
end

-- Ends a task for good: terminal state, record expiry, waiters notified.
local function finish(id, state, name, queue, worker, detail)
  local t = task_key(id)
  local f = redis.call('HMGET', t, 'msg', 'result', 'error', 'worker', 'runs')
  local n = (tonumber(f[5]) or 0) + 1
  remember(id, n, state, name, queue, worker or f[4], f[1], f[2], f[3], nil, nil, nil, nil)
  redis.call('HSET', t, 'state', state, 'phase', 'done', 'updated', NOW_S)
  redis.call('HDEL', t, 'receipt', 'consumer')
  redis.call('ZREM', LEASES, id)
  redis.call('PEXPIRE', t, RESULT_TTL)
  event(id, state, name, queue, worker, detail)
  announce(t, id)
end

-- Takes entries of `key` never delivered to the group (which is created
-- when missing), at most `count`, out of the stream; nil when there are
-- none. A stream thus holds ready tasks alone. A taken task is tracked by
-- its lease (LEASES and its hash), so the group keeps no pending list
-- (NOACK): acknowledging and deleting each entry when its task ended cost
-- two commands per task, for an entry nothing reads again.
local function read_new(key, consumer, count)
  local res = redis.pcall('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', count, 'NOACK',
    'STREAMS', key, '>')
  if type(res) == 'table' and res.err then
    if not string.find(res.err, 'NOGROUP', 1, true) then error(res.err) end
    redis.call('XGROUP', 'CREATE', key, GROUP, '0', 'MKSTREAM')
    res = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', count, 'NOACK',
      'STREAMS', key, '>')
  end
  if not res or #res[1][2] == 0 then return nil end
  local entries = res[1][2]
  local ids = {}
  for i, entry in ipairs(entries) do ids[i] = entry[1] end
  redis.call('XDEL', key, unpack(ids))
  return entries
end

-- Leases task `id` (generation `gen`) to `consumer` for `lease_ms`: the
-- next generation, state RECEIVED, written with `fields` (more hash fields,
-- a flat list). Returns the new generation.
local function lease(id, gen, consumer, lease_ms, name, queue, fields)
  local next_gen = string.format('%d', (tonumber(gen) or 0) + 1)
  local n = #fields
  fields[n + 1], fields[n + 2] = 'phase', 'leased'
  fields[n + 3], fields[n + 4] = 'state', 'RECEIVED'
  fields[n + 5], fields[n + 6] = 'consumer', consumer
  fields[n + 7], fields[n + 8] = 'worker', consumer
  fields[n + 9], fields[n + 10] = 'gen', next_gen
  fields[n + 11], fields[n + 12] = 'updated', NOW_S
  redis.call('HSET', task_key(id), unpack(fields))
  redis.call('ZADD', LEASES, string.format('%d', NOW + tonumber(lease_ms)), id)
  event(id, 'RECEIVED', name, queue, consumer, nil)
  return next_gen
end

-- Leases the task of stream entry `eid` (just taken for `consumer`, see
-- `read_new`) for `lease_ms`. A revoked or expired task ends REVOKED
-- instead; a stale entry (the task moved on, or is gone) is passed over.
-- Returns {eid, message JSON, generation} or nil.
local function take(eid, id, consumer, lease_ms)
  local f = {}
  if id then
    f = redis.call('HMGET', task_key(id), 'phase', 'receipt', 'revoked', 'expires', 'msg', 'name', 'queue', 'gen')
  end
  if f[1] ~= 'ready' or f[2] ~= eid then return nil end
  if f[3] or (f[4] and f[4] ~= '' and tonumber(f[4]) < NOW) then
    local why = 'expired'
    if f[3] then why = 'revoked' end
    finish(id, 'REVOKED', f[6], f[7], nil, why)
    return nil
  end
  return {eid, f[5], lease(id, f[8], consumer, lease_ms, f[6], f[7], {})}
end

-- The first consumer in line for work on `queue` (see RESERVE), taken out
-- of the line: its name, lease (ms) and waiting-list entry; nil when none
-- waits. Entries of waits that ended are dropped on the way.
local function next_waiting(queue)
  local waiting = P .. 'waiting:' .. queue
  while true do
    local entry = redis.call('LPOP', waiting)
    if not entry then return nil end
    local consumer, lease_ms = string.match(entry, '^(.*)|%d+|(%d+)$')
    if consumer and redis.call('GET', P .. 'wait:' .. consumer) == entry then
      return consumer, lease_ms, entry
    end
  end
end

-- Makes task `id` ready to run. When a consumer waits for work on its
-- queue, the task is leased to it at once and put in its inbox, which it is
-- blocked reading (or reads next): it never enters a stream. The consumer
-- then goes to the back of the line, or out of it once it was handed as
-- many tasks as it asked for. A consumer waits only after finding its
-- queues empty, and every task readied since went to a waiting consumer,
-- so this task is the next in line for it. Otherwise the task is appended
-- to the stream of its queue and band. A task that has expired ends
-- REVOKED instead. `gen` is its generation, `msg` its message, `state` its
-- state while in the stream (nil: unchanged) and `fields` more hash fields
-- to write in any case (a flat list).
local function make_ready(id, queue, band, name, expires, gen, msg, state, fields)
  if expires and expires ~= '' and tonumber(expires) < NOW then
    if #fields > 0 then redis.call('HSET', task_key(id), unpack(fields)) end
    finish(id, 'REVOKED', name, queue, nil, 'expired')
    return
  end
  local consumer, lease_ms, entry = next_waiting(queue)
  if not consumer then
    local eid = redis.call('XADD', stream_key(queue, band), '*', 'id', id)
    local n = #fields
    fields[n + 1], fields[n + 2] = 'phase', 'ready'
    fields[n + 3], fields[n + 4] = 'receipt', eid
    fields[n + 5], fields[n + 6] = 'updated', NOW_S
    if state then fields[n + 7], fields[n + 8] = 'state', state end
    redis.call('HSET', task_key(id), unpack(fields))
    return
  end
  local leased_gen = lease(id, gen, consumer, lease_ms, name, queue, fields)
  local inbox = P .. 'inbox:' .. consumer
  redis.call('RPUSH', inbox, '\n' .. leased_gen .. '\n' .. msg)
  redis.call('PEXPIRE', inbox, lease_ms)
  if redis.call('DECR', P .. 'room:' .. consumer) > 0 then
    redis.call('RPUSH', P .. 'waiting:' .. queue, entry)
  else
    redis.call('DEL', P .. 'wait:' .. consumer, P .. 'room:' .. consumer)
  end
end

-- The fields of a task whose current lease is generation `gen`, else nil:
-- {phase, gen, queue, band, revoked, name, state, runs}, then those named
-- in `...`.
local function holder(id, gen, ...)
  local f = redis.call('HMGET', task_key(id), 'phase', 'gen', 'queue', 'band', 'revoked', 'name',
    'state', 'runs', ...)
  if f[1] ~= 'leased' or f[2] ~= gen then return nil end
  return f
end

-- Puts leased task `id` back in line, PENDING, without counting a run
-- (released, or its lease expired); `worker` and `why` go to its event.
local function requeue(id, queue, band, name, worker, why)
  local t = task_key(id)
  local f = redis.call('HMGET', t, 'gen', 'expires', 'msg')
  redis.call('HDEL', t, 'consumer', 'receipt')
  redis.call('ZREM', LEASES, id)
  event(id, 'PENDING', name, queue, worker, why)
  make_ready(id, queue, band, name, f[2], f[1], f[3], 'PENDING', {})
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
  if redis.call('EXISTS', t) == 1 then return {id, 0} end
  local fields = {'msg', msg, 'name', name, 'queue', queue, 'band', band, 'expires', expires,
    'gen', '0', 'runs', '0'}
  local due = tonumber(eta)
  if due and due > NOW then
    redis.call('HSET', t, 'phase', 'delayed', 'state', 'PENDING', 'updated', NOW_S, unpack(fields))
    redis.call('ZADD', delayed_key(queue), eta, id)
    event(id, 'PENDING', name, queue, nil, 'eta ' .. eta)
  else
    event(id, 'PENDING', name, queue, nil, nil)
    make_ready(id, queue, band, name, expires, '0', msg, 'PENDING', fields)
  end
  return {id, 1}
end

-- Marks a leased task STARTED on `worker` (not when revoked).
-- Returns 0 lease lost, 1 held, 2 revoked.
local function start(id, gen, worker)
  local f = holder(id, gen)
  if not f then return 0 end
  if f[5] then return 2 end
  redis.call('HSET', task_key(id), 'state', 'STARTED', 'worker', worker, 'updated', NOW_S)
  event(id, 'STARTED', f[6], f[3], worker, nil)
  return 1
end

-- Ends a delivery, fenced by generation: `outcome` SUCCESS, RETRY, FAILURE
-- or REVOKED; `result`, `err`, `last_run` JSON or ''; `next_msg` and `due`
-- the next attempt (RETRY); `dead` '1' to dead-letter (FAILURE); `ran` '1'
-- when the task ran; `log` the run's log JSON or ''; `h` and `k1`..`k4`
-- the task's history key and its index keys for `outcome` (see
-- `remember`). The stream entry is
-- acknowledged, the lease cleared and the run counted. A task never marked
-- STARTED (it ran briefly) gets its STARTED event now, or ends REVOKED when
-- it was revoked before it started; so does a revoked task's retry. A dead
-- letter expires with its record. Returns 1, or 0 (nothing changed) when
-- the caller does not hold the current lease.
local function run_or_nil(run)
  if run == '' then return nil end
  return run
end

local function settle(id, gen, outcome, result, err, last_run, worker, detail, next_msg, due, dead, ran, log,
    h, k1, k2, k3, k4)
  -- With the fields the record published at the end keeps, read here
  -- rather than after the change: one command less.
  local f = holder(id, gen, 'msg', 'result', 'error', 'progress', 'worker')
  if not f then return 0 end
  local t = task_key(id)
  if worker == '' then worker = nil end
  local name, queue = f[6], f[3]
  local keys = {k1, k2, k3, k4}
  if f[5] and (f[7] == 'RECEIVED' or outcome == 'RETRY') then
    outcome = 'REVOKED'
    keys = nil
  elseif f[7] == 'RECEIVED' and ran == '1' then
    event(id, 'STARTED', name, queue, worker, nil)
  end
  local runs = tostring((tonumber(f[8]) or 0) + 1)
  local set = {'runs', runs, 'updated', NOW_S, 'state', outcome}
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
    remember(id, tonumber(runs), 'RETRY', name, queue, worker or f[13], f[9], nil, err,
      run_or_nil(last_run), log, h, keys)
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
  -- The hash as just written: `put` set or removed these, the rest kept.
  local kept_result, kept_error = f[10], f[11]
  if outcome == 'SUCCESS' then
    kept_result, kept_error = result, nil
    if result == '' then kept_result = nil end
  elseif err ~= '' then
    kept_error = err
  end
  if last_run == '' then last_run = nil end
  remember(id, tonumber(runs), outcome, name, queue, worker or f[13], f[9], kept_result,
    kept_error, last_run, log, h, keys)
  publish_record(id, f[9], outcome, kept_result, kept_error, f[12], worker or f[13], last_run, runs,
    NOW_S)
  return 1
end
"#;

/// A group of writes, applied in order (see `RedisBroker::write`). From
/// ARGV[5] on, each write is its kind followed by its arguments:
/// `submit` and the nine of `submit`, `start` and the three of `start`,
/// `settle` and the eighteen of `settle`. Returns each write's reply, in order.
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
      A[i + 8], A[i + 9], A[i + 10], A[i + 11], A[i + 12], A[i + 13], A[i + 14], A[i + 15],
      A[i + 16], A[i + 17], A[i + 18])
    i = i + 19
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
/// put in its inbox (see `make_ready`). Returns {entry id, message JSON,
/// generation, ...}.
const RESERVE: &str = r#"
local consumer = ARGV[5]
local max = tonumber(ARGV[6])
local lease_ms = ARGV[7]
local wait_ms = tonumber(ARGV[8])
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
      local got = take(entry[1], entry[2][2], consumer, lease_ms)
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
if f[5] then return 2 end
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
if f[5] then return 2 end
redis.call('HSET', task_key(id), 'state', 'PROGRESS', 'progress', ARGV[7], 'updated', NOW_S)
if f[7] ~= 'PROGRESS' then event(id, 'PROGRESS', f[6], f[3], nil, ARGV[8]) end
return 1
"#;

/// Hands a delivery back to its queue without counting an attempt (a
/// revoked one ends REVOKED). ARGV[5] id, [6] generation.
/// Returns 1, or 0 when the caller does not hold the current lease.
const RELEASE: &str = r#"
local id = ARGV[5]
local f = holder(id, ARGV[6])
if not f then return 0 end
if f[5] then
  finish(id, 'REVOKED', f[6], f[3], nil, 'revoked')
  return 1
end
requeue(id, f[3], f[4], f[6], nil, 'released')
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

/// Makes due tasks of queue ARGV[5]'s delayed set (at most ARGV[6]) ready
/// (state unchanged, PENDING or RETRY, until one is leased). Returns {moved, scanned}.
const PROMOTE: &str = r#"
local queue = ARGV[5]
local dkey = delayed_key(queue)
local due = redis.call('ZRANGEBYSCORE', dkey, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[6]))
local moved = 0
for _, id in ipairs(due) do
  redis.call('ZREM', dkey, id)
  local f = redis.call('HMGET', task_key(id), 'phase', 'band', 'revoked', 'state', 'name', 'expires',
    'gen', 'msg')
  if f[1] == 'delayed' then
    if f[3] then
      finish(id, 'REVOKED', f[5], queue, nil, 'revoked')
    else
      event(id, f[4], f[5], queue, nil, 'due')
      make_ready(id, queue, f[2], f[5], f[6], f[7], f[8], nil, {})
    end
    moved = moved + 1
  end
end
return {moved, #due}
"#;

/// Returns expired leases (dead or frozen workers), at most ARGV[5], to
/// their queues as PENDING (a revoked one ends REVOKED). The next lease
/// bumps the generation, which fences the old holder out.
/// Returns {moved, scanned}.
const RECLAIM: &str = r#"
local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[5]))
local moved = 0
for _, id in ipairs(expired) do
  redis.call('ZREM', LEASES, id)
  local t = task_key(id)
  local f = redis.call('HMGET', t, 'phase', 'queue', 'band', 'revoked', 'consumer', 'name')
  if f[1] == 'leased' then
    if f[4] then
      finish(id, 'REVOKED', f[6], f[2], f[5], 'revoked; lease expired')
    else
      requeue(id, f[2], f[3], f[6], f[5], 'lease of ' .. (f[5] or '?') .. ' expired')
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
/// delayed set; ARGV[5..] the queues' names, in the same order. Returns
/// {ready, reserved, scheduled} per queue. Ready tasks are the stream
/// entries not pending in the group (see `read_new` and
/// PRUNE_CONSUMERS); reserved ones are counted from the leases,
/// because a task handed straight to a waiting consumer has no entry: one
/// read per lease, which an inspection can afford.
const STATS: &str = r#"
local position = {}
for i = 5, #ARGV do position[ARGV[i]] = i - 4 end
local reserved = {}
for _, id in ipairs(redis.call('ZRANGE', LEASES, 0, -1)) do
  local at = position[redis.call('HGET', task_key(id), 'queue')]
  if at then reserved[at] = (reserved[at] or 0) + 1 end
end
local out = {}
for i = 1, #KEYS, 4 do
  for j = i, i + 2 do
    local pending = redis.pcall('XPENDING', KEYS[j], GROUP)
    local n = 0
    if type(pending) == 'table' and not pending.err then n = pending[1] end
    out[#out + 1] = redis.call('XLEN', KEYS[j]) - n
  end
  out[#out + 1] = reserved[(i + 3) / 4] or 0
  out[#out + 1] = redis.call('ZCARD', KEYS[i + 3])
end
return out
"#;

/// Deletes the consumers of the streams in KEYS that were idle for ARGV[5]
/// ms: every consumer name ever used stays in the group otherwise. Entries
/// still pending for one were read by an earlier version, which kept them
/// until their task ended; their tasks are tracked by their leases, so they
/// are deleted with it. Returns how many consumers it deleted.
const PRUNE_CONSUMERS: &str = r#"
local idle_limit = tonumber(ARGV[5])
local removed = 0
for _, key in ipairs(KEYS) do
  local consumers = redis.pcall('XINFO', 'CONSUMERS', key, GROUP)
  if type(consumers) == 'table' and not consumers.err then
    for _, c in ipairs(consumers) do
      local info = {}
      for i = 1, #c - 1, 2 do info[c[i]] = c[i + 1] end
      if type(info['idle']) == 'number' and info['idle'] > idle_limit then
        -- A thousand at a time: the rest go in the next rounds.
        if info['pending'] > 0 then
          local ids = {}
          for i, p in ipairs(redis.call('XPENDING', key, GROUP, '-', '+', 1000, info['name'])) do
            ids[i] = p[1]
          end
          redis.call('XACK', key, GROUP, unpack(ids))
          redis.call('XDEL', key, unpack(ids))
        end
        if info['pending'] <= 1000 then
          redis.call('XGROUP', 'DELCONSUMER', key, GROUP, info['name'])
          removed = removed + 1
        end
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

/// Drops the oldest history entries: those whose last change is before
/// ARGV[5] (ms), then the oldest past ARGV[6] entries, at most ARGV[7] in
/// all. Returns how many it dropped.
const HISTORY_PRUNE: &str = r#"
local oldest, max_tasks, batch = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local all = P .. 'hist:ix:all'
local ids = redis.call('ZRANGEBYSCORE', all, '-inf', '(' .. oldest, 'LIMIT', 0, batch)
local excess = redis.call('ZCARD', all) - #ids - max_tasks
if excess > 0 and #ids < batch then
  local more = redis.call('ZRANGE', all, #ids, #ids + math.min(excess, batch - #ids) - 1)
  for _, id in ipairs(more) do ids[#ids + 1] = id end
end
for _, id in ipairs(ids) do
  local h = hist_key(id)
  local f = redis.call('HMGET', h, 'task', 'state')
  for _, key in ipairs(hist_index_keys(f[1] or '', f[2] or '')) do redis.call('ZREM', key, id) end
  redis.call('ZREM', all, id)
  redis.call('DEL', h)
end
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
    pub(super) history_prune: Script,
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
            history_prune: script(HISTORY_PRUNE),
        }
    }
}
