//! Health of the host's services (`hippo:tasks/health`), for health-check
//! tasks.

use crate::bindings::hippo::tasks::health;

pub use crate::bindings::hippo::tasks::health::Probe;

/// Probes every service the host has (`store`, `broker`, `embedder`,
/// `reranker`) and times each. A service the host does not run is absent
/// from the list rather than failed.
pub fn check() -> Vec<Probe> {
    health::check()
}
