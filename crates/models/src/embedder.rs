//! The embedder: texts to vectors, through one ONNX Runtime session shared
//! by every task and fed by the dynamic batcher.

use super::batcher::{BatchStats, Batcher};
use super::session::Graph;
use super::{ModelConfig, ModelError, Pooling, TextKind};
use ort::environment::Environment;
use std::time::Duration;

/// An embedding model loaded and running. Cheap to share (`Arc<Embedder>`):
/// every caller's texts go through the same session, batched together.
#[derive(Debug)]
pub struct Embedder {
    name: String,
    dimension: usize,
    /// (duplicate, same): see [`ModelConfig::duplicate_above`].
    thresholds: (f32, f32),
    query_prefix: Option<String>,
    batcher: Batcher<String, Vec<f32>>,
}

impl Embedder {
    /// Loads the model of `config`, checks its output with one text and starts
    /// its batching thread.
    pub(crate) fn load(
        environment: &Environment,
        config: &ModelConfig,
    ) -> Result<Self, ModelError> {
        let mut run = Run {
            graph: Graph::open(
                environment,
                &config.name,
                &config.onnx,
                &config.tokenizer,
                config.max_length,
                &config.session,
            )?,
            pooling: config.pooling,
            normalize: config.normalize,
        };
        // One text through the whole path: the dimension, and a warm session.
        let dimension = run.embed(vec!["hippo".to_string()])?.remove(0).len();
        if let Some(expected) = config.dimension.filter(|&d| d != dimension) {
            return Err(ModelError::Graph {
                model: config.name.clone(),
                message: format!(
                    "the graph gives {dimension}-dimensional vectors, the configuration says {expected}"
                ),
            });
        }
        let thresholds = (config.duplicate_above, config.same_above);
        if !(0.0 < thresholds.0 && thresholds.0 <= thresholds.1 && thresholds.1 <= 1.0) {
            return Err(ModelError::Config(format!(
                "{}: duplicate_above ({}) and same_above ({}) must satisfy 0 < duplicate_above <= same_above <= 1",
                config.name, thresholds.0, thresholds.1
            )));
        }
        let batcher = Batcher::start(
            &config.name,
            config.session.batch_max_size,
            Duration::from_micros(config.session.batch_max_wait_us),
            move |texts| run.embed(texts),
        )?;
        Ok(Self {
            name: config.name.clone(),
            dimension,
            thresholds,
            query_prefix: config.query_prefix.clone(),
            batcher,
        })
    }

    /// The vectors of `texts`, in order, from a blocking thread (a task's, or
    /// `spawn_blocking`; on a tokio worker thread use [`Embedder::embed`]).
    /// The texts join the next batch with other callers' texts; each text's
    /// vector does not depend on the batch it ran in.
    pub fn embed_blocking(
        &self,
        texts: Vec<String>,
        kind: TextKind,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        self.batcher.run_blocking(self.prefixed(texts, kind))
    }

    /// The vectors of `texts`, in order (see [`Embedder::embed_blocking`]).
    pub async fn embed(
        &self,
        texts: Vec<String>,
        kind: TextKind,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        self.batcher.run(self.prefixed(texts, kind)).await
    }

    /// The dimension of the vectors.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Cosine similarities above which two texts state the same fact, and
    /// say it the same way (this model's calibration).
    pub fn thresholds(&self) -> (f32, f32) {
        self.thresholds
    }

    /// The configured name of the model.
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// Requests, batches and texts so far, for metrics.
    pub fn stats(&self) -> BatchStats {
        self.batcher.stats()
    }

    fn prefixed(&self, texts: Vec<String>, kind: TextKind) -> Vec<String> {
        match (&self.query_prefix, kind) {
            (Some(prefix), TextKind::Query) => {
                texts.into_iter().map(|t| format!("{prefix}{t}")).collect()
            }
            _ => texts,
        }
    }
}

/// What the batching thread owns: the graph and how to pool its output.
struct Run {
    graph: Graph,
    pooling: Pooling,
    normalize: bool,
}

impl Run {
    fn embed(&mut self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ModelError> {
        let encodings = texts
            .iter()
            .map(|t| self.graph.encoder.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let (pooling, normalized) = (self.pooling, self.normalize);
        self.graph.run(&encodings, |chunk, shape, states| {
            let rows = chunk.len();
            let width = chunk.iter().map(|e| e.len()).max().unwrap_or(0);
            let hidden = match *shape {
                [r, w, h] if r as usize == rows && w as usize == width && h > 0 => h as usize,
                _ => {
                    return Err(format!(
                        "output {shape:?}, expected [{rows}, {width}, hidden]"
                    ));
                }
            };
            Ok(chunk
                .iter()
                .zip(states.chunks_exact(width * hidden))
                .map(|(encoding, tokens)| {
                    let mut vector = pool(tokens, hidden, encoding.get_attention_mask(), pooling);
                    if normalized {
                        normalize(&mut vector);
                    }
                    vector
                })
                .collect())
        })
    }
}

/// One vector from a text's token states (`[width, hidden]`, row-major);
/// `mask` covers the text's own tokens, the padding after them is ignored.
fn pool(tokens: &[f32], hidden: usize, mask: &[u32], pooling: Pooling) -> Vec<f32> {
    match pooling {
        Pooling::Cls => tokens[..hidden].to_vec(),
        Pooling::Mean => {
            let mut sum = vec![0f32; hidden];
            let mut count = 0f32;
            for (state, _) in tokens
                .chunks_exact(hidden)
                .zip(mask)
                .filter(|(_, m)| **m != 0)
            {
                for (s, x) in sum.iter_mut().zip(state) {
                    *s += x;
                }
                count += 1.0;
            }
            let count = count.max(1.0);
            sum.iter_mut().for_each(|s| *s /= count);
            sum
        }
    }
}

/// Scales `vector` to length 1 (a zero vector stays zero).
fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_averages_the_masked_tokens_only() {
        // two real tokens, one padding token, hidden 2
        let tokens = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        assert_eq!(pool(&tokens, 2, &[1, 1], Pooling::Mean), vec![2.0, 3.0]);
        assert_eq!(pool(&tokens, 2, &[1, 1], Pooling::Cls), vec![1.0, 2.0]);
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
    }
}
