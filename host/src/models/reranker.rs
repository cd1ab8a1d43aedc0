//! The reranker: a cross-encoder scoring (query, passage) pairs, batched like
//! the embedder.

use super::batcher::{BatchStats, Batcher};
use super::encode::{TextEncoder, TokenBatch, in_length_order};
use super::{ModelError, RerankerConfig, session};
use ort::environment::Environment;
use ort::session::Session;
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
    pub(crate) fn load(environment: &Environment, config: &RerankerConfig) -> Result<Self, ModelError> {
        let (session, inputs) = session::open(environment, &config.name, &config.onnx, &config.session)?;
        let mut run = Run {
            model: config.name.clone(),
            session,
            token_type_ids: inputs.token_type_ids,
            encoder: TextEncoder::load(&config.tokenizer, config.max_length)?,
            chunk: config.session.batch_max_size,
        };
        run.score(vec![(Arc::from("hippo"), "a passage".to_string())])?;
        let batcher = Batcher::start(
            &config.name,
            config.session.batch_max_size,
            Duration::from_micros(config.session.batch_max_wait_us),
            move |pairs| run.score(pairs),
        )?;
        Ok(Self { name: config.name.clone(), batcher })
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
    passages.iter().map(|p| (Arc::clone(&query), p.clone())).collect()
}

/// What the batching thread owns.
struct Run {
    model: String,
    session: Session,
    token_type_ids: bool,
    encoder: TextEncoder,
    chunk: usize,
}

impl Run {
    fn score(&mut self, pairs: Vec<(Arc<str>, String)>) -> Result<Vec<f32>, ModelError> {
        let encodings = pairs
            .iter()
            .map(|(query, passage)| self.encoder.encode_pair(query, passage))
            .collect::<Result<Vec<_>, _>>()?;
        let pad_id = self.encoder.pad_id();
        in_length_order(&encodings, self.chunk, |chunk| {
            let batch = TokenBatch::new(chunk, pad_id);
            let rows = batch.rows;
            let failed = |message: String| ModelError::Graph { model: self.model.clone(), message };
            let inputs = batch.into_inputs(self.token_type_ids).map_err(|e| failed(e.to_string()))?;
            let outputs = self.session.run(inputs).map_err(|e| failed(e.to_string()))?;
            let (shape, logits) = outputs[0].try_extract_tensor::<f32>().map_err(|e| failed(e.to_string()))?;
            match **shape {
                [r] | [r, 1] if r as usize == rows => Ok(logits.to_vec()),
                _ => Err(failed(format!("output {shape:?}, expected logits [{rows}, 1]"))),
            }
        })
    }
}
