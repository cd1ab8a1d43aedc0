//! The task routes (submit, status, wait, cancel, inspection, queues, dead
//! letters, idempotency, rate limits), the plugin routes, health, metrics and
//! the OpenAPI document, each scenario on both brokers.

use super::*;

on_both_brokers! {
    submit_and_status_have_the_documented_shapes(api) {
        let answer = api.post("/api/v1/tasks/submit", Some(ADMIN), json!({"task": "test.echo", "input": {"x": [1, 2]}})).await;
        let submitted = answer.expect(202);
        assert_eq!(fields(submitted), ["created", "message", "status", "task_id"].into(), "{submitted}");
        assert_eq!(submitted["status"], "submitted");
        assert_eq!(submitted["created"], true);
        assert!(submitted["message"].as_str().is_some_and(|m| !m.is_empty()));
        let id = submitted["task_id"].as_str().unwrap();
        let status = api.finished(id).await;
        assert_task_status(&status);
        assert_eq!(status["task_id"], id);
        assert_eq!(status["task"], "test.echo");
        assert_eq!(status["queue"], "default");
        assert_eq!(status["status"], "SUCCESS");
        assert_eq!(status["result"], json!({"x": [1, 2]}));
        assert_eq!(status["error"], Value::Null);
        assert_eq!(status["attempt"], 1);
        assert_eq!(status["runs"], 1);
        assert_eq!(status["worker"], api.worker_name.as_str());
        assert_eq!(status["last_run"]["worker"], api.worker_name.as_str());
        assert!(status["submitted_ms"].as_u64().unwrap() <= status["updated_ms"].as_u64().unwrap());
        let record = api.broker.task(id).await.unwrap().expect("the broker has the task");
        assert_eq!((record.state.as_str(), record.result.map(|r| r.to_value())), ("SUCCESS", Some(json!({"x": [1, 2]}))));
        // The plain status read, without waiting, is the same.
        assert_eq!(api.status(id).await, status);
        // Options of a submission reach the task.
        let id = api.submit(json!({
            "task": "test.noop", "queue": "memory_ops", "priority": 9, "max_retries": 0,
            "expires": 60, "limits": {"hard_time_limit_ms": 5000, "fuel": 1_000_000_000u64},
        })).await;
        let status = api.finished(&id).await;
        assert_eq!((&status["status"], &status["queue"]), (&json!("SUCCESS"), &json!("memory_ops")), "{status}");
        // A key with only `submit` and `read` submits and reads.
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(SUBMITTER), json!({"task": "test.noop"})).await;
        assert_eq!(answer.expect(200)["status"], "SUCCESS");
    }

    wait_returns_the_finished_status(api) {
        // On submit: 200 with the finished status instead of 202.
        let started = Instant::now();
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.sleep", "input": {"ms": 300}})).await;
        let status = answer.expect(200);
        assert_task_status(status);
        assert_eq!(status["status"], "SUCCESS", "{status}");
        assert_eq!(status["result"], json!({"slept_ms": 300}));
        assert!(started.elapsed() < Duration::from_secs(10), "the wait ended with the task: {:?}", started.elapsed());
        // A wait shorter than the task answers the current, unfinished status.
        let answer = api.post("/api/v1/tasks/submit?wait=0.1", Some(ADMIN), json!({"task": "test.sleep", "input": {"ms": 1500}})).await;
        let status = answer.expect(200).clone();
        assert!(["PENDING", "RECEIVED", "STARTED"].contains(&status["status"].as_str().unwrap()), "{status}");
        // On status: the long-poll returns as soon as the task finishes.
        let id = status["task_id"].as_str().unwrap();
        let started = Instant::now();
        let answer = api.get(&format!("/api/v1/tasks/status/{id}?wait=30"), Some(ADMIN)).await;
        let status = answer.expect(200);
        assert_eq!(status["status"], "SUCCESS", "{status}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        // wait=0 does not wait.
        let answer = api.get(&format!("/api/v1/tasks/status/{id}?wait=0"), Some(ADMIN)).await;
        assert_eq!(answer.expect(200)["status"], "SUCCESS");
    }

    a_failed_task_is_200_failure_and_an_unknown_id_404(api) {
        let answer = api.post(
            "/api/v1/tasks/submit?wait=30", Some(ADMIN),
            json!({"task": "test.fail", "input": {"kind": "fatal"}, "max_retries": 0}),
        ).await;
        let status = answer.expect(200).clone();
        assert_task_status(&status);
        assert_eq!(status["status"], "FAILURE", "{status}");
        assert_eq!(status["result"], Value::Null);
        assert_eq!(status["error"]["kind"], "fatal", "{status}");
        assert_eq!(status["error"]["message"], "hostile guest failed on purpose");
        let id = status["task_id"].as_str().unwrap();
        assert_eq!(api.status(id).await["status"], "FAILURE");
        // A task that trips its own guard: bad input, also 200.
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.sleep", "input": {"ms": "long"}})).await;
        let status = answer.expect(200);
        assert_eq!((&status["status"], &status["error"]["kind"]), (&json!("FAILURE"), &json!("bad_input")), "{status}");
        // Unknown ids: 404, with and without waiting, for status and cancel.
        for path in [
            "/api/v1/tasks/status/no-such-task",
            "/api/v1/tasks/status/no-such-task?wait=0.2",
            "/api/v1/tasks/status/0c9d2a4e-1b57-4c8e-9e53-000000000000",
        ] {
            api.get(path, Some(ADMIN)).await.error(404, "not_found", None);
        }
        api.post("/api/v1/tasks/cancel/no-such-task", Some(ADMIN), json!(null)).await.error(404, "not_found", None);
    }

    every_auth_failure_is_refused(api) {
        let submit = json!({"task": "test.noop"});
        // No key, a wrong key, malformed headers: 401 on every protected route.
        for (method, path) in ROUTES {
            if matches!(*path, "/healthz" | "/readyz" | "/api/openapi.json") {
                continue;
            }
            let path = path.replace("{task_id}", "x").replace("{queue}", "default").replace("{name}", "hostile").replace("{memory_id}", "x");
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            api.send(method.clone(), &path, None, Body::None).await.error(401, "unauthorized", None);
            api.send(method.clone(), &path, Some("wrong-secret"), Body::None).await.error(401, "unauthorized", None);
        }
        for header in [
            "admin-secret".to_string(),
            format!("Basic {ADMIN}"),
            format!("Token {ADMIN}"),
            "Bearer".to_string(),
            "Bearer ".to_string(),
            format!("Bearer{ADMIN}"),
            format!("bearer{ADMIN}"),
            format!("Bearer {ADMIN}x"),
        ] {
            let response = api.http
                .post(format!("{}/api/v1/tasks/submit", api.base))
                .header("authorization", header.as_str())
                .json(&submit)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{header:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{header:?}: {body}");
        }
        // A header that is not text.
        let response = api.http
            .get(format!("{}/api/v1/plugins", api.base))
            .header("authorization", reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        // Keys without the scope: 403.
        api.post("/api/v1/tasks/submit", Some(READER), submit.clone()).await.error(403, "forbidden", None);
        api.post("/api/v1/tasks/submit", Some(DEPLOYER), submit.clone()).await.error(403, "forbidden", None);
        let id = api.submit(json!({"task": "test.noop", "countdown": 60})).await;
        api.get(&format!("/api/v1/tasks/status/{id}"), Some(READER)).await.expect(200);
        api.get(&format!("/api/v1/tasks/status/{id}"), Some(DEPLOYER)).await.error(403, "forbidden", None);
        api.post(&format!("/api/v1/tasks/cancel/{id}"), Some(READER), json!(null)).await.error(403, "forbidden", None);
        for path in ["/api/v1/tasks/inspect/stats", "/api/v1/tasks/inspect/queues", "/api/v1/tasks/inspect/active",
                     "/api/v1/tasks/inspect/scheduled", "/api/v1/tasks/deadletters", "/api/v1/plugins"] {
            api.get(path, Some(READER)).await.expect(200);
            api.get(path, Some(DEPLOYER)).await.error(403, "forbidden", None);
        }
        api.delete("/api/v1/tasks/queues/default?confirm=true", Some(SUBMITTER)).await.error(403, "forbidden", None);
        api.delete("/api/v1/tasks/deadletters?confirm=true", Some(SUBMITTER)).await.error(403, "forbidden", None);
        api.post(&format!("/api/v1/tasks/deadletters/{id}/replay"), Some(SUBMITTER), json!(null)).await.error(403, "forbidden", None);
        api.put("/api/v1/plugins/hostile", Some(SUBMITTER), guest("hostile_guest"), "application/wasm").await.error(403, "forbidden", None);
        api.put("/api/v1/plugins/hostile/manifest", Some(SUBMITTER), b"queue = \"default\"".to_vec(), "application/toml")
            .await.error(403, "forbidden", None);
        api.delete("/api/v1/plugins/hostile", Some(SUBMITTER)).await.error(403, "forbidden", None);
        api.delete("/api/v1/plugins/hostile", Some(READER)).await.error(403, "forbidden", None);
        assert!(api.registry.resolve("test.noop").is_some(), "nothing was deleted");
        // A key bound to alice: acts for alice, not for bob.
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ALICE), json!({"task": "test.echo", "input": {"user_id": "alice"}})).await;
        assert_eq!(answer.expect(200)["status"], "SUCCESS");
        let mine = answer.body["task_id"].as_str().unwrap().to_string();
        api.post("/api/v1/tasks/submit", Some(ALICE), json!({"task": "test.echo", "input": {"user_id": "bob"}}))
            .await.error(403, "forbidden", None);
        api.post("/api/v1/tasks/submit", Some(ALICE), json!({"task": "test.echo", "input": {"user_id": 7}}))
            .await.error(400, "invalid_input", Some("input.user_id"));
        let bobs = api.submit(json!({"task": "test.echo", "input": {"user_id": "bob"}, "countdown": 60})).await;
        api.get(&format!("/api/v1/tasks/status/{bobs}"), Some(ALICE)).await.error(403, "forbidden", None);
        api.get(&format!("/api/v1/tasks/status/{bobs}?wait=0"), Some(ALICE)).await.error(403, "forbidden", None);
        api.post(&format!("/api/v1/tasks/cancel/{bobs}"), Some(ALICE), json!(null)).await.error(403, "forbidden", None);
        assert_eq!(api.status(&bobs).await["status"], "PENDING", "alice did not cancel it");
        api.get(&format!("/api/v1/tasks/status/{mine}"), Some(ALICE)).await.expect(200);
        api.get(&format!("/api/v1/tasks/status/{bobs}"), Some(ADMIN)).await.expect(200);
    }

    bad_input_names_the_field(api) {
        let long = |n: usize| "x".repeat(n);
        let cases: Vec<(&str, Value, &str)> = vec![
            // task
            ("", json!({}), "task"),
            ("", json!({"input": 1}), "task"),
            ("", json!({"task": 5}), "task"),
            ("", json!({"task": null}), "task"),
            ("", json!({"task": ["test.noop"]}), "task"),
            ("", json!({"task": ""}), "task"),
            ("", json!({"task": "   "}), "task"),
            ("", json!({"task": long(129)}), "task"),
            ("", json!({"task": "no.such-task"}), "task"),
            // input: any JSON; its user_id must be a string
            ("", json!({"task": "test.noop", "input": {"user_id": 5}}), "input.user_id"),
            ("", json!({"task": "test.noop", "input": {"user_id": null}}), "input.user_id"),
            // queue
            ("", json!({"task": "test.noop", "queue": 5}), "queue"),
            ("", json!({"task": "test.noop", "queue": "nope"}), "queue"),
            ("", json!({"task": "test.noop", "queue": ""}), "queue"),
            ("", json!({"task": "test.noop", "queue": long(10_000)}), "queue"),
            // priority
            ("", json!({"task": "test.noop", "priority": 10}), "priority"),
            ("", json!({"task": "test.noop", "priority": 255}), "priority"),
            ("", json!({"task": "test.noop", "priority": 256}), "priority"),
            ("", json!({"task": "test.noop", "priority": -1}), "priority"),
            ("", json!({"task": "test.noop", "priority": 1.5}), "priority"),
            ("", json!({"task": "test.noop", "priority": "high"}), "priority"),
            // countdown
            ("", json!({"task": "test.noop", "countdown": -1}), "countdown"),
            ("", json!({"task": "test.noop", "countdown": 1e12}), "countdown"),
            ("", json!({"task": "test.noop", "countdown": "soon"}), "countdown"),
            ("", json!({"task": "test.noop", "countdown": 1, "eta_ms": 1}), "eta_ms"),
            // eta_ms
            ("", json!({"task": "test.noop", "eta_ms": -1}), "eta_ms"),
            ("", json!({"task": "test.noop", "eta_ms": 1.5}), "eta_ms"),
            ("", json!({"task": "test.noop", "eta_ms": "tomorrow"}), "eta_ms"),
            // expires
            ("", json!({"task": "test.noop", "expires": 0}), "expires"),
            ("", json!({"task": "test.noop", "expires": -5}), "expires"),
            ("", json!({"task": "test.noop", "expires": 1e300}), "expires"),
            ("", json!({"task": "test.noop", "expires": {}}), "expires"),
            // max_retries
            ("", json!({"task": "test.noop", "max_retries": 101}), "max_retries"),
            ("", json!({"task": "test.noop", "max_retries": -1}), "max_retries"),
            ("", json!({"task": "test.noop", "max_retries": 5_000_000_000u64}), "max_retries"),
            ("", json!({"task": "test.noop", "max_retries": "3"}), "max_retries"),
            // idempotency_key
            ("", json!({"task": "test.noop", "idempotency_key": ""}), "idempotency_key"),
            ("", json!({"task": "test.noop", "idempotency_key": long(257)}), "idempotency_key"),
            ("", json!({"task": "test.noop", "idempotency_key": 5}), "idempotency_key"),
            // limits
            ("", json!({"task": "test.noop", "limits": "fast"}), "limits"),
            ("", json!({"task": "test.noop", "limits": {"fuel": -1}}), "limits.fuel"),
            ("", json!({"task": "test.noop", "limits": {"memory_bytes": "1 GiB"}}), "limits.memory_bytes"),
            ("", json!({"task": "test.noop", "limits": {"hard_time_limit_ms": 1.5}}), "limits.hard_time_limit_ms"),
            ("", json!({"task": "test.noop", "limits": {"soft_time_limit_ms": -3}}), "limits.soft_time_limit_ms"),
            ("", json!({"task": "test.noop", "limits": {"output_bytes": true}}), "limits.output_bytes"),
            ("", json!({"task": "test.noop", "limits": {"stack": 1}}), "limits.stack"),
            // unknown fields
            ("", json!({"task": "test.noop", "bogus": 1}), "bogus"),
            ("", json!({"task": "test.noop", "user_id": "alice"}), "user_id"),
            // wait
            ("?wait=61", json!({"task": "test.noop"}), "wait"),
            ("?wait=-1", json!({"task": "test.noop"}), "wait"),
            ("?wait=NaN", json!({"task": "test.noop"}), "wait"),
            ("?wait=inf", json!({"task": "test.noop"}), "wait"),
            ("?wait=soon", json!({"task": "test.noop"}), "wait"),
            ("?wait=", json!({"task": "test.noop"}), "wait"),
            ("?wait=1e400", json!({"task": "test.noop"}), "wait"),
        ];
        for (query, body, field) in &cases {
            let answer = api.post(&format!("/api/v1/tasks/submit{query}"), Some(ADMIN), body.clone()).await;
            assert!(answer.status.is_client_error(), "{query} {body}: {answer:?}");
            assert_eq!(answer.body["error"]["field"], *field, "{query} {body}: {answer:?}");
            answer.error(400, "invalid_input", Some(field));
        }
        // Bodies that are not JSON at all, or not UTF-8: the body is at fault.
        for (bytes, content_type) in [
            (b"{\"task\": \"test.noop\"".to_vec(), "application/json"),
            (b"{\"task\": \"test.noop\"} trailing".to_vec(), "application/json"),
            (b"task=test.noop".to_vec(), "application/x-www-form-urlencoded"),
            (b"".to_vec(), "application/json"),
            (b"{\"task\": \"test.\xff\xfe\"}".to_vec(), "application/json"),
            (b"\xef\xbb\xbf{\"task\": \"test.noop\"}".to_vec(), "application/json"),
            ([b"[".repeat(10_000), b"]".repeat(10_000)].concat(), "application/json"),
            ([b"{\"task\": \"test.echo\", \"input\": ".to_vec(), b"[".repeat(10_000), b"]".repeat(10_000), b"}".to_vec()].concat(), "application/json"),
            // Not an object: a struct's fields are not taken as an array.
            (b"[\"test.noop\"]".to_vec(), "application/json"),
            (b"[]".to_vec(), "application/json"),
            (b"\"test.noop\"".to_vec(), "application/json"),
            (b"null".to_vec(), "application/json"),
            (b"42".to_vec(), "application/json"),
        ] {
            let answer = api.send(Method::POST, "/api/v1/tasks/submit", Some(ADMIN), Body::Raw(bytes.clone(), content_type)).await;
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
            assert_eq!(answer.status, 400, "{shown:?}: {answer:?}");
            assert_eq!(answer.body["error"]["field"], "body", "{shown:?}: {answer:?}");
            assert_eq!(answer.body["error"]["code"], "invalid_body", "{shown:?}: {answer:?}");
        }
        // A number beyond f64 is valid JSON: the field is at fault.
        let huge = b"{\"task\": \"test.noop\", \"countdown\": 1e400}".to_vec();
        let answer = api.send(Method::POST, "/api/v1/tasks/submit", Some(ADMIN), Body::Raw(huge, "application/json")).await;
        answer.error(400, "invalid_input", Some("countdown"));
        // Deep nesting of a field's value: that field.
        let deep = [b"{\"task\": ".to_vec(), b"[".repeat(100), b"]".repeat(100), b"}".to_vec()].concat();
        let answer = api.send(Method::POST, "/api/v1/tasks/submit", Some(ADMIN), Body::Raw(deep, "application/json")).await;
        answer.error(400, "invalid_input", Some("task"));
        // Oversized: 413, naming the body; just under the limit is fine.
        let limit = hippo::api::MAX_JSON_BYTES;
        let padded = |size: usize| {
            let mut body = br#"{"task": "test.noop", "input": ""#.to_vec();
            body.resize(size - 2, b'a');
            body.extend_from_slice(br#""}"#);
            body
        };
        let answer = api.send(Method::POST, "/api/v1/tasks/submit", Some(ADMIN), Body::Raw(padded(limit + 1), "application/json")).await;
        answer.error(413, "payload_too_large", Some("body"));
        let answer = api.send(Method::POST, "/api/v1/tasks/submit", Some(ADMIN), Body::Raw(padded(8 * limit), "application/json")).await;
        answer.error(413, "payload_too_large", Some("body"));
        let answer = api.send(Method::POST, "/api/v1/tasks/submit", Some(ADMIN), Body::Raw(padded(limit), "application/json")).await;
        answer.expect(202);
        // Query strings of the other routes.
        let id = api.submit(json!({"task": "test.noop"})).await;
        for query in ["?wait=61", "?wait=-0.5", "?wait=x", "?wait=nan"] {
            api.get(&format!("/api/v1/tasks/status/{id}{query}"), Some(ADMIN)).await.error(400, "invalid_input", Some("wait"));
        }
        for query in ["", "?confirm=false", "?confirm=yes", "?confirm=1", "?confirm="] {
            api.delete(&format!("/api/v1/tasks/queues/default{query}"), Some(ADMIN)).await.error(400, "invalid_input", Some("confirm"));
            api.delete(&format!("/api/v1/tasks/deadletters{query}"), Some(ADMIN)).await.error(400, "invalid_input", Some("confirm"));
        }
        // Path segments that are not UTF-8 once decoded.
        api.get("/api/v1/tasks/status/%FF%FE", Some(ADMIN)).await.error(400, "invalid_input", Some("task_id"));
        api.post("/api/v1/tasks/cancel/%C3%28", Some(ADMIN), json!(null)).await.error(400, "invalid_input", Some("task_id"));
        api.delete("/api/v1/tasks/queues/%FF?confirm=true", Some(ADMIN)).await.error(400, "invalid_input", Some("queue"));
        api.delete("/api/v1/plugins/%FF", Some(ADMIN)).await.error(400, "invalid_input", Some("name"));
        // Nothing above was accepted, but for the two valid submissions.
        let queues = api.get("/api/v1/tasks/inspect/queues", Some(ADMIN)).await;
        let waiting: u64 = queues.expect(200)["queues"].as_array().unwrap().iter()
            .map(|q| q["ready"].as_u64().unwrap() + q["scheduled"].as_u64().unwrap()).sum();
        assert!(waiting <= 2, "{queues:?}");
    }

    cancel_queued_and_running_tasks(api) {
        // Queued (a countdown): it never runs.
        let id = api.submit(json!({"task": "test.noop", "countdown": 30})).await;
        let answer = api.post(&format!("/api/v1/tasks/cancel/{id}"), Some(SUBMITTER), json!(null)).await;
        assert_eq!(answer.expect(200), &json!({"task_id": id, "outcome": "queued"}));
        let status = api.status(&id).await;
        assert_eq!(status["status"], "REVOKED", "{status}");
        assert_eq!(status["runs"], 0);
        // Again: already finished.
        let answer = api.post(&format!("/api/v1/tasks/cancel/{id}"), Some(ADMIN), json!(null)).await;
        assert_eq!(answer.expect(200)["outcome"], "already_finished");
        // Running: interrupted within a second.
        let id = api.submit(json!({"task": "test.spin"})).await;
        api.until_status(&id, "STARTED", Duration::from_secs(10)).await;
        let cancelled = Instant::now();
        let answer = api.post(&format!("/api/v1/tasks/cancel/{id}"), Some(ADMIN), json!(null)).await;
        assert_eq!(answer.expect(200), &json!({"task_id": id, "outcome": "running"}));
        let status = api.until_status(&id, "REVOKED", Duration::from_secs(1)).await;
        assert!(cancelled.elapsed() < Duration::from_secs(1), "{:?}", cancelled.elapsed());
        assert_eq!(status["runs"], 1, "{status}");
        // A finished task.
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.noop"})).await;
        let id = answer.expect(200)["task_id"].as_str().unwrap().to_string();
        let answer = api.post(&format!("/api/v1/tasks/cancel/{id}"), Some(ADMIN), json!(null)).await;
        assert_eq!(answer.expect(200)["outcome"], "already_finished");
        assert_eq!(api.status(&id).await["status"], "SUCCESS");
    }

    idempotency_keys_return_the_earlier_task(api) {
        let body = json!({"task": "test.echo", "input": {"n": 1}, "idempotency_key": "order-42"});
        let first = api.post("/api/v1/tasks/submit", Some(ADMIN), body.clone()).await.expect(202).clone();
        assert_eq!(first["created"], true);
        let second = api.post("/api/v1/tasks/submit", Some(SUBMITTER), body).await.expect(202).clone();
        assert_eq!(second["task_id"], first["task_id"]);
        assert_eq!(second["created"], false);
        assert_eq!(second["status"], "submitted");
        assert_ne!(second["message"], first["message"]);
        // With another input, the key still wins; another key is another task.
        let third = api.post("/api/v1/tasks/submit", Some(ADMIN), json!({"task": "test.echo", "input": {"n": 2}, "idempotency_key": "order-42"})).await;
        assert_eq!(third.expect(202)["task_id"], first["task_id"]);
        let other = api.post("/api/v1/tasks/submit", Some(ADMIN), json!({"task": "test.echo", "idempotency_key": "order-43"})).await;
        assert_ne!(other.expect(202)["task_id"], first["task_id"]);
        assert_eq!(other.body["created"], true);
        // With ?wait=, the earlier task's status.
        let id = first["task_id"].as_str().unwrap();
        let waited = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.echo", "idempotency_key": "order-42"})).await;
        let status = waited.expect(200);
        assert_eq!((&status["task_id"], &status["status"], &status["result"]), (&json!(id), &json!("SUCCESS"), &json!({"n": 1})));
        // The longest key is fine.
        let key = "k".repeat(256);
        api.post("/api/v1/tasks/submit", Some(ADMIN), json!({"task": "test.noop", "idempotency_key": key})).await.expect(202);
    }

    inspect_routes_have_their_shapes(api) {
        // stats: the worker's heartbeat.
        let deadline = Instant::now() + Duration::from_secs(10);
        let stats = loop {
            let stats = api.get("/api/v1/tasks/inspect/stats", Some(READER)).await.expect(200).clone();
            if stats["workers"].as_array().unwrap().iter().any(|w| w["name"] == api.worker_name.as_str()) {
                break stats;
            }
            assert!(Instant::now() < deadline, "the worker never showed: {stats}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(fields(&stats), ["count", "workers"].into());
        assert_eq!(stats["count"].as_u64().unwrap() as usize, stats["workers"].as_array().unwrap().len());
        let worker = stats["workers"].as_array().unwrap().iter().find(|w| w["name"] == api.worker_name.as_str()).unwrap();
        for field in ["hostname", "pid", "queues", "concurrency", "active", "processed", "failed", "succeeded", "cpu_seconds", "rss_bytes"] {
            assert!(worker.get(field).is_some(), "{field} missing from {worker}");
        }
        assert_eq!(worker["queues"], json!(["memory_ops", "default", "scheduled"]));
        assert_eq!(worker["concurrency"], 2);
        // queues: every configured queue, in order, with counts.
        let scheduled = api.submit(json!({"task": "test.noop", "countdown": 60})).await;
        let waiting = api.submit(json!({"task": "test.noop", "queue": "background"})).await;
        let queues = api.get("/api/v1/tasks/inspect/queues", Some(READER)).await.expect(200).clone();
        assert_eq!(fields(&queues), ["queues"].into());
        let queues = queues["queues"].as_array().unwrap();
        let names: Vec<&str> = queues.iter().map(|q| q["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["memory_ops", "default", "scheduled", "background"]);
        for queue in queues {
            assert_eq!(fields(queue), ["name", "ready", "ready_by_band", "reserved", "scheduled"].into(), "{queue}");
        }
        assert_eq!(queues[3]["ready"], 1, "{queues:?}");
        assert_eq!(queues[3]["ready_by_band"], json!({"high": 0, "normal": 1, "low": 0}), "{queues:?}");
        assert_eq!(queues[1]["scheduled"], 1, "{queues:?}");
        // scheduled: the countdown task.
        let listed = api.get("/api/v1/tasks/inspect/scheduled", Some(READER)).await.expect(200).clone();
        assert_eq!(fields(&listed), ["scheduled"].into());
        let listed = listed["scheduled"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_task_status(&listed[0]);
        assert_eq!((&listed[0]["task_id"], &listed[0]["status"]), (&json!(scheduled), &json!("PENDING")));
        // active: a running task, under its worker.
        let empty = api.get("/api/v1/tasks/inspect/active", Some(READER)).await.expect(200).clone();
        assert_eq!(empty, json!({"active": {}, "reserved": {}}));
        let spinning = api.submit(json!({"task": "test.spin"})).await;
        api.until_status(&spinning, "STARTED", Duration::from_secs(10)).await;
        let active = api.get("/api/v1/tasks/inspect/active", Some(READER)).await.expect(200).clone();
        assert_eq!(fields(&active), ["active", "reserved"].into());
        let held: Vec<&Value> = active["active"].as_object().unwrap().values().flat_map(|v| v.as_array().unwrap()).collect();
        assert_eq!(held.len(), 1, "{active}");
        assert_task_status(held[0]);
        assert_eq!((&held[0]["task_id"], &held[0]["status"]), (&json!(spinning), &json!("STARTED")));
        assert!(active["active"].as_object().unwrap().keys().all(|k| k.contains(&api.worker_name)), "{active}");
        for id in [&spinning, &scheduled, &waiting] {
            api.post(&format!("/api/v1/tasks/cancel/{id}"), Some(ADMIN), json!(null)).await.expect(200);
        }
        api.until_status(&spinning, "REVOKED", Duration::from_secs(5)).await;
        let listed = api.get("/api/v1/tasks/inspect/scheduled", Some(READER)).await;
        assert_eq!(listed.expect(200), &json!({"scheduled": []}));
    }

    dead_letters_list_replay_and_purge(api) {
        let empty = api.get("/api/v1/tasks/deadletters", Some(READER)).await;
        assert_eq!(empty.expect(200), &json!({"dead_letters": []}));
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.fail", "input": {"kind": "fatal"}})).await;
        let failed = answer.expect(200)["task_id"].as_str().unwrap().to_string();
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN),
            json!({"task": "test.fail", "input": {"kind": "retry"}, "max_retries": 1})).await;
        let retried = answer.expect(200).clone();
        assert_eq!((&retried["status"], &retried["attempt"], &retried["runs"]), (&json!("FAILURE"), &json!(2), &json!(2)), "{retried}");
        let retried = retried["task_id"].as_str().unwrap().to_string();
        let listed = api.get("/api/v1/tasks/deadletters", Some(READER)).await.expect(200).clone();
        assert_eq!(fields(&listed), ["dead_letters"].into());
        let listed = listed["dead_letters"].as_array().unwrap();
        let ids: Vec<&str> = listed.iter().map(|d| d["task_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [retried.as_str(), failed.as_str()], "newest first");
        for dead in listed {
            assert_task_status(dead);
            assert_eq!(dead["status"], "FAILURE");
        }
        // Replay: a new task, as a first attempt.
        let answer = api.post(&format!("/api/v1/tasks/deadletters/{failed}/replay"), Some(ADMIN), json!(null)).await;
        let replay = answer.expect(202).clone();
        assert_eq!(fields(&replay), ["created", "message", "status", "task_id"].into());
        assert_eq!((&replay["status"], &replay["created"]), (&json!("submitted"), &json!(true)));
        let new_id = replay["task_id"].as_str().unwrap();
        assert_ne!(new_id, failed);
        let status = api.finished(new_id).await;
        assert_eq!((&status["status"], &status["attempt"], &status["task"]), (&json!("FAILURE"), &json!(1), &json!("test.fail")));
        // No longer a dead letter (its replay is); unknown ids are 404.
        api.post(&format!("/api/v1/tasks/deadletters/{failed}/replay"), Some(ADMIN), json!(null)).await.error(404, "not_found", None);
        api.post("/api/v1/tasks/deadletters/nope/replay", Some(ADMIN), json!(null)).await.error(404, "not_found", None);
        let finished = api.submit(json!({"task": "test.noop"})).await;
        api.finished(&finished).await;
        api.post(&format!("/api/v1/tasks/deadletters/{finished}/replay"), Some(ADMIN), json!(null)).await.error(404, "not_found", None);
        // Purge: confirmation required.
        api.delete("/api/v1/tasks/deadletters", Some(ADMIN)).await.error(400, "invalid_input", Some("confirm"));
        assert_eq!(api.get("/api/v1/tasks/deadletters", Some(READER)).await.expect(200)["dead_letters"].as_array().unwrap().len(), 2);
        let purged = api.delete("/api/v1/tasks/deadletters?confirm=true", Some(ADMIN)).await;
        assert_eq!(purged.expect(200), &json!({"purged": 2}));
        assert_eq!(api.get("/api/v1/tasks/deadletters", Some(READER)).await.expect(200), &json!({"dead_letters": []}));
        api.post(&format!("/api/v1/tasks/deadletters/{retried}/replay"), Some(ADMIN), json!(null)).await.error(404, "not_found", None);
        // The failed tasks' records stay readable.
        assert_eq!(api.status(&retried).await["status"], "FAILURE");
    }

    queue_purge_needs_admin_and_confirmation(api) {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(api.submit(json!({"task": "test.noop", "queue": "background"})).await);
        }
        api.delete("/api/v1/tasks/queues/background?confirm=true", Some(SUBMITTER)).await.error(403, "forbidden", None);
        api.delete("/api/v1/tasks/queues/background?confirm=true", Some(READER)).await.error(403, "forbidden", None);
        api.delete("/api/v1/tasks/queues/background", Some(ADMIN)).await.error(400, "invalid_input", Some("confirm"));
        api.delete("/api/v1/tasks/queues/background?confirm=false", Some(ADMIN)).await.error(400, "invalid_input", Some("confirm"));
        api.delete("/api/v1/tasks/queues/nope?confirm=true", Some(ADMIN)).await.error(404, "not_found", None);
        for id in &ids {
            assert_eq!(api.status(id).await["status"], "PENDING");
        }
        let purged = api.delete("/api/v1/tasks/queues/background?confirm=true", Some(ADMIN)).await;
        assert_eq!(purged.expect(200), &json!({"queue": "background", "purged": 3}));
        for id in &ids {
            assert_eq!(api.status(id).await["status"], "REVOKED");
        }
        let purged = api.delete("/api/v1/tasks/queues/background?confirm=true", Some(ADMIN)).await;
        assert_eq!(purged.expect(200), &json!({"queue": "background", "purged": 0}));
    }

    plugins_are_listed_deployed_and_removed(api) {
        let listed = api.get("/api/v1/plugins", Some(READER)).await.expect(200).clone();
        assert_eq!(fields(&listed), ["plugins", "refused"].into());
        assert_eq!(listed["refused"], json!([]));
        let plugins = listed["plugins"].as_array().unwrap();
        assert_eq!(plugins.len(), 1, "{listed}");
        let hostile = plugins[0].clone();
        for field in ["name", "version", "file", "wasm_sha256", "grants", "tasks"] {
            assert!(hostile.get(field).is_some(), "{field} missing from {hostile}");
        }
        assert_eq!((&hostile["name"], &hostile["version"]), (&json!("hostile"), &json!("1.0.0")));
        assert_eq!(hostile["grants"], json!(["log", "progress", "deadline"]));
        let echo = hostile["tasks"].as_array().unwrap().iter().find(|t| t["name"] == "test.echo").expect("test.echo listed");
        assert_eq!(echo["queue"], "default");
        assert!(echo["description"].is_string() && echo.get("limits").is_some(), "{echo}");
        // A garbage upload is refused and the plugin in service keeps serving.
        for garbage in [b"not a component".to_vec(), b"\0asm\x0d\0\x01\0garbage".to_vec(), Vec::new(), guest("hostile_guest")[..1000].to_vec()] {
            let answer = api.put("/api/v1/plugins/hostile", Some(DEPLOYER), garbage, "application/wasm").await;
            answer.error(400, "invalid_input", Some("body"));
        }
        // A component that imports what the host does not offer, too.
        api.put("/api/v1/plugins/hostile", Some(DEPLOYER), guest("unknown_import_guest"), "application/wasm")
            .await.error(400, "invalid_input", Some("body"));
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.echo", "input": "still here"})).await;
        assert_eq!((&answer.expect(200)["status"], &answer.body["result"]), (&json!("SUCCESS"), &json!("still here")));
        let listed = api.get("/api/v1/plugins", Some(READER)).await.expect(200).clone();
        assert_eq!(listed["plugins"], json!([hostile]), "the plugin in service is unchanged");
        assert_eq!(listed["refused"], json!([]));
        let mut files: Vec<_> = std::fs::read_dir(api.registry.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        files.sort();
        assert_eq!(files, [".hippo-names.json", "hostile.wasm"], "no stray file is left behind (beside the names' ledger)");
        // Names are checked.
        for name in ["Hostile", "..x", ".hidden", "a%2Fb", "a%20b", &"x".repeat(65)] {
            api.put(&format!("/api/v1/plugins/{name}"), Some(DEPLOYER), guest("versioned_v1"), "application/wasm")
                .await.error(400, "invalid_input", Some("name"));
        }
        // Deploy version 1, then 2, under one name.
        let answer = api.put("/api/v1/plugins/versioned", Some(DEPLOYER), guest("versioned_v1"), "application/wasm").await;
        let deployed = answer.expect(200).clone();
        assert_eq!(fields(&deployed), ["deployed"].into());
        assert_eq!((&deployed["deployed"]["name"], &deployed["deployed"]["version"]), (&json!("versioned"), &json!("1.0.0")));
        let run = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.version", "input": {}})).await;
        assert_eq!(run.expect(200)["result"], json!({"version": "1.0.0"}));
        let answer = api.put("/api/v1/plugins/versioned", Some(DEPLOYER), guest("versioned_v2"), "application/wasm").await;
        assert_eq!(answer.expect(200)["deployed"]["version"], "2.0.0");
        assert_ne!(answer.body["deployed"]["wasm_sha256"], deployed["deployed"]["wasm_sha256"]);
        let run = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.version", "input": {}})).await;
        assert_eq!(run.expect(200)["result"], json!({"version": "2.0.0"}));
        // A garbage upload over it leaves version 2 serving.
        api.put("/api/v1/plugins/versioned", Some(DEPLOYER), b"garbage".to_vec(), "application/wasm")
            .await.error(400, "invalid_input", Some("body"));
        let run = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.version", "input": {}})).await;
        assert_eq!(run.expect(200)["result"], json!({"version": "2.0.0"}));
        // Manifests: invalid ones are refused, a valid one applies.
        for manifest in [
            "grants = [\"network\"]",
            "grants = \"log\"",
            "bogus = 1",
            "[limits]\nfuel = -1",
            "queue = ",
            "\u{0}\u{1}",
            "",
            " \n",
        ] {
            api.put("/api/v1/plugins/versioned/manifest", Some(DEPLOYER), manifest.as_bytes().to_vec(), "application/toml")
                .await.error(400, "invalid_input", Some("body"));
        }
        api.put("/api/v1/plugins/versioned/manifest", Some(DEPLOYER), b"queue = \"\xff\"".to_vec(), "application/toml")
            .await.error(400, "invalid_input", Some("body"));
        let answer = api.put("/api/v1/plugins/versioned/manifest", Some(DEPLOYER), b"queue = \"memory_ops\"".to_vec(), "application/toml").await;
        let applied = answer.expect(200);
        assert_eq!(applied["manifest"], "versioned");
        assert_eq!(applied["plugin"]["tasks"][0]["queue"], "memory_ops", "{applied}");
        let run = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.version", "input": {}})).await;
        assert_eq!((&run.expect(200)["queue"], &run.body["result"]), (&json!("memory_ops"), &json!({"version": "2.0.0"})));
        let listed = api.get("/api/v1/plugins", Some(READER)).await.expect(200).clone();
        let names: BTreeSet<&str> = listed["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["hostile", "versioned"].into());
        // Delete: its tasks are refused at submit, and it is gone.
        let answer = api.delete("/api/v1/plugins/versioned", Some(DEPLOYER)).await;
        assert_eq!(answer.expect(200), &json!({"removed": "versioned"}));
        api.post("/api/v1/tasks/submit", Some(ADMIN), json!({"task": "test.version", "input": {}})).await.error(400, "invalid_input", Some("task"));
        api.delete("/api/v1/plugins/versioned", Some(DEPLOYER)).await.error(404, "not_found", None);
        api.delete("/api/v1/plugins/never-deployed", Some(DEPLOYER)).await.error(404, "not_found", None);
        // A manifest needs its plugin: none is written for one that is not there.
        api.put("/api/v1/plugins/never-deployed/manifest", Some(DEPLOYER), b"queue = \"default\"".to_vec(), "application/toml")
            .await.error(404, "not_found", None);
        let listed = api.get("/api/v1/plugins", Some(READER)).await.expect(200).clone();
        assert_eq!(listed["plugins"], json!([hostile]));
        let mut files: Vec<_> = std::fs::read_dir(api.registry.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        files.sort();
        assert_eq!(files, [".hippo-names.json", "hostile.wasm"], "the manifest went with it");
    }

    health_routes_answer_without_a_key(api) {
        let health = api.get("/healthz", None).await;
        assert_eq!(health.expect(200), &json!({"status": "ok", "checks": {}}));
        let ready = api.get("/readyz", None).await.expect(200).clone();
        assert_eq!(fields(&ready), ["checks", "status"].into());
        assert_eq!(ready["status"], "ok");
        assert_eq!(ready["checks"]["broker"]["status"], "ok", "{ready}");
        assert!(ready["checks"]["broker"]["latency_ms"].is_number());
        assert_eq!(ready["checks"]["plugins"], json!({"status": "ok", "loaded": 1}));
        // A key does not hurt, even a wrong one.
        api.get("/healthz", Some("wrong-secret")).await.expect(200);
        api.get("/readyz", Some(ADMIN)).await.expect(200);
    }

    metrics_are_prometheus_text_of_the_queues_and_workers(api) {
        for _ in 0..3 {
            let id = api.submit(json!({"task": "test.noop"})).await;
            api.finished(&id).await;
        }
        api.submit(json!({"task": "test.noop", "queue": "background"})).await;
        let failed = api.submit(json!({"task": "test.fail", "input": {"kind": "fatal"}, "max_retries": 0})).await;
        api.finished(&failed).await;
        // Heartbeats carry the counts: wait for one that has all three.
        let deadline = Instant::now() + Duration::from_secs(10);
        let worker = api.worker_name.as_str();
        let succeeded = format!("hippo_worker_tasks_total{{worker=\"{worker}\",outcome=\"succeeded\"}}");
        let text = loop {
            let response = api.http.get(format!("{}/metrics", api.base)).bearer_auth(READER).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
            let text = response.text().await.unwrap();
            let failure = format!("hippo_task_outcomes_total{{worker=\"{worker}\",task=\"test.fail\",outcome=\"failed\"}} 1");
            if text.lines().any(|l| l.strip_prefix(&succeeded).is_some_and(|v| v.trim().parse::<f64>().unwrap() >= 3.0))
                && text.lines().any(|l| l == failure) {
                break text;
            }
            assert!(Instant::now() < deadline, "no heartbeat with 3 successes:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The exposition format: every sample is `name{labels} value` of a
        // family announced by # HELP and # TYPE.
        let mut typed = BTreeSet::new();
        let mut samples = std::collections::BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
                typed.insert(name.to_string());
            } else if !line.starts_with("# HELP ") {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
                let name = series.split('{').next().unwrap();
                let family = ["_bucket", "_sum", "_count"].iter()
                    .find_map(|suffix| name.strip_suffix(suffix).filter(|f| typed.contains(*f))).unwrap_or(name);
                assert!(typed.contains(family), "{line}: no # TYPE before it");
                samples.insert(series.to_string(), value);
            }
        }
        assert_eq!(samples["hippo_queue_tasks{queue=\"background\",state=\"ready\"}"], 1.0, "{text}");
        assert_eq!(samples["hippo_queue_tasks{queue=\"default\",state=\"ready\"}"], 0.0, "{text}");
        assert_eq!(samples["hippo_workers"], 1.0);
        assert_eq!(samples[&format!("hippo_worker_concurrency{{worker=\"{worker}\"}}")], 2.0);
        assert!(samples[&format!("hippo_worker_processed_total{{worker=\"{worker}\"}}")] >= 3.0);
        assert!(samples[&format!("hippo_worker_resident_memory_bytes{{worker=\"{worker}\"}}")] > 1e6);
        assert_eq!(samples["hippo_plugins_loaded"], 1.0);
        // Per task name: outcomes, and histograms whose counts match them.
        let noop = |series: &str, extra: &str| samples[&format!("{series}{{worker=\"{worker}\",task=\"test.noop\"{extra}}}")];
        assert_eq!(noop("hippo_task_outcomes_total", ",outcome=\"succeeded\""), 3.0, "{text}");
        assert_eq!(noop("hippo_task_outcomes_total", ",outcome=\"failed\""), 0.0);
        for histogram in ["hippo_task_runtime_seconds", "hippo_task_peak_memory_bytes"] {
            assert_eq!(noop(&format!("{histogram}_count"), ""), 3.0, "{histogram}");
            assert_eq!(noop(&format!("{histogram}_bucket"), ",le=\"+Inf\""), 3.0, "{histogram}");
            assert!(noop(&format!("{histogram}_sum"), "") > 0.0, "{histogram}");
        }
        // Buckets are cumulative: never fewer at a higher bound.
        let prefix = format!("hippo_task_runtime_seconds_bucket{{worker=\"{worker}\",task=\"test.noop\",le=\"");
        let mut buckets: Vec<(f64, f64)> = samples.iter()
            .filter_map(|(series, value)| {
                let le = series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                Some((if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, *value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(buckets.len() > 2 && buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        assert_eq!(samples["hippo_dead_letters"], 1.0, "the fatal failure");
        // A key is needed, and `read` is enough.
        let response = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap();
        assert_eq!(response.status(), 401);
        let response = api.http.get(format!("{}/metrics", api.base)).bearer_auth(DEPLOYER).send().await.unwrap();
        assert_eq!(response.status(), 403);
    }

    openapi_lists_every_route_the_router_serves(api) {
        let document = api.get("/api/openapi.json", None).await.expect(200).clone();
        assert_eq!(serde_json::to_value(hippo::api::openapi()).unwrap(), document, "the served document is the generated one");
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = BTreeSet::new();
        let mut operation_ids = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                documented.insert((method.to_uppercase(), path.clone()));
                // Path parameters are the path's `{...}` segments; the others are in the
                // query, but the one header a route reads (an event stream's resume point).
                let in_path: BTreeSet<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
                let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
                let documented_in_path: BTreeSet<&str> = parameters.iter()
                    .filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect();
                assert_eq!(documented_in_path, in_path, "{method} {path}: path parameters");
                for parameter in &parameters {
                    let name = parameter["name"].as_str().unwrap();
                    let location = if in_path.contains(name) { "path" } else if name == "Last-Event-ID" { "header" } else { "query" };
                    assert_eq!(parameter["in"], location, "{method} {path}: {parameter}");
                    // Path parameters are required; a query parameter may be (`user_id` of a memory).
                    if location == "path" {
                        assert_eq!(parameter["required"], true, "{method} {path}: {parameter}");
                    }
                }
                let public = matches!(path.as_str(), "/healthz" | "/readyz");
                assert_eq!(operation.get("security").is_none(), public, "{method} {path}: security");
                assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
                // What the key check answers before any handler is documented everywhere it runs.
                for status in ["401", "403", "429"] {
                    let documented = operation["responses"].get(status).is_some();
                    assert_eq!(documented, !public, "{method} {path}: {status}");
                }
                // A route naming something by id refuses a bad id and an unknown one.
                if !in_path.is_empty() {
                    for status in ["400", "404"] {
                        assert!(operation["responses"].get(status).is_some(), "{method} {path}: {status}");
                    }
                }
                // Operation ids are unique (OpenAPI requires it; generated clients name methods by them).
                let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: operationId")).to_owned();
                assert!(operation_ids.insert(id.clone()), "{method} {path}: operationId {id} twice");
            }
        }
        documented.insert(("GET".into(), "/api/openapi.json".into()));
        let routes: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(documented, routes, "the document lists exactly the routes served");
        assert!(document["components"]["securitySchemes"]["bearer"].is_object());
        for schema in ["SubmitRequest", "SubmitResponse", "TaskStatus", "CancelResponse", "ErrorBody"] {
            assert!(document["components"]["schemas"][schema].is_object(), "{schema} missing");
        }
        // The limits the server enforces are in the schemas, so generated
        // clients refuse what the server would.
        let schemas = &document["components"]["schemas"];
        let property = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
        for (schema, field, key, value) in [
            ("NewMemory", "importance", "maximum", json!(10)), ("NewMemory", "confidence", "maximum", json!(1)),
            ("NewMemory", "text", "minLength", json!(1)), ("NewMemory", "user_id", "maxLength", json!(128)),
            ("Recall", "k", "minimum", json!(1)), ("Recall", "k", "maximum", json!(100)),
            ("Query", "limit", "maximum", json!(1000)), ("BatchCreate", "memories", "maxItems", json!(1000)),
            ("SubmitRequest", "priority", "maximum", json!(9)), ("SubmitRequest", "max_retries", "maximum", json!(100)),
            ("SubmitRequest", "task", "maxLength", json!(128)), ("Delete", "memory_id", "format", json!("uuid")),
        ] {
            assert_eq!(property(schema, field)[key], value, "{schema}.{field}.{key}: {}", property(schema, field));
        }
        let upload = &document["paths"]["/api/v1/plugins/{name}"]["put"];
        let body = &upload["requestBody"]["content"]["application/wasm"]["schema"];
        let body = body.get("$ref").and_then(|r| r.as_str()).map_or(body.clone(), |r| schemas[r.rsplit('/').next().unwrap()].clone());
        assert_eq!((&body["type"], &body["format"]), (&json!("string"), &json!("binary")), "{body}");
        let name = upload["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "name").unwrap();
        assert!(name["schema"]["pattern"].is_string(), "{name}");
        let wait = document["paths"]["/api/v1/tasks/submit"]["post"]["parameters"].as_array().unwrap().iter()
            .find(|p| p["name"] == "wait").unwrap().clone();
        assert_eq!(wait["schema"]["maximum"], json!(60), "{wait}");
        // Every documented route is served (it is not the fallback, nor a 405) ...
        let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
        for (method, path) in ROUTES {
            let concrete = path.replace("{task_id}", "probe").replace("{queue}", "probe").replace("{name}", "probe").replace("{memory_id}", "probe");
            let body = if path.ends_with("/manifest") { Body::Raw(b"= invalid".to_vec(), "application/toml") } else { Body::None };
            let answer = api.send(Method::from_bytes(method.as_bytes()).unwrap(), &concrete, Some(ADMIN), body).await;
            assert_ne!(answer.status, 405, "{method} {path}: {answer:?}");
            assert_ne!(answer.body["error"]["message"], "no such route", "{method} {path}: {answer:?}");
            assert!(!answer.status.is_server_error(), "{method} {path}: {answer:?}");
        }
        // ... and every other method on those paths is a JSON 405.
        for path in paths {
            let concrete = path.replace("{task_id}", "probe").replace("{queue}", "probe").replace("{name}", "probe").replace("{memory_id}", "probe");
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
                if ROUTES.contains(&(method, path)) {
                    continue;
                }
                let answer = api.send(Method::from_bytes(method.as_bytes()).unwrap(), &concrete, Some(ADMIN), Body::None).await;
                answer.error(405, "method_not_allowed", None);
            }
        }
    }

    unknown_routes_and_methods_are_json(api) {
        for path in ["/", "/api", "/api/v1", "/api/v1/nope", "/api/v1/task", "/api/v1/tasks/status", "/api/v1/tasks/status/",
                     "/api/v1/tasks/status/a/b", "/api/v2/tasks/submit", "/API/V1/PLUGINS", "/healthz/extra", "/%FF"] {
            api.get(path, Some(ADMIN)).await.error(404, "not_found", None);
            api.get(path, None).await.error(404, "not_found", None);
            api.send(Method::POST, path, None, Body::Json(json!({}))).await.error(404, "not_found", None);
        }
        // A wrong method: 405, with or without a key, with no side effect.
        for (method, path) in [("GET", "/api/v1/tasks/submit"), ("DELETE", "/api/v1/tasks/submit"), ("POST", "/healthz"),
                               ("PUT", "/api/v1/tasks/status/x"), ("GET", "/api/v1/tasks/cancel/x"), ("POST", "/api/v1/plugins"),
                               ("GET", "/api/v1/plugins/hostile"), ("DELETE", "/api/v1/plugins/hostile/manifest")] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            api.send(method.clone(), path, Some(ADMIN), Body::None).await.error(405, "method_not_allowed", None);
            api.send(method, path, None, Body::None).await.error(405, "method_not_allowed", None);
        }
        assert!(api.registry.resolve("test.noop").is_some());
    }

    extreme_but_valid_values_are_served(api) {
        // ETAs at the end of time: accepted, listed, cancellable.
        let mut far = Vec::new();
        for eta in [u64::MAX, i64::MAX as u64, 1u64 << 53] {
            far.push(api.submit(json!({"task": "test.noop", "eta_ms": eta})).await);
        }
        let listed = api.get("/api/v1/tasks/inspect/scheduled", Some(READER)).await.expect(200).clone();
        assert_eq!(listed["scheduled"].as_array().unwrap().len(), 3, "{listed}");
        api.get("/api/v1/tasks/inspect/queues", Some(READER)).await.expect(200);
        for id in &far {
            assert_eq!(api.status(id).await["status"], "PENDING");
            let answer = api.post(&format!("/api/v1/tasks/cancel/{id}"), Some(ADMIN), json!(null)).await;
            assert_eq!(answer.expect(200)["outcome"], "queued");
        }
        // An ETA in the past runs now; the longest countdown is a year.
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.noop", "eta_ms": 0})).await;
        assert_eq!(answer.expect(200)["status"], "SUCCESS");
        let id = api.submit(json!({"task": "test.noop", "countdown": 365.0 * 24.0 * 3600.0, "expires": 0.001})).await;
        api.post(&format!("/api/v1/tasks/cancel/{id}"), Some(ADMIN), json!(null)).await.expect(200);
        // Limits of zero or of the largest size: the task fails or runs, the API answers 200.
        for limits in [
            json!({"fuel": 0, "memory_bytes": 0, "hard_time_limit_ms": 0, "soft_time_limit_ms": 0, "output_bytes": 0}),
            json!({"fuel": u64::MAX, "memory_bytes": u64::MAX, "hard_time_limit_ms": u64::MAX, "soft_time_limit_ms": u64::MAX, "output_bytes": u64::MAX}),
            json!({"fuel": 1}),
            json!({"output_bytes": 1}),
        ] {
            let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN),
                json!({"task": "test.echo", "input": {"some": "output"}, "limits": limits, "max_retries": 0})).await;
            let status = answer.expect(200);
            assert!(["SUCCESS", "FAILURE"].contains(&status["status"].as_str().unwrap()), "{limits}: {status}");
        }
        // A task name of the longest length is looked up (and unknown); unicode is fine in input.
        api.post("/api/v1/tasks/submit", Some(ADMIN), json!({"task": "t".repeat(128)})).await.error(400, "invalid_input", Some("task"));
        let input = json!({"text": "ünïcödé 🦛 \u{202e} \u{0}", "n": -1e308, "deep": (0..20).fold(json!(1), |v, _| json!([v]))});
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ADMIN), json!({"task": "test.echo", "input": input})).await;
        assert_eq!((&answer.expect(200)["status"], &answer.body["result"]), (&json!("SUCCESS"), &input));
        // Long ids are unknown ids.
        api.get(&format!("/api/v1/tasks/status/{}", "x".repeat(5000)), Some(ADMIN)).await.error(404, "not_found", None);
        api.post(&format!("/api/v1/tasks/cancel/{}", "%F0%9F%A6%9B".repeat(100)), Some(ADMIN), json!(null)).await.error(404, "not_found", None);
    }

    the_rate_limit_answers_429_with_retry_after(api) {
        api.get("/api/v1/plugins", Some(THROTTLED)).await.expect(200);
        let refused = api.get("/api/v1/plugins", Some(THROTTLED)).await;
        refused.error(429, "rate_limited", None);
        let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        api.post("/api/v1/tasks/submit", Some(THROTTLED), json!({"task": "test.noop"})).await.error(429, "rate_limited", None);
        // Other keys, and the health routes, are not limited by it.
        api.get("/api/v1/plugins", Some(ADMIN)).await.expect(200);
        api.get("/healthz", Some(THROTTLED)).await.expect(200);
        // After Retry-After, the key is served again.
        tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
        api.get("/api/v1/plugins", Some(THROTTLED)).await.expect(200);
    }
}
