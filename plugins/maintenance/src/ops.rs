//! `maintenance.snapshot` and `maintenance.health`.

use hippo_sdk::health::{self, Probe};
use hippo_sdk::time::{now_ms, to_rfc3339};
use hippo_sdk::{Context, TaskError, memory};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Snapshots kept per collection unless the input says otherwise, and the most.
const DEFAULT_KEEP: u32 = 24;
const MAX_KEEP: u32 = 1_000;

/// Input of `maintenance.snapshot`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotInput {
    /// Snapshots to keep per collection, newest first (default 24: a day of
    /// hourly runs).
    keep: Option<u32>,
}

/// `maintenance.snapshot`: snapshots every collection and deletes all but
/// the newest `keep` of each. Out `{keep, snapshots: [{collection, name,
/// created_at, size_bytes}]}`, the snapshots kept.
pub fn snapshot(ctx: &Context, input: Option<SnapshotInput>) -> Result<Value, TaskError> {
    let keep = input.unwrap_or_default().keep.unwrap_or(DEFAULT_KEEP);
    if keep == 0 || keep > MAX_KEEP {
        return Err(TaskError::bad_input(format!(
            "field `keep`: must be between 1 and {MAX_KEEP}"
        )));
    }
    let kept = memory::snapshot(keep)?;
    ctx.info(format!("snapshot: {} snapshots kept", kept.len()));
    let snapshots: Vec<Value> = kept
        .iter()
        .map(|s| {
            json!({
                "collection": s.collection,
                "name": s.name,
                "created_at": to_rfc3339(s.created_at),
                "size_bytes": s.size_bytes,
            })
        })
        .collect();
    Ok(json!({ "keep": keep, "snapshots": snapshots }))
}

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every service answered.
    Healthy,
    /// Only optional services (the reranker) failed: recall still works,
    /// less well.
    Degraded,
    /// The store, the broker or the embedder failed, or nothing answered.
    Unhealthy,
}

/// Services the memory engine cannot work without.
const ESSENTIAL: [&str; 3] = ["store", "broker", "embedder"];

/// The overall status of these probes.
pub fn status(probes: &[Probe]) -> Status {
    if probes.is_empty() {
        return Status::Unhealthy;
    }
    let failed = |p: &&Probe| !p.ok;
    if probes
        .iter()
        .filter(failed)
        .any(|p| ESSENTIAL.contains(&p.component.as_str()))
    {
        Status::Unhealthy
    } else if probes.iter().any(|p| !p.ok) {
        Status::Degraded
    } else {
        Status::Healthy
    }
}

/// `maintenance.health`: probes every service of the host. Out `{status,
/// checked_at, components: [{component, ok, latency_ms, detail}]}`. An
/// unhealthy host is reported, not a failure of the task.
pub fn health(ctx: &Context, _input: Option<Value>) -> Result<Value, TaskError> {
    let probes = health::check();
    let status = status(&probes);
    let components: Vec<Value> = probes
        .iter()
        .map(|p| {
            json!({
                "component": p.component,
                "ok": p.ok,
                "latency_ms": p.latency_us as f64 / 1_000.0,
                "detail": p.detail,
            })
        })
        .collect();
    if status != Status::Healthy {
        let failed: Vec<&str> = probes
            .iter()
            .filter(|p| !p.ok)
            .map(|p| p.component.as_str())
            .collect();
        ctx.warn(format!(
            "health: {status:?}; failing: {}",
            failed.join(", ")
        ));
    }
    Ok(json!({ "status": status, "checked_at": to_rfc3339(now_ms()), "components": components }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(component: &str, ok: bool) -> Probe {
        Probe {
            component: component.into(),
            ok,
            latency_us: 1_500,
            detail: String::new(),
        }
    }

    #[test]
    fn status_from_probes() {
        assert_eq!(status(&[]), Status::Unhealthy);
        let all = [
            probe("store", true),
            probe("broker", true),
            probe("embedder", true),
            probe("reranker", true),
        ];
        assert_eq!(status(&all), Status::Healthy);
        let no_reranker = [
            probe("store", true),
            probe("embedder", true),
            probe("reranker", false),
        ];
        assert_eq!(status(&no_reranker), Status::Degraded);
        let no_store = [
            probe("store", false),
            probe("embedder", true),
            probe("reranker", true),
        ];
        assert_eq!(status(&no_store), Status::Unhealthy);
    }

    #[test]
    fn snapshot_keep_is_checked_before_any_host_call() {
        let ctx = Context::new("00000000-0000-4000-8000-000000000000", 1, "scheduled", 0, 0);
        let err = snapshot(&ctx, Some(SnapshotInput { keep: Some(0) })).unwrap_err();
        assert!(err.message().contains("field `keep`"));
    }
}
