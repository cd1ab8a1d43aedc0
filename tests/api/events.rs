//! `GET /api/v1/events`: the live stream of state changes, resumed after a
//! reconnect from `Last-Event-ID` without losing what happened meanwhile.

use super::*;
use futures::StreamExt;

/// An open event stream and what it has not parsed yet.
struct EventStream {
    bytes: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl EventStream {
    /// Opens the stream with `key`, resuming after `last_id` if given.
    async fn open(api: &Api, key: &str, last_id: Option<u64>) -> EventStream {
        let mut request = api
            .http
            .get(format!("{}/api/v1/events", api.base))
            .header("authorization", format!("Bearer {key}"));
        if let Some(id) = last_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream {
            bytes: response
                .bytes_stream()
                .map(|b| b.map(|b| b.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (its id and data), skipping keep-alive comments.
    async fn next(&mut self) -> (u64, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                        .map(str::trim)
                };
                let (Some(id), Some(data)) = (field("id"), field("data")) else {
                    continue;
                };
                assert_eq!(field("event"), Some("task"), "{block}");
                return (id.parse().unwrap(), serde_json::from_str(data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.bytes.next())
                .await
                .expect("an event within 30 s")
                .expect("the stream goes on")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Events up to and including `task_id` reaching `state`; returns the
    /// states of `task_id` seen and the last id.
    async fn until(&mut self, task_id: &str, state: &str) -> (Vec<String>, u64) {
        let mut states = Vec::new();
        for _ in 0..1_000 {
            let (id, event) = self.next().await;
            assert_eq!(event["seq"], id, "the SSE id is the event's seq");
            if event["task_id"] == task_id {
                states.push(event["state"].as_str().unwrap().to_owned());
                if event["state"] == state {
                    return (states, id);
                }
            }
        }
        panic!("task {task_id} never reached {state} in 1,000 events");
    }
}

on_both_brokers! {
    events_stream_live_and_resume_after_a_reconnect(api) {
        let mut stream = EventStream::open(api, READER, None).await;
        let first = api.submit(json!({"task": "test.noop"})).await;
        let (states, last_id) = stream.until(&first, "SUCCESS").await;
        assert_eq!(states.first().map(String::as_str), Some("PENDING"), "from its submission: {states:?}");
        drop(stream);

        // While no one listens, a task runs from start to end.
        let missed = api.submit(json!({"task": "test.echo", "input": {"n": 1}})).await;
        api.finished(&missed).await;
        let mut resumed = EventStream::open(api, READER, Some(last_id)).await;
        let (states, _) = resumed.until(&missed, "SUCCESS").await;
        assert_eq!(states.first().map(String::as_str), Some("PENDING"), "nothing missed: {states:?}");

        // `?after=` starts a first connection at a known point.
        let response = api.http.get(format!("{}/api/v1/events?after={last_id}", api.base))
            .header("authorization", format!("Bearer {READER}")).send().await.unwrap();
        let mut from_after = EventStream { bytes: response.bytes_stream().map(|b| b.map(|b| b.to_vec())).boxed(), buffer: String::new() };
        let (id, _) = from_after.next().await;
        assert!(id > last_id, "after {last_id}: {id}");
    }

    events_refuse_what_they_must(api) {
        api.get("/api/v1/events", None).await.error(401, "unauthorized", None);
        api.get("/api/v1/events", Some(DEPLOYER)).await.error(403, "forbidden", None);
        api.get("/api/v1/events", Some(ALICE)).await.error(403, "forbidden", None);
        api.get("/api/v1/events?after=soon", Some(READER)).await.error(400, "invalid_input", Some("after"));
        let response = api.http.get(format!("{}/api/v1/events", api.base))
            .header("authorization", format!("Bearer {READER}"))
            .header("last-event-id", "yesterday").send().await.unwrap();
        assert_eq!(response.status(), 400);
    }
}
