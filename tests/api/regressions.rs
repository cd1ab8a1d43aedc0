//! Regression tests of bugs the scenarios found in the API, each on one
//! server (embedded broker), named after the bug.

use super::*;

/// `{"task": "test.noop"} trailing` was accepted: the JSON body was not
/// checked for trailing characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_characters_after_the_json_body_were_accepted() {
    let api = start_with("embedded", false).await;
    for body in [
        &b"{\"task\": \"test.noop\"} trailing"[..],
        b"{\"task\": \"test.noop\"}{}",
        b"{\"task\": \"test.noop\"}]",
    ] {
        let answer = api
            .send(
                Method::POST,
                "/api/v1/tasks/submit",
                Some(ADMIN),
                Body::Raw(body.to_vec(), "application/json"),
            )
            .await;
        answer.error(400, "invalid_body", Some("body"));
    }
    let answer = api
        .send(
            Method::POST,
            "/api/v1/tasks/submit",
            Some(ADMIN),
            Body::Raw(
                b" {\"task\": \"test.noop\"} \r\n".to_vec(),
                "application/json",
            ),
        )
        .await;
    answer.expect(202);
    api.shutdown().await;
}

/// `["test.noop"]` was accepted as a submission (serde takes a struct's
/// fields as an array), and `42` was answered with the field "42".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_was_taken_as_a_submission_and_values_named_as_fields() {
    let api = start_with("embedded", false).await;
    for body in [
        json!(["test.noop"]),
        json!(["test.noop", null, "default", 5]),
        json!(42),
        json!("test.noop"),
        json!(null),
    ] {
        api.post("/api/v1/tasks/submit", Some(ADMIN), body)
            .await
            .error(400, "invalid_body", Some("body"));
    }
    let queues = api.get("/api/v1/tasks/inspect/queues", Some(ADMIN)).await;
    assert!(
        queues.expect(200)["queues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["ready"] == 0 && q["reserved"] == 0),
        "{queues:?}"
    );
    api.shutdown().await;
}

/// A bad query parameter (`?wait=soon`, `?confirm=yes`) or a path
/// segment that is not UTF-8 was answered by axum in plain text, without
/// an error code or the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_and_path_parameters_were_answered_in_plain_text() {
    let api = start_with("embedded", false).await;
    api.post(
        "/api/v1/tasks/submit?wait=soon",
        Some(ADMIN),
        json!({"task": "test.noop"}),
    )
    .await
    .error(400, "invalid_input", Some("wait"));
    api.get("/api/v1/tasks/status/x?wait=", Some(ADMIN))
        .await
        .error(400, "invalid_input", Some("wait"));
    api.delete("/api/v1/tasks/deadletters?confirm=yes", Some(ADMIN))
        .await
        .error(400, "invalid_input", Some("confirm"));
    api.delete("/api/v1/tasks/queues/default?confirm=1", Some(ADMIN))
        .await
        .error(400, "invalid_input", Some("confirm"));
    api.get("/api/v1/tasks/status/%FF", Some(ADMIN))
        .await
        .error(400, "invalid_input", Some("task_id"));
    api.delete("/api/v1/plugins/%C3%28", Some(ADMIN))
        .await
        .error(400, "invalid_input", Some("name"));
    api.shutdown().await;
}

/// A 405 carried the code `not_found`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_had_the_code_not_found() {
    let api = start_with("embedded", false).await;
    let answer = api.get("/api/v1/tasks/submit", Some(ADMIN)).await;
    answer.error(405, "method_not_allowed", None);
    assert_eq!(answer.headers["allow"], "POST");
    api.shutdown().await;
}

/// `{"memory_type": 3}` was "the body is not valid JSON": serde_json
/// reports a value an enum cannot start with as a syntax error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_for_a_type_name_was_blamed_on_the_body() {
    let api = start_with("embedded", false).await;
    let body = json!({"text": "I like tea", "user_id": "alice", "memory_type": 3});
    let answer = api
        .post("/api/v1/tasks/memory/create", Some(ADMIN), body)
        .await;
    answer.error(400, "invalid_input", Some("memory_type"));
    api.shutdown().await;
}

/// A missing query parameter (`?user_id=` of a memory) was named
/// `query`, not the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_query_parameter_was_named_query() {
    let api = start_with("embedded", false).await;
    let answer = api.get("/api/v1/memories/m-1", Some(ADMIN)).await;
    answer.error(400, "invalid_input", Some("user_id"));
    api.shutdown().await;
}

/// A missing field of a nested object (`memories[1].text`) was named
/// by the object (`memories[1]`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_nested_field_was_named_by_its_object() {
    let api = start_with("embedded", false).await;
    let body =
        json!({"memories": [{"text": "I like tea", "user_id": "alice"}, {"user_id": "alice"}]});
    let answer = api
        .post("/api/v1/tasks/memory/batch-create", Some(ADMIN), body)
        .await;
    answer.error(400, "invalid_input", Some("memories[1].text"));
    api.shutdown().await;
}

/// A body that is not JSON (or not UTF-8) was answered without naming
/// the field at fault, unlike every other bad input (and the 413).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_named_no_field() {
    let api = start_with("embedded", false).await;
    for body in [&b"{"[..], b"", b"{\"task\": \"\xff\"}"] {
        let answer = api
            .send(
                Method::POST,
                "/api/v1/tasks/submit",
                Some(ADMIN),
                Body::Raw(body.to_vec(), "application/json"),
            )
            .await;
        answer.error(400, "invalid_body", Some("body"));
    }
    api.shutdown().await;
}

/// Refused before its body was read (a key without the scope, a bad
/// query), a request left the rest of its body on the connection; the
/// server closed it without saying so, and the client's next request on
/// that pooled connection failed now and then (IncompleteMessage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_broke_the_next_request_on_the_connection() {
    let api = start_with("embedded", false).await;
    let upload = vec![7u8; 100_000];
    let refused = api
        .put(
            "/api/v1/plugins/hostile",
            Some(SUBMITTER),
            upload.clone(),
            "application/wasm",
        )
        .await;
    refused.error(403, "forbidden", None);
    assert_eq!(refused.headers["connection"], "close");
    let refused = api
        .put(
            "/api/v1/plugins/hostile",
            None,
            upload.clone(),
            "application/wasm",
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), &refused.headers["connection"]),
        (401, &"close".parse().unwrap())
    );
    let padded = format!(
        "{{\"task\": \"test.noop\", \"input\": \"{}\"}}",
        "a".repeat(100_000)
    );
    let refused = api
        .send(
            Method::POST,
            "/api/v1/tasks/submit?wait=x",
            Some(ADMIN),
            Body::Raw(padded.into_bytes(), "application/json"),
        )
        .await;
    assert_eq!(
        (refused.status.as_u16(), &refused.headers["connection"]),
        (400, &"close".parse().unwrap())
    );
    // Answers that read their body keep the connection.
    let accepted = api
        .post(
            "/api/v1/tasks/submit",
            Some(ADMIN),
            json!({"task": "test.noop"}),
        )
        .await;
    assert_eq!(accepted.status, 202);
    assert!(accepted.headers.get("connection").is_none(), "{accepted:?}");
    // And the reproduction: every request after a refused upload succeeds.
    for _ in 0..300 {
        let response = api
            .http
            .put(format!("{}/api/v1/plugins/hostile", api.base))
            .header("authorization", format!("Bearer {SUBMITTER}"))
            .body(upload.clone())
            .send()
            .await
            .expect("the refused upload is answered");
        assert_eq!(response.status(), 403);
        let next = api.http.get(format!("{}/healthz", api.base)).send().await;
        assert_eq!(next.expect("the next request is answered").status(), 200);
    }
    api.shutdown().await;
}
