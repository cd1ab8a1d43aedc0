//! Unit tests of the Redis backend against the Redis the suite starts
//! (`HIPPO_TEST_REDIS_URL`).

use super::*;
use crate::Inspection;
use hippo_task::{ExecStats, TaskFailure};
use serde_json::json;

fn run_meta(worker: &str) -> RunMeta {
    RunMeta {
        worker: worker.to_owned(),
        started_ms: 1,
        finished_ms: 2,
        stats: ExecStats {
            fuel_used: Some(42),
            peak_memory_bytes: 1 << 16,
            wall_time_us: 7,
            soft_limit_passed: false,
        },
        plugin_version: "1.0.0".into(),
        log: Default::default(),
    }
}

async fn test_broker() -> (RedisBroker, String) {
    let url = std::env::var("HIPPO_TEST_REDIS_URL")
        .expect("HIPPO_TEST_REDIS_URL is not set: run the suite with scripts/test");
    let prefix = format!("hippo-test:{}:", new_task_id());
    let broker = RedisBroker::connect_with_prefix(&url, BrokerConfig::default(), &prefix)
        .await
        .unwrap();
    (broker, url)
}

/// An event log written before events were grouped per entry (one
/// event per entry, a field each) still reads, followed by new events.
#[tokio::test]
async fn an_event_log_of_single_event_entries_still_reads() {
    let (broker, _) = test_broker().await;
    let _: String = redis::cmd("XADD")
        .arg(broker.key("events"))
        .arg("7-0")
        .arg(&[
            ("at", "1700000000000"),
            ("id", "t-old"),
            ("task", "old.task"),
            ("queue", "default"),
            ("state", "SUCCESS"),
            ("worker", "w"),
            ("detail", ""),
        ])
        .query_async(&mut broker.con())
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(broker.key("event-seq"))
        .arg(7)
        .query_async(&mut broker.con())
        .await
        .unwrap();
    let id = broker
        .submit(TaskMessage::new(
            "new.task",
            "default",
            serde_json::Value::Null,
        ))
        .await
        .unwrap()
        .task_id;
    let events = broker.events(None, 10).await.unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(
        (events[0].seq, events[0].at_ms, events[0].task_id.as_str()),
        (7, 1_700_000_000_000, "t-old")
    );
    assert_eq!(
        (events[0].task.as_str(), events[0].queue.as_str()),
        ("old.task", "default")
    );
    assert_eq!(events[0].state, TaskState::Success);
    assert_eq!(events[0].worker.as_deref(), Some("w"));
    assert_eq!(events[0].detail, None);
    assert_eq!(
        (events[1].seq, events[1].task_id.as_str()),
        (8, id.as_str())
    );
    assert_eq!(events[1].state, TaskState::Pending);
}

/// The record a settlement publishes (built in Lua, from what the script
/// read before its change and what it changed) decodes to the stored one,
/// text that needs escaping and a progress report included. A record that
/// did not decode would go unnoticed elsewhere: the waiter reads it instead.
#[tokio::test]
async fn a_published_record_decodes_to_the_stored_one() {
    let (broker, url) = test_broker().await;
    let client = Client::open(url.as_str()).unwrap();
    let mut announcements = client.get_async_pubsub().await.unwrap();
    announcements.subscribe(broker.key("done")).await.unwrap();
    let mut announcements = announcements.into_on_message();
    let worker = "w \"quoted\" \\ é\n";
    let outcomes = [
        Settlement::Success {
            output: TaskOutput::from_value(
                &json!({"text": "a \"quote\", a \\ and \u{1F600}", "n": [1, 2.5, null]}),
            ),
            meta: run_meta(worker),
        },
        Settlement::Failure {
            failure: TaskFailure::Fatal {
                message: "bad \"input\"\n".into(),
            },
            dead_letter: true,
            meta: run_meta(worker),
        },
    ];
    for settlement in outcomes {
        let mut message = TaskMessage::new("t\"ask", "default", json!({"k": "v\"\\"}));
        message.idempotency_key = None;
        let id = broker.submit(message).await.unwrap().task_id;
        let delivery = broker
            .reserve(
                "c",
                &["default".to_owned()],
                1,
                Duration::from_secs(30),
                Duration::ZERO,
            )
            .await
            .unwrap()
            .remove(0);
        let progress = hippo_task::Progress {
            done: 1,
            total: 2,
            message: Some("half \"way\"".into()),
        };
        broker.report_progress(&delivery, &progress).await.unwrap();
        assert!(broker.settle(&delivery, settlement).await.unwrap());
        let payload: String = tokio::time::timeout(Duration::from_secs(5), announcements.next())
            .await
            .expect("the end is announced")
            .unwrap()
            .get_payload()
            .unwrap();
        let (announced, record) = payload.split_once('\n').unwrap();
        assert_eq!(announced, id);
        assert_eq!(
            published_record(record),
            broker.task(&id).await.unwrap(),
            "published: {record}"
        );
    }
}

/// Regression: a standing wait with less than `STANDING_MARGIN` left
/// panicked with "overflow when subtracting durations" (the subtraction
/// ran before the check that guarded it), aborting the worker.
#[tokio::test]
async fn a_standing_wait_ending_within_the_margin_is_not_used() {
    let (broker, _) = test_broker().await;
    let queues = vec!["default".to_owned()];
    let lease = Duration::from_secs(30);
    for left in [Duration::ZERO, STANDING_MARGIN / 2, STANDING_MARGIN] {
        broker.standing_waits().insert(
            "w1".into(),
            Standing {
                queues: queues.clone(),
                lease,
                until: Instant::now() + left,
                room: 4,
            },
        );
        assert_eq!(broker.standing("w1", &queues, lease), None, "{left:?} left");
    }
    broker.standing_waits().insert(
        "w1".into(),
        Standing {
            queues: queues.clone(),
            lease,
            until: Instant::now() + Duration::from_secs(10),
            room: 4,
        },
    );
    let (left, room) = broker.standing("w1", &queues, lease).unwrap();
    assert!(left > Duration::from_secs(9) && left < Duration::from_secs(10));
    assert_eq!(room, 4);
}

/// Entries an earlier version left pending in the group (it acknowledged
/// an entry when its task ended; this one takes entries out as it reads
/// them and acknowledges none) are not counted as ready, and are deleted
/// with their consumer once it is idle.
#[tokio::test]
async fn entries_left_pending_by_an_earlier_version_are_pruned() {
    let (broker, _) = test_broker().await;
    let stream = broker.stream_key("default", Band::Normal);
    let mut con = broker.con();
    for n in 0..3 {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("id")
            .arg(format!("old-{n}"))
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let _: Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "hippo", "old-worker", "COUNT", "3", "STREAMS"])
        .arg(&stream)
        .arg(">")
        .query_async(&mut con)
        .await
        .unwrap();
    let default = |stats: Vec<QueueStats>| stats.into_iter().find(|q| q.name == "default").unwrap();
    assert_eq!(default(broker.queue_stats().await.unwrap()).ready, 0);

    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut inv = broker.invocation(&broker.scripts.prune_consumers);
    inv.key(std::slice::from_ref(&stream)).arg(1);
    let removed: i64 = broker.run(&inv).await.unwrap();
    assert_eq!(removed, 1);
    let len: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(len, 0, "the pending entries are deleted");
}
