//! The optional `plugins/<name>.toml` manifest beside a plugin's `.wasm`:
//! limits, default queue and the host capabilities the plugin is granted.
//!
//! ```toml
//! # plugins/example-fib.toml
//! grants = ["log", "deadline"]     # omit for the basic set: log, progress, deadline
//! queue = "background"             # default queue for every task of the plugin
//!
//! [limits]                         # defaults for every task of the plugin
//! hard_time_limit_ms = 5000
//! memory_bytes = 67108864
//!
//! [tasks."example.fib"]            # overrides for one task
//! queue = "memory_ops"
//! limits = { fuel = 1000000000 }
//!
//! [kv]                             # quota in the shared key-value store
//! max_keys = 1000
//! max_bytes = 4194304
//! ```

use hippo_kv::KvQuota;
use hippo_task::LimitOverrides;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A host interface of the `hippo:tasks` package that a plugin can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `hippo:tasks/log`: bounded structured logging.
    Log,
    /// `hippo:tasks/progress`: progress reports.
    Progress,
    /// `hippo:tasks/deadline`: the soft and hard time limits.
    Deadline,
    /// `hippo:tasks/embeddings`: the host's embedding model.
    Embeddings,
    /// `hippo:tasks/rerank`: the host's cross-encoder, when configured.
    Rerank,
    /// `hippo:tasks/memory-store`: the memories of the task's own user.
    MemoryStore,
    /// `hippo:tasks/kv`: the shared key-value store, in the plugin's namespace.
    Kv,
    /// `hippo:tasks/health`: probes of the host's services.
    Health,
    /// Not an interface but a scope: `memory-store` calls may act across
    /// users (maintenance tasks). Only for trusted plugins.
    MemoryMaintenance,
}

impl Capability {
    /// Every capability the host knows.
    pub const ALL: [Capability; 9] = [
        Capability::Log,
        Capability::Progress,
        Capability::Deadline,
        Capability::Embeddings,
        Capability::Rerank,
        Capability::MemoryStore,
        Capability::Kv,
        Capability::Health,
        Capability::MemoryMaintenance,
    ];
    /// What a plugin gets when its manifest does not say: harmless, task-local capabilities.
    pub const BASIC: [Capability; 3] =
        [Capability::Log, Capability::Progress, Capability::Deadline];

    /// The WIT interface name inside the `hippo:tasks` package.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Progress => "progress",
            Capability::Deadline => "deadline",
            Capability::Embeddings => "embeddings",
            Capability::Rerank => "rerank",
            Capability::MemoryStore => "memory-store",
            Capability::Kv => "kv",
            Capability::Health => "health",
            Capability::MemoryMaintenance => "memory-maintenance",
        }
    }

    /// The capability behind a `hippo:tasks` interface name, if any.
    pub fn from_interface(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.interface() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// Per-task settings in a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskManifest {
    /// Queue for this task, overriding the plugin-wide one.
    pub queue: Option<String>,
    /// Limits for this task, overriding the plugin-wide ones field by field.
    #[serde(default)]
    pub limits: LimitOverrides,
}

/// A plugin manifest. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Host capabilities the plugin may import.
    #[serde(default = "basic_grants")]
    pub grants: BTreeSet<Capability>,
    /// Default queue for every task of the plugin.
    pub queue: Option<String>,
    /// Limits for every task of the plugin.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Per-task settings, by task name.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskManifest>,
    /// The plugin's quota in the key-value store (with the `kv` grant).
    #[serde(default)]
    pub kv: KvManifest,
}

/// `[kv]`: what the plugin may hold in the shared key-value store. A field
/// left out is [`KvQuota::DEFAULT`]'s; either is capped by the operator's
/// ceiling ([`RuntimeConfig::kv_ceiling`](super::RuntimeConfig::kv_ceiling)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvManifest {
    /// Live keys.
    pub max_keys: Option<u64>,
    /// Bytes of those keys and their values.
    pub max_bytes: Option<u64>,
}

impl KvManifest {
    /// The quota this asks for, within `ceiling`.
    pub fn quota(&self, ceiling: KvQuota) -> KvQuota {
        KvQuota {
            max_keys: self.max_keys.unwrap_or(KvQuota::DEFAULT.max_keys),
            max_bytes: self.max_bytes.unwrap_or(KvQuota::DEFAULT.max_bytes),
        }
        .min(ceiling)
    }
}

fn basic_grants() -> BTreeSet<Capability> {
    Capability::BASIC.into_iter().collect()
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            grants: basic_grants(),
            queue: None,
            limits: LimitOverrides::default(),
            tasks: BTreeMap::new(),
            kv: KvManifest::default(),
        }
    }
}

impl Manifest {
    /// Parses a manifest from TOML.
    pub fn from_toml(text: &str) -> Result<Manifest, toml::de::Error> {
        toml::from_str(text)
    }

    /// The limits this manifest sets for `task`: the task's own, then the plugin-wide ones.
    pub fn limits_for(&self, task: &str) -> LimitOverrides {
        let own = self.tasks.get(task).map(|t| t.limits).unwrap_or_default();
        own.or(self.limits)
    }

    /// The queue this manifest sets for `task`, if any.
    pub fn queue_for(&self, task: &str) -> Option<&str> {
        self.tasks
            .get(task)
            .and_then(|t| t.queue.as_deref())
            .or(self.queue.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_manifest_grants_the_basic_set() {
        let manifest = Manifest::from_toml("").unwrap();
        assert_eq!(manifest.grants, basic_grants());
    }

    #[test]
    fn task_settings_override_plugin_settings() {
        let manifest = Manifest::from_toml(
            r#"
            grants = ["log"]
            queue = "background"
            [limits]
            fuel = 5
            memory_bytes = 10
            [tasks."a.b"]
            queue = "memory_ops"
            limits = { fuel = 7 }
            "#,
        )
        .unwrap();
        assert_eq!(manifest.grants.len(), 1);
        assert_eq!(manifest.queue_for("a.b"), Some("memory_ops"));
        assert_eq!(manifest.queue_for("other"), Some("background"));
        let limits = manifest.limits_for("a.b");
        assert_eq!((limits.fuel, limits.memory_bytes), (Some(7), Some(10)));
    }

    #[test]
    fn unknown_fields_and_capabilities_are_errors() {
        assert!(Manifest::from_toml("grant = [\"log\"]").is_err());
        assert!(Manifest::from_toml("grants = [\"network\"]").is_err());
        assert!(Manifest::from_toml("[kv]\nmax_values = 3").is_err());
    }

    #[test]
    fn the_kv_quota_takes_the_defaults_and_never_passes_the_ceiling() {
        let ceiling = KvQuota {
            max_keys: 50_000,
            max_bytes: 64 << 20,
        };
        let quota = |text| Manifest::from_toml(text).unwrap().kv.quota(ceiling);
        assert_eq!(quota(""), KvQuota::DEFAULT);
        assert_eq!(
            quota("[kv]\nmax_keys = 10"),
            KvQuota {
                max_keys: 10,
                max_bytes: KvQuota::DEFAULT.max_bytes
            }
        );
        assert_eq!(
            quota("[kv]\nmax_keys = 1000000\nmax_bytes = 1099511627776"),
            ceiling,
            "a manifest cannot ask past the operator's ceiling"
        );
        let low = KvQuota {
            max_keys: 5,
            max_bytes: 100,
        };
        assert_eq!(
            Manifest::default().kv.quota(low),
            low,
            "the ceiling caps the defaults too"
        );
    }
}
