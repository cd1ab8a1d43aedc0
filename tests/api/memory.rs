//! The memory routes, queued (`/api/v1/tasks/memory/*`) and inline
//! (`/api/v1/memories`), through the server with the memory plugins on real
//! memory services: the exact shapes of their answers, ownership, and the
//! way back from a queued task's result. Every answer is also checked
//! against the OpenAPI document by `Api::send`.

use super::*;

/// The fields of a memory, exactly.
const MEMORY_FIELDS: &[&str] = &[
    "access_count",
    "agent_id",
    "confidence",
    "created_at",
    "decayed_at",
    "expires_at",
    "id",
    "importance",
    "is_archived",
    "metadata",
    "promotion_count",
    "run_id",
    "session_id",
    "tags",
    "text",
    "text_length",
    "token_count",
    "type",
    "updated_at",
    "user_id",
    "visibility",
];

#[track_caller]
fn assert_memory(memory: &Value, text: &str, user: &str) {
    assert_eq!(
        fields(memory),
        MEMORY_FIELDS.iter().copied().collect(),
        "{memory}"
    );
    assert_eq!(
        (memory["text"].as_str(), memory["user_id"].as_str()),
        (Some(text), Some(user)),
        "{memory}"
    );
    assert_eq!(memory["text_length"], text.chars().count(), "{memory}");
    let id = memory["id"].as_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "the id is a UUID: {memory}"
    );
    for time in ["created_at", "updated_at"] {
        let value = memory[time].as_str().unwrap();
        assert!(
            humantime::parse_rfc3339_weak(value).is_ok(),
            "{time}: {memory}"
        );
    }
}

/// The task's result, once it finished successfully.
async fn result_of(api: &Api, answer: Answer) -> Value {
    let status = answer.expect(200).clone();
    assert_task_status(&status);
    assert_eq!(status["status"], "SUCCESS", "{status}");
    assert_eq!(
        status["queue"], "memory_ops",
        "memory tasks go to memory_ops: {status}"
    );
    let _ = api;
    status["result"].clone()
}

/// A recalled hit's score is its breakdown weighed by its weights.
#[track_caller]
fn assert_scored(hit: &Value) {
    let breakdown = &hit["breakdown"];
    assert_eq!(
        fields(breakdown),
        [
            "importance",
            "keyword",
            "recency",
            "relevance",
            "rerank",
            "similarity",
            "weights"
        ]
        .into(),
        "{hit}"
    );
    let weights = &breakdown["weights"];
    assert_eq!(
        fields(weights),
        ["importance", "recency", "relevance", "rerank"].into()
    );
    let part =
        |name: &str| breakdown[name].as_f64().unwrap_or(0.0) * weights[name].as_f64().unwrap();
    let sum: f64 = ["relevance", "rerank", "recency", "importance"]
        .iter()
        .map(|n| weights[*n].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-9, "weights sum to 1: {weights}");
    let score = part("relevance") + part("rerank") + part("recency") + part("importance");
    assert!(
        (score - hit["score"].as_f64().unwrap()).abs() < 1e-9,
        "{hit}"
    );
    // No reranker is configured here.
    assert_eq!(
        (&breakdown["rerank"], &weights["rerank"]),
        (&Value::Null, &json!(0.0)),
        "{hit}"
    );
}

/// A well-formed memory id that no memory has.
const NO_MEMORY: &str = "01234567-89ab-4def-8123-456789abcdef";

on_both_brokers! {
    memory_services: true;

    queued_memory_routes_answer_the_reference_shapes(api) {
        // create: the reference's `{task_id, status: "submitted", message}`, then the result.
        let answer = api.post("/api/v1/tasks/memory/create", Some(ADMIN), json!({
            "text": "I like dark chocolate", "user_id": "alice", "memory_type": "preference",
            "importance": 8, "tags": ["food"], "metadata": {"source": "chat"},
        })).await;
        let submitted = answer.expect(202).clone();
        assert_eq!(fields(&submitted), ["created", "message", "status", "task_id"].into(), "{submitted}");
        assert_eq!(submitted["status"], "submitted");
        let status = api.finished(submitted["task_id"].as_str().unwrap()).await;
        assert_eq!((&status["task"], &status["status"]), (&json!("memory.create"), &json!("SUCCESS")), "{status}");
        let created = &status["result"];
        assert_eq!(fields(created), ["action", "memory"].into(), "{created}");
        assert_eq!(created["action"], "created");
        let memory = &created["memory"];
        assert_memory(memory, "I like dark chocolate", "alice");
        assert_eq!((&memory["type"], &memory["importance"], &memory["confidence"]), (&json!("preference"), &json!(8.0), &json!(0.9)), "{memory}");
        assert_eq!((&memory["tags"], &memory["metadata"]), (&json!(["food"]), &json!({"source": "chat"})), "{memory}");
        assert_eq!((&memory["access_count"], &memory["is_archived"], &memory["promotion_count"]), (&json!(0), &json!(false), &json!(0)));
        assert_eq!((&memory["expires_at"], &memory["visibility"], &memory["session_id"]), (&Value::Null, &Value::Null, &Value::Null));
        let chocolate = memory["id"].as_str().unwrap().to_string();

        // batch-create, waited for: one per memory, duplicates named.
        let answer = api.post("/api/v1/tasks/memory/batch-create?wait=30", Some(ADMIN), json!({"memories": [
            {"text": "Paris is the capital of France", "user_id": "alice", "tags": ["geo"]},
            {"text": "I prefer dark chocolate", "user_id": "alice"},
            {"text": "My sister lives in Berlin", "user_id": "alice", "memory_type": "context", "ttl_days": 30},
        ]})).await;
        let batch = result_of(api, answer).await;
        assert_eq!(fields(&batch), ["created", "results", "skipped", "updated"].into(), "{batch}");
        assert_eq!((&batch["created"], &batch["updated"], &batch["skipped"]), (&json!(2), &json!(1), &json!(0)), "{batch}");
        let results = batch["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(fields(&results[0]), ["action", "memory"].into());
        assert_memory(&results[0]["memory"], "Paris is the capital of France", "alice");
        assert_eq!(fields(&results[1]), ["action", "duplicate_of", "memory", "similarity"].into(), "{batch}");
        assert_eq!((&results[1]["action"], results[1]["duplicate_of"].as_str()), (&json!("updated_existing"), Some(chocolate.as_str())));
        assert!(results[1]["similarity"].as_f64().unwrap() > 0.88, "{batch}");
        assert_eq!(results[2]["memory"]["type"], "context");
        assert!(results[2]["memory"]["expires_at"].is_string(), "ttl_days sets expires_at: {batch}");

        // recall, waited for: the breakdown of every hit.
        let answer = api.post("/api/v1/tasks/memory/recall?wait=30", Some(ADMIN), json!({
            "query": "Which sweets does she enjoy?", "user_id": "alice", "k": 2,
        })).await;
        let recalled = result_of(api, answer).await;
        assert_eq!(fields(&recalled), ["candidates", "mode", "reranked", "results"].into(), "{recalled}");
        assert_eq!((&recalled["mode"], &recalled["reranked"]), (&json!("hybrid"), &json!(false)));
        assert_eq!(recalled["candidates"], 3, "every memory of alice is a candidate: {recalled}");
        let hits = recalled["results"].as_array().unwrap();
        assert_eq!(hits.len(), 2, "k = 2: {recalled}");
        assert_eq!(fields(&hits[0]), ["breakdown", "memory", "score"].into());
        assert_eq!(hits[0]["memory"]["id"], chocolate.as_str(), "{recalled}");
        assert!(hits[0]["score"].as_f64() >= hits[1]["score"].as_f64(), "best first: {recalled}");
        hits.iter().for_each(assert_scored);
        assert_eq!(
            hits[0]["breakdown"]["keyword"],
            Value::Null,
            "hybrid recall found it by meaning alone: no word of the query is in it"
        );

        // update: new tags only, so no new embedding.
        let answer = api.post("/api/v1/tasks/memory/update?wait=30", Some(ADMIN), json!({
            "memory_id": chocolate, "user_id": "alice", "updates": {"tags": ["food", "sweets"], "importance": 9},
        })).await;
        let updated = result_of(api, answer).await;
        assert_eq!(fields(&updated), ["found", "memory", "reembedded"].into(), "{updated}");
        assert_eq!((&updated["found"], &updated["reembedded"]), (&json!(true), &json!(false)));
        assert_eq!((&updated["memory"]["tags"], &updated["memory"]["importance"]), (&json!(["food", "sweets"]), &json!(9.0)));

        // delete, and bob's delete of alice's memory finds nothing.
        let answer = api.post("/api/v1/tasks/memory/delete?wait=30", Some(ADMIN), json!({"memory_id": chocolate, "user_id": "bob"})).await;
        assert_eq!(result_of(api, answer).await, json!({"deleted": false, "memory_id": chocolate}));
        let answer = api.post("/api/v1/tasks/memory/delete?wait=30", Some(ADMIN), json!({"memory_id": chocolate, "user_id": "alice"})).await;
        assert_eq!(result_of(api, answer).await, json!({"deleted": true, "memory_id": chocolate}));

        // A key bound to alice queues for alice only.
        api.post("/api/v1/tasks/memory/create", Some(ALICE), json!({"text": "I walk to work", "user_id": "alice"})).await.expect(202);
        api.post("/api/v1/tasks/memory/create", Some(ALICE), json!({"text": "I walk to work", "user_id": "bob"})).await.error(403, "forbidden", None);
        api.post("/api/v1/tasks/memory/recall", Some(READER), json!({"query": "work", "user_id": "alice"})).await.error(403, "forbidden", None);
    }

    inline_memory_routes_answer_their_documented_shapes(api) {
        // create: 201 with what happened.
        let answer = api.post("/api/v1/memories", Some(ALICE), json!({
            "text": "My favourite tea is oolong", "user_id": "alice", "tags": ["tea"],
            "session_id": "s-1", "agent_id": "agent-7", "visibility": "shared", "confidence": 0.75,
        })).await;
        let created = answer.expect(201).clone();
        assert_eq!(fields(&created), ["action", "memory"].into(), "{created}");
        assert_eq!(created["action"], "created");
        let memory = &created["memory"];
        assert_memory(memory, "My favourite tea is oolong", "alice");
        assert_eq!((&memory["session_id"], &memory["agent_id"], &memory["visibility"], &memory["confidence"]),
            (&json!("s-1"), &json!("agent-7"), &json!("shared"), &json!(0.75)), "{memory}");
        assert_eq!(memory["type"], "fact", "the default type");
        let importance = memory["importance"].as_f64().unwrap();
        assert!((0.0..=10.0).contains(&importance), "importance is scored when absent: {memory}");
        let tea = memory["id"].as_str().unwrap().to_string();
        // The same text again is a skipped duplicate of it.
        let again = api.post("/api/v1/memories", Some(ALICE), json!({"text": "My favourite tea is oolong", "user_id": "alice"})).await;
        let again = again.expect(201);
        assert_eq!((&again["action"], again["duplicate_of"].as_str()), (&json!("skipped_duplicate"), Some(tea.as_str())), "{again}");
        for text in ["I run every morning", "I run on Sundays"] {
            api.post("/api/v1/memories", Some(ALICE), json!({"text": text, "user_id": "alice", "tags": ["sport"], "check_duplicates": false})).await.expect(201);
        }

        // get: the memory, found; someone else's lookup of it is a 404.
        let path = format!("/api/v1/memories/{tea}?user_id=alice");
        let found = api.get(&path, Some(ALICE)).await.expect(200).clone();
        assert_eq!(fields(&found), ["found", "memory"].into());
        assert_eq!(found["found"], true);
        assert_memory(&found["memory"], "My favourite tea is oolong", "alice");
        api.get(&format!("/api/v1/memories/{tea}?user_id=bob"), Some(ADMIN)).await.error(404, "not_found", None);
        api.get(&format!("/api/v1/memories/{tea}?user_id=bob"), Some(ALICE)).await.error(403, "forbidden", None);

        // update: a new text is embedded again.
        let answer = api.send(Method::PATCH, &path, Some(ALICE), Body::Json(json!({"text": "My favourite tea is green tea", "metadata": {"mood": "calm"}}))).await;
        let updated = answer.expect(200).clone();
        assert_eq!(fields(&updated), ["found", "memory", "reembedded"].into(), "{updated}");
        assert_eq!(updated["reembedded"], true);
        assert_memory(&updated["memory"], "My favourite tea is green tea", "alice");
        assert_eq!(updated["memory"]["metadata"], json!({"mood": "calm"}));
        assert!(updated["memory"]["updated_at"].as_str() >= found["memory"]["updated_at"].as_str());
        let missing = format!("/api/v1/memories/{}?user_id=alice", uuid::Uuid::new_v4());
        api.send(Method::PATCH, &missing, Some(ALICE), Body::Json(json!({"tags": ["x"]}))).await.error(404, "not_found", None);

        // recall: the renamed tea is found by a paraphrase.
        let recalled = api.post("/api/v1/memories/recall", Some(ALICE), json!({
            "query": "what kind of tea do I like best", "user_id": "alice", "k": 1, "mode": "vector",
        })).await.expect(200).clone();
        assert_eq!(fields(&recalled), ["candidates", "mode", "reranked", "results"].into(), "{recalled}");
        assert_eq!(recalled["mode"], "vector");
        let hits = recalled["results"].as_array().unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0]["memory"]["id"], tea.as_str(), "{recalled}");
        assert_scored(&hits[0]);
        assert_eq!(
            hits[0]["breakdown"]["keyword"],
            Value::Null,
            "no keyword search in vector mode"
        );

        // query: pages of the memories with a tag, the cursor leading on.
        let first = api.post("/api/v1/memories/query", Some(ALICE), json!({"user_id": "alice", "filters": {"tags": ["sport"]}, "limit": 1})).await.expect(200).clone();
        assert_eq!(fields(&first), ["memories", "next"].into(), "{first}");
        assert_eq!(first["memories"].as_array().unwrap().len(), 1);
        let cursor = first["next"].as_str().expect("a second page").to_string();
        let second = api.post("/api/v1/memories/query", Some(ALICE), json!({"user_id": "alice", "filters": {"tags": ["sport"]}, "limit": 1, "cursor": cursor})).await.expect(200).clone();
        let texts: BTreeSet<&str> = [&first, &second].iter().map(|page| page["memories"][0]["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["I run every morning", "I run on Sundays"].into(), "{first} {second}");
        let all = api.post("/api/v1/memories/query", Some(ALICE), json!({"user_id": "alice"})).await.expect(200).clone();
        assert_eq!((all["memories"].as_array().unwrap().len(), &all["next"]), (3, &Value::Null), "{all}");

        // delete: once, then it is gone.
        let deleted = api.delete(&path, Some(ALICE)).await.expect(200).clone();
        assert_eq!(deleted, json!({"deleted": true, "memory_id": tea}));
        api.delete(&path, Some(ALICE)).await.error(404, "not_found", None);
        api.get(&path, Some(ALICE)).await.error(404, "not_found", None);
        // Reading takes `read`, writing `submit`.
        api.post("/api/v1/memories/query", Some(READER), json!({"user_id": "alice"})).await.expect(200);
        api.post("/api/v1/memories", Some(READER), json!({"text": "x", "user_id": "alice"})).await.error(403, "forbidden", None);
    }

    memory_bodies_name_the_field_at_fault(api) {
        let long = |n: usize| "x".repeat(n);
        let memory = |extra: Value| {
            let mut body = json!({"text": "I like tea", "user_id": "alice"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        let many_tags: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        let batch_of = |n: usize| json!({"memories": vec![json!({"text": "I like tea", "user_id": "alice"}); n]});
        // (route, body, field): each route's fields, wrong type, missing, too long, out of range.
        let creates: Vec<(Value, &str)> = vec![
            (json!({"user_id": "alice"}), "text"),
            (memory(json!({"text": 5})), "text"),
            (memory(json!({"text": "   "})), "text"),
            (memory(json!({"text": long(20_001)})), "text"),
            (json!({"text": "I like tea"}), "user_id"),
            (memory(json!({"user_id": long(129)})), "user_id"),
            (memory(json!({"user_id": "al\u{7}ice"})), "user_id"),
            (memory(json!({"memory_type": "opinion"})), "memory_type"),
            (memory(json!({"importance": 11})), "importance"),
            (memory(json!({"importance": -0.5})), "importance"),
            (memory(json!({"importance": "high"})), "importance"),
            (memory(json!({"confidence": 1.5})), "confidence"),
            (memory(json!({"tags": many_tags})), "tags"),
            (memory(json!({"tags": [" "]})), "tags"),
            (memory(json!({"tags": [long(101)]})), "tags"),
            (memory(json!({"tags": "food"})), "tags"),
            (memory(json!({"metadata": "not an object"})), "metadata"),
            (memory(json!({"session_id": long(129)})), "session_id"),
            (memory(json!({"agent_id": ""})), "agent_id"),
            (memory(json!({"run_id": 7})), "run_id"),
            (memory(json!({"visibility": "secret"})), "visibility"),
            (memory(json!({"ttl_days": 0})), "ttl_days"),
            (memory(json!({"ttl_days": 36_501})), "ttl_days"),
            (memory(json!({"check_duplicates": "yes"})), "check_duplicates"),
            (memory(json!({"colour": "blue"})), "colour"),
        ];
        let mut cases: Vec<(&str, Value, String)> = Vec::new();
        for (body, field) in &creates {
            for route in ["/api/v1/tasks/memory/create", "/api/v1/memories"] {
                cases.push((route, body.clone(), field.to_string()));
            }
            let mut item = body.clone();
            item["user_id"] = json!("alice");
            if *field != "user_id" {
                cases.push(("/api/v1/tasks/memory/batch-create", json!({"memories": [memory(json!({})), item]}), format!("memories[1].{field}")));
            }
        }
        let recall = |extra: Value| {
            let mut body = json!({"query": "tea", "user_id": "alice"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        let query = |extra: Value| {
            let mut body = json!({"user_id": "alice"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        // A well-formed memory id that names no memory: the checks run first.
        let update = |updates: Value| json!({"memory_id": NO_MEMORY, "user_id": "alice", "updates": updates});
        let others: Vec<(&str, Value, &str)> = vec![
            ("/api/v1/tasks/memory/batch-create", json!({"memories": []}), "memories"),
            ("/api/v1/tasks/memory/batch-create", batch_of(1_001), "memories"),
            ("/api/v1/tasks/memory/batch-create", json!({"memories": [memory(json!({})), memory(json!({"user_id": "bob"}))]}), "memories[1].user_id"),
            ("/api/v1/tasks/memory/batch-create", json!({"memories": [memory(json!({}))], "check_duplicates": 1}), "check_duplicates"),
            ("/api/v1/tasks/memory/batch-create", json!({}), "memories"),
            ("/api/v1/tasks/memory/recall", json!({"user_id": "alice"}), "query"),
            ("/api/v1/tasks/memory/recall", recall(json!({"k": 0})), "k"),
            ("/api/v1/tasks/memory/recall", recall(json!({"k": 101})), "k"),
            ("/api/v1/tasks/memory/recall", recall(json!({"k": "five"})), "k"),
            ("/api/v1/tasks/memory/recall", recall(json!({"mode": "fuzzy"})), "mode"),
            ("/api/v1/tasks/memory/recall", recall(json!({"rerank": "please"})), "rerank"),
            ("/api/v1/tasks/memory/recall", recall(json!({"filters": {"min_importance": 11}})), "filters.min_importance"),
            ("/api/v1/tasks/memory/recall", recall(json!({"filters": {"created_after": "yesterday"}})), "filters.created_after"),
            ("/api/v1/tasks/memory/recall", recall(json!({"filters": {"memory_types": ["opinion"]}})), "filters.memory_types[0]"),
            ("/api/v1/tasks/memory/recall", recall(json!({"filters": {"tags": [""]}})), "filters.tags"),
            ("/api/v1/tasks/memory/recall", recall(json!({"filters": {"session_id": long(200)}})), "filters.session_id"),
            ("/api/v1/tasks/memory/recall", recall(json!({"filters": {"owner": "bob"}})), "filters.owner"),
            ("/api/v1/memories/recall", recall(json!({"query": long(20_001)})), "query"),
            ("/api/v1/tasks/memory/update", update(json!({"text": " "})), "updates.text"),
            ("/api/v1/tasks/memory/update", update(json!({"importance": 10.5})), "updates.importance"),
            ("/api/v1/tasks/memory/update", update(json!({"expires_at": "next week"})), "updates.expires_at"),
            ("/api/v1/tasks/memory/update", update(json!({"memory_type": 3})), "updates.memory_type"),
            ("/api/v1/tasks/memory/update", json!({"memory_id": NO_MEMORY, "user_id": "alice"}), "updates"),
            ("/api/v1/tasks/memory/update", json!({"memory_id": "m-1", "user_id": "alice", "updates": {}}), "memory_id"),
            ("/api/v1/tasks/memory/update", json!({"memory_id": long(129), "user_id": "alice", "updates": {}}), "memory_id"),
            ("/api/v1/tasks/memory/delete", json!({"user_id": "alice"}), "memory_id"),
            ("/api/v1/tasks/memory/delete", json!({"memory_id": NO_MEMORY, "user_id": ""}), "user_id"),
            ("/api/v1/tasks/memory/delete", json!({"memory_id": "not-a-uuid", "user_id": "alice"}), "memory_id"),
            ("/api/v1/memories/query", query(json!({"limit": 0})), "limit"),
            ("/api/v1/memories/query", query(json!({"limit": 1_001})), "limit"),
            ("/api/v1/memories/query", query(json!({"cursor": 5})), "cursor"),
            ("/api/v1/memories/query", json!({}), "user_id"),
        ];
        cases.extend(others.into_iter().map(|(route, body, field)| (route, body, field.to_string())));
        for (route, body, field) in &cases {
            let answer = api.post(route, Some(ADMIN), body.clone()).await;
            let shown = shorten(body);
            assert_eq!(answer.body["error"]["field"], field.as_str(), "{route} {shown}: {answer:?}");
            answer.error(400, "invalid_input", Some(field));
        }
        // The inline routes that name a memory: path, query and body.
        let path = format!("/api/v1/memories/{NO_MEMORY}");
        // (Unknown query parameters are ignored, as is usual for queries.)
        for (query, field) in [("", "user_id"), ("?user_id=", "user_id"), ("?user_id=%07", "user_id")] {
            api.get(&format!("{path}{query}"), Some(ADMIN)).await.error(400, "invalid_input", Some(field));
            api.delete(&format!("{path}{query}"), Some(ADMIN)).await.error(400, "invalid_input", Some(field));
        }
        let too_long = format!("/api/v1/memories/{}?user_id=alice", long(129));
        api.get(&too_long, Some(ADMIN)).await.error(400, "invalid_input", Some("memory_id"));
        // A memory id that is no UUID is named as such, not as the body.
        for method in [Method::GET, Method::DELETE] {
            let answer = api.send(method, "/api/v1/memories/m-1?user_id=alice", Some(ADMIN), Body::None).await;
            answer.error(400, "invalid_input", Some("memory_id"));
        }
        // Ids count characters, not bytes: 100 "é" are 200 bytes and fine.
        let accented = "é".repeat(100);
        let answer = api.post("/api/v1/tasks/memory/delete", Some(ADMIN), json!({"memory_id": NO_MEMORY, "user_id": accented})).await;
        assert_ne!(answer.body["error"]["field"], "user_id", "{answer:?}");
        for (body, field) in [(json!({"importance": 12}), "importance"), (json!({"text": ""}), "text"), (json!({"tags": 1}), "tags"), (json!({"id": "x"}), "id")] {
            let answer = api.send(Method::PATCH, &format!("{path}?user_id=alice"), Some(ADMIN), Body::Json(body.clone())).await;
            // A PATCH names the field as sent, though the task sees it under `updates`.
            let named = answer.body["error"]["field"].as_str().unwrap_or_default().trim_start_matches("updates.").to_string();
            assert_eq!((answer.status.as_u16(), named.as_str()), (400, field), "{body}: {answer:?}");
        }
        // Not JSON, not UTF-8, oversized: the body.
        for route in ["/api/v1/tasks/memory/create", "/api/v1/memories", "/api/v1/memories/recall"] {
            let answer = api.send(Method::POST, route, Some(ADMIN), Body::Raw(b"{\"text\": \"tea\xff\", \"user_id\": \"alice\"}".to_vec(), "application/json")).await;
            answer.error(400, "invalid_body", Some("body"));
            let mut huge = br#"{"user_id": "alice", "text": ""#.to_vec();
            huge.resize(hippo::api::MAX_JSON_BYTES + 10, b'a');
            huge.extend_from_slice(br#""}"#);
            let answer = api.send(Method::POST, route, Some(ADMIN), Body::Raw(huge, "application/json")).await;
            answer.error(413, "payload_too_large", Some("body"));
        }
    }
}

/// A body, shortened for a failure message.
fn shorten(body: &Value) -> String {
    let text = body.to_string();
    text.chars().take(120).collect()
}
