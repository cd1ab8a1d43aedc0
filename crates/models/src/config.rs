//! What the models are and how they run: file paths, pooling, lengths,
//! threads and batching. Every field has a serde name so a config file (or
//! environment variables mapped onto it) can set it; the defaults point at
//! what `scripts/fetch-models` puts in the models folder.

use super::ModelError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The ONNX Runtime library `scripts/fetch-models` provides.
pub const RUNTIME_LIBRARY: &str = "libonnxruntime.so.1.32.0";
/// The default embedder's folder inside the models folder.
pub const MINILM_DIR: &str = "all-minilm-l6-v2";
/// The cross-encoder-shaped test graph `scripts/fetch-models` derives.
pub const TEST_CROSS_ENCODER: &str = "test-cross-encoder/model.onnx";

/// The models folder: `$HIPPO_MODELS_DIR`, else `~/.cache/hippo/models`, the
/// folder `scripts/fetch-models` fills by default.
pub fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HIPPO_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/hippo/models")
}

/// How a sentence embedding is made from the encoder's token states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean of the token states under the attention mask (sentence-transformers
    /// models such as all-MiniLM-L6-v2).
    #[default]
    Mean,
    /// The first token's state, `[CLS]` (BGE models).
    Cls,
}

/// Whether a text is stored (a document) or searched with (a query): a query
/// gets the model's query prefix when it has one (BGE's search instruction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextKind {
    /// A text to store.
    Document,
    /// A text to search with.
    Query,
}

/// How a model's session runs and how its requests are batched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// ONNX Runtime's intra-op threads for this model (default: the cores there are).
    pub intra_op_threads: usize,
    /// The most texts (or pairs) one run of the graph takes (default 32).
    pub batch_max_size: usize,
    /// How long the batching thread waits for more requests once one is there,
    /// in microseconds (default 2000), while callers are running concurrently
    /// (a lone caller never waits). One short text costs ~5-10 ms on a CPU
    /// core, so 2 ms adds a fraction of that to a request while letting the
    /// requests of other tasks that arrive meanwhile share its run; a full
    /// batch does not wait.
    pub batch_max_wait_us: u64,
    /// Padding one run of the graph may hold, as a fraction of its real
    /// tokens (default 0.25): a batch is sorted by length and run in chunks
    /// of similar lengths. A padded position costs as much as a real one: 32
    /// memory-like texts of 4 to 60 words padded to the longest ran at 60% of
    /// the speed of one text at a time, while 32 texts of one length ran
    /// 1.5-2x faster than one at a time (int8 MiniLM, 2 threads, measured).
    pub batch_max_padding: f64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            intra_op_threads: std::thread::available_parallelism().map_or(1, usize::from),
            batch_max_size: 32,
            batch_max_wait_us: 2000,
            batch_max_padding: 0.25,
        }
    }
}

/// One embedding model: any Hugging Face encoder exported to ONNX, with its
/// tokenizer.json. The graph takes `input_ids`, `attention_mask` and optionally
/// `token_type_ids`, and its first output is the token states
/// `[batch, sequence, hidden]` (`last_hidden_state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name reported in health, metrics and errors.
    pub name: String,
    /// The tokenizer.json (its own padding and truncation are replaced: each
    /// batch is padded to its longest text, texts truncated to `max_length`).
    pub tokenizer: PathBuf,
    /// The ONNX graph.
    pub onnx: PathBuf,
    /// How token states become one vector.
    #[serde(default)]
    pub pooling: Pooling,
    /// Scale every vector to length 1 (cosine similarity is then a dot product).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Tokens per text at most, special tokens included (default 256, what
    /// all-MiniLM-L6-v2 was trained with).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Put in front of every [`TextKind::Query`] text, e.g. BGE's
    /// "Represent this sentence for searching relevant passages: ".
    #[serde(default)]
    pub query_prefix: Option<String>,
    /// The dimension the vectors must have; `None` takes it from the graph.
    #[serde(default)]
    pub dimension: Option<usize>,
    /// Cosine similarity above which two texts state the same fact (memory
    /// deduplication). Default 0.88, the reference's, made for BGE.
    #[serde(default = "default_duplicate_above")]
    pub duplicate_above: f32,
    /// Cosine similarity above which two texts say the same thing the same
    /// way (a new memory is then skipped, not merged). Default 0.95.
    #[serde(default = "default_same_above")]
    pub same_above: f32,
    /// Threads and batching.
    #[serde(default)]
    pub session: SessionConfig,
}

impl ModelConfig {
    /// all-MiniLM-L6-v2 (384 dimensions, mean pooling, normalised) as
    /// `scripts/fetch-models` provides it: the int8 graph by default (see the
    /// README's Models section), `model-fp32.onnx` beside it.
    pub fn minilm_in(models_dir: &Path) -> Self {
        let dir = models_dir.join(MINILM_DIR);
        Self {
            name: "all-MiniLM-L6-v2-int8".into(),
            tokenizer: dir.join("tokenizer.json"),
            onnx: dir.join("model-int8.onnx"),
            pooling: Pooling::Mean,
            normalize: true,
            max_length: default_max_length(),
            query_prefix: None,
            dimension: Some(384),
            // MiniLM spreads similarities wider than BGE: paraphrases of one
            // fact score 0.81-0.98 here, different facts 0.76-0.98 ("my
            // flight leaves at 9am" / "at 9pm": 0.98). Above 0.90 a new
            // memory updates the old one, so its newer wording wins; only
            // above 0.99 is it dropped as a repeat (at the reference's 0.95,
            // "9pm" would be lost as a repeat of "9am"). README: "Models".
            duplicate_above: 0.90,
            same_above: 0.99,
            session: SessionConfig::default(),
        }
    }
}

/// A cross-encoder: scores a (query, passage) pair, encoded as one sequence
/// with the tokenizer's pair template. The graph takes `input_ids`,
/// `attention_mask` and optionally `token_type_ids`; its first output is the
/// logits, `[batch, 1]` or `[batch]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankerConfig {
    /// The name reported in health, metrics and errors.
    pub name: String,
    /// The tokenizer.json.
    pub tokenizer: PathBuf,
    /// The ONNX graph.
    pub onnx: PathBuf,
    /// Tokens per pair at most (default 256); the longer side is cut first.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Threads and batching.
    #[serde(default)]
    pub session: SessionConfig,
}

impl RerankerConfig {
    /// The cross-encoder-shaped test graph of `scripts/fetch-models` (the
    /// MiniLM encoder with a random head): for testing the code path, its
    /// scores mean nothing.
    pub fn test_cross_encoder_in(models_dir: &Path) -> Self {
        Self {
            name: "test-cross-encoder".into(),
            tokenizer: models_dir.join(MINILM_DIR).join("tokenizer.json"),
            onnx: models_dir.join(TEST_CROSS_ENCODER),
            max_length: default_max_length(),
            session: SessionConfig::default(),
        }
    }
}

/// Everything the models capability loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// The ONNX Runtime shared library (>= 1.31), loaded once per process.
    pub runtime_library: PathBuf,
    /// The embedding model.
    pub embedder: ModelConfig,
    /// The cross-encoder, if any: recall reranks only when one is configured.
    #[serde(default)]
    pub reranker: Option<RerankerConfig>,
}

impl ModelsConfig {
    /// What `scripts/fetch-models` provides in `models_dir`: its ONNX Runtime
    /// and all-MiniLM-L6-v2; no reranker (no real cross-encoder ships in a
    /// package this project can install).
    pub fn default_in(models_dir: &Path) -> Self {
        Self {
            runtime_library: models_dir.join(RUNTIME_LIBRARY),
            embedder: ModelConfig::minilm_in(models_dir),
            reranker: None,
        }
    }

    /// Checks that every file is there, naming the first one missing and how to
    /// get it.
    pub fn check_files(&self) -> Result<(), ModelError> {
        let mut files = vec![
            ("the ONNX Runtime library", &self.runtime_library),
            ("the embedder's tokenizer", &self.embedder.tokenizer),
            ("the embedder's ONNX graph", &self.embedder.onnx),
        ];
        if let Some(reranker) = &self.reranker {
            files.push(("the reranker's tokenizer", &reranker.tokenizer));
            files.push(("the reranker's ONNX graph", &reranker.onnx));
        }
        match files.into_iter().find(|(_, path)| !path.is_file()) {
            Some((what, path)) => Err(ModelError::MissingFile {
                what,
                path: path.clone(),
                hint: fetch_hint(path),
            }),
            None => Ok(()),
        }
    }
}

/// How to get a missing model file: fetch-models, with the folder it was looked for in.
fn fetch_hint(path: &Path) -> String {
    let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    format!(
        "run scripts/fetch-models (it fills $HIPPO_MODELS_DIR, default ~/.cache/hippo/models; \
         this file was looked for in {})",
        dir.display()
    )
}

fn yes() -> bool {
    true
}

fn default_max_length() -> usize {
    256
}

/// The reference's duplicate threshold (made for BGE): at or above it, two
/// memories say the same thing and are merged.
pub const REFERENCE_DUPLICATE_ABOVE: f32 = 0.88;

/// The reference's repeat threshold: at or above it, a new memory is skipped.
pub const REFERENCE_SAME_ABOVE: f32 = 0.95;

fn default_duplicate_above() -> f32 {
    REFERENCE_DUPLICATE_ABOVE
}

fn default_same_above() -> f32 {
    REFERENCE_SAME_ABOVE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_with_the_command_that_fetches_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = ModelsConfig::default_in(dir.path())
            .check_files()
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("ONNX Runtime library"), "{message}");
        assert!(message.contains(RUNTIME_LIBRARY), "{message}");
        assert!(message.contains("scripts/fetch-models"), "{message}");
    }

    #[test]
    fn a_config_file_sets_the_fields_and_defaults_the_rest() {
        let config: ModelsConfig = toml::from_str(
            r#"
            runtime_library = "/m/libonnxruntime.so"
            [embedder]
            name = "bge-small-en-v1.5"
            tokenizer = "/m/bge/tokenizer.json"
            onnx = "/m/bge/model.onnx"
            pooling = "cls"
            query_prefix = "Represent this sentence for searching relevant passages: "
            [embedder.session]
            batch_max_size = 8
            "#,
        )
        .unwrap();
        let embedder = &config.embedder;
        assert_eq!(embedder.pooling, Pooling::Cls);
        assert!(embedder.normalize);
        assert_eq!(embedder.max_length, 256);
        assert_eq!(embedder.dimension, None);
        assert_eq!(embedder.session.batch_max_size, 8);
        assert_eq!(embedder.session.batch_max_wait_us, 2000);
        assert!(config.reranker.is_none());
        let typo = toml::from_str::<ModelsConfig>(
            "runtime_library = \"x\"\n[embedder]\nname = \"n\"\ntokenizer = \"t\"\nonnx = \"o\"\npooling_mode = \"cls\"\n",
        );
        assert!(typo.is_err(), "an unknown field is refused");
    }
}
