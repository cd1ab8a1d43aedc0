//! Results: waiting for one, idempotent submission, expiry of stored results.

use super::*;

conformance!(
    wait_returns_as_soon_as_the_task_settles,
    wait_returns_the_record_at_timeout,
    idempotency_key_returns_the_first_id,
    results_expire,
);

async fn wait_returns_as_soon_as_the_task_settles(backend: Backend) {
    let b = Arc::new(open(backend).await);
    let id = submit(&b, message("awaited", "default", 5)).await;
    let d = take_one(&b, "c").await.unwrap();
    let settler = {
        let b = b.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                b.settle(&d, success(json!({"answer": 42}), "w"))
                    .await
                    .unwrap()
            );
        })
    };
    let started = Instant::now();
    let record = b
        .wait(&id, Duration::from_secs(20))
        .await
        .unwrap()
        .expect("record");
    let elapsed = started.elapsed();
    settler.await.unwrap();
    assert_eq!(record.state, TaskState::Success);
    assert_eq!(record.result, Some(output(json!({"answer": 42}))));
    assert_eq!(
        Some(&record),
        b.task(&id).await.unwrap().as_ref(),
        "a waiter gets the stored record"
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "returned before the task settled: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "wait returned {elapsed:?} after submit, long after the settle"
    );

    // Many waiters on one task, and an already-finished task returns at once.
    let id2 = submit(&b, message("awaited-2", "default", 5)).await;
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let b = b.clone();
            let id2 = id2.clone();
            tokio::spawn(async move { b.wait(&id2, Duration::from_secs(20)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let d2 = take_one(&b, "c").await.unwrap();
    let started = Instant::now();
    // A `null` output reads as no result, however the record reaches a waiter.
    assert!(b.settle(&d2, success(json!(null), "w")).await.unwrap());
    for w in waiters {
        let record = w.await.unwrap().unwrap().unwrap();
        assert_eq!(record.state, TaskState::Success);
        assert_eq!(record.result, None);
        assert_eq!(Some(&record), b.task(&id2).await.unwrap().as_ref());
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let started = Instant::now();
    assert_eq!(
        b.wait(&id, Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap()
            .state,
        TaskState::Success
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

async fn wait_returns_the_record_at_timeout(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("never-runs", "default", 5)).await;
    let started = Instant::now();
    let record = b
        .wait(&id, Duration::from_millis(400))
        .await
        .unwrap()
        .expect("the record, unfinished");
    let elapsed = started.elapsed();
    assert_eq!(record.state, TaskState::Pending);
    assert!(
        elapsed >= Duration::from_millis(390),
        "returned early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "overslept: {elapsed:?}");

    let started = Instant::now();
    assert!(
        b.wait("no-such-task", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "an unknown task is answered at once"
    );
}

async fn idempotency_key_returns_the_first_id(backend: Backend) {
    let b = open(backend).await;
    let mut first = message("once", "default", 5);
    first.idempotency_key = Some("order-17".into());
    let mut again = message("once", "default", 5);
    again.idempotency_key = Some("order-17".into());
    let mut other = message("once", "default", 5);
    other.idempotency_key = Some("order-18".into());

    let a = b.submit(first.clone()).await.unwrap();
    assert!(a.created);
    assert_eq!(a.task_id, first.id);
    let dup = b.submit(again.clone()).await.unwrap();
    assert!(!dup.created);
    assert_eq!(dup.task_id, first.id, "the first task's id");
    assert!(
        b.task(&again.id).await.unwrap().is_none(),
        "the duplicate was not stored"
    );
    let c = b.submit(other.clone()).await.unwrap();
    assert!(c.created);

    let got = take(&b, "c", &all_queues(), 10).await;
    let mut ids: Vec<&str> = got.iter().map(|d| d.message.id.as_str()).collect();
    ids.sort();
    let mut want = [first.id.as_str(), other.id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    for d in &got {
        assert!(b.settle(d, success(json!(1), "w")).await.unwrap());
    }
    // Still inside the window after the first task finished.
    assert_eq!(b.submit(again).await.unwrap().task_id, first.id);
}

async fn results_expire(backend: Backend) {
    let config = BrokerConfig {
        result_expires: Duration::from_secs(1),
        ..BrokerConfig::default()
    };
    let b = open_with(backend, config).await;
    let id = submit(&b, message("short-lived", "default", 5)).await;
    let pending = submit(&b, message("still-queued", "default", 1)).await;
    let d = take_one(&b, "c").await.unwrap();
    assert_eq!(d.message.id, id);
    assert!(
        b.settle(&d, success(json!("gone soon"), "w"))
            .await
            .unwrap()
    );
    assert_eq!(state(&b, &id).await, TaskState::Success);

    if let Some((redis, url)) = &b.redis {
        let client = ::redis::Client::open(url.as_str()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(redis.task_key(&id))
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(
            pttl > 0 && pttl <= 1000,
            "the finished record's key carries the result TTL (PTTL {pttl})"
        );
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(redis.task_key(&pending))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(pttl, -1, "an unfinished task never expires");
    }

    tokio::time::sleep(Duration::from_millis(2_000)).await;
    b.maintain().await.unwrap();
    assert!(b.task(&id).await.unwrap().is_none(), "the result expired");
    assert!(
        b.wait(&id, Duration::from_millis(100))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        state(&b, &pending).await,
        TaskState::Pending,
        "unfinished tasks do not expire"
    );
}
