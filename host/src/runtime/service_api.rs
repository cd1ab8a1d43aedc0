//! The host side of the service interfaces (`embeddings`, `rerank`,
//! `memory-store`, `kv`, `health`): what a granted plugin's calls do.

use super::host_api::TaskState;
use super::host_api::hippo::tasks::{embeddings, health, kv, rerank};
use crate::models::TextKind;
use std::time::Duration;

/// Texts one `embed` call may send: a bigger batch only adds latency for
/// the other tasks sharing the model.
const MAX_EMBED_TEXTS: usize = 1024;

impl embeddings::Host for TaskState {
    fn embed(
        &mut self,
        texts: Vec<String>,
        kind: embeddings::TextKind,
    ) -> Result<Vec<Vec<f32>>, String> {
        let Some(embedder) = &self.scope.services.embeddings else {
            return Err("no embedding model is configured on this host".into());
        };
        if texts.len() > MAX_EMBED_TEXTS {
            return Err(format!(
                "{} texts in one call; at most {MAX_EMBED_TEXTS}",
                texts.len()
            ));
        }
        let kind = match kind {
            embeddings::TextKind::Document => TextKind::Document,
            embeddings::TextKind::Query => TextKind::Query,
        };
        embedder
            .embed_blocking(texts, kind)
            .map_err(|e| e.to_string())
    }

    fn dimension(&mut self) -> u32 {
        self.scope
            .services
            .embeddings
            .as_ref()
            .map_or(0, |e| e.dimension() as u32)
    }

    fn thresholds(&mut self) -> embeddings::SimilarityThresholds {
        let (duplicate, same) = self.scope.services.embeddings.as_ref().map_or(
            (
                crate::models::config::REFERENCE_DUPLICATE_ABOVE,
                crate::models::config::REFERENCE_SAME_ABOVE,
            ),
            |e| e.thresholds(),
        );
        embeddings::SimilarityThresholds { duplicate, same }
    }
}

impl rerank::Host for TaskState {
    fn available(&mut self) -> bool {
        self.scope.services.reranker.is_some()
    }

    fn score(&mut self, query: String, passages: Vec<String>) -> Result<Vec<f32>, String> {
        match &self.scope.services.reranker {
            Some(reranker) => reranker
                .score_blocking(&query, &passages)
                .map_err(|e| e.to_string()),
            None => Err("no reranker is configured on this host".into()),
        }
    }
}

impl kv::Host for TaskState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        let (store, key) = self.kv_key(&key)?;
        self.scope
            .services
            .block_on(store.kv_get(&key))?
            .map_err(|e| e.to_string())
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), String> {
        let (store, key) = self.kv_key(&key)?;
        let ttl = ttl_ms.map(Duration::from_millis);
        self.scope
            .services
            .block_on(store.kv_set(&key, &value, ttl))?
            .map_err(|e| e.to_string())
    }

    fn incr(&mut self, key: String, delta: i64) -> Result<i64, String> {
        let (store, key) = self.kv_key(&key)?;
        self.scope
            .services
            .block_on(store.kv_incr(&key, delta))?
            .map_err(|e| e.to_string())
    }

    fn delete(&mut self, key: String) -> Result<bool, String> {
        let (store, key) = self.kv_key(&key)?;
        self.scope
            .services
            .block_on(store.kv_delete(&key))?
            .map_err(|e| e.to_string())
    }
}

impl TaskState {
    /// The key-value store and `key` in the namespace of the plugin's
    /// deployment (its file's name, which it cannot claim by declaring a
    /// name), so one plugin cannot read or clobber another's keys.
    fn kv_key(
        &self,
        key: &str,
    ) -> Result<(std::sync::Arc<dyn crate::broker::KeyValue>, String), String> {
        let store = self
            .scope
            .services
            .kv
            .clone()
            .ok_or("no key-value store is configured on this host")?;
        Ok((store, format!("{}/{key}", self.scope.plugin)))
    }
}

impl health::Host for TaskState {
    fn check(&mut self) -> Vec<health::Probe> {
        self.scope
            .services
            .probe()
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
