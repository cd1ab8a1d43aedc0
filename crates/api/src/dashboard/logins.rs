//! Who may use the dashboard: basic-auth logins ([`Logins`], Flower's
//! variables) and the browser sessions a login opens ([`Sessions`]).

use super::super::auth::{Caller, RateLimit};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Passwords a dashboard must not be exposed with: Flower's and the
/// reference stack's examples, and the usual first guesses.
pub const KNOWN_DEFAULT_PASSWORDS: &[&str] = &[
    "admin",
    "password",
    "changeme",
    "changeme_in_production",
    "flower",
    "celery",
];

/// Wrong credentials per second (a burst of twice that) before the
/// dashboard answers 429 to every bad attempt.
const FAILURES_PER_S: f64 = 5.0;

/// The dashboard's basic-auth logins, and the limit on wrong attempts.
#[derive(Debug)]
pub struct Logins {
    /// (user, SHA-256 of the password).
    users: Vec<(String, [u8; 32])>,
    failures: RateLimit,
}

impl Logins {
    /// Logins from `FLOWER_BASIC_AUTH` (`user:pass`, comma-separated, as
    /// Flower takes it) and `FLOWER_USER` / `FLOWER_PASSWORD` (the
    /// reference stack's), as `env` gives them.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Logins, String> {
        let mut pairs = Vec::new();
        if let Some(spec) = env("FLOWER_BASIC_AUTH").filter(|s| !s.trim().is_empty()) {
            for pair in spec.split(',') {
                let (user, password) = pair
                    .trim()
                    .split_once(':')
                    .ok_or("FLOWER_BASIC_AUTH must be user:password[,user:password...]")?;
                pairs.push((user.to_owned(), password.to_owned()));
            }
        }
        match (env("FLOWER_USER"), env("FLOWER_PASSWORD")) {
            (Some(user), Some(password)) => pairs.push((user, password)),
            (None, None) => {}
            _ => return Err("FLOWER_USER and FLOWER_PASSWORD go together".into()),
        }
        Logins::new(pairs)
    }

    /// Logins of (user, password) pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Result<Logins, String> {
        let mut users = Vec::new();
        for (user, password) in pairs {
            if user.is_empty() || password.is_empty() {
                return Err("a dashboard login needs a user and a password".into());
            }
            users.push((user, Sha256::digest(password.as_bytes()).into()));
        }
        Ok(Logins {
            users,
            failures: RateLimit::new(FAILURES_PER_S),
        })
    }

    /// Whether any login is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The first login whose password is a known default, if any.
    pub fn weak_login(&self) -> Option<&str> {
        self.users.iter().find_map(|(user, hash)| {
            KNOWN_DEFAULT_PASSWORDS
                .iter()
                .any(|p| <[u8; 32]>::from(Sha256::digest(p.as_bytes())) == *hash)
                .then_some(user.as_str())
        })
    }

    /// The caller a basic-auth `user:password` names, if it is a login.
    pub(crate) fn check(&self, credentials: &str) -> Option<Caller> {
        let (user, password) = credentials.split_once(':')?;
        let hash: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        // Every login is compared, in time independent of where they differ.
        let mut found = None;
        for (name, expected) in &self.users {
            if (name.as_bytes() == user.as_bytes()) & same_digest(expected, &hash) {
                found = Some(Caller::dashboard_login(name));
            }
        }
        found
    }

    /// Counts a wrong attempt; false when there were too many of late.
    pub(crate) fn allow_failure(&self) -> bool {
        self.failures.take().is_ok()
    }
}

/// How long a browser session lasts without being used.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; past it the least recently used one is closed.
const MAX_SESSIONS: usize = 10_000;

/// An open browser session: who it is, its CSRF token, when it was last used.
struct Session {
    caller: Caller,
    csrf: String,
    used: Instant,
}

/// The browser sessions of this process, by the SHA-256 of their cookie
/// (a leaked map holds no usable cookie). They end with the process, after
/// [`SESSION_IDLE`] unused, or at logout.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// 244 random bits from the operating system's generator, as text.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `caller`: (its cookie, its CSRF token).
    pub(crate) fn open(&self, caller: Caller) -> (String, String) {
        let (cookie, csrf) = (random_token(), random_token());
        let mut open = self.lock();
        let now = Instant::now();
        open.retain(|_, s| now.duration_since(s.used) < SESSION_IDLE);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k)
        {
            open.remove(&oldest);
        }
        let session = Session {
            caller,
            csrf: csrf.clone(),
            used: now,
        };
        open.insert(Sha256::digest(cookie.as_bytes()).into(), session);
        (cookie, csrf)
    }

    /// The caller and CSRF token of the session of `cookie`, if it is open.
    pub(crate) fn find(&self, cookie: &str) -> Option<(Caller, String)> {
        let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
        let mut open = self.lock();
        let now = Instant::now();
        match open.get_mut(&key) {
            Some(s) if now.duration_since(s.used) < SESSION_IDLE => {
                s.used = now;
                Some((s.caller.clone(), s.csrf.clone()))
            }
            Some(_) => {
                open.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `cookie`.
    pub(crate) fn close(&self, cookie: &str) {
        let key: [u8; 32] = Sha256::digest(cookie.as_bytes()).into();
        self.lock().remove(&key);
    }
}

/// Whether two secrets are equal, in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    same_digest(
        &Sha256::digest(a.as_bytes()).into(),
        &Sha256::digest(b.as_bytes()).into(),
    )
}

/// Whether two digests are equal, looking at every byte whatever differs.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_until_closed() {
        let sessions = Sessions::default();
        let (cookie, csrf) = sessions.open(Caller::dashboard_login("ann"));
        assert_ne!(cookie, csrf);
        assert_eq!(cookie.len(), 64);
        let (caller, found_csrf) = sessions.find(&cookie).unwrap();
        assert_eq!((caller.name.as_str(), found_csrf), ("ann", csrf.clone()));
        assert!(
            sessions.find(&csrf).is_none(),
            "the CSRF token is no cookie"
        );
        sessions.close(&cookie);
        assert!(sessions.find(&cookie).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
