//! The dashboard's listener: Flower's API with Flower's routes and field
//! names (the lists of `../shared/reference/flower-api.md`), behind basic
//! auth or an API key; on both brokers.

use super::*;
use hippo::api::dashboard::Logins;

/// The fields of a task in `/api/tasks` and `/api/task/info`, as Flower's.
const FLOWER_TASK_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "state",
    "received",
    "sent",
    "started",
    "succeeded",
    "failed",
    "retried",
    "revoked",
    "rejected",
    "timestamp",
    "runtime",
    "args",
    "kwargs",
    "result",
    "exception",
    "traceback",
    "retries",
    "worker",
    "eta",
    "expires",
    "exchange",
    "routing_key",
    "clock",
    "client",
    "root_id",
    "parent_id",
    "children",
];

const LOGIN: &str = "Basic Zmxvd2VyOnMzY3JldC1wYXNz"; // flower:s3cret-pass

/// The dashboard router on a loopback port of its own, beside `api`'s
/// server; its base URL.
async fn dashboard(api: &Api) -> String {
    let logins = Logins::new(vec![("flower".into(), "s3cret-pass".into())]).unwrap();
    let state = AppState {
        broker: api.broker.clone(),
        registry: api.registry.clone(),
        keys: Arc::new(keys()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = hippo::api::dashboard::router(state, Arc::new(logins));
    tokio::spawn(hippo::api::serve_router(
        listener,
        app,
        std::future::pending(),
    ));
    base
}

async fn call(
    api: &Api,
    method: Method,
    url: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let mut request = api.http.request(method, url);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

on_both_brokers! {
    flower_routes_answer_with_flowers_fields(api) {
        let base = dashboard(api).await;
        let get = |path: &str, auth: Option<&'static str>| {
            let url = format!("{base}{path}");
            async move { call(api, Method::GET, &url, auth, None).await }
        };
        assert_eq!(get("/healthcheck", None).await.2, json!("OK"), "open");

        let (status, _, applied) = call(api, Method::POST, &format!("{base}/api/task/async-apply/test.echo"),
            Some(LOGIN), Some(json!({"kwargs": {"x": 1}}))).await;
        assert_eq!(status, 200, "{applied}");
        assert_eq!(applied["state"], "PENDING");
        let id = applied["task-id"].as_str().unwrap().to_owned();
        let (status, _, result) = get(&format!("/api/task/result/{id}?timeout=30"), Some(LOGIN)).await;
        assert_eq!((status, &result), (200, &json!({"task-id": id, "state": "SUCCESS", "result": {"x": 1}})));

        let (status, _, tasks) = get("/api/tasks", Some(LOGIN)).await;
        assert_eq!(status, 200, "{tasks}");
        let task = &tasks[&id];
        assert_eq!(fields(task), FLOWER_TASK_FIELDS.iter().copied().collect(), "{task}");
        assert_eq!((&task["uuid"], &task["name"], &task["state"]), (&json!(id), &json!("test.echo"), &json!("SUCCESS")));
        assert_eq!(task["kwargs"], json!(r#"{"x":1}"#));
        assert_eq!(task["worker"], api.worker_name.as_str());
        assert_eq!(task["routing_key"], "default");
        assert!(task["runtime"].as_f64().is_some_and(|r| r > 0.0), "{task}");
        assert!(task["received"].as_f64().unwrap() <= task["succeeded"].as_f64().unwrap(), "{task}");
        let (_, _, info) = get(&format!("/api/task/info/{id}"), Some(LOGIN)).await;
        assert_eq!(&info, task, "info is the list's entry");

        let failed = api.submit(json!({"task": "test.fail", "input": {"kind": "fatal"}, "max_retries": 0})).await;
        api.finished(&failed).await;
        let (_, _, only) = get("/api/tasks?taskname=test.fail&state=FAILURE&limit=5", Some(LOGIN)).await;
        assert_eq!(fields(&only), [failed.as_str()].into(), "{only}");
        assert!(only[&failed]["exception"].as_str().is_some_and(|e| e.starts_with("failed: ")), "{only}");
        let (_, _, second) = get("/api/tasks?limit=1&offset=1", Some(LOGIN)).await;
        assert_eq!(fields(&second), [id.as_str()].into(), "offset skips the newest");
        let (status, _, _) = get("/api/tasks?sort_by=name", Some(LOGIN)).await;
        assert_eq!(status, 400, "only newest first");
        let (_, _, window) = get("/api/tasks?received_start=2020-01-01%2000:00&received_end=2020-01-02%2000:00", Some(LOGIN)).await;
        assert_eq!(window, json!({}), "nothing then");

        let (_, _, workers) = get("/api/workers", Some(LOGIN)).await;
        let worker = &workers[api.worker_name.as_str()];
        for field in ["active_queues", "conf", "registered", "stats", "scheduled", "active", "reserved", "revoked", "timestamp"] {
            assert!(!worker[field].is_null(), "{field} in {worker}");
        }
        assert!(worker["registered"].as_array().unwrap().contains(&json!("test.echo")));
        let (_, _, online) = get("/api/workers?status=true", Some(LOGIN)).await;
        assert_eq!(online[api.worker_name.as_str()], true);
        let (_, _, types) = get("/api/task/types", Some(LOGIN)).await;
        assert!(types["task-types"].as_array().unwrap().contains(&json!("test.sleep")), "{types}");
        let (_, _, queues) = get("/api/queues/length", Some(LOGIN)).await;
        assert!(queues["active_queues"].as_array().unwrap().contains(&json!({"name": "default", "messages": 0})), "{queues}");
        let (status, headers, metrics) = get("/metrics", Some(LOGIN)).await;
        assert_eq!(status, 200);
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain"));
        assert!(metrics.as_str().unwrap().contains("hippo_workers"), "{metrics}");

        // Revoke a running task.
        let sleeping = api.submit(json!({"task": "test.sleep", "input": {"ms": 30000}})).await;
        api.until_status(&sleeping, "STARTED", Duration::from_secs(30)).await;
        let (status, _, revoked) = call(api, Method::POST, &format!("{base}/api/task/revoke/{sleeping}?terminate=true"), Some(LOGIN), None).await;
        assert_eq!((status, revoked), (200, json!({"message": format!("Revoked '{sleeping}'")})));
        assert_eq!(api.finished(&sleeping).await["status"], "REVOKED");
    }

    flower_routes_refuse_without_credentials(api) {
        let base = dashboard(api).await;
        for path in ["/api/workers", "/api/tasks", "/api/task/types", "/api/queues/length", "/api/task/info/x", "/api/task/result/x", "/metrics"] {
            let (status, headers, body) = call(api, Method::GET, &format!("{base}{path}"), None, None).await;
            assert_eq!(status, 401, "{path}: {body}");
            assert_eq!(headers["www-authenticate"], "Basic realm=\"hippo\"", "{path}");
            let wrong = "Basic Zmxvd2VyOndyb25n"; // flower:wrong
            let (status, _, _) = call(api, Method::GET, &format!("{base}{path}"), Some(wrong), None).await;
            assert!(status == 401 || status == 429, "{path}: {status}");
        }
        for path in ["/api/task/revoke/x", "/api/task/async-apply/test.echo"] {
            let (status, _, _) = call(api, Method::POST, &format!("{base}{path}"), None, Some(json!({}))).await;
            assert_eq!(status, 401, "{path}");
        }
        // API keys work too, with their scopes.
        let (status, _, _) = call(api, Method::GET, &format!("{base}/api/tasks"), Some(&format!("Bearer {READER}")), None).await;
        assert_eq!(status, 200);
        let (status, _, _) = call(api, Method::GET, &format!("{base}/api/tasks"), Some(&format!("Bearer {DEPLOYER}")), None).await;
        assert_eq!(status, 403);
        let (status, _, body) = call(api, Method::POST, &format!("{base}/api/task/async-apply/test.echo"), Some(LOGIN), Some(json!({"args": [1, 2]}))).await;
        assert_eq!((status, &body["error"]["field"]), (400, &json!("args")), "{body}");
        // Wrong credentials in a burst are rate limited.
        let mut limited = false;
        for _ in 0..40 {
            let (status, _, _) = call(api, Method::GET, &format!("{base}/api/tasks"), Some("Basic Zm9vOmJhcg=="), None).await;
            limited |= status == 429;
        }
        assert!(limited, "forty wrong logins in a row are rate limited");
        let (status, _, _) = call(api, Method::GET, &format!("{base}/healthcheck"), None, None).await;
        assert_eq!(status, 200);
    }

    dashboard_sessions_need_their_csrf_token(api) {
        let base = dashboard(api).await;
        let http = reqwest::Client::builder().no_proxy()
            .redirect(reqwest::redirect::Policy::none()).build().unwrap();
        // A stranger is sent to the form; the page and its assets need credentials.
        let page = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!((page.status().as_u16(), &page.headers()["location"]), (303, &"/login".parse::<reqwest::header::HeaderValue>().unwrap()));
        let form = http.get(format!("{base}/login")).send().await.unwrap();
        assert_eq!(form.status(), 200);
        assert_eq!(form.headers()["x-frame-options"], "DENY");
        assert_eq!(http.get(format!("{base}/assets/app.js")).send().await.unwrap().status(), 401);

        let wrong = http.post(format!("{base}/login")).form(&[("user", "flower"), ("password", "nope")]).send().await.unwrap();
        assert_eq!(wrong.status(), 401);
        let foreign = http.post(format!("{base}/login")).header("sec-fetch-site", "cross-site")
            .form(&[("user", "flower"), ("password", "s3cret-pass")]).send().await.unwrap();
        assert_eq!(foreign.status(), 403, "a login posted from another site");
        let login = http.post(format!("{base}/login")).form(&[("user", "flower"), ("password", "s3cret-pass")]).send().await.unwrap();
        assert_eq!(login.status(), 303);
        let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        // An API key logs in too (no user).
        let by_key = http.post(format!("{base}/login")).form(&[("user", ""), ("password", READER)]).send().await.unwrap();
        assert_eq!(by_key.status(), 303);

        let page = http.get(format!("{base}/")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
        let csrf = page.split("name=\"csrf-token\" content=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_owned();
        assert_eq!(csrf.len(), 64, "{page}");
        assert!(page.contains("flower"), "the user's name");
        let script = http.get(format!("{base}/assets/app.js")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");

        // hippo's API on the dashboard's listener: reads with the cookie alone,
        // changes only with the session's token.
        let listed = http.get(format!("{base}/api/v1/tasks")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(listed.status(), 200);
        let stats = http.get(format!("{base}/api/v1/stats/tasks?window=1m")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(stats.status(), 200);
        let submit = json!({"task": "test.echo", "input": {"via": "session"}});
        let forged = http.post(format!("{base}/api/v1/tasks/submit")).header("cookie", &cookie).json(&submit).send().await.unwrap();
        assert_eq!(forged.status(), 403, "no token");
        let forged = http.post(format!("{base}/api/v1/tasks/submit")).header("cookie", &cookie)
            .header("x-csrf-token", "0".repeat(64)).json(&submit).send().await.unwrap();
        assert_eq!(forged.status(), 403, "a wrong token");
        let sent = http.post(format!("{base}/api/v1/tasks/submit")).header("cookie", &cookie)
            .header("x-csrf-token", &csrf).json(&submit).send().await.unwrap();
        assert_eq!(sent.status(), 202);
        // Basic auth from another site may not change anything; scripts may.
        let foreign = http.post(format!("{base}/api/task/async-apply/test.echo")).header("authorization", LOGIN)
            .header("origin", "http://evil.test").json(&json!({"kwargs": {}})).send().await.unwrap();
        assert_eq!(foreign.status(), 403);
        let script = http.post(format!("{base}/api/task/async-apply/test.echo")).header("authorization", LOGIN)
            .json(&json!({"kwargs": {}})).send().await.unwrap();
        assert_eq!(script.status(), 200);

        // Logging out ends the session.
        let out = http.post(format!("{base}/logout")).header("cookie", &cookie).header("x-csrf-token", &csrf).send().await.unwrap();
        assert_eq!(out.status(), 204);
        let after = http.get(format!("{base}/api/v1/tasks")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(after.status(), 401);
    }
}
