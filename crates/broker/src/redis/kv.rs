//! The key-value store on Redis: plain string keys under `{prefix}kv:`
//! (`{prefix}kv:{namespace}/{key}` for a plugin's), with Redis's own TTLs.
//!
//! Each plugin namespace's usage lives beside its keys, kept by the Lua
//! scripts below, which do every write in a plugin's space:
//! - `{prefix}kv-sizes:{namespace}`: a hash, key -> its size (key plus
//!   value bytes), one field per counted key, so `HLEN` is the key count;
//! - `{prefix}kv-bytes:{namespace}`: the sum of those sizes;
//! - `{prefix}kv-ttls:{namespace}`: a sorted set, key -> expiry (Unix ms,
//!   by the server's clock), for counted keys with a TTL.
//!
//! Redis drops an expired key by itself, with no word to anyone, so each
//! script first purges the namespace's keys whose expiry passed from the
//! usage (and deletes them, should Redis not have yet): an expired key
//! never counts against a write. Keys stored before quotas existed have no
//! size field and count only once rewritten. The host's own keys (the
//! scheduler's) are plain commands with no usage.

use super::RedisBroker;
use crate::BrokerError;
use hippo_kv::{KeyValue, KvError, KvQuota, KvSpace, QuotaKind, check, ttl_ms};
use redis::{AsyncCommands, Script, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// Shared by the scripts. ARGV[1] key prefix, ARGV[2] namespace, ARGV[3]
/// key; then each script's own.
const PRELUDE: &str = r#"
local P, NS, KEY = ARGV[1], ARGV[2], ARGV[3]
local DATA = P .. 'kv:' .. NS .. '/'
local SIZES = P .. 'kv-sizes:' .. NS
local BYTES = P .. 'kv-bytes:' .. NS
local TTLS = P .. 'kv-ttls:' .. NS
local clock = redis.call('TIME')
local NOW = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- Takes the keys whose expiry passed out of the usage.
local function purge()
  local due = redis.call('ZRANGEBYSCORE', TTLS, '-inf', NOW)
  if #due == 0 then return end
  local freed = 0
  for _, key in ipairs(due) do
    local size = redis.call('HGET', SIZES, key)
    if size then
      freed = freed + tonumber(size)
      redis.call('HDEL', SIZES, key)
    end
    redis.call('DEL', DATA .. key)
  end
  redis.call('ZREMRANGEBYSCORE', TTLS, '-inf', NOW)
  redis.call('DECRBY', BYTES, freed)
end

-- Whether KEY may grow the namespace to hold it at `size`: nil, or the
-- refusal {'keys'|'bytes', used, adding}.
local function refusal(size, max_keys, max_bytes)
  local keys = redis.call('HLEN', SIZES)
  local bytes = tonumber(redis.call('GET', BYTES) or '0')
  local old = redis.call('HGET', SIZES, KEY)
  local add_keys, add_bytes = 1, size
  if old then add_keys, add_bytes = 0, size - tonumber(old) end
  if add_keys > 0 and keys + add_keys > max_keys then return {'keys', keys, add_keys} end
  if add_bytes > 0 and bytes + add_bytes > max_bytes then return {'bytes', bytes, add_bytes} end
  return nil
end

-- Counts KEY at `size`, expiring at `expires` (Unix ms; nil: never).
local function count(size, expires)
  local old = redis.call('HGET', SIZES, KEY)
  redis.call('HSET', SIZES, KEY, size)
  redis.call('INCRBY', BYTES, size - tonumber(old or '0'))
  if expires then
    redis.call('ZADD', TTLS, expires, KEY)
  else
    redis.call('ZREM', TTLS, KEY)
  end
end

-- Stops counting KEY.
local function uncount()
  local old = redis.call('HGET', SIZES, KEY)
  if not old then return end
  redis.call('HDEL', SIZES, KEY)
  redis.call('ZREM', TTLS, KEY)
  if redis.call('HLEN', SIZES) == 0 then
    redis.call('DEL', BYTES)
  else
    redis.call('DECRBY', BYTES, old)
  end
end

purge()
"#;

/// Sets KEY to ARGV[4], with TTL ARGV[5] (ms; '' for none), within
/// ARGV[6] keys and ARGV[7] bytes. Returns {'ok'} or the refusal.
const SET: &str = r#"
local value, ttl = ARGV[4], ARGV[5]
local size = #KEY + #value
local refused = refusal(size, tonumber(ARGV[6]), tonumber(ARGV[7]))
if refused then return refused end
if ttl == '' then
  redis.call('SET', DATA .. KEY, value)
  count(size, nil)
else
  redis.call('SET', DATA .. KEY, value, 'PX', ttl)
  count(size, NOW + tonumber(ttl))
end
return {'ok'}
"#;

/// Adds ARGV[4] to the integer at KEY, keeping its TTL, within ARGV[5]
/// keys and ARGV[6] bytes. Returns {'ok', new value}, {'nan'} or the
/// refusal. The new value's length is known only once `INCRBY` made it
/// (Lua's numbers cannot hold every 64-bit integer), so a refused one is
/// undone, unseen, inside the script.
const INCR: &str = r#"
local data = DATA .. KEY
local before = redis.call('GET', data)
local added = redis.pcall('INCRBY', data, ARGV[4])
if type(added) == 'table' and added.err then return {'nan'} end
local value = redis.call('GET', data)
local size = #KEY + #value
local refused = refusal(size, tonumber(ARGV[5]), tonumber(ARGV[6]))
if refused then
  if before then redis.call('SET', data, before, 'KEEPTTL') else redis.call('DEL', data) end
  return refused
end
local ttl = redis.call('PTTL', data)
local expires = nil
if ttl > 0 then expires = NOW + ttl end
count(size, expires)
return {'ok', value}
"#;

/// Deletes KEY. Returns {'ok', 1 if it existed else 0}.
const DELETE: &str = r#"
local removed = redis.call('DEL', DATA .. KEY)
uncount()
return {'ok', removed}
"#;

/// The compiled scripts (their SHA1s are computed once).
struct KvScripts {
    set: Script,
    incr: Script,
    delete: Script,
}

static SCRIPTS: LazyLock<KvScripts> = LazyLock::new(|| {
    let script = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
    KvScripts {
        set: script(SET),
        incr: script(INCR),
        delete: script(DELETE),
    }
});

/// A plain command's error: Redis answers `INCRBY` on text, or one that
/// overflows, with a response error.
fn storage(error: redis::RedisError) -> KvError {
    if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) {
        KvError::NotAnInteger
    } else {
        KvError::from(BrokerError::storage(error))
    }
}

fn corrupt(what: &str, reply: &Value) -> KvError {
    KvError::from(BrokerError::Corrupt(format!(
        "kv script: {what}: {reply:?}"
    )))
}

/// A script's reply: `Ok(rest)` for `{'ok', rest...}`, else the error it
/// stands for.
fn verdict(reply: Value, quota: KvQuota) -> Result<Vec<Value>, KvError> {
    let Value::Array(mut items) = reply else {
        return Err(corrupt("not an array", &reply));
    };
    let word = match items.first() {
        Some(Value::BulkString(word)) => word.clone(),
        _ => return Err(corrupt("no verdict", &Value::Array(items))),
    };
    let number = |at: usize| match items.get(at) {
        Some(Value::Int(n)) => Ok(*n as u64),
        _ => Err(corrupt("not a number", &Value::Array(items.clone()))),
    };
    match word.as_slice() {
        b"ok" => Ok(items.split_off(1)),
        b"nan" => Err(KvError::NotAnInteger),
        b"keys" => Err(quota.exceeded(QuotaKind::Keys, number(1)?, number(2)?)),
        b"bytes" => Err(quota.exceeded(QuotaKind::Bytes, number(1)?, number(2)?)),
        _ => Err(corrupt("unknown verdict", &Value::Array(items))),
    }
}

impl RedisBroker {
    fn kv_key(&self, space: KvSpace<'_>, key: &str) -> String {
        self.key(&format!("kv:{}", space.stored_key(key)))
    }

    /// Runs `script` for `key` of `namespace` with `args` after the common
    /// ones.
    async fn kv_script(
        &self,
        script: &Script,
        namespace: &str,
        key: &str,
        args: &[&[u8]],
        quota: KvQuota,
    ) -> Result<Vec<Value>, KvError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(self.prefix()).arg(namespace).arg(key);
        for arg in args {
            invocation.arg(*arg);
        }
        let reply: Value = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| KvError::from(BrokerError::storage(e)))?;
        verdict(reply, quota)
    }
}

#[async_trait::async_trait]
impl KeyValue for RedisBroker {
    async fn kv_get(&self, space: KvSpace<'_>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check(space, key, None)?;
        self.conn
            .clone()
            .get(self.kv_key(space, key))
            .await
            .map_err(storage)
    }

    async fn kv_set(
        &self,
        space: KvSpace<'_>,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        check(space, key, Some(value))?;
        // PX refuses 0; a zero TTL means "already expired".
        let ttl = ttl.map(|ttl| ttl_ms(ttl).max(1));
        let KvSpace::Plugin { namespace, quota } = space else {
            let mut conn = self.conn.clone();
            let key = self.kv_key(space, key);
            return match ttl {
                Some(ms) => conn.pset_ex(key, value, ms).await,
                None => conn.set(key, value).await,
            }
            .map_err(storage);
        };
        let ttl = ttl.map(|ms| ms.to_string()).unwrap_or_default();
        let (max_keys, max_bytes) = (quota.max_keys.to_string(), quota.max_bytes.to_string());
        let args: [&[u8]; 4] = [
            value,
            ttl.as_bytes(),
            max_keys.as_bytes(),
            max_bytes.as_bytes(),
        ];
        self.kv_script(&SCRIPTS.set, namespace, key, &args, quota)
            .await
            .map(drop)
    }

    async fn kv_incr(&self, space: KvSpace<'_>, key: &str, delta: i64) -> Result<i64, KvError> {
        check(space, key, None)?;
        let KvSpace::Plugin { namespace, quota } = space else {
            return self
                .conn
                .clone()
                .incr(self.kv_key(space, key), delta)
                .await
                .map_err(storage);
        };
        let delta = delta.to_string();
        let (max_keys, max_bytes) = (quota.max_keys.to_string(), quota.max_bytes.to_string());
        let args: [&[u8]; 3] = [delta.as_bytes(), max_keys.as_bytes(), max_bytes.as_bytes()];
        let rest = self
            .kv_script(&SCRIPTS.incr, namespace, key, &args, quota)
            .await?;
        match rest.first() {
            Some(Value::BulkString(value)) => std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or(KvError::NotAnInteger),
            _ => Err(corrupt("incr returned no value", &Value::Array(rest))),
        }
    }

    async fn kv_delete(&self, space: KvSpace<'_>, key: &str) -> Result<bool, KvError> {
        check(space, key, None)?;
        let KvSpace::Plugin { namespace, quota } = space else {
            let removed: u64 = self
                .conn
                .clone()
                .del(self.kv_key(space, key))
                .await
                .map_err(storage)?;
            return Ok(removed > 0);
        };
        let rest = self
            .kv_script(&SCRIPTS.delete, namespace, key, &[], quota)
            .await?;
        match rest.first() {
            Some(Value::Int(removed)) => Ok(*removed > 0),
            _ => Err(corrupt("delete returned no count", &Value::Array(rest))),
        }
    }
}
