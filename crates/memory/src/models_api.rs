//! The host side of `hippo:tasks/embeddings` and `hippo:tasks/rerank`: the
//! host's models, shared by every task and batched across them.

use crate::MemoryTask;
use crate::bindings::hippo::tasks::{embeddings, rerank};
use hippo_models::TextKind;

/// Texts one `embed` call may send: a bigger batch only adds latency for
/// the other tasks sharing the model.
const MAX_EMBED_TEXTS: usize = 1024;

impl embeddings::Host for MemoryTask {
    async fn embed(
        &mut self,
        texts: Vec<String>,
        kind: embeddings::TextKind,
    ) -> Result<Vec<Vec<f32>>, String> {
        let Some(embedder) = self.services.embeddings.clone() else {
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
        embedder.embed(texts, kind).await.map_err(|e| e.to_string())
    }

    fn dimension(&mut self) -> u32 {
        self.services
            .embeddings
            .as_ref()
            .map_or(0, |e| e.dimension() as u32)
    }

    fn thresholds(&mut self) -> embeddings::SimilarityThresholds {
        let (duplicate, same) = self.services.embeddings.as_ref().map_or(
            (
                hippo_models::config::REFERENCE_DUPLICATE_ABOVE,
                hippo_models::config::REFERENCE_SAME_ABOVE,
            ),
            |e| e.thresholds(),
        );
        embeddings::SimilarityThresholds { duplicate, same }
    }
}

impl rerank::Host for MemoryTask {
    fn available(&mut self) -> bool {
        self.services.reranker.is_some()
    }

    async fn score(&mut self, query: String, passages: Vec<String>) -> Result<Vec<f32>, String> {
        match self.services.reranker.clone() {
            Some(reranker) => reranker
                .score(&query, &passages)
                .await
                .map_err(|e| e.to_string()),
            None => Err("no reranker is configured on this host".into()),
        }
    }
}
