//! The reranker: a cross-encoder scoring (query, passage) pairs, batched like
//! the embedder.

use super::batcher::{BatchStats, Batcher};
use super::session::Graph;
use super::{ModelError, RerankerConfig};
use ort::environment::Environment;
use std::sync::Arc;
use std::time::Duration;

/// A cross-encoder loaded and running, shared by every task.
#[derive(Debug)]
pub struct Reranker {
    name: String,
    batcher: Batcher<(Arc<str>, String), f32>,
}

impl Reranker {
    /// Loads the model of `config`, checks its output with one pair and starts
    /// its batching thread.
    pub(crate) fn load(
        environment: &Environment,
        config: &RerankerConfig,
    ) -> Result<Self, ModelError> {
        let mut graph = Graph::open(
            environment,
            &config.name,
            &config.onnx,
            &config.tokenizer,
            config.max_length,
            &config.session,
        )?;
        score(
            &mut graph,
            vec![(Arc::from("hippo"), "a passage".to_string())],
        )?;
        let batcher = Batcher::start(
            &config.name,
            config.session.batch_max_size,
            Duration::from_micros(config.session.batch_max_wait_us),
            move |pairs| score(&mut graph, pairs),
        )?;
        Ok(Self {
            name: config.name.clone(),
            batcher,
        })
    }

    /// The raw logit of each (query, passage) pair, in the order of
    /// `passages`, from a blocking thread (see [`super::Embedder::embed_blocking`]).
    pub fn score_blocking(&self, query: &str, passages: &[String]) -> Result<Vec<f32>, ModelError> {
        self.batcher.run_blocking(pairs(query, passages))
    }

    /// The raw logit of each (query, passage) pair, in the order of `passages`.
    pub async fn score(&self, query: &str, passages: &[String]) -> Result<Vec<f32>, ModelError> {
        self.batcher.run(pairs(query, passages)).await
    }

    /// The configured name of the model.
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// Requests, batches and pairs so far, for metrics.
    pub fn stats(&self) -> BatchStats {
        self.batcher.stats()
    }
}

fn pairs(query: &str, passages: &[String]) -> Vec<(Arc<str>, String)> {
    let query: Arc<str> = Arc::from(query);
    passages
        .iter()
        .map(|p| (Arc::clone(&query), p.clone()))
        .collect()
}

/// The logits of `pairs`, each encoded as one sequence with the tokenizer's
/// pair template.
fn score(graph: &mut Graph, pairs: Vec<(Arc<str>, String)>) -> Result<Vec<f32>, ModelError> {
    let encodings = pairs
        .iter()
        .map(|(query, passage)| graph.encoder.encode_pair(query, passage))
        .collect::<Result<Vec<_>, _>>()?;
    graph.run(&encodings, |chunk, shape, logits| match *shape {
        [r] | [r, 1] if r as usize == chunk.len() => Ok(logits.to_vec()),
        _ => Err(format!(
            "output {shape:?}, expected logits [{}, 1]",
            chunk.len()
        )),
    })
}
