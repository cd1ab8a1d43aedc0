//! Per-task resource limits and how they are resolved.
//!
//! Every field is resolved on its own, first set wins, from: the submission,
//! the plugin manifest, the plugin's `describe`, then the runtime's defaults.
//! The result is then clamped to the runtime's ceilings, which an operator
//! sets and no plugin or caller can raise.
//!
//! Who may raise what: the operator writes the defaults, the ceilings and the
//! manifest, so a manifest may raise a task's limits up to the ceilings. The
//! plugin's own `describe` is the plugin author's word and may only lower the
//! defaults ([`LimitOverrides::at_most`]), or a hostile plugin would grant
//! itself the ceilings. A submission may only lower what the manifest,
//! `describe` and the defaults give (the task's plugin limits) unless its
//! submitter was authorised to raise them (`Runtime::resolve_limits`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits as one layer states them: `None` means "not set here".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Soft time limit: after it the guest sees `soft-limit-passed` and may return a partial result.
    pub soft_time_limit_ms: Option<u64>,
    /// Hard time limit: after it the instance is interrupted and the task fails.
    pub hard_time_limit_ms: Option<u64>,
    /// Fuel (roughly, wasm instructions) the task may burn.
    pub fuel: Option<u64>,
    /// Linear memory cap in bytes.
    pub memory_bytes: Option<u64>,
    /// Table elements cap.
    pub table_elements: Option<u32>,
    /// Largest output in bytes.
    pub output_bytes: Option<u64>,
    /// Bytes of log kept (host log calls plus captured stdout and stderr).
    pub log_bytes: Option<u64>,
}

impl LimitOverrides {
    /// Fills every field this layer leaves unset from `lower`.
    #[must_use]
    pub fn or(self, lower: LimitOverrides) -> LimitOverrides {
        LimitOverrides {
            soft_time_limit_ms: self.soft_time_limit_ms.or(lower.soft_time_limit_ms),
            hard_time_limit_ms: self.hard_time_limit_ms.or(lower.hard_time_limit_ms),
            fuel: self.fuel.or(lower.fuel),
            memory_bytes: self.memory_bytes.or(lower.memory_bytes),
            table_elements: self.table_elements.or(lower.table_elements),
            output_bytes: self.output_bytes.or(lower.output_bytes),
            log_bytes: self.log_bytes.or(lower.log_bytes),
        }
    }

    /// This layer with every field it sets lowered to at most `cap`'s: a
    /// layer that may lower limits but not raise them.
    #[must_use]
    pub fn at_most(self, cap: &Limits) -> LimitOverrides {
        let lower = |value: Option<u64>, cap: u64| value.map(|v| v.min(cap));
        LimitOverrides {
            soft_time_limit_ms: lower(self.soft_time_limit_ms, millis_of(cap.soft_time_limit)),
            hard_time_limit_ms: lower(self.hard_time_limit_ms, millis_of(cap.hard_time_limit)),
            fuel: lower(self.fuel, cap.fuel),
            memory_bytes: lower(self.memory_bytes, cap.memory_bytes),
            table_elements: self.table_elements.map(|v| v.min(cap.table_elements)),
            output_bytes: lower(self.output_bytes, cap.output_bytes),
            log_bytes: lower(self.log_bytes, cap.log_bytes),
        }
    }

    /// The first field this layer sets above `cap`'s: what
    /// [`at_most`](Self::at_most) would lower.
    pub fn first_raise(&self, cap: &Limits) -> Option<Raise> {
        let fields = [
            (
                "soft_time_limit_ms",
                self.soft_time_limit_ms,
                millis_of(cap.soft_time_limit),
            ),
            (
                "hard_time_limit_ms",
                self.hard_time_limit_ms,
                millis_of(cap.hard_time_limit),
            ),
            ("fuel", self.fuel, cap.fuel),
            ("memory_bytes", self.memory_bytes, cap.memory_bytes),
            (
                "table_elements",
                self.table_elements.map(u64::from),
                u64::from(cap.table_elements),
            ),
            ("output_bytes", self.output_bytes, cap.output_bytes),
            ("log_bytes", self.log_bytes, cap.log_bytes),
        ];
        fields.into_iter().find_map(|(field, value, limit)| {
            value
                .filter(|requested| *requested > limit)
                .map(|requested| Raise {
                    field,
                    requested,
                    limit,
                })
        })
    }

    /// Resolves every field against `defaults`, then clamps to `ceilings`.
    pub fn resolve(self, defaults: &Limits, ceilings: &Limits) -> Limits {
        let pick =
            |value: Option<u64>, default: u64, ceiling: u64| value.unwrap_or(default).min(ceiling);
        let soft = pick(
            self.soft_time_limit_ms,
            millis_of(defaults.soft_time_limit),
            millis_of(ceilings.soft_time_limit),
        );
        let hard = pick(
            self.hard_time_limit_ms,
            millis_of(defaults.hard_time_limit),
            millis_of(ceilings.hard_time_limit),
        );
        Limits {
            // A soft limit past the hard one could never be seen by the guest.
            soft_time_limit: Duration::from_millis(soft.min(hard)),
            hard_time_limit: Duration::from_millis(hard),
            fuel: pick(self.fuel, defaults.fuel, ceilings.fuel),
            memory_bytes: pick(
                self.memory_bytes,
                defaults.memory_bytes,
                ceilings.memory_bytes,
            ),
            table_elements: self
                .table_elements
                .unwrap_or(defaults.table_elements)
                .min(ceilings.table_elements),
            output_bytes: pick(
                self.output_bytes,
                defaults.output_bytes,
                ceilings.output_bytes,
            ),
            log_bytes: pick(self.log_bytes, defaults.log_bytes, ceilings.log_bytes),
        }
    }
}

/// A limit a layer sets above what it may: see [`LimitOverrides::first_raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raise {
    /// The field, as [`LimitOverrides`] names it (`memory_bytes`).
    pub field: &'static str,
    /// What the layer asks for.
    pub requested: u64,
    /// What it may have at most.
    pub limit: u64,
}

impl From<Limits> for LimitOverrides {
    /// A layer that sets every field to `limits`'.
    fn from(limits: Limits) -> Self {
        LimitOverrides {
            soft_time_limit_ms: Some(millis_of(limits.soft_time_limit)),
            hard_time_limit_ms: Some(millis_of(limits.hard_time_limit)),
            fuel: Some(limits.fuel),
            memory_bytes: Some(limits.memory_bytes),
            table_elements: Some(limits.table_elements),
            output_bytes: Some(limits.output_bytes),
            log_bytes: Some(limits.log_bytes),
        }
    }
}

/// A duration in whole milliseconds, as the layers state time limits.
fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Fully resolved limits for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// See [`LimitOverrides::soft_time_limit_ms`].
    #[serde(rename = "soft_time_limit_ms", with = "millis")]
    pub soft_time_limit: Duration,
    /// See [`LimitOverrides::hard_time_limit_ms`].
    #[serde(rename = "hard_time_limit_ms", with = "millis")]
    pub hard_time_limit: Duration,
    /// See [`LimitOverrides::fuel`].
    pub fuel: u64,
    /// See [`LimitOverrides::memory_bytes`].
    pub memory_bytes: u64,
    /// See [`LimitOverrides::table_elements`].
    pub table_elements: u32,
    /// See [`LimitOverrides::output_bytes`].
    pub output_bytes: u64,
    /// See [`LimitOverrides::log_bytes`].
    pub log_bytes: u64,
}

impl Limits {
    /// The defaults a task gets when nobody sets a limit: the reference's
    /// 300 s soft and 600 s hard time limits, 256 MiB of memory, and a fuel
    /// budget of about a minute of fast guest code.
    pub const DEFAULT: Limits = Limits {
        soft_time_limit: Duration::from_secs(300),
        hard_time_limit: Duration::from_secs(600),
        fuel: 100_000_000_000,
        memory_bytes: 256 << 20,
        table_elements: 20_000,
        output_bytes: 16 << 20,
        log_bytes: 64 << 10,
    };

    /// The ceilings no submission, manifest or plugin can exceed.
    pub const CEILING: Limits = Limits {
        soft_time_limit: Duration::from_secs(24 * 3600),
        hard_time_limit: Duration::from_secs(24 * 3600),
        fuel: u64::MAX,
        memory_bytes: 4 << 30,
        table_elements: 1_000_000,
        output_bytes: 256 << 20,
        log_bytes: 16 << 20,
    };
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_layer_that_sets_a_field_wins() {
        let submission = LimitOverrides {
            fuel: Some(10),
            ..Default::default()
        };
        let manifest = LimitOverrides {
            fuel: Some(20),
            memory_bytes: Some(1 << 20),
            ..Default::default()
        };
        let describe = LimitOverrides {
            memory_bytes: Some(2 << 20),
            log_bytes: Some(7),
            ..Default::default()
        };
        let limits = submission
            .or(manifest)
            .or(describe)
            .resolve(&Limits::DEFAULT, &Limits::CEILING);
        assert_eq!(limits.fuel, 10);
        assert_eq!(limits.memory_bytes, 1 << 20);
        assert_eq!(limits.log_bytes, 7);
        assert_eq!(limits.output_bytes, Limits::DEFAULT.output_bytes);
    }

    #[test]
    fn ceilings_clamp_every_layer() {
        let greedy = LimitOverrides {
            memory_bytes: Some(u64::MAX),
            ..Default::default()
        };
        let ceiling = Limits {
            memory_bytes: 64 << 20,
            ..Limits::CEILING
        };
        assert_eq!(
            greedy.resolve(&Limits::DEFAULT, &ceiling).memory_bytes,
            64 << 20
        );
    }

    /// What the `greedy` test guest's `describe` asks for: the ceilings.
    fn greedy_describe() -> LimitOverrides {
        LimitOverrides::from(Limits::CEILING)
    }

    #[test]
    fn describe_asking_for_the_ceilings_gets_the_defaults() {
        // The bug: a plugin with no [limits] got what its describe asked, up
        // to the ceilings (4 GiB, 24 h).
        let limits = LimitOverrides::default()
            .or(greedy_describe().at_most(&Limits::DEFAULT))
            .resolve(&Limits::DEFAULT, &Limits::CEILING);
        assert_eq!(limits, Limits::DEFAULT);
    }

    #[test]
    fn describe_may_lower_the_defaults() {
        let modest = LimitOverrides {
            hard_time_limit_ms: Some(30_000),
            memory_bytes: Some(64 << 20),
            ..Default::default()
        };
        let limits = modest
            .at_most(&Limits::DEFAULT)
            .resolve(&Limits::DEFAULT, &Limits::CEILING);
        assert_eq!(limits.hard_time_limit, Duration::from_secs(30));
        assert_eq!(limits.memory_bytes, 64 << 20);
        assert_eq!(limits.fuel, Limits::DEFAULT.fuel);
    }

    #[test]
    fn the_manifest_may_raise_to_the_ceilings_where_describe_may_not() {
        let manifest = LimitOverrides {
            memory_bytes: Some(1 << 30),
            hard_time_limit_ms: Some(u64::MAX),
            ..Default::default()
        };
        let limits = manifest
            .or(greedy_describe().at_most(&Limits::DEFAULT))
            .resolve(&Limits::DEFAULT, &Limits::CEILING);
        assert_eq!(limits.memory_bytes, 1 << 30);
        assert_eq!(limits.hard_time_limit, Limits::CEILING.hard_time_limit);
        // What the manifest leaves unset, describe cannot raise.
        assert_eq!(limits.output_bytes, Limits::DEFAULT.output_bytes);
        assert_eq!(limits.log_bytes, Limits::DEFAULT.log_bytes);
    }

    #[test]
    fn first_raise_names_the_first_field_above_the_cap() {
        let cap = Limits::DEFAULT;
        let lowering = LimitOverrides {
            memory_bytes: Some(1 << 20),
            hard_time_limit_ms: Some(600_000),
            ..Default::default()
        };
        assert_eq!(lowering.first_raise(&cap), None);
        assert_eq!(lowering.at_most(&cap), lowering);
        let raising = LimitOverrides {
            fuel: Some(1),
            memory_bytes: Some((256 << 20) + 1),
            log_bytes: Some(u64::MAX),
            ..Default::default()
        };
        assert_eq!(
            raising.first_raise(&cap),
            Some(Raise {
                field: "memory_bytes",
                requested: (256 << 20) + 1,
                limit: 256 << 20,
            })
        );
        let lowered = raising.at_most(&cap);
        assert_eq!(
            (lowered.fuel, lowered.memory_bytes, lowered.log_bytes),
            (Some(1), Some(256 << 20), Some(cap.log_bytes))
        );
        assert_eq!(lowered.first_raise(&cap), None);
        let slow = LimitOverrides {
            soft_time_limit_ms: Some(300_001),
            ..Default::default()
        };
        assert_eq!(
            slow.first_raise(&cap).map(|r| r.field),
            Some("soft_time_limit_ms")
        );
    }

    #[test]
    fn a_complete_layer_resolves_to_itself() {
        let limits = Limits {
            memory_bytes: 1 << 20,
            ..Limits::DEFAULT
        };
        assert_eq!(
            LimitOverrides::from(limits).resolve(&Limits::DEFAULT, &Limits::CEILING),
            limits
        );
    }

    #[test]
    fn soft_limit_never_exceeds_hard_limit() {
        let odd = LimitOverrides {
            soft_time_limit_ms: Some(5_000),
            hard_time_limit_ms: Some(100),
            ..Default::default()
        };
        let limits = odd.resolve(&Limits::DEFAULT, &Limits::CEILING);
        assert_eq!(limits.soft_time_limit, Duration::from_millis(100));
    }
}
