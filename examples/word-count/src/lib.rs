//! Example hippo plugin: word frequencies over a list of documents.
//!
//! `example.word-count` takes
//!
//! ```json
//! {"documents": ["The cat sat.", "The dog sat too."], "top": 2, "min_length": 1}
//! ```
//!
//! (`top` defaults to 10, `min_length` to 1) and returns the `top` most
//! frequent words with their counts:
//!
//! ```json
//! {"counts": {"sat": 2, "the": 2}, "documents_done": 2, "documents_total": 2,
//!  "partial": false, "total_words": 7, "unique_words": 5}
//! ```
//!
//! Words are the maximal runs of alphanumeric characters, lowercased; ties
//! in count are broken alphabetically. The task reports progress after each
//! document and checks its soft time limit between documents: once it has
//! passed, it stops and returns the counts so far with `"partial": true`.

use std::collections::BTreeMap;

use hippo_sdk::{Context, Plugin, Task, TaskError};
use serde::{Deserialize, Serialize};

/// Input of `example.word-count`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WordCountInput {
    documents: Vec<String>,
    /// How many of the most frequent words to return.
    #[serde(default = "default_top")]
    top: usize,
    /// Words shorter than this many characters are ignored.
    #[serde(default = "default_min_length")]
    min_length: usize,
}

fn default_top() -> usize {
    10
}

fn default_min_length() -> usize {
    1
}

/// Output of `example.word-count`.
#[derive(Debug, Serialize)]
struct WordCountOutput {
    /// The `top` most frequent words and their counts.
    counts: BTreeMap<String, u64>,
    documents_done: usize,
    documents_total: usize,
    /// True if the soft time limit stopped the count before the last document.
    partial: bool,
    /// Words counted (of at least `min_length` characters).
    total_words: u64,
    /// Distinct words counted.
    unique_words: usize,
}

/// Counts words document by document until done or out of (soft) time.
fn word_count(ctx: &Context, input: WordCountInput) -> Result<WordCountOutput, TaskError> {
    let total = input.documents.len();
    // A BTreeMap, not a HashMap: HashMap's random seed would make the
    // component import `wasi:random`.
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut done = 0;
    for (i, document) in input.documents.iter().enumerate() {
        if i > 0 && ctx.soft_limit_passed() {
            ctx.warn(format!(
                "soft time limit passed after {i} of {total} documents; returning partial counts"
            ));
            break;
        }
        count_words(document, input.min_length, &mut counts);
        done = i + 1;
        ctx.progress(as_u64(done), as_u64(total), None);
    }
    let total_words = counts.values().sum();
    let unique_words = counts.len();
    ctx.info(format!(
        "counted {total_words} words ({unique_words} distinct) in {done} of {total} documents"
    ));
    Ok(WordCountOutput {
        counts: top_words(counts, input.top),
        documents_done: done,
        documents_total: total,
        partial: done < total,
        total_words,
        unique_words,
    })
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Adds the lowercased words of `text` with at least `min_length`
/// characters to `counts`.
fn count_words(text: &str, min_length: usize, counts: &mut BTreeMap<String, u64>) {
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().count() >= min_length)
    {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
}

/// The `n` most frequent words; ties go to the alphabetically first word.
fn top_words(counts: BTreeMap<String, u64>, n: usize) -> BTreeMap<String, u64> {
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|(a, ca), (b, cb)| cb.cmp(ca).then_with(|| a.cmp(b)));
    ranked.truncate(n);
    ranked.into_iter().collect()
}

/// The plugin: one task, which may run for a while on the `batch` queue.
fn plugin() -> Plugin {
    Plugin::new("example-word-count", env!("CARGO_PKG_VERSION")).task(
        Task::new(
            "example.word-count",
            "Counts word frequencies over a list of documents and returns the most frequent words",
            word_count,
        )
        .soft_time_limit_ms(5_000)
        .hard_time_limit_ms(10_000)
        .output_bytes(1024 * 1024),
    )
}

hippo_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_of(texts: &[&str], min_length: usize) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for text in texts {
            count_words(text, min_length, &mut counts);
        }
        counts
    }

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        let counts = counts_of(&["The cat's hat -- THE HAT!", "Ünïcode 42, the"], 1);
        let expected: BTreeMap<String, u64> = [
            ("the", 3),
            ("cat", 1),
            ("s", 1),
            ("hat", 2),
            ("ünïcode", 1),
            ("42", 1),
        ]
        .into_iter()
        .map(|(w, c)| (w.to_owned(), c))
        .collect();
        assert_eq!(counts, expected);
    }

    #[test]
    fn min_length_counts_characters() {
        let counts = counts_of(&["a an ünï the"], 3);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["ünï"], 1);
        assert_eq!(counts["the"], 1);
    }

    #[test]
    fn top_words_ranks_by_count_then_alphabetically() {
        let counts = counts_of(&["b b b a a c c d"], 1);
        let top = top_words(counts, 3);
        let expected: BTreeMap<String, u64> = [("b", 3), ("a", 2), ("c", 2)]
            .into_iter()
            .map(|(w, c)| (w.to_owned(), c))
            .collect();
        assert_eq!(top, expected);
    }

    #[test]
    fn input_defaults() {
        let input: WordCountInput = serde_json::from_str(r#"{"documents": []}"#).unwrap();
        assert_eq!((input.top, input.min_length), (10, 1));
        assert!(serde_json::from_str::<WordCountInput>(r#"{"docs": []}"#).is_err());
    }
}
