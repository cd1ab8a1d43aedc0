//! The reference stack's settings (Celery, Celery Beat, Flower), as its
//! guide's `.env` lists them: each is honoured, or refused at start with a
//! message naming it and saying what to do; none is silently ignored.
//!
//! | variable | in hippo |
//! |---|---|
//! | `CELERY_BROKER_URL` | `HIPPO_BROKER_URL` ([`super::broker_url_from_env`]) |
//! | `CELERY_RESULT_BACKEND` | results are kept in the broker: a Redis URL on the broker's server is honoured so (said at start); another server, or another kind of backend, is refused |
//! | `CELERY_WORKER_CONCURRENCY` | `--concurrency` |
//! | `CELERY_WORKER_PREFETCH_MULTIPLIER` | `--prefetch` |
//! | `CELERY_TASK_ACKS_LATE` | `true` is what hippo always does (a task is acknowledged when it ends; a lost worker's task runs again); `false` is refused |
//! | `CELERY_WORKER_MAX_TASKS_PER_CHILD` | every task runs in a fresh sandbox instance, so any limit is met: a positive number is honoured so |
//! | `FLOWER_PORT` | the dashboard's port, unless `--dashboard-listen` says otherwise |
//! | `FLOWER_USER`, `FLOWER_PASSWORD`, `FLOWER_BASIC_AUTH` | dashboard logins (`hippo_api::dashboard`) |
//! | `AUTO_DEDUP_ENABLED`, `AUTO_CONSOLIDATION_ENABLED`, `*_INTERVAL_HOURS` | schedule entries (`hippo_scheduler`) |
//!
//! Any other `CELERY_*` or `FLOWER_*` variable has no meaning here and is
//! named in a warning at start.

use crate::scheduler::parse_bool;
use std::net::{Ipv4Addr, SocketAddr};

/// The variables read here or elsewhere in hippo; others of the
/// reference's prefixes are warned about.
const KNOWN: [&str; 10] = [
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_WORKER_CONCURRENCY",
    "CELERY_WORKER_PREFETCH_MULTIPLIER",
    "CELERY_TASK_ACKS_LATE",
    "CELERY_WORKER_MAX_TASKS_PER_CHILD",
    "FLOWER_PORT",
    "FLOWER_USER",
    "FLOWER_PASSWORD",
    "FLOWER_BASIC_AUTH",
];

/// A reference setting hippo cannot honour, or one that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {what_to_do}")]
pub struct ReferenceSettingError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Why it is refused and what to do instead.
    pub what_to_do: String,
}

/// What the reference's settings ask of this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceSettings {
    /// `CELERY_WORKER_CONCURRENCY`.
    pub concurrency: Option<usize>,
    /// `CELERY_WORKER_PREFETCH_MULTIPLIER`.
    pub prefetch: Option<usize>,
    /// `FLOWER_PORT`.
    pub flower_port: Option<u16>,
    /// What was honoured in hippo's own way, to say at start.
    pub notes: Vec<String>,
    /// Variables of the reference's prefixes that mean nothing here.
    pub unknown: Vec<String>,
}

impl ReferenceSettings {
    /// Reads the process environment; `broker_url` is the broker this
    /// process uses (`None`: the embedded one).
    pub fn from_env(broker_url: Option<&str>) -> Result<Self, ReferenceSettingError> {
        Self::read(std::env::vars(), broker_url)
    }

    /// Reads `vars` (name, value pairs).
    pub fn read(
        vars: impl IntoIterator<Item = (String, String)>,
        broker_url: Option<&str>,
    ) -> Result<Self, ReferenceSettingError> {
        let mut settings = ReferenceSettings::default();
        for (name, value) in vars {
            let value = value.trim().to_string();
            if value.is_empty() {
                continue;
            }
            let Some(known) = KNOWN.iter().copied().find(|k| *k == name) else {
                if name.starts_with("CELERY_") || name.starts_with("FLOWER_") {
                    settings.unknown.push(name);
                }
                continue;
            };
            let refuse = |what_to_do: String| ReferenceSettingError {
                name: known,
                value: value.clone(),
                what_to_do,
            };
            match known {
                "CELERY_RESULT_BACKEND" => {
                    settings
                        .notes
                        .push(result_backend(&value, broker_url).map_err(refuse)?);
                }
                "CELERY_WORKER_CONCURRENCY" => {
                    settings.concurrency = Some(positive(&value).map_err(refuse)?);
                }
                "CELERY_WORKER_PREFETCH_MULTIPLIER" => {
                    settings.prefetch = Some(positive(&value).map_err(refuse)?);
                }
                "CELERY_TASK_ACKS_LATE" => match parse_bool(&value) {
                    Some(true) => settings.notes.push(
                        "CELERY_TASK_ACKS_LATE=true: hippo always acknowledges a task when it ends"
                            .into(),
                    ),
                    Some(false) => {
                        return Err(refuse(
                            "hippo always acknowledges a task when it ends (a lost worker's \
                             task runs again); remove the variable"
                                .into(),
                        ));
                    }
                    None => return Err(refuse("must be true or false".into())),
                },
                "CELERY_WORKER_MAX_TASKS_PER_CHILD" => {
                    positive(&value).map_err(refuse)?;
                    settings.notes.push(format!(
                        "CELERY_WORKER_MAX_TASKS_PER_CHILD={value}: met, every task runs in a \
                         fresh sandbox instance"
                    ));
                }
                "FLOWER_PORT" => {
                    let port = value
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| refuse("must be a port number, 1 to 65535".into()))?;
                    settings.flower_port = Some(port);
                }
                // Read where they apply (the broker URL, the dashboard's logins).
                _ => {}
            }
        }
        settings.unknown.sort();
        Ok(settings)
    }

    /// Where the dashboard listens: `given` (`--dashboard-listen`), else
    /// loopback on `FLOWER_PORT`, else 127.0.0.1:5555.
    pub fn dashboard_listen(&self, given: Option<SocketAddr>) -> SocketAddr {
        given.unwrap_or_else(|| {
            SocketAddr::from((Ipv4Addr::LOCALHOST, self.flower_port.unwrap_or(5555)))
        })
    }

    /// Says at start what was honoured in hippo's way and what means nothing.
    pub fn log(&self) {
        for note in &self.notes {
            tracing::info!("{note}");
        }
        if !self.unknown.is_empty() {
            tracing::warn!(
                variables = %self.unknown.join(", "),
                "these Celery/Flower settings have no meaning in hippo and are not used \
                 (see the README's migration table)"
            );
        }
    }
}

/// The note for a result backend hippo honours by keeping results in the
/// broker, or what to do instead.
fn result_backend(value: &str, broker_url: Option<&str>) -> Result<String, String> {
    let server = |url: &str| -> Option<String> {
        let rest = url.strip_prefix("redis://")?;
        let authority = rest.split('/').next()?;
        Some(authority.rsplit('@').next()?.to_string())
    };
    match (server(value), broker_url.and_then(server)) {
        (Some(backend), Some(broker)) if backend == broker => Ok(format!(
            "CELERY_RESULT_BACKEND={value}: results are kept with the broker on the same Redis \
             server ({})",
            broker_url.unwrap_or_default()
        )),
        _ => Err(format!(
            "hippo keeps results in its broker ({}), not in a separate backend; remove the \
             variable, or point it at the broker's Redis server",
            broker_url.unwrap_or("embedded")
        )),
    }
}

fn positive(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "must be a whole number above 0".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        vars: &[(&str, &str)],
        broker: Option<&str>,
    ) -> Result<ReferenceSettings, ReferenceSettingError> {
        ReferenceSettings::read(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            broker,
        )
    }

    /// The guide's own `.env`, as it stands, starts hippo.
    #[test]
    fn the_guides_env_is_honoured() {
        let settings = read(
            &[
                ("CELERY_BROKER_URL", "redis://redis:6379/1"),
                ("CELERY_RESULT_BACKEND", "redis://redis:6379/2"),
                ("CELERY_WORKER_CONCURRENCY", "4"),
                ("CELERY_WORKER_PREFETCH_MULTIPLIER", "4"),
                ("CELERY_TASK_ACKS_LATE", "true"),
                ("CELERY_WORKER_MAX_TASKS_PER_CHILD", "1000"),
                ("FLOWER_PORT", "5555"),
                ("FLOWER_USER", "admin"),
                ("FLOWER_PASSWORD", "changeme_in_production"),
            ],
            Some("redis://redis:6379/1"),
        )
        .unwrap();
        assert_eq!(
            (
                settings.concurrency,
                settings.prefetch,
                settings.flower_port
            ),
            (Some(4), Some(4), Some(5555))
        );
        assert_eq!(settings.notes.len(), 3, "{:?}", settings.notes);
        assert!(settings.unknown.is_empty());
    }

    #[test]
    fn what_hippo_cannot_honour_is_refused_by_name() {
        for (name, value, broker) in [
            (
                "CELERY_RESULT_BACKEND",
                "redis://other:6379/2",
                Some("redis://redis:6379/1"),
            ),
            (
                "CELERY_RESULT_BACKEND",
                "db+postgresql://x/y",
                Some("redis://redis:6379/1"),
            ),
            ("CELERY_RESULT_BACKEND", "redis://redis:6379/2", None),
            ("CELERY_TASK_ACKS_LATE", "false", None),
            ("CELERY_TASK_ACKS_LATE", "maybe", None),
            ("CELERY_WORKER_MAX_TASKS_PER_CHILD", "0", None),
            ("CELERY_WORKER_CONCURRENCY", "four", None),
            ("FLOWER_PORT", "70000", None),
        ] {
            let error = read(&[(name, value)], broker).unwrap_err();
            assert_eq!(error.name, name);
            assert!(
                error.to_string().starts_with(&format!("{name}=")),
                "{error}"
            );
        }
    }

    #[test]
    fn other_reference_variables_are_named_and_the_port_places_the_dashboard() {
        let settings = read(
            &[
                ("CELERY_TIMEZONE", "UTC"),
                ("FLOWER_PORT", "5600"),
                ("PATH", "/bin"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(settings.unknown, ["CELERY_TIMEZONE"]);
        assert_eq!(
            settings.dashboard_listen(None),
            "127.0.0.1:5600".parse().unwrap()
        );
        let given = "0.0.0.0:7000".parse().unwrap();
        assert_eq!(settings.dashboard_listen(Some(given)), given);
        assert_eq!(
            ReferenceSettings::default().dashboard_listen(None),
            "127.0.0.1:5555".parse().unwrap()
        );
    }
}
