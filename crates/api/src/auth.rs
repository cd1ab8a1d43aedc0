//! API keys: `Authorization: Bearer <key>`, kept only as SHA-256 hashes,
//! each with scopes, an optional set of user ids it may act for, and a
//! per-key rate limit.
//!
//! Keys come from a TOML file (`HIPPO_API_KEYS_FILE`):
//!
//! ```toml
//! [[keys]]
//! name = "app"
//! sha256 = "<hex of sha256(key)>"   # `hippo hash-key` prints it
//! scopes = ["submit", "read"]       # and "admin", "deploy", "limits"
//! users = ["alice", "bob"]          # optional: the key may act only for these
//! rate_per_s = 200                  # optional (default 1000)
//! ```
//!
//! and/or from `HIPPO_API_KEY`, one key with every scope.

use super::error::ApiError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

/// What a key may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Submit and cancel tasks.
    Submit,
    /// Read task status, results, queues and workers.
    Read,
    /// Purge queues, manage dead letters.
    Admin,
    /// Upload and delete plugins.
    Deploy,
    /// Submit tasks with limits above what the task's plugin gets (its
    /// manifest, `describe` and the defaults), up to the ceilings. Without
    /// it a submission's limits can only lower those.
    Limits,
}

/// Every scope.
pub const ALL_SCOPES: [Scope; 5] = [
    Scope::Submit,
    Scope::Read,
    Scope::Admin,
    Scope::Deploy,
    Scope::Limits,
];

/// One key as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for logs and errors.
    pub name: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// User ids it may act for; absent means any.
    pub users: Option<BTreeSet<String>>,
    /// Requests per second (burst: twice that).
    pub rate_per_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keys: Vec<KeyConfig>,
}

/// Errors loading keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Read(String, std::io::Error),
    /// The file is not valid.
    #[error("{0}: {1}")]
    Parse(String, String),
}

/// The caller a request was authenticated as.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Key name.
    pub name: String,
    scopes: BTreeSet<Scope>,
    users: Option<BTreeSet<String>>,
}

impl Caller {
    /// A dashboard login (basic auth): it may read, submit, administer,
    /// and deploy or remove plugins (the dashboard's Plugins tab), for any
    /// user; not raise limits.
    pub fn dashboard_login(name: &str) -> Caller {
        Caller {
            name: name.to_owned(),
            scopes: [Scope::Read, Scope::Submit, Scope::Admin, Scope::Deploy].into(),
            users: None,
        }
    }

    /// Whether the key has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Refuses the request unless the key has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                format!("key {:?} lacks the {scope:?} scope", self.name).to_lowercase(),
            ))
        }
    }

    /// Whether a listing may show this caller a task acting for
    /// `acting_for`: a key bound to users sees only tasks acting for one of
    /// them.
    pub fn sees(&self, acting_for: Option<&str>) -> bool {
        match (&self.users, acting_for) {
            (None, _) => true,
            (Some(users), Some(user)) => users.contains(user),
            (Some(_), None) => false,
        }
    }

    /// Refuses the request unless the key may see task `task_id`, which
    /// acts for `acting_for` (see [`Caller::sees`]).
    pub fn may_see(&self, acting_for: Option<&str>, task_id: &str) -> Result<(), ApiError> {
        if self.sees(acting_for) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "key {:?} may not see task {task_id}: it acts for another user",
                self.name
            )))
        }
    }

    /// Refuses the request unless the key may act for `user_id`.
    pub fn may_act_for(&self, user_id: &str) -> Result<(), ApiError> {
        match &self.users {
            Some(users) if !users.contains(user_id) => Err(ApiError::forbidden(format!(
                "key {:?} may not act for user {user_id:?}",
                self.name
            ))),
            _ => Ok(()),
        }
    }
}

/// A token bucket: `rate_per_s` tokens a second, a burst of twice that.
/// It limits each key's requests, and the dashboard's wrong logins.
#[derive(Debug)]
pub(crate) struct RateLimit {
    rate_per_s: f64,
    /// (tokens, when last refilled).
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// A full bucket of `rate_per_s` (at least 0.001) a second.
    pub(crate) fn new(rate_per_s: f64) -> RateLimit {
        let rate_per_s = rate_per_s.max(0.001);
        RateLimit {
            rate_per_s,
            bucket: Mutex::new((2.0 * rate_per_s, Instant::now())),
        }
    }

    /// Takes a token; without one, the whole seconds until there is one
    /// (at least 1), and nothing is taken.
    pub(crate) fn take(&self) -> Result<(), u64> {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, refilled) = *bucket;
        let tokens = (tokens + now.duration_since(refilled).as_secs_f64() * self.rate_per_s)
            .min(2.0 * self.rate_per_s);
        if tokens < 1.0 {
            *bucket = (tokens, now);
            return Err(((1.0 - tokens) / self.rate_per_s).ceil().max(1.0) as u64);
        }
        *bucket = (tokens - 1.0, now);
        Ok(())
    }
}

struct Key {
    caller: Caller,
    limit: RateLimit,
}

/// The configured keys, by hash.
pub struct KeyStore {
    keys: HashMap<[u8; 32], Key>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Default requests per second per key.
const DEFAULT_RATE_PER_S: f64 = 1000.0;

/// SHA-256 of a key, hex: what the key file stores.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl KeyStore {
    /// Keys from `configs`.
    pub fn new(configs: Vec<KeyConfig>) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for config in configs {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(config.sha256.trim(), &mut hash).map_err(|e| {
                KeyError::Parse(
                    config.name.clone(),
                    format!("sha256 must be 64 hex digits: {e}"),
                )
            })?;
            let key = Key {
                caller: Caller {
                    name: config.name,
                    scopes: config.scopes,
                    users: config.users,
                },
                limit: RateLimit::new(config.rate_per_s.unwrap_or(DEFAULT_RATE_PER_S)),
            };
            keys.insert(hash, key);
        }
        Ok(KeyStore { keys })
    }

    /// Keys from the TOML file at `path`.
    pub fn configs_from_file(path: &std::path::Path) -> Result<Vec<KeyConfig>, KeyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read(name.clone(), e))?;
        let file: KeyFile =
            toml::from_str(&text).map_err(|e| KeyError::Parse(name, e.to_string()))?;
        Ok(file.keys)
    }

    /// A key with every scope, for any user, given in plain text (it is
    /// hashed here and not kept).
    pub fn admin_key(name: &str, key: &str) -> KeyConfig {
        KeyConfig {
            name: name.into(),
            sha256: hash_key(key),
            scopes: ALL_SCOPES.into_iter().collect(),
            users: None,
            rate_per_s: None,
        }
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Authenticates an `Authorization` header value and charges the key's rate limit.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, ApiError> {
        let header =
            header.ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <key>"))?;
        // The scheme is case-insensitive (RFC 7235).
        let token = header
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .map(|_| &header[7..])
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <key>`"))?;
        let hash: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let key = self
            .keys
            .get(&hash)
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
        key.limit.take().map_err(ApiError::rate_limited)?;
        Ok(key.caller.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(rate: f64) -> KeyStore {
        let mut key = KeyStore::admin_key("ops", "s3cret");
        key.rate_per_s = Some(rate);
        key.users = Some(["alice".to_string()].into());
        KeyStore::new(vec![key]).unwrap()
    }

    #[test]
    fn keys_are_checked_by_hash() {
        let keys = store(100.0);
        assert!(keys.authenticate(Some("Bearer s3cret")).is_ok());
        assert_eq!(
            keys.authenticate(Some("Bearer wrong")).unwrap_err().code,
            "unauthorized"
        );
        assert_eq!(
            keys.authenticate(Some("s3cret")).unwrap_err().code,
            "unauthorized"
        );
        assert_eq!(keys.authenticate(None).unwrap_err().code, "unauthorized");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let keys = store(100.0);
        assert!(keys.authenticate(Some("bearer s3cret")).is_ok());
        assert!(keys.authenticate(Some("BEARER s3cret")).is_ok());
        assert!(keys.authenticate(Some("bearers3cret")).is_err());
    }

    #[test]
    fn user_binding_is_enforced() {
        let caller = store(100.0).authenticate(Some("Bearer s3cret")).unwrap();
        assert!(caller.may_act_for("alice").is_ok());
        assert_eq!(caller.may_act_for("bob").unwrap_err().code, "forbidden");
    }

    #[test]
    fn a_bound_key_lists_only_its_users_tasks() {
        let caller = store(100.0).authenticate(Some("Bearer s3cret")).unwrap();
        assert!(caller.sees(Some("alice")));
        assert!(!caller.sees(Some("bob")));
        assert!(!caller.sees(None));
        let unbound = KeyStore::new(vec![KeyStore::admin_key("ops", "k")]).unwrap();
        assert!(
            unbound
                .authenticate(Some("Bearer k"))
                .unwrap()
                .sees(Some("bob"))
        );
    }

    #[test]
    fn the_rate_limit_answers_429_with_retry_after() {
        let keys = store(1.0);
        assert!(keys.authenticate(Some("Bearer s3cret")).is_ok());
        assert!(keys.authenticate(Some("Bearer s3cret")).is_ok());
        let refused = keys.authenticate(Some("Bearer s3cret")).unwrap_err();
        assert_eq!(
            (refused.code, refused.retry_after),
            ("rate_limited", Some(1))
        );
    }
}
