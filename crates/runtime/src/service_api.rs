//! The host side of the runtime's service interfaces (`kv`, `health`):
//! what a granted plugin's calls do.
//!
//! Every call that can wait is async (see the `imports` of the bindings in
//! `host_api.rs`): the guest is suspended while it waits, so its watchdog
//! can end it at its deadline or on revocation. Blocking work runs on
//! Tokio's blocking threads, never on the thread that polls the guest.

use super::host_api::GuestState;
use super::host_api::hippo::tasks::{health, kv};
use std::time::Duration;

impl kv::Host for GuestState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        let store = self.plugin_kv()?;
        store.kv_get(&key).await.map_err(|e| e.to_string())
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), String> {
        let store = self.plugin_kv()?;
        let ttl = ttl_ms.map(Duration::from_millis);
        store
            .kv_set(&key, &value, ttl)
            .await
            .map_err(|e| e.to_string())
    }

    async fn incr(&mut self, key: String, delta: i64) -> Result<i64, String> {
        let store = self.plugin_kv()?;
        store.kv_incr(&key, delta).await.map_err(|e| e.to_string())
    }

    async fn delete(&mut self, key: String) -> Result<bool, String> {
        let store = self.plugin_kv()?;
        store.kv_delete(&key).await.map_err(|e| e.to_string())
    }
}

impl GuestState {
    /// The key-value store as this task's plugin sees it ([`super::services::TaskScope::kv`]).
    fn plugin_kv(&self) -> Result<&hippo_kv::PluginKv, String> {
        self.scope
            .kv
            .as_ref()
            .ok_or_else(|| "no key-value store is configured on this host".into())
    }
}

impl health::Host for GuestState {
    async fn check(&mut self) -> Vec<health::Probe> {
        // The probes block (the store's, the models'): off the async threads.
        let services = self.scope.services.clone();
        let probes = tokio::task::spawn_blocking(move || services.probe())
            .await
            .unwrap_or_default();
        probes
            .into_iter()
            .map(|p| health::Probe {
                component: p.component,
                ok: p.ok,
                latency_us: p.latency_us,
                detail: p.detail,
            })
            .collect()
    }
}
