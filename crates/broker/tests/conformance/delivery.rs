//! Delivery: what is submitted comes out whole, by priority, under a lease that
//! fences a stale holder; ETAs and retries come back on time.

use super::*;

conformance!(
    round_trip_keeps_every_field,
    priority_follows_queue_order_then_band,
    expired_lease_is_redelivered_and_the_stale_holder_is_fenced,
    heartbeat_keeps_the_lease,
    release_hands_back_without_an_attempt,
    concurrent_consumers_never_share_a_delivery,
    eta_is_released_only_when_due,
    retry_comes_back_with_the_next_attempt,
    a_waiting_consumer_gets_a_task_submitted_while_it_waits,
    a_reserve_dropped_while_it_waits_strands_no_task,
    a_task_settled_without_a_start_records_its_start_or_ends_revoked,
    a_task_handed_to_a_waiting_consumer_is_reserved_like_any,
    tasks_that_come_back_go_to_a_waiting_consumer,
);

async fn round_trip_keeps_every_field(backend: Backend) {
    let b = open(backend).await;
    let mut m = message("word_count", "default", 8);
    m.max_retries = 7;
    m.limits.fuel = Some(1_000_000);
    m.expires_ms = Some(now_ms() + 3_600_000);
    m.acting_for = Some("alice".into());
    let id = submit(&b, m.clone()).await;
    assert_eq!(id, m.id);

    let pending = b.task(&id).await.unwrap().expect("record after submit");
    assert_eq!(pending.state, TaskState::Pending);
    assert_eq!(pending.message, m);
    assert_eq!(pending.runs, 0);
    assert!(pending.result.is_none() && pending.error.is_none() && pending.last_run.is_none());

    let d = take_one(&b, "consumer-1").await.expect("a delivery");
    assert_eq!(
        d.message, m,
        "the delivery carries the message as submitted"
    );
    assert!(d.generation >= 1);
    assert_eq!(d.consumer, "consumer-1");
    assert!(!d.receipt.is_empty());
    assert_eq!(state(&b, &id).await, TaskState::Received);
    let reserved = b.reserved().await.unwrap();
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0].message.id, id);
    assert_eq!(reserved[0].generation, d.generation);
    assert_eq!(reserved[0].consumer, "consumer-1");
    assert!(
        take_one(&b, "consumer-2").await.is_none(),
        "a leased task is not handed out twice"
    );

    assert_eq!(
        b.mark_started(&d, "worker-a").await.unwrap(),
        LeaseStatus::Held
    );
    let started = b.task(&id).await.unwrap().unwrap();
    assert_eq!(started.state, TaskState::Started);
    assert_eq!(started.worker.as_deref(), Some("worker-a"));

    let progress = Progress {
        done: 3,
        total: 10,
        message: Some("counting".into()),
    };
    assert_eq!(
        b.report_progress(&d, &progress).await.unwrap(),
        LeaseStatus::Held
    );
    let running = b.task(&id).await.unwrap().unwrap();
    assert_eq!(running.state, TaskState::Progress);
    assert_eq!(running.progress.as_ref(), Some(&progress));

    // The output is kept as the text the task returned, spacing and all.
    let text = r#"{"words": 42, "list": [ ], "nested": {"x": 1.5, "s": "\u00e9"}}"#;
    let returned = TaskOutput::from_bytes(text.as_bytes().to_vec()).unwrap();
    let run = meta("worker-a");
    let settled = b
        .settle(
            &d,
            Settlement::Success {
                output: returned,
                meta: run.clone(),
            },
        )
        .await
        .unwrap();
    assert!(settled);
    let done = b.task(&id).await.unwrap().unwrap();
    assert_eq!(done.state, TaskState::Success);
    assert_eq!(
        done.result.as_ref().map(TaskOutput::as_str),
        Some(text),
        "the output comes back exactly"
    );
    assert_eq!(done.last_run, Some(run));
    assert_eq!(done.worker.as_deref(), Some("worker-a"));
    assert_eq!(done.runs, 1);
    assert_eq!(done.message, m);
    assert!(done.error.is_none());
    assert!(done.updated_ms >= pending.updated_ms);

    assert!(
        !b.settle(&d, success(json!(0), "worker-a")).await.unwrap(),
        "a delivery settles once"
    );
    assert_eq!(b.heartbeat(&d, LEASE).await.unwrap(), LeaseStatus::Lost);
    assert!(b.reserved().await.unwrap().is_empty());
    assert!(take_one(&b, "consumer-1").await.is_none());

    let states: Vec<TaskState> = b
        .events(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.task_id == id)
        .map(|e| e.state)
        .collect();
    assert_eq!(
        states,
        [
            TaskState::Pending,
            TaskState::Received,
            TaskState::Started,
            TaskState::Progress,
            TaskState::Success
        ]
    );
}

async fn priority_follows_queue_order_then_band(backend: Backend) {
    let b = open(backend).await;
    // Submitted in the reverse of the order they must come out in.
    let order = [
        ("background-high", "background", 9),
        ("default-low-2", "default", 0),
        ("default-low-1", "default", 3),
        ("default-normal", "default", 5),
        ("default-high", "default", 7),
        ("memory-low", "memory_ops", 1),
    ];
    let mut ids = HashMap::new();
    for (name, queue, priority) in order {
        ids.insert(submit(&b, message(name, queue, priority)).await, name);
        // Distinct submission times keep FIFO order within a band observable.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let consume = queues(&["memory_ops", "default", "background"]);
    let mut got = Vec::new();
    while let Some(d) = take(&b, "c", &consume, 1).await.pop() {
        got.push(ids[&d.message.id]);
        assert!(b.settle(&d, success(json!(null), "w")).await.unwrap());
    }
    assert_eq!(
        got,
        [
            "memory-low",
            "default-high",
            "default-normal",
            "default-low-2",
            "default-low-1",
            "background-high"
        ],
        "queues in the given order, then High > Normal > Low, FIFO within a band"
    );

    // A batch follows the same order, and only the queues asked for are read.
    for (name, queue, priority) in order {
        submit(&b, message(name, queue, priority)).await;
    }
    let batch = take(&b, "c", &queues(&["background", "default"]), 3).await;
    let names: Vec<&str> = batch.iter().map(|d| d.message.task.as_str()).collect();
    assert_eq!(names, ["background-high", "default-high", "default-normal"]);
}

async fn expired_lease_is_redelivered_and_the_stale_holder_is_fenced(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("slow", "default", 5)).await;
    let short = Duration::from_millis(300);
    let stale = take_one_leased(&b, "frozen", short).await;
    assert_eq!(
        b.mark_started(&stale, "frozen-worker").await.unwrap(),
        LeaseStatus::Held
    );

    // Not yet expired: housekeeping leaves it alone.
    b.maintain().await.unwrap();
    assert!(take_one(&b, "fresh").await.is_none());

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        b.maintain().await.unwrap() >= 1,
        "maintain returns the expired lease to its queue"
    );
    let record = b.task(&id).await.unwrap().unwrap();
    assert!(!record.state.is_terminal());
    let expiries: Vec<_> = b
        .events(None, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.task_id == id && e.is_lease_expiry())
        .collect();
    assert_eq!(expiries.len(), 1, "the event log says the lease expired");
    let fresh = take_one(&b, "fresh")
        .await
        .expect("redelivered after its lease expired");
    assert_eq!(fresh.message.id, id);
    assert!(
        fresh.generation > stale.generation,
        "every hand-out bumps the generation"
    );
    assert_eq!(
        fresh.message.attempt, stale.message.attempt,
        "a lost lease is not a failed attempt"
    );

    // The stale holder wakes up: fenced out of everything.
    assert_eq!(b.heartbeat(&stale, LEASE).await.unwrap(), LeaseStatus::Lost);
    assert_eq!(
        b.mark_started(&stale, "frozen-worker").await.unwrap(),
        LeaseStatus::Lost
    );
    assert!(
        !b.settle(&stale, success(json!("stale"), "frozen-worker"))
            .await
            .unwrap()
    );
    assert!(!b.release(&stale).await.unwrap());
    assert_eq!(state(&b, &id).await, TaskState::Received);

    assert_eq!(
        b.mark_started(&fresh, "fresh-worker").await.unwrap(),
        LeaseStatus::Held
    );
    assert!(
        b.settle(&fresh, success(json!("fresh"), "fresh-worker"))
            .await
            .unwrap()
    );
    assert!(
        !b.settle(&stale, success(json!("stale"), "frozen-worker"))
            .await
            .unwrap()
    );
    let record = b.task(&id).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Success);
    assert_eq!(
        record.result,
        Some(output(json!("fresh"))),
        "the stale worker never overwrites the result"
    );
    assert_eq!(record.worker.as_deref(), Some("fresh-worker"));
}

async fn heartbeat_keeps_the_lease(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("long", "default", 5)).await;
    let lease = Duration::from_millis(600);
    let d = take_one_leased(&b, "holder", lease).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(b.heartbeat(&d, lease).await.unwrap(), LeaseStatus::Held);
        b.maintain().await.unwrap();
        assert!(
            take_one(&b, "other").await.is_none(),
            "a heartbeated lease is never taken over"
        );
    }
    assert!(b.settle(&d, success(json!(1), "holder")).await.unwrap());
    assert_eq!(state(&b, &id).await, TaskState::Success);
}

async fn release_hands_back_without_an_attempt(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("t", "default", 5)).await;
    let first = take_one(&b, "shutting-down").await.unwrap();
    assert!(b.release(&first).await.unwrap());
    assert_eq!(state(&b, &id).await, TaskState::Pending);
    assert!(b.reserved().await.unwrap().is_empty());
    assert!(
        !b.settle(&first, success(json!(0), "w")).await.unwrap(),
        "a released delivery is no longer held"
    );

    let second = take_one(&b, "next")
        .await
        .expect("released task is ready again");
    assert_eq!(second.message.id, id);
    assert_eq!(second.message.attempt, 1);
    assert!(second.generation > first.generation);
    assert!(!b.release(&first).await.unwrap());
    assert!(b.settle(&second, success(json!(2), "w")).await.unwrap());
}

async fn concurrent_consumers_never_share_a_delivery(backend: Backend) {
    const TASKS: usize = 200;
    let b = Arc::new(open(backend).await);
    for i in 0..TASKS {
        submit(
            &b,
            message(
                &format!("t{i}"),
                if i % 2 == 0 { "default" } else { "background" },
                (i % 10) as u8,
            ),
        )
        .await;
    }
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..4 {
        let b = b.clone();
        let seen = seen.clone();
        consumers.spawn(async move {
            let name = format!("consumer-{c}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.lock().unwrap().len() < TASKS && Instant::now() < deadline {
                let batch = b
                    .reserve(&name, &all_queues(), 3, LEASE, Duration::from_millis(100))
                    .await
                    .expect("reserve");
                for d in batch {
                    assert!(
                        b.settle(&d, success(json!(c), &name)).await.unwrap(),
                        "a fresh delivery settles"
                    );
                    seen.lock().unwrap().push(d.message.id.clone());
                }
            }
        });
    }
    while let Some(joined) = consumers.join_next().await {
        joined.expect("consumer task");
    }
    let seen = seen.lock().unwrap().clone();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &seen {
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(counts.len(), TASKS, "every task delivered");
    assert!(take(&b, "late", &all_queues(), 10).await.is_empty());
}

async fn eta_is_released_only_when_due(backend: Backend) {
    let b = open(backend).await;
    let now = now_ms();
    let start = Instant::now();
    let mut later = message("later", "scheduled", 5);
    later.eta_ms = Some(now + 2_500);
    let mut sooner = message("sooner", "scheduled", 5);
    sooner.eta_ms = Some(now + 800);
    let mut past = message("past-eta", "scheduled", 5);
    past.eta_ms = Some(now - 1_000);
    let later_id = submit(&b, later).await;
    let sooner_id = submit(&b, sooner).await;
    let past_id = submit(&b, past).await;

    b.maintain().await.unwrap();
    let now_ready = take(&b, "c", &all_queues(), 10).await;
    assert_eq!(
        now_ready.len(),
        1,
        "only the task whose ETA passed is ready"
    );
    assert_eq!(now_ready[0].message.id, past_id);

    let scheduled = b.scheduled(10).await.unwrap();
    let ids: Vec<&str> = scheduled.iter().map(|r| r.message.id.as_str()).collect();
    assert_eq!(
        ids,
        [sooner_id.as_str(), later_id.as_str()],
        "soonest first"
    );
    assert!(scheduled.iter().all(|r| r.state == TaskState::Pending));
    assert_eq!(b.scheduled(1).await.unwrap().len(), 1);
    let stats = b.queue_stats().await.unwrap();
    let sched = stats.iter().find(|s| s.name == "scheduled").unwrap();
    assert_eq!((sched.ready, sched.scheduled), (0, 2));

    tokio::time::sleep_until((start + Duration::from_millis(1_000)).into()).await;
    b.maintain().await.unwrap();
    let due = take(&b, "c", &all_queues(), 10).await;
    assert_eq!(
        due.iter()
            .map(|d| d.message.id.as_str())
            .collect::<Vec<_>>(),
        [sooner_id.as_str()]
    );
    assert!(
        start.elapsed() < Duration::from_millis(2_400),
        "too slow to tell the two ETAs apart"
    );

    tokio::time::sleep_until((start + Duration::from_millis(2_700)).into()).await;
    b.maintain().await.unwrap();
    let due = take(&b, "c", &all_queues(), 10).await;
    assert_eq!(
        due.iter()
            .map(|d| d.message.id.as_str())
            .collect::<Vec<_>>(),
        [later_id.as_str()]
    );
    assert!(b.scheduled(10).await.unwrap().is_empty());
}

async fn retry_comes_back_with_the_next_attempt(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("flaky", "default", 5)).await;
    let first = take_one(&b, "c").await.unwrap();
    assert_eq!(first.message.attempt, 1);
    let failure = TaskFailure::Retry {
        message: "upstream busy".into(),
        delay_ms: Some(700),
    };
    let at_ms = now_ms() + 700;
    let retry = Settlement::Retry {
        failure: failure.clone(),
        at_ms,
        meta: meta("w"),
    };
    assert!(b.settle(&first, retry).await.unwrap());

    let record = b.task(&id).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Retry);
    assert_eq!(record.error, Some(failure));
    assert_eq!(
        record.message.attempt, 2,
        "the record holds the next attempt"
    );
    assert_eq!(record.runs, 1);
    assert_eq!(b.scheduled(10).await.unwrap().len(), 1);
    assert!(!record.state.is_terminal());

    b.maintain().await.unwrap();
    assert!(
        take_one(&b, "c").await.is_none(),
        "not before its retry time"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    b.maintain().await.unwrap();
    let second = take_one(&b, "c")
        .await
        .expect("the retry is delivered when due");
    assert_eq!(second.message.id, id);
    assert_eq!(second.message.attempt, 2);
    assert!(second.generation > first.generation);
    assert!(b.settle(&second, success(json!("ok"), "w")).await.unwrap());
    let record = b.task(&id).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Success);
    assert_eq!(record.runs, 2);
    assert!(
        record.error.is_none(),
        "success clears the last attempt's error"
    );
}

/// Starts `consumer` reserving up to 4 tasks (under `lease`) for up to
/// 10 s, and returns once it has had time to find nothing and wait.
async fn waiting_reserve(
    b: &Arc<Fixture>,
    consumer: &'static str,
    lease: Duration,
) -> tokio::task::JoinHandle<Vec<Delivery>> {
    let waiting = tokio::spawn({
        let b = b.clone();
        async move {
            b.reserve(consumer, &all_queues(), 4, lease, Duration::from_secs(10))
                .await
                .expect("reserve")
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    waiting
}

/// The one task a waiting reserve returns, at once.
async fn handed_at_once(waiting: tokio::task::JoinHandle<Vec<Delivery>>) -> Delivery {
    let mut got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting reserve returns once a task is ready")
        .unwrap();
    assert_eq!(got.len(), 1);
    got.remove(0)
}

async fn a_waiting_consumer_gets_a_task_submitted_while_it_waits(backend: Backend) {
    let b = Arc::new(open(backend).await);
    let waiting = waiting_reserve(&b, "waiter", LEASE).await;
    let started = Instant::now();
    let id = submit(&b, message("handed", "default", 5)).await;
    let got = handed_at_once(waiting).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "at once, not at the end of the wait"
    );
    assert_eq!(got.message.id, id);
    assert_eq!(got.consumer, "waiter");
    assert_eq!(state(&b, &id).await, TaskState::Received);
    assert!(b.settle(&got, success(json!(1), "waiter")).await.unwrap());

    // The wait outlives the call on Redis, until its time is up or it
    // brought `max` tasks: the next task goes to the waiter at once, and its
    // next reserve returns it. (The embedded broker's wait ends with the
    // call; the task waits in the queue for that reserve.)
    let next = submit(&b, message("next", "default", 5)).await;
    let started = Instant::now();
    let got = b
        .reserve("waiter", &all_queues(), 4, LEASE, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.id, next);
    assert!(
        b.settle(&got[0], success(json!(2), "waiter"))
            .await
            .unwrap()
    );

    // Ending the wait returns what was handed over since.
    let third = submit(&b, message("third", "default", 5)).await;
    let handed = b.stop_waiting("waiter", &all_queues()).await.unwrap();
    let third_delivery = if b.redis.is_some() {
        assert_eq!(handed.len(), 1, "the standing wait took the task");
        handed.into_iter().next().unwrap()
    } else {
        assert!(handed.is_empty());
        take_one(&b, "waiter").await.unwrap()
    };
    assert_eq!(third_delivery.message.id, third);
    assert_eq!(third_delivery.consumer, "waiter");
    assert_eq!(state(&b, &third).await, TaskState::Received);
    assert!(
        b.settle(&third_delivery, success(json!(3), "waiter"))
            .await
            .unwrap()
    );

    // A consumer whose wait ended, or ran out, takes nothing more.
    let after = submit(&b, message("after", "default", 5)).await;
    let other = take_one(&b, "other")
        .await
        .expect("the next task is in the queue");
    assert_eq!(other.message.id, after);
    let timed_out = b
        .reserve(
            "waiter",
            &all_queues(),
            4,
            LEASE,
            Duration::from_millis(200),
        )
        .await
        .expect("reserve");
    assert!(timed_out.is_empty());
    let last = submit(&b, message("last", "default", 5)).await;
    let other = take_one(&b, "other").await.expect("nobody waits any more");
    assert_eq!(other.message.id, last);
}

/// Regression: the embedded broker's hand-off leased the next submission to
/// a consumer whose `reserve` had been dropped, so the task sat with nobody
/// until its lease ran out.
async fn a_reserve_dropped_while_it_waits_strands_no_task(backend: Backend) {
    let b = Arc::new(open(backend).await);
    let waiting = waiting_reserve(&b, "gone", LEASE).await;
    waiting.abort();
    let _ = waiting.await;
    let id = submit(&b, message("after a dropped wait", "default", 5)).await;
    let handed = b.stop_waiting("gone", &all_queues()).await.unwrap();
    if b.redis.is_some() {
        // Redis' wait outlives the call by design, so it takes the task if
        // it reached the server before the abort (on a loaded machine it may
        // not have); ending it returns the task, which the consumer hands
        // back.
        assert!(handed.len() <= 1, "one task was submitted");
        for delivery in &handed {
            assert_eq!(delivery.message.id, id);
            assert!(b.release(delivery).await.unwrap());
        }
    } else {
        assert!(handed.is_empty());
    }
    let other = take_one(&b, "other")
        .await
        .expect("the task is not stranded with the dropped consumer");
    assert_eq!(other.message.id, id);
}

async fn a_task_settled_without_a_start_records_its_start_or_ends_revoked(backend: Backend) {
    let b = open(backend).await;
    let quick = submit(&b, message("quick", "default", 5)).await;
    let d = take_one(&b, "w").await.unwrap();
    assert!(b.settle(&d, success(json!("done"), "w")).await.unwrap());
    let record = b.task(&quick).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Success);
    assert_eq!(record.result, Some(output(json!("done"))));
    let states = |events: Vec<hippo_broker::Event>, id: &str| -> Vec<TaskState> {
        events
            .into_iter()
            .filter(|e| e.task_id == id)
            .map(|e| e.state)
            .collect()
    };
    assert_eq!(
        states(b.events(None, 1000).await.unwrap(), &quick),
        [
            TaskState::Pending,
            TaskState::Received,
            TaskState::Started,
            TaskState::Success
        ]
    );

    // Revoked after it was reserved, before its worker marked it started:
    // whatever its run returned, it ends REVOKED and never started.
    let revoked = submit(&b, message("revoked", "default", 5)).await;
    let d = take_one(&b, "w").await.unwrap();
    assert_eq!(b.revoke(&revoked).await.unwrap(), RevokeOutcome::Running);
    assert!(b.settle(&d, success(json!("done"), "w")).await.unwrap());
    let record = b.task(&revoked).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Revoked);
    assert_eq!(record.result, None);
    let seen = states(b.events(None, 1000).await.unwrap(), &revoked);
    assert!(!seen.contains(&TaskState::Started), "{seen:?}");
    assert_eq!(seen.last(), Some(&TaskState::Revoked));
}

/// A task handed straight to a waiting consumer (on Redis it never enters
/// a stream) is a delivery like any other: listed and counted as reserved,
/// and back in its queue once its lease expires, its holder fenced out.
async fn a_task_handed_to_a_waiting_consumer_is_reserved_like_any(backend: Backend) {
    let b = Arc::new(open(backend).await);
    let waiting = waiting_reserve(&b, "waiter", Duration::from_millis(300)).await;
    let id = submit(&b, message("handed", "default", 5)).await;
    let handed = handed_at_once(waiting).await;
    assert_eq!(handed.message.id, id);

    let reserved = b.reserved().await.unwrap();
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0].message.id, id);
    assert_eq!(reserved[0].generation, handed.generation);
    assert_eq!(reserved[0].consumer, "waiter");
    let counts = |stats: Vec<QueueStats>| {
        stats
            .into_iter()
            .find(|s| s.name == "default")
            .map(|s| (s.ready, s.reserved))
    };
    assert_eq!(counts(b.queue_stats().await.unwrap()), Some((0, 1)));

    // Redis' wait stands after the call: ended here, so the task does not
    // go back to the same consumer.
    assert!(
        b.stop_waiting("waiter", &all_queues())
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        b.maintain().await.unwrap() >= 1,
        "maintain returns the expired lease to its queue"
    );
    let fresh = take_one(&b, "fresh")
        .await
        .expect("redelivered after its lease expired");
    assert_eq!(fresh.message.id, id);
    assert!(fresh.generation > handed.generation);
    assert!(
        !b.settle(&handed, success(json!("stale"), "waiter"))
            .await
            .unwrap()
    );
    assert!(
        b.settle(&fresh, success(json!("fresh"), "fresh"))
            .await
            .unwrap()
    );
    assert_eq!(counts(b.queue_stats().await.unwrap()), Some((0, 0)));
    assert!(b.reserved().await.unwrap().is_empty());
}

/// A task handed back, or one whose ETA comes, while a consumer waits goes
/// to that consumer at once.
async fn tasks_that_come_back_go_to_a_waiting_consumer(backend: Backend) {
    let b = Arc::new(open(backend).await);
    let id = submit(&b, message("back", "default", 5)).await;
    let first = take_one(&b, "first").await.unwrap();
    let waiting = waiting_reserve(&b, "waiter", LEASE).await;
    assert!(b.release(&first).await.unwrap());
    let back = handed_at_once(waiting).await;
    assert_eq!(back.message.id, id);
    assert_eq!(back.consumer, "waiter");
    assert!(back.generation > first.generation);
    assert_eq!(back.message.attempt, first.message.attempt);
    assert_eq!(state(&b, &id).await, TaskState::Received);
    assert!(
        b.stop_waiting("waiter", &all_queues())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(b.settle(&back, success(json!(1), "waiter")).await.unwrap());

    let mut later = message("later", "default", 5);
    later.eta_ms = Some(now_ms() + 300);
    let later = submit(&b, later).await;
    let waiting = waiting_reserve(&b, "waiter", LEASE).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.maintain().await.unwrap();
    let due = handed_at_once(waiting).await;
    assert_eq!(due.message.id, later);
    assert_eq!(state(&b, &later).await, TaskState::Received);
    assert!(b.settle(&due, success(json!(2), "waiter")).await.unwrap());
}
