//! Inspection and control: the event log, worker heartbeats, queue purges and
//! counts, unknown queues.

use super::*;

conformance!(
    event_log_is_ordered_and_bounded,
    worker_heartbeats_expire,
    purge_revokes_ready_tasks_only,
    queue_stats_count_ready_by_band_reserved_scheduled,
    unknown_queue_is_rejected,
);

async fn event_log_is_ordered_and_bounded(backend: Backend) {
    let config = BrokerConfig {
        event_log_capacity: 10,
        ..BrokerConfig::default()
    };
    let b = open_with(backend, config).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit(&b, message(&format!("e{i}"), "default", 5)).await);
    }
    for _ in 0..3 {
        let d = take_one(&b, "c").await.unwrap();
        assert_eq!(b.mark_started(&d, "w").await.unwrap(), LeaseStatus::Held);
        assert!(b.settle(&d, success(json!(null), "w")).await.unwrap());
    }
    // 3 PENDING + 3 x (RECEIVED, STARTED, SUCCESS) = 12 events, 10 kept.
    b.maintain().await.unwrap();
    let events = b.events(None, 100).await.unwrap();
    assert_eq!(events.len(), 10, "the log keeps its capacity: {events:#?}");
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "increasing seq"
    );
    assert!(
        events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "oldest first"
    );
    assert_eq!(events[9].seq - events[0].seq, 9, "the newest ten, no gaps");
    let last = &events[9];
    assert_eq!(last.state, TaskState::Success);
    assert_eq!(last.task_id, ids[2]);
    assert_eq!(last.task, "e2");
    assert_eq!(last.queue, "default");
    assert_eq!(last.worker.as_deref(), Some("w"));
    assert!(events.iter().all(|e| ids.contains(&e.task_id)));

    let after = b.events(Some(events[4].seq), 100).await.unwrap();
    assert_eq!(after, events[5..].to_vec());
    assert_eq!(b.events(None, 3).await.unwrap(), events[..3].to_vec());
    assert_eq!(
        b.events(Some(events[4].seq), 2).await.unwrap(),
        events[5..7].to_vec()
    );
    assert!(b.events(Some(last.seq), 100).await.unwrap().is_empty());
    assert_eq!(b.last_event().await.unwrap(), last.seq, "the newest seq");

    // New events continue the sequence.
    submit(&b, message("e3", "default", 5)).await;
    let newer = b.events(Some(last.seq), 100).await.unwrap();
    assert_eq!(newer.len(), 1);
    assert!(newer[0].seq > last.seq);
    assert_eq!(newer[0].state, TaskState::Pending);
    assert_eq!(b.last_event().await.unwrap(), newer[0].seq);
    let empty = open(backend).await;
    assert_eq!(
        empty.last_event().await.unwrap(),
        0,
        "before the first event"
    );
}

async fn worker_heartbeats_expire(backend: Backend) {
    let b = open(backend).await;
    // Per-task figures travel with the heartbeat, histograms and all.
    let mut figures = TaskNameFigures::default();
    let stats = ExecStats {
        fuel_used: Some(123_456),
        peak_memory_bytes: 3 << 20,
        wall_time_us: 4_200,
        ..Default::default()
    };
    figures.count(TaskState::Success, Some(&stats));
    figures.count(TaskState::Revoked, None);
    let heartbeat = |name: &str| WorkerHeartbeat {
        name: name.into(),
        hostname: "host".into(),
        pid: 4242,
        queues: queues(&["default", "memory_ops"]),
        concurrency: 4,
        active: vec!["task-1".into()],
        processed: 10,
        failed: 1,
        retried: 2,
        succeeded: 7,
        cpu_seconds: 1.25,
        rss_bytes: 50 << 20,
        started_ms: now_ms() - 60_000,
        heartbeat_ms: now_ms(),
        tasks: [("test.echo".to_owned(), figures.clone())].into(),
    };
    let short = heartbeat("host:1");
    let long = heartbeat("host:2");
    b.record_worker(&short, Duration::from_millis(700))
        .await
        .unwrap();
    b.record_worker(&long, Duration::from_secs(30))
        .await
        .unwrap();
    let mut workers = b.workers().await.unwrap();
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(workers, vec![short.clone(), long.clone()]);

    // A renewed heartbeat replaces the old one.
    let mut renewed = long.clone();
    renewed.processed = 11;
    b.record_worker(&renewed, Duration::from_secs(30))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    b.maintain().await.unwrap();
    assert_eq!(
        b.workers().await.unwrap(),
        vec![renewed],
        "the expired heartbeat is gone"
    );
}

async fn purge_revokes_ready_tasks_only(backend: Backend) {
    let b = open(backend).await;
    let mut ready = Vec::new();
    for p in [1, 5, 9] {
        ready.push(submit(&b, message("bg", "background", p)).await);
    }
    let mut later = message("bg-later", "background", 5);
    later.eta_ms = Some(now_ms() + 60_000);
    let later = submit(&b, later).await;
    let other = submit(&b, message("other", "default", 5)).await;
    let leased_id = submit(&b, message("bg-leased", "background", 0)).await;
    // Lease the low-priority one so it is running, not ready.
    let running = b
        .reserve("c", &queues(&["background"]), 4, LEASE, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(running.len(), 4);
    for d in &running {
        if d.message.id != leased_id {
            assert!(b.release(d).await.unwrap());
        }
    }
    let leased = running
        .into_iter()
        .find(|d| d.message.id == leased_id)
        .unwrap();

    assert_eq!(b.purge("background").await.unwrap(), 3);
    for id in &ready {
        assert_eq!(state(&b, id).await, TaskState::Revoked);
    }
    assert_eq!(
        state(&b, &later).await,
        TaskState::Pending,
        "scheduled tasks are not ready tasks"
    );
    assert_eq!(
        state(&b, &other).await,
        TaskState::Pending,
        "other queues are untouched"
    );
    assert_eq!(
        b.heartbeat(&leased, LEASE).await.unwrap(),
        LeaseStatus::Held,
        "running tasks are untouched"
    );
    let stats = b.queue_stats().await.unwrap();
    let bg = stats.iter().find(|s| s.name == "background").unwrap();
    assert_eq!((bg.ready, bg.reserved, bg.scheduled), (0, 1, 1));
    assert!(take(&b, "c", &queues(&["background"]), 10).await.is_empty());
    assert_eq!(b.purge("background").await.unwrap(), 0);
    assert!(b.settle(&leased, success(json!(1), "w")).await.unwrap());
    assert!(matches!(
        b.purge("no-such-queue").await,
        Err(BrokerError::UnknownQueue(_))
    ));
}

/// (ready, reserved, scheduled) of every queue, in the configured order.
async fn queue_counts(b: &Fixture) -> Vec<(u64, u64, u64)> {
    b.queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| (s.ready, s.reserved, s.scheduled))
        .collect()
}

async fn queue_stats_count_ready_by_band_reserved_scheduled(backend: Backend) {
    let b = open(backend).await;
    let stats = b.queue_stats().await.unwrap();
    let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["memory_ops", "default", "scheduled", "background"],
        "in the configured order"
    );
    assert!(
        stats
            .iter()
            .all(|s| s.ready == 0 && s.reserved == 0 && s.scheduled == 0)
    );

    submit(&b, message("m", "memory_ops", 9)).await;
    submit(&b, message("m", "memory_ops", 0)).await;
    for p in [2, 5, 8] {
        submit(&b, message("d", "default", p)).await;
    }
    let mut eta = message("s", "scheduled", 5);
    eta.eta_ms = Some(now_ms() + 60_000);
    submit(&b, eta).await;
    let taken = take(&b, "c", &queues(&["default"]), 1).await;
    assert_eq!(taken.len(), 1);

    let counts = queue_counts(&b).await;
    assert_eq!(counts, [(2, 0, 0), (2, 1, 0), (0, 0, 1), (0, 0, 0)]);
    // Ready by band: memory_ops holds a 9 and a 0; default's 8 was taken
    // first, a 5 and a 2 wait.
    let bands: Vec<BandCounts> = b
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|s| s.ready_by_band)
        .collect();
    let band = |high, normal, low| BandCounts { high, normal, low };
    assert_eq!(
        bands,
        [band(1, 0, 1), band(0, 1, 1), band(0, 0, 0), band(0, 0, 0)]
    );

    assert!(b.settle(&taken[0], success(json!(1), "w")).await.unwrap());
    let counts = queue_counts(&b).await;
    assert_eq!(counts, [(2, 0, 0), (2, 0, 0), (0, 0, 1), (0, 0, 0)]);
}

async fn unknown_queue_is_rejected(backend: Backend) {
    let b = open(backend).await;
    let err = b
        .submit(message("t", "no-such-queue", 5))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownQueue(q) if q == "no-such-queue"));
    assert!(b.queue_stats().await.unwrap().iter().all(|s| s.ready == 0));
}
