//! Recall quality, in every mode (hybrid, vector, keyword), on two sets:
//!
//! - `tests/data/recall_eval.json`: 202 short facts and preferences of
//!   four users, 50 questions each paraphrasing one of them (k = 5);
//! - `tests/data/recall/conversations.json` (made by `generate.py` beside
//!   it): conversation turns of two speakers over many sessions, questions
//!   answered by exact tokens, by paraphrase, or both, some about turns that
//!   newer, similar turns followed. The test takes its first users (the
//!   whole set is `bench/run recall`'s) and imports their turns with the
//!   times they were said (k = 10).
//!
//! Each prints recall@1, recall@k and the mean reciprocal rank per mode and
//! holds them above floors a regression would cross, and hybrid at least
//! level with the better single mode where the sets can tell them apart.

use super::fixture::Fixture;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// How one mode did: the fraction of questions answered at rank 1, within
/// the first k, and the mean reciprocal rank.
#[derive(Debug, Default, Clone, Copy)]
struct Scores {
    at_1: f64,
    at_k: f64,
    reciprocal_rank: f64,
}

/// A question: whose memories, what is asked, the ids that answer it.
struct Question {
    user: String,
    text: String,
    answers: HashSet<String>,
}

const MODES: [&str; 3] = ["hybrid", "vector", "keyword"];

/// One figure of a mode's scores.
type Figure = fn(Scores) -> f64;

/// Asks every question in every mode with `k` results; the scores by mode.
fn evaluate(f: &Fixture, questions: &[Question], k: usize) -> HashMap<&'static str, Scores> {
    let mut report = HashMap::new();
    for mode in MODES {
        let mut total = Scores::default();
        for q in questions {
            let out = f.ok(
                "memory.recall",
                json!({ "user_id": q.user, "query": q.text, "k": k, "mode": mode }),
            );
            let results = out["results"].as_array().unwrap();
            assert!(
                results
                    .iter()
                    .all(|r| r["memory"]["user_id"] == q.user.as_str())
            );
            let rank = results
                .iter()
                .position(|r| q.answers.contains(r["memory"]["id"].as_str().unwrap()));
            if let Some(rank) = rank {
                total.at_1 += f64::from(rank == 0);
                total.at_k += 1.0;
                total.reciprocal_rank += 1.0 / (rank + 1) as f64;
            }
        }
        let n = questions.len() as f64;
        let scores = Scores {
            at_1: total.at_1 / n,
            at_k: total.at_k / n,
            reciprocal_rank: total.reciprocal_rank / n,
        };
        eprintln!(
            "{mode:>7}: recall@1 {:.3}  recall@{k} {:.3}  MRR {:.3}",
            scores.at_1, scores.at_k, scores.reciprocal_rank
        );
        report.insert(mode, scores);
    }
    report
}

/// Stores `memories` of `user` in one batch, without deduplication (every
/// memory stays itself); their ids, in order.
fn store(f: &Fixture, user: &str, memories: Vec<Value>) -> Vec<String> {
    let out = f.ok(
        "memory.batch-create",
        json!({ "user_id": user, "memories": memories, "check_duplicates": false }),
    );
    out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["memory"]["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn recall_finds_the_paraphrased_memory() {
    let f = Fixture::new();
    let data: Value = serde_json::from_str(include_str!("../data/recall_eval.json")).unwrap();
    let memories = data["memories"].as_array().unwrap();
    let queries = data["queries"].as_array().unwrap();
    assert!(memories.len() >= 200 && queries.len() >= 50);

    let mut by_user: HashMap<&str, Vec<&Value>> = HashMap::new();
    for memory in memories {
        by_user
            .entry(memory["user_id"].as_str().unwrap())
            .or_default()
            .push(memory);
    }
    let mut ids: HashMap<String, String> = HashMap::new();
    for (user, memories) in &by_user {
        let batch = memories
            .iter()
            .map(|m| json!({ "text": m["text"], "memory_type": m["memory_type"] }))
            .collect();
        for (memory, id) in memories.iter().zip(store(&f, user, batch)) {
            ids.insert(memory["key"].as_str().unwrap().to_string(), id);
        }
    }
    assert_eq!(ids.len(), memories.len());
    let questions: Vec<Question> = queries
        .iter()
        .map(|q| Question {
            user: q["user_id"].as_str().unwrap().to_string(),
            text: q["query"].as_str().unwrap().to_string(),
            answers: [ids[q["expected"].as_str().unwrap()].clone()].into(),
        })
        .collect();

    let report = evaluate(&f, &questions, 5);
    assert!(report["hybrid"].at_k >= 0.92, "{report:?}");
    assert!(report["vector"].at_k >= 0.92, "{report:?}");
    // Paraphrases share few words with their memory: BM25 alone is weakest.
    assert!(report["keyword"].at_k >= 0.50, "{report:?}");
    assert!(
        report["hybrid"].reciprocal_rank >= report["keyword"].reciprocal_rank,
        "{report:?}"
    );
}

/// Users of the conversation set the test takes (of 12).
const CONVERSATION_USERS: usize = 4;

#[test]
fn hybrid_recall_keeps_exact_names_and_paraphrases_in_conversations() {
    let f = Fixture::new();
    let data: Value =
        serde_json::from_str(include_str!("../data/recall/conversations.json")).unwrap();
    let users = &data["users"].as_array().unwrap()[..CONVERSATION_USERS];
    let mut ids: HashMap<String, String> = HashMap::new();
    for user in users {
        let user_id = user["user_id"].as_str().unwrap();
        let turns = user["memories"].as_array().unwrap();
        let batch = turns
            .iter()
            .map(|t| {
                json!({ "text": t["text"], "session_id": t["session"], "created_at": t["created_at"] })
            })
            .collect();
        for (turn, id) in turns.iter().zip(store(&f, user_id, batch)) {
            ids.insert(turn["key"].as_str().unwrap().to_string(), id);
        }
    }
    let taken: HashSet<&str> = users
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    let questions: Vec<Question> = data["questions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| taken.contains(q["user_id"].as_str().unwrap()))
        .map(|q| Question {
            user: q["user_id"].as_str().unwrap().to_string(),
            text: q["question"].as_str().unwrap().to_string(),
            answers: q["answers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|key| ids[key.as_str().unwrap()].clone())
                .collect(),
        })
        .collect();
    assert!(ids.len() > 1_500 && questions.len() >= 150);

    let report = evaluate(&f, &questions, 10);
    let (hybrid, vector, keyword) = (report["hybrid"], report["vector"], report["keyword"]);
    // A third of the questions share no word with their answer.
    assert!(keyword.at_k >= 0.55 && keyword.at_k < 0.75, "{report:?}");
    assert!(vector.at_k >= 0.90, "{report:?}");
    // Hybrid keeps what both found: level with or above the better of them.
    let figures: [(&str, Figure); 3] = [
        ("recall@1", |s| s.at_1),
        ("recall@10", |s| s.at_k),
        ("MRR", |s| s.reciprocal_rank),
    ];
    for (name, of) in figures {
        assert!(
            of(hybrid) >= of(vector).max(of(keyword)) - 0.01,
            "{name}: {report:?}"
        );
    }
}
