//! Texts to token tensors: the tokenizer with its own padding and truncation
//! replaced, batches padded to their longest text, and the length-sorted
//! chunking that keeps padding small.

use super::{ModelError, SessionConfig};
use ort::session::SessionInputValue;
use ort::value::Tensor;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use tokenizers::{
    Encoding, PaddingParams, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

/// A tokenizer.json, set to truncate at the model's maximum length and not to
/// pad (a tokenizer.json often pads every text to a fixed length, e.g. 128:
/// wasted work for short texts, truncation for long ones).
#[derive(Debug)]
pub(crate) struct TextEncoder {
    tokenizer: Tokenizer,
    pad_id: u32,
    path: PathBuf,
}

impl TextEncoder {
    /// Loads `path`, truncating to `max_length` tokens (special tokens included).
    pub(crate) fn load(path: &Path, max_length: usize) -> Result<Self, ModelError> {
        let failed = |message: String| ModelError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        if max_length < 2 {
            return Err(ModelError::Config(format!(
                "max_length must leave room for the special tokens, not {max_length}"
            )));
        }
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| failed(e.to_string()))?;
        let pad_id = tokenizer
            .get_padding()
            .map_or(0, |p: &PaddingParams| p.pad_id);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            tokenizer,
            pad_id,
            path: path.to_path_buf(),
        })
    }

    /// One text, with the model's special tokens.
    pub(crate) fn encode(&self, text: &str) -> Result<Encoding, ModelError> {
        self.tokenizer
            .encode(text, true)
            .map_err(|e| self.failed(e.to_string()))
    }

    /// A (query, passage) pair as one sequence, with the tokenizer's pair
    /// template (`[CLS] query [SEP] passage [SEP]`, type ids 0 then 1 for BERT).
    pub(crate) fn encode_pair(&self, first: &str, second: &str) -> Result<Encoding, ModelError> {
        self.tokenizer
            .encode((first, second), true)
            .map_err(|e| self.failed(e.to_string()))
    }

    fn failed(&self, message: String) -> ModelError {
        ModelError::Tokenizer {
            path: self.path.clone(),
            message,
        }
    }

    /// The id padding positions get (masked out, so any id would do; the
    /// tokenizer's own keeps the inputs what the model was exported with).
    pub(crate) fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

/// Encodings padded on the right to the longest of them: `[rows, width]`.
#[derive(Debug)]
pub(crate) struct TokenBatch {
    pub rows: usize,
    pub width: usize,
    ids: Vec<i64>,
    mask: Vec<i64>,
    types: Vec<i64>,
}

impl TokenBatch {
    pub(crate) fn new(encodings: &[&Encoding], pad_id: u32) -> Self {
        let rows = encodings.len();
        let width = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut batch = Self {
            rows,
            width,
            ids: vec![i64::from(pad_id); rows * width],
            mask: vec![0; rows * width],
            types: vec![0; rows * width],
        };
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * width;
            for (i, ((&id, &mask), &kind)) in encoding
                .get_ids()
                .iter()
                .zip(encoding.get_attention_mask())
                .zip(encoding.get_type_ids())
                .enumerate()
            {
                batch.ids[start + i] = i64::from(id);
                batch.mask[start + i] = i64::from(mask);
                batch.types[start + i] = i64::from(kind);
            }
        }
        batch
    }

    /// The session inputs, `token_type_ids` only for a graph that takes it.
    pub(crate) fn into_inputs(
        self,
        token_type_ids: bool,
    ) -> Result<Vec<(Cow<'static, str>, SessionInputValue<'static>)>, ort::Error> {
        let shape = [self.rows, self.width];
        let mut inputs: Vec<(Cow<'static, str>, SessionInputValue<'static>)> = vec![
            (
                "input_ids".into(),
                Tensor::from_array((shape, self.ids))?.into(),
            ),
            (
                "attention_mask".into(),
                Tensor::from_array((shape, self.mask))?.into(),
            ),
        ];
        if token_type_ids {
            inputs.push((
                "token_type_ids".into(),
                Tensor::from_array((shape, self.types))?.into(),
            ));
        }
        Ok(inputs)
    }
}

/// How a batch's texts are grouped into runs of the graph.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunking {
    /// Texts per run at most.
    pub max_texts: usize,
    /// Padding a run may hold, as a fraction of its real tokens, before the
    /// next (longer) text starts a new run.
    pub max_padding: f64,
}

impl From<&SessionConfig> for Chunking {
    fn from(config: &SessionConfig) -> Self {
        Self {
            max_texts: config.batch_max_size,
            max_padding: config.batch_max_padding,
        }
    }
}

/// Runs `run` over `encodings` sorted by length, in chunks of texts of
/// similar lengths (see [`Chunking`]), and returns the results in the order
/// of `encodings`. `run` returns one result per encoding of its chunk, in
/// order. Since a text's result does not depend on its batch, how the texts
/// are grouped changes the speed only.
pub(crate) fn in_length_order<R>(
    encodings: &[Encoding],
    chunking: Chunking,
    mut run: impl FnMut(&[&Encoding]) -> Result<Vec<R>, ModelError>,
) -> Result<Vec<R>, ModelError> {
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|&i| encodings[i].len());
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None)
        .take(encodings.len())
        .collect();
    let mut flush = |indices: &mut Vec<usize>| -> Result<(), ModelError> {
        let batch: Vec<&Encoding> = indices.iter().map(|&i| &encodings[i]).collect();
        let outputs = run(&batch)?;
        debug_assert_eq!(outputs.len(), indices.len());
        for (&i, output) in indices.iter().zip(outputs) {
            results[i] = Some(output);
        }
        indices.clear();
        Ok(())
    };
    let (mut indices, mut tokens) = (Vec::new(), 0usize);
    for i in order {
        let len = encodings[i].len();
        // sorted by length: the new text sets the chunk's padded width
        let padded = (indices.len() + 1) * len;
        let real = tokens + len;
        if !indices.is_empty()
            && (indices.len() >= chunking.max_texts
                || (padded - real) as f64 > chunking.max_padding * real as f64)
        {
            flush(&mut indices)?;
            tokens = 0;
        }
        indices.push(i);
        tokens += len;
    }
    if !indices.is_empty() {
        flush(&mut indices)?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every index is in one chunk"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding(len: usize, id: u32) -> Encoding {
        Encoding::new(
            vec![id; len],
            vec![0; len],
            vec![String::new(); len],
            vec![None; len],
            vec![(0, 0); len],
            vec![0; len],
            vec![1; len],
            vec![],
            Default::default(),
        )
    }

    fn chunks_of(lengths: &[usize], chunk: usize) -> (Vec<u32>, Vec<Vec<usize>>) {
        let encodings: Vec<Encoding> = lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| encoding(len, i as u32))
            .collect();
        let mut chunks = Vec::new();
        let chunking = Chunking {
            max_texts: chunk,
            max_padding: 0.25,
        };
        let results = in_length_order(&encodings, chunking, |batch| {
            chunks.push(batch.iter().map(|e| e.len()).collect::<Vec<_>>());
            Ok(batch.iter().map(|e| e.get_ids()[0]).collect())
        })
        .unwrap();
        (results, chunks)
    }

    #[test]
    fn results_come_back_in_input_order_from_length_sorted_chunks() {
        let (results, chunks) = chunks_of(&[50, 10, 90, 30, 70, 12, 11], 2);
        assert_eq!(results, vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            chunks,
            vec![vec![10, 11], vec![12], vec![30, 50], vec![70, 90]]
        );
    }

    #[test]
    fn texts_of_similar_lengths_share_a_chunk_up_to_its_size() {
        let (_, chunks) = chunks_of(&[20; 40], 32);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![32, 8]);
        // 10 then 100: 90 padded positions for 110 real ones is too many
        let (_, chunks) = chunks_of(&[100, 10, 11], 32);
        assert_eq!(chunks, vec![vec![10, 11], vec![100]]);
    }

    #[test]
    fn a_batch_pads_on_the_right_and_masks_the_padding() {
        let (a, b) = (encoding(1, 7), encoding(3, 8));
        let batch = TokenBatch::new(&[&a, &b], 0);
        assert_eq!((batch.rows, batch.width), (2, 3));
        assert_eq!(batch.ids, vec![7, 0, 0, 8, 8, 8]);
        assert_eq!(batch.mask, vec![1, 0, 0, 1, 1, 1]);
    }
}
