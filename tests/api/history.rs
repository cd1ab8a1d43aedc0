//! The history routes: `GET /api/v1/tasks` with its filters and cursor,
//! a task's history and its log, who may see them; on both brokers.

use super::*;

/// The ids of a task list's entries.
fn listed(body: &Value) -> Vec<&str> {
    body["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no task list: {body}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

on_both_brokers! {
    history_lists_finished_tasks_and_keeps_their_logs(api) {
        let logged = api.submit(json!({"task": "test.log", "input": {"lines": 2}})).await;
        assert_eq!(api.finished(&logged).await["status"], "SUCCESS");
        let failed = api.submit(json!({"task": "test.fail", "input": {"kind": "fatal"}, "max_retries": 0})).await;
        assert_eq!(api.finished(&failed).await["status"], "FAILURE");
        let bobs = api.submit(json!({"task": "test.echo", "input": {"user_id": "bob"}})).await;
        assert_eq!(api.finished(&bobs).await["status"], "SUCCESS");

        let all = api.get("/api/v1/tasks", Some(READER)).await;
        assert_eq!(listed(all.expect(200)), [bobs.as_str(), &failed, &logged], "newest first");
        assert_eq!(all.body["next"], Value::Null, "one page holds them all");
        let failures = api.get("/api/v1/tasks?state=FAILURE", Some(READER)).await;
        assert_eq!(listed(failures.expect(200)), [failed.as_str()]);
        let by_name = api.get("/api/v1/tasks?task=test.log&worker=", Some(READER)).await;
        by_name.error(400, "invalid_input", Some("worker"));
        let by_name = api.get(&format!("/api/v1/tasks?task=test.log&worker={}", api.worker_name), Some(READER)).await;
        assert_eq!(listed(by_name.expect(200)), [logged.as_str()]);
        let by_text = api.get("/api/v1/tasks?q=ECHO&queue=default", Some(READER)).await;
        assert_eq!(listed(by_text.expect(200)), [bobs.as_str()]);

        // Pages of one, each once, in order.
        let mut seen = Vec::new();
        let mut path = "/api/v1/tasks?limit=1".to_owned();
        for _ in 0..10 {
            let page = api.get(&path, Some(READER)).await.expect(200).clone();
            seen.extend(listed(&page).iter().map(|s| s.to_string()));
            match page["next"].as_str() {
                Some(next) => path = format!("/api/v1/tasks?limit=1&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(seen, [bobs.clone(), failed.clone(), logged.clone()]);

        let entry = api.get(&format!("/api/v1/tasks/{logged}/history"), Some(READER)).await;
        let entry = entry.expect(200);
        assert_eq!((&entry["state"], &entry["task"]), (&json!("SUCCESS"), &json!("test.log")), "{entry}");
        assert_eq!(entry["input"], json!({"lines": 2}));
        let attempt = &entry["attempts"][0];
        assert_eq!(attempt["attempt"], 1);
        assert_eq!(attempt["run"]["worker"], api.worker_name.as_str());
        assert!(attempt["run"]["stats"]["wall_time_us"].as_u64().unwrap() > 0, "{entry}");
        assert!(attempt["run"]["stats"]["peak_memory_bytes"].as_u64().unwrap() > 0, "{entry}");
        let failure = api.get(&format!("/api/v1/tasks/{failed}/history"), Some(READER)).await;
        assert!(failure.expect(200)["error"].is_object(), "{:?}", failure.body);

        let log = api.get(&format!("/api/v1/tasks/{logged}/log"), Some(READER)).await;
        let log = log.expect(200);
        assert_eq!(log["task_id"], logged.as_str());
        let lines: Vec<(&str, &str)> = log["attempts"][0]["log"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["source"].as_str().unwrap(), l["message"].as_str().unwrap()))
            .collect();
        for expected in [("guest", "line 0"), ("stdout", "stdout 1"), ("stderr", "stderr 1")] {
            assert!(lines.contains(&expected), "{expected:?} is in the log: {lines:?}");
        }
        assert!(log["attempts"][0]["log"]["lines"][0]["at_ms"].as_u64().unwrap() > 0);
        let quiet = api.get(&format!("/api/v1/tasks/{bobs}/log"), Some(READER)).await;
        assert_eq!(quiet.expect(200)["attempts"], json!([]), "it logged nothing");
    }

    history_is_for_those_who_may_see_the_task(api) {
        let bobs = api.submit(json!({"task": "test.echo", "input": {"user_id": "bob"}})).await;
        api.finished(&bobs).await;
        let answer = api.post("/api/v1/tasks/submit?wait=30", Some(ALICE), json!({"task": "test.echo", "input": {"user_id": "alice"}})).await;
        let alices = answer.expect(200)["task_id"].as_str().unwrap().to_owned();
        let seen = api.get("/api/v1/tasks", Some(ALICE)).await;
        assert_eq!(listed(seen.expect(200)), [alices.as_str()], "alice's key sees alice's tasks");
        for route in ["history", "log"] {
            api.get(&format!("/api/v1/tasks/{bobs}/{route}"), Some(ALICE)).await.error(403, "forbidden", None);
            api.get(&format!("/api/v1/tasks/{alices}/{route}"), Some(ALICE)).await.expect(200);
            api.get(&format!("/api/v1/tasks/{alices}/{route}"), None).await.error(401, "unauthorized", None);
            api.get(&format!("/api/v1/tasks/{alices}/{route}"), Some(DEPLOYER)).await.error(403, "forbidden", None);
            api.get(&format!("/api/v1/tasks/no-such-task/{route}"), Some(READER)).await.error(404, "not_found", None);
        }
        api.get("/api/v1/tasks", None).await.error(401, "unauthorized", None);
        for (query, field) in [("state=DONE", "state"), ("limit=0", "limit"), ("limit=1001", "limit"),
            ("cursor=nonsense", "cursor"), ("since=yesterday", "since"), ("q=", "q"), ("colour=red", "colour")] {
            api.get(&format!("/api/v1/tasks?{query}"), Some(READER)).await.error(400, "invalid_input", Some(field));
        }
    }

    stats_count_each_task_name_over_its_window(api) {
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(api.submit(json!({"task": "test.echo", "input": {"n": n}})).await);
        }
        ids.push(api.submit(json!({"task": "test.fail", "input": {"kind": "fatal"}, "max_retries": 0})).await);
        for id in &ids {
            api.finished(id).await;
        }
        let alices = api.post("/api/v1/tasks/submit?wait=30", Some(ALICE), json!({"task": "test.log", "input": {"lines": 1, "user_id": "alice"}})).await;
        alices.expect(200);

        let hour = api.get("/api/v1/stats/tasks", Some(READER)).await;
        let hour = hour.expect(200);
        assert_eq!((&hour["window_s"], &hour["bucket_s"], &hour["complete"]), (&json!(3600), &json!(60), &json!(true)), "{hour}");
        assert_eq!(hour["scanned"], 5);
        let tasks = hour["tasks"].as_array().unwrap();
        let names: Vec<&str> = tasks.iter().map(|t| t["task"].as_str().unwrap()).collect();
        assert_eq!(names, ["test.echo", "test.fail", "test.log"], "busiest first");
        assert_eq!(tasks[0]["states"], json!({"SUCCESS": 3}));
        assert_eq!(tasks[1]["states"], json!({"FAILURE": 1}));
        assert_eq!(tasks[1]["failure_rate"], 1.0);
        let runtime = &tasks[0]["runtime_ms"];
        let (p50, p95, max) = (runtime["p50"].as_f64().unwrap(), runtime["p95"].as_f64().unwrap(), runtime["max"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p95 && p95 <= max, "{runtime}");
        let buckets = hour["buckets"].as_array().unwrap();
        assert!((60..=61).contains(&buckets.len()), "{}", buckets.len());
        let (ok, failed): (u64, u64) = buckets.iter().fold((0, 0), |(ok, failed), b| {
            (ok + b["succeeded"].as_u64().unwrap(), failed + b["failed"].as_u64().unwrap())
        });
        assert_eq!((ok, failed), (4, 1));
        assert!(buckets.windows(2).all(|w| w[1]["at_ms"].as_u64() > w[0]["at_ms"].as_u64()), "oldest first");

        let minute = api.get("/api/v1/stats/tasks?window=1m&task=test.echo", Some(READER)).await;
        let minute = minute.expect(200);
        assert_eq!((&minute["bucket_s"], &minute["scanned"]), (&json!(1), &json!(3)), "{minute}");
        // A key bound to users counts only its users' tasks.
        let seen = api.get("/api/v1/stats/tasks?window=24h", Some(ALICE)).await;
        let seen = seen.expect(200);
        assert_eq!(seen["tasks"].as_array().unwrap().len(), 1, "{seen}");
        assert_eq!(seen["tasks"][0]["task"], "test.log");
        api.get("/api/v1/stats/tasks", None).await.error(401, "unauthorized", None);
        api.get("/api/v1/stats/tasks", Some(DEPLOYER)).await.error(403, "forbidden", None);
        for (query, field) in [("window=2h", "window"), ("task=", "task"), ("colour=red", "colour")] {
            api.get(&format!("/api/v1/stats/tasks?{query}"), Some(READER)).await.error(400, "invalid_input", Some(field));
        }
    }
}
