//! The memory and maintenance plugins end to end: the real components
//! (`scripts/build-guests`) on the real runtime, with the real memory
//! services — all-MiniLM-L6-v2 on ONNX Runtime, the embedded Qdrant store
//! (or the server `HIPPO_QDRANT_URL` names), the embedded broker as the
//! key-value store. No reranker is configured, so recall ranks without one.
//!
//! This file covers the memory tasks; `memory/maintenance.rs` the
//! maintenance tasks and `memory/eval.rs` the recall evaluation.

#[path = "memory/eval.rs"]
mod eval;
#[path = "memory/fixture.rs"]
mod fixture;
#[path = "memory/maintenance.rs"]
mod maintenance;

use fixture::{Fixture, text_of};
use hippo::runtime::{TaskFailure, TaskRequest};
use serde_json::{Value, json};

#[test]
fn a_paraphrase_updates_the_memory_and_other_facts_are_not_duplicates() {
    let f = Fixture::new();
    let first = f.create(
        "alice",
        "I like dark chocolate",
        json!({"memory_type": "preference", "importance": 8, "tags": ["food"]}),
    );
    assert_eq!(first["action"], "created");
    let id = first["memory"]["id"].as_str().unwrap().to_string();

    let paraphrase = f.create(
        "alice",
        "I prefer dark chocolate",
        json!({"tags": ["sweets"]}),
    );
    assert_eq!(paraphrase["action"], "updated_existing", "{paraphrase}");
    assert_eq!(paraphrase["duplicate_of"], id.as_str());
    let updated = &paraphrase["memory"];
    assert_eq!(text_of(updated), "I prefer dark chocolate");
    assert_eq!(
        updated["importance"], 8.0,
        "a scored importance never lowers a stated one"
    );
    assert_eq!(updated["tags"], json!(["food", "sweets"]));
    assert_eq!(updated["type"], "preference");

    let again = f.create("alice", "I prefer dark chocolate", json!({}));
    assert_eq!(again["action"], "skipped_duplicate");
    assert_eq!(again["memory"]["id"], id.as_str());

    let paris = f.create("alice", "Paris is the capital of France", json!({}));
    assert_eq!(paris["action"], "created");
    assert_eq!(f.memories_of("alice").len(), 2);

    // Another user's memory is never a duplicate of alice's.
    assert_eq!(
        f.create("bob", "I like dark chocolate", json!({}))["action"],
        "created"
    );
    assert_eq!(f.memories_of("alice").len(), 2);
}

#[test]
fn the_model_s_thresholds_decide_what_is_a_duplicate() {
    // The default MiniLM's: "9pm" (cosine 0.98 to "9am") is not dropped as
    // a repeat, as the reference's 0.95 would have it; it updates the memory.
    let f = Fixture::new();
    let first = f.create("alice", "My flight leaves at 9am", json!({}));
    let later = f.create("alice", "My flight leaves at 9pm", json!({}));
    assert_eq!(later["action"], "updated_existing", "{later}");
    assert_eq!(later["duplicate_of"], first["memory"]["id"]);
    assert_eq!(text_of(&later["memory"]), "My flight leaves at 9pm");

    // Thresholds configured with the model reach both plugins: above 0.97
    // only, the paraphrase (0.942) is a memory of its own, for create and for
    // the maintenance pass.
    let mut models = hippo::models::ModelsConfig::default_in(&hippo::models::default_models_dir());
    models.embedder.duplicate_above = 0.97;
    models.embedder.same_above = 0.995;
    let strict = Fixture::with_models(Some(models));
    strict.create("alice", "I like dark chocolate", json!({}));
    let paraphrase = strict.create("alice", "I prefer dark chocolate", json!({}));
    assert_eq!(paraphrase["action"], "created", "{paraphrase}");
    let dedup = strict.ok("maintenance.dedup", json!({}));
    assert_eq!(dedup["removed"], 0, "{dedup}");
    assert_eq!(strict.memories_of("alice").len(), 2);
    // With the defaults, the same pass merges them.
    let f = Fixture::new();
    f.create(
        "alice",
        "I like dark chocolate",
        json!({"check_duplicates": false}),
    );
    f.create(
        "alice",
        "I prefer dark chocolate",
        json!({"check_duplicates": false}),
    );
    let dedup = f.ok("maintenance.dedup", json!({}));
    assert_eq!(dedup["removed"], 1, "{dedup}");
}

#[test]
fn a_batch_is_deduplicated_against_the_store_and_itself() {
    let f = Fixture::new();
    let stored = f.create("alice", "I like dark chocolate", json!({}));
    let out = f.ok(
        "memory.batch-create",
        json!({ "user_id": "alice", "memories": [
            {"text": "I prefer dark chocolate"},
            {"text": "Paris is the capital of France", "type": "fact", "tags": ["geo"]},
            {"text": "Paris is the capital of France", "tags": ["europe"]},
            {"text": "My sister lives in Berlin", "memory_type": "context", "ttl_days": 30},
        ]}),
    );
    assert_eq!(
        (
            out["created"].as_u64(),
            out["updated"].as_u64(),
            out["skipped"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let results = out["results"].as_array().unwrap();
    let actions: Vec<&str> = results
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "updated_existing",
            "created",
            "skipped_duplicate",
            "created"
        ]
    );
    assert_eq!(results[0]["duplicate_of"], stored["memory"]["id"]);
    assert_eq!(results[2]["duplicate_of"], results[1]["memory"]["id"]);
    assert!(results[3]["memory"]["expires_at"].is_string());
    assert_eq!(f.memories_of("alice").len(), 3);

    let err = f
        .run(
            "memory.batch-create",
            json!({"user_id": "bob", "memories": [{"text": "x y z w", "user_id": "alice"}]}),
        )
        .unwrap_err();
    assert!(matches!(err, TaskFailure::BadInput { .. }), "{err}");
}

#[test]
fn recall_ranks_with_a_score_breakdown() {
    let f = Fixture::new();
    for (text, memory_type) in [
        ("I prefer dark chocolate over milk chocolate", "preference"),
        ("Paris is the capital of France", "fact"),
        (
            "My sister lives in Berlin and works as an architect",
            "context",
        ),
        ("I am allergic to peanuts", "fact"),
        ("I go running every morning before work", "habit"),
    ] {
        f.create("alice", text, json!({ "memory_type": memory_type }));
    }
    for mode in ["hybrid", "vector", "keyword"] {
        let out = f.ok(
            "memory.recall",
            json!({"user_id": "alice", "query": "which chocolate do I like best?", "k": 3, "mode": mode}),
        );
        assert_eq!(out["mode"], mode);
        assert_eq!(out["reranked"], false, "no reranker is configured");
        let results = out["results"].as_array().unwrap();
        assert!(!results.is_empty() && results.len() <= 3, "{mode}: {out}");
        assert_eq!(
            text_of(&results[0]["memory"]),
            "I prefer dark chocolate over milk chocolate",
            "{mode}"
        );
        let scores: Vec<f64> = results
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "{mode}: {scores:?}"
        );
        for result in results {
            let b = &result["breakdown"];
            let w = &b["weights"];
            assert_eq!(b["rerank"], Value::Null);
            assert_eq!(w["rerank"], 0.0);
            let part = |name: &str| b[name].as_f64().unwrap() * w[name].as_f64().unwrap();
            let score = part("relevance") + part("recency") + part("importance");
            assert!((score - result["score"].as_f64().unwrap()).abs() < 1e-9);
            // "like" asks about preferences: importance weighs 1.5 times 0.10.
            assert!((w["importance"].as_f64().unwrap() - 0.15 / 0.85).abs() < 1e-9);
            if mode == "vector" {
                assert_eq!(b["keyword"], Value::Null);
            }
            let relevance = b["relevance"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&relevance), "{b}");
        }
    }
}

#[test]
fn users_are_isolated_whatever_the_task_asks() {
    let f = Fixture::new();
    let alice = f.create(
        "alice",
        "I like dark chocolate",
        json!({"tags": ["food"], "session_id": "s1"}),
    );
    let id = alice["memory"]["id"].as_str().unwrap();
    f.create("bob", "I drive a blue bicycle to work", json!({}));

    let recall = f.ok(
        "memory.recall",
        json!({"user_id": "bob", "query": "dark chocolate", "filters": {"tags": ["food"], "session_id": "s1"}}),
    );
    assert_eq!(
        recall["results"],
        json!([]),
        "bob sees none of alice's memories"
    );
    let crafted = f.run(
        "memory.recall",
        json!({"user_id": "bob", "query": "chocolate", "filters": {"user_id": "alice"}}),
    );
    assert!(
        matches!(crafted, Err(TaskFailure::BadInput { .. })),
        "{crafted:?}"
    );
    let everything = f.ok(
        "memory.recall",
        json!({"user_id": "bob", "query": "chocolate", "k": 100}),
    );
    assert!(
        everything["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["memory"]["user_id"] == "bob")
    );

    assert_eq!(
        f.ok("memory.get", json!({"user_id": "bob", "memory_id": id}))["found"],
        false
    );
    let update = f.ok(
        "memory.update",
        json!({"user_id": "bob", "memory_id": id, "updates": {"text": "hacked"}}),
    );
    assert_eq!(update["found"], false);
    assert_eq!(
        f.ok("memory.delete", json!({"user_id": "bob", "memory_id": id}))["deleted"],
        false
    );

    let kept = f.ok("memory.get", json!({"user_id": "alice", "memory_id": id}));
    assert_eq!(text_of(&kept["memory"]), "I like dark chocolate");
    assert_eq!(
        f.ok(
            "memory.delete",
            json!({"user_id": "alice", "memory_id": id})
        )["deleted"],
        true
    );
    assert_eq!(
        f.ok("memory.get", json!({"user_id": "alice", "memory_id": id}))["found"],
        false
    );
}

/// The user a task acts for is decided at its submission and travels with
/// it; the runtime used to read it from the input again, so whatever
/// produced the input decided. A task acting for bob whose input names
/// alice reaches only bob's memories, and one acting for no user reaches
/// none.
#[test]
fn a_task_acts_for_the_user_of_its_submission_not_of_its_input() {
    let f = Fixture::new();
    let alice = f.create("alice", "I like dark chocolate", json!({}));
    let id = alice["memory"]["id"].as_str().unwrap();
    let input = json!({"user_id": "alice", "memory_id": id}).to_string();

    let mut as_bob = TaskRequest::new("memory.get", input.clone());
    as_bob.acting_for = Some("bob".into());
    let outcome = f.execute(as_bob);
    match &outcome.result {
        Ok(output) => {
            let output: Value = serde_json::from_slice(output).unwrap();
            assert_eq!(output["found"], false, "bob read alice's memory: {output}");
        }
        Err(failure) => assert!(failure.to_string().contains("forbidden"), "{failure}"),
    }

    let as_nobody = f.execute(TaskRequest::new("memory.get", input));
    let failure = as_nobody
        .result
        .expect_err("a task acting for no user read a memory");
    assert!(
        failure.to_string().contains("acts for no user"),
        "{failure}"
    );

    let kept = f.ok("memory.get", json!({"user_id": "alice", "memory_id": id}));
    assert_eq!(text_of(&kept["memory"]), "I like dark chocolate");
}

/// The memory capability is a crate of its own, plugged into the runtime
/// and linked into a plugin's instances only where the host has it and the
/// manifest grants it. On a host without it (`hippo run` has no models), a
/// memory plugin still loads, and its calls fail naming the import.
#[test]
fn a_granted_capability_the_host_lacks_fails_its_calls_naming_the_import() {
    let dir = tempfile::tempdir().unwrap();
    hippo_integration_tests::copy_memory_plugins(dir.path());
    let runtime = hippo_integration_tests::runtime();
    let plugin =
        hippo::runtime::load_plugin_file(&runtime, &dir.path().join("memory.wasm"), None).unwrap();
    let mut request = TaskRequest::new(
        "memory.create",
        json!({"user_id": "alice", "text": "I like tea"}).to_string(),
    );
    request.acting_for = Some("alice".into());
    let failure = runtime
        .execute_blocking(&plugin, &request)
        .result
        .expect_err("a memory task ran on a host without the memory capability");
    let failure = failure.to_string();
    assert!(
        failure.contains("hippo:tasks/embeddings") && failure.contains("does not provide"),
        "{failure}"
    );
}

#[test]
fn an_update_embeds_again_only_when_the_text_changes() {
    let f = Fixture::new();
    let created = f.create("alice", "I live in Lyon", json!({"importance": 5}));
    let id = created["memory"]["id"].as_str().unwrap();
    let before = f.stored(id).vector;

    let out = f.ok(
        "memory.update",
        json!({"user_id": "alice", "memory_id": id, "updates": {"importance": 9, "tags": ["home"], "metadata": {"k": 1}}}),
    );
    assert_eq!(
        (out["found"].as_bool(), out["reembedded"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(out["memory"]["importance"], 9.0);
    assert!(
        out["memory"]["decayed_at"].is_string(),
        "a new importance restarts decay"
    );
    assert_eq!(f.stored(id).vector, before, "same text, same vector");

    let same_text = f.ok(
        "memory.update",
        json!({"user_id": "alice", "memory_id": id, "updates": {"text": "I live in Lyon"}}),
    );
    assert_eq!(same_text["reembedded"], false);

    let moved = f.ok("memory.update", json!({"user_id": "alice", "memory_id": id, "updates": {"text": "I moved to Nantes last spring"}}));
    assert_eq!(moved["reembedded"], true);
    let after = f.stored(id);
    assert_ne!(after.vector, before);
    let expected = f.vector("I moved to Nantes last spring");
    let similarity: f32 = after.vector.iter().zip(&expected).map(|(a, b)| a * b).sum();
    assert!(
        similarity > 0.999,
        "the stored vector is the new text's ({similarity})"
    );
    assert_eq!(after.memory.metadata["k"], 1);
    let found = f.ok(
        "memory.recall",
        json!({"user_id": "alice", "query": "where did I move?", "k": 1}),
    );
    assert_eq!(found["results"][0]["memory"]["id"], id);
}
