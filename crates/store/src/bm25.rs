//! BM25 term weights for keyword search, as Qdrant sparse vectors.
//!
//! The host computes the document side and the query side; Qdrant applies
//! the IDF (each collection's sparse vector has `Modifier::Idf`), so a
//! document's score is `sum over query terms of idf(term) * w(term, doc)`.
//!
//! Tokenising and weighting are Qdrant's own BM25 (`qdrant_edge::bm25_embed`,
//! the code behind the server's `qdrant/bm25` model): words split by the
//! word tokenizer, lowercased, English stopwords removed, Snowball-stemmed;
//! a document term weighs `tf * (k1 + 1) / (tf + k1 * (1 - b + b * len /
//! avg_len))` with k1 = 1.2, b = 0.75 and a fixed `avg_len` (a running
//! average would change every stored weight as the corpus grows); a query
//! term weighs 1. `avg_len` is [`AVG_LEN`] tokens, not fastembed's 256:
//! memories are short (a conversation turn, a fact: about a dozen tokens
//! after stop words), and at 256 a long memory was hardly weighed down for
//! its length. Measured on tests/data/recall: keyword recall@5 0.637 at 256,
//! 0.644 at 12 (bench/RESULTS.md). Memories written before the change keep
//! their weights until they are rewritten; both rank sensibly. Terms map to
//! dimensions by murmur3-32 of the token: with 2^31 dimensions and the few
//! thousand distinct terms a user's memories hold, collisions are
//! negligible. Both backends use these same weights.

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::external::ordered_float::NotNan;

/// The document length, in tokens, that BM25 weighs memories against.
const AVG_LEN: f64 = 12.0;

/// A sparse vector: sorted, unique dimensions with their weights.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sparse {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl Sparse {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// The BM25 embedder (stateless once built).
#[derive(Debug)]
pub(crate) struct Bm25 {
    model: EdgeBm25,
}

impl Bm25 {
    pub fn new() -> Bm25 {
        Bm25 {
            model: EdgeBm25::new(EdgeBm25Config {
                avg_len: NotNan::new(AVG_LEN).expect("a number"),
                ..EdgeBm25Config::default()
            })
            .expect("the BM25 configuration is valid"),
        }
    }

    /// The document-side weights of a memory's text.
    pub fn document(&self, text: &str) -> Sparse {
        let v = self.model.embed_document(text);
        Sparse {
            indices: v.indices,
            values: v.values,
        }
    }

    /// The query-side weights: 1 for each distinct term.
    pub fn query(&self, text: &str) -> Sparse {
        let v = self.model.embed_query(text);
        Sparse {
            indices: v.indices,
            values: v.values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_terms_weigh_one_and_stopwords_drop() {
        let bm25 = Bm25::new();
        let q = bm25.query("The CATS and the cat");
        // "cats" and "cat" stem to one term; "the", "and" are stopwords.
        assert_eq!(q.values, [1.0]);
        assert!(bm25.query("the and of").is_empty());
    }

    #[test]
    fn repeated_terms_weigh_more_but_saturate() {
        let bm25 = Bm25::new();
        let once = bm25.document("coffee");
        let thrice = bm25.document("coffee coffee coffee");
        assert_eq!(once.indices, thrice.indices);
        assert!(thrice.values[0] > once.values[0]);
        assert!(thrice.values[0] < 3.0 * once.values[0]);
        // tf = 1, len = 1: (1 * 2.2) / (1 + 1.2 * (0.25 + 0.75 / 12)).
        let expected = 2.2 / (1.0 + 1.2 * (0.25 + 0.75 / AVG_LEN));
        assert!((once.values[0] - expected as f32).abs() < 1e-6);
    }

    #[test]
    fn query_and_document_agree_on_dimensions() {
        let bm25 = Bm25::new();
        let d = bm25.document("Alice prefers oolong tea");
        let q = bm25.query("oolong");
        assert!(d.indices.contains(&q.indices[0]));
    }
}
