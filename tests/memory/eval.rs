//! Recall quality on `tests/data/recall_eval.json`: 202 memories of four
//! users and 50 questions paraphrasing one memory of the asker each. Every
//! mode (hybrid, vector, keyword) answers every question with k = 5; the
//! test prints recall@1, recall@5 and the mean reciprocal rank of each mode
//! and holds them above floors a regression would cross.

use super::fixture::Fixture;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Answers per question.
const K: usize = 5;

/// How one mode did.
#[derive(Debug, Default)]
struct Scores {
    at_1: f64,
    at_k: f64,
    reciprocal_rank: f64,
}

#[test]
fn recall_finds_the_paraphrased_memory() {
    let f = Fixture::new();
    let data: Value = serde_json::from_str(include_str!("../data/recall_eval.json")).unwrap();
    let memories = data["memories"].as_array().unwrap();
    let queries = data["queries"].as_array().unwrap();
    assert!(memories.len() >= 200 && queries.len() >= 50);

    // One batch per user, without deduplication: every memory stays itself.
    let mut by_user: HashMap<&str, Vec<&Value>> = HashMap::new();
    for memory in memories {
        by_user
            .entry(memory["user_id"].as_str().unwrap())
            .or_default()
            .push(memory);
    }
    let mut ids: HashMap<String, String> = HashMap::new();
    for (user, memories) in &by_user {
        let batch: Vec<Value> = memories
            .iter()
            .map(|m| json!({ "text": m["text"], "memory_type": m["memory_type"] }))
            .collect();
        let out = f.ok(
            "memory.batch-create",
            json!({ "user_id": user, "memories": batch, "check_duplicates": false }),
        );
        for (memory, result) in memories.iter().zip(out["results"].as_array().unwrap()) {
            let id = result["memory"]["id"].as_str().unwrap().to_string();
            ids.insert(memory["key"].as_str().unwrap().to_string(), id);
        }
    }
    assert_eq!(ids.len(), memories.len());

    let mut report = Vec::new();
    for mode in ["hybrid", "vector", "keyword"] {
        let mut scores = Scores::default();
        for query in queries {
            let user = query["user_id"].as_str().unwrap();
            let out = f.ok(
                "memory.recall",
                json!({ "user_id": user, "query": query["query"], "k": K, "mode": mode }),
            );
            let results = out["results"].as_array().unwrap();
            assert!(results.iter().all(|r| r["memory"]["user_id"] == user));
            let expected = &ids[query["expected"].as_str().unwrap()];
            if let Some(rank) = results
                .iter()
                .position(|r| r["memory"]["id"] == expected.as_str())
            {
                scores.at_1 += f64::from(rank == 0);
                scores.at_k += 1.0;
                scores.reciprocal_rank += 1.0 / (rank + 1) as f64;
            } else if mode == "hybrid" {
                eprintln!(
                    "hybrid missed {:?} (expected {})",
                    query["query"], query["expected"]
                );
            }
        }
        let n = queries.len() as f64;
        let scores = Scores {
            at_1: scores.at_1 / n,
            at_k: scores.at_k / n,
            reciprocal_rank: scores.reciprocal_rank / n,
        };
        eprintln!(
            "{mode:>7}: recall@1 {:.2}  recall@{K} {:.2}  MRR {:.3}",
            scores.at_1, scores.at_k, scores.reciprocal_rank
        );
        report.push((mode, scores));
    }
    let floor = |mode: &str| -> &Scores { &report.iter().find(|r| r.0 == mode).unwrap().1 };
    assert!(floor("hybrid").at_k >= 0.92, "{report:?}");
    assert!(floor("vector").at_k >= 0.92, "{report:?}");
    // Paraphrases share few words with their memory: BM25 alone is weakest.
    assert!(floor("keyword").at_k >= 0.50, "{report:?}");
    assert!(
        floor("hybrid").reciprocal_rank >= floor("keyword").reciprocal_rank,
        "{report:?}"
    );
}
