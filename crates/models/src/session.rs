//! ONNX Runtime: the one environment of the process, and a model's graph
//! (its session, inputs checked, with its tokenizer).

use super::encode::{Chunking, TextEncoder, TokenBatch, in_length_order};
use super::{ModelError, SessionConfig};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokenizers::Encoding;

/// The loaded library and its environment. ONNX Runtime can be loaded once
/// per process and has one environment: every model shares them.
static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// The process's ONNX Runtime environment, loading `library` the first time.
///
/// # Errors
/// When the library cannot be loaded, or a different library is loaded already.
pub(crate) fn environment(library: &Path) -> Result<Environment, ModelError> {
    let mut runtime = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let wanted = library
        .canonicalize()
        .unwrap_or_else(|_| library.to_path_buf());
    if let Some((loaded, environment)) = runtime.as_ref() {
        return if *loaded == wanted {
            Ok(environment.clone())
        } else {
            Err(ModelError::Runtime {
                message: format!(
                    "{} is loaded in this process already; it cannot load {} too",
                    loaded.display(),
                    wanted.display()
                ),
                source: None,
            })
        };
    }
    let environment = ort::init_from(&wanted)
        .map_err(|e| ModelError::runtime(None, e))?
        .with_name("hippo")
        .with_telemetry(false)
        .build()
        .map_err(|e| ModelError::runtime(None, e))?;
    *runtime = Some((wanted, environment.clone()));
    Ok(environment)
}

/// A transformer graph with its tokenizer: texts in, the graph's first output
/// out, run in length-sorted chunks. Owned by a model's batching thread.
pub(crate) struct Graph {
    model: String,
    session: Session,
    /// Whether the graph takes `token_type_ids` (BERT does; many exports drop it).
    token_type_ids: bool,
    /// The model's tokenizer.
    pub encoder: TextEncoder,
    chunking: Chunking,
}

impl Graph {
    /// Loads `onnx` and `tokenizer`, with the graph's inputs checked:
    /// `input_ids`, `attention_mask` and, if the graph has it,
    /// `token_type_ids`; nothing else.
    pub(crate) fn open(
        environment: &Environment,
        model: &str,
        onnx: &Path,
        tokenizer: &Path,
        max_length: usize,
        config: &SessionConfig,
    ) -> Result<Self, ModelError> {
        let failed = |message: String| ModelError::Graph {
            model: model.to_string(),
            message,
        };
        if config.batch_max_size == 0 {
            return Err(ModelError::Config(format!(
                "{model}: batch_max_size must be at least 1"
            )));
        }
        let session = Session::builder(environment)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
            .and_then(|b| Ok(b.with_intra_threads(config.intra_op_threads)?))
            // Spinning threads wait for work by burning the cores; on a small
            // machine they steal them from the other threads (2x slower on 2 cores).
            .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
            .and_then(|mut b| b.commit_from_file(onnx))
            .map_err(|e| failed(format!("cannot load {}: {e}", onnx.display())))?;
        let mut token_type_ids = false;
        let mut has = (false, false);
        for input in session.inputs() {
            match input.name() {
                "input_ids" => has.0 = true,
                "attention_mask" => has.1 = true,
                "token_type_ids" => token_type_ids = true,
                other => return Err(failed(format!("unexpected graph input {other:?}"))),
            }
        }
        if has != (true, true) {
            return Err(failed(
                "the graph must take input_ids and attention_mask".into(),
            ));
        }
        if session.outputs().is_empty() {
            return Err(failed("the graph has no output".into()));
        }
        Ok(Self {
            model: model.to_string(),
            session,
            token_type_ids,
            encoder: TextEncoder::load(tokenizer, max_length)?,
            chunking: Chunking::from(config),
        })
    }

    /// Runs `encodings` in length-sorted chunks; `read` turns a chunk's first
    /// output (its shape and data) into one result per encoding of the chunk.
    /// The results come back in the order of `encodings`.
    pub(crate) fn run<R>(
        &mut self,
        encodings: &[Encoding],
        mut read: impl FnMut(&[&Encoding], &[i64], &[f32]) -> Result<Vec<R>, String>,
    ) -> Result<Vec<R>, ModelError> {
        let pad_id = self.encoder.pad_id();
        let (model, session, token_type_ids) =
            (&self.model, &mut self.session, self.token_type_ids);
        in_length_order(encodings, self.chunking, |chunk| {
            let failed = |message: String| ModelError::Graph {
                model: model.clone(),
                message,
            };
            let inputs = TokenBatch::new(chunk, pad_id)
                .into_inputs(token_type_ids)
                .map_err(|e| failed(e.to_string()))?;
            let outputs = session.run(inputs).map_err(|e| failed(e.to_string()))?;
            let (shape, data) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| failed(e.to_string()))?;
            read(chunk, shape, data).map_err(failed)
        })
    }
}
