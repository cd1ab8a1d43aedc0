//! Failures and stops: dead letters, revocation of queued and running tasks,
//! expiry.

use super::*;

conformance!(
    dead_letters_list_replay_and_purge,
    revoked_queued_task_never_starts,
    revoked_running_task_is_reported,
    expired_task_never_starts,
    the_task_behind_an_expired_one_is_handed_out,
);

async fn dead_letters_list_replay_and_purge(backend: Backend) {
    let b = open(backend).await;
    assert!(b.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(b.dead_letter_count().await.unwrap(), 0);
    let dead = fail(&b, "dead", true).await;
    let not_kept = fail(&b, "not-kept", false).await;
    assert_eq!(state(&b, &not_kept).await, TaskState::Failure);

    let letters = b.dead_letters(10).await.unwrap();
    assert_eq!(
        letters.len(),
        1,
        "only failures flagged dead_letter are kept"
    );
    assert_eq!(b.dead_letter_count().await.unwrap(), 1);
    assert_eq!(letters[0].message.id, dead);
    assert_eq!(letters[0].state, TaskState::Failure);
    assert_eq!(
        letters[0].error,
        Some(TaskFailure::Fatal {
            message: "dead broke".into()
        })
    );

    let replayed = b
        .replay_dead_letter(&dead)
        .await
        .unwrap()
        .expect("a new task id");
    assert_ne!(replayed, dead);
    let record = b.task(&replayed).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Pending);
    assert_eq!(record.message.attempt, 1, "a replay is a first attempt");
    assert_eq!(record.message.task, "dead");
    assert_eq!(record.message.input, letters[0].message.input);
    assert_eq!(record.message.idempotency_key, None);
    assert!(
        b.dead_letters(10).await.unwrap().is_empty(),
        "a replayed letter leaves the queue"
    );
    assert_eq!(
        b.replay_dead_letter(&dead).await.unwrap(),
        None,
        "replayed once only"
    );
    assert_eq!(b.replay_dead_letter("no-such-task").await.unwrap(), None);
    assert_eq!(b.replay_dead_letter(&not_kept).await.unwrap(), None);
    assert_eq!(
        state(&b, &dead).await,
        TaskState::Failure,
        "the original record stays as it was"
    );
    let d = take_one(&b, "c").await.expect("the replay is ready");
    assert_eq!(d.message.id, replayed);
    assert!(b.settle(&d, success(json!(1), "w")).await.unwrap());

    let first = fail(&b, "first", true).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = fail(&b, "second", true).await;
    let ids: Vec<String> = b
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.message.id)
        .collect();
    assert_eq!(ids, [second.clone(), first.clone()], "newest first");
    assert_eq!(b.dead_letters(1).await.unwrap().len(), 1);
    assert_eq!(b.dead_letter_count().await.unwrap(), 2);
    assert_eq!(b.purge_dead_letters().await.unwrap(), 2);
    assert_eq!(b.dead_letter_count().await.unwrap(), 0);
    assert!(b.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(b.purge_dead_letters().await.unwrap(), 0);
    assert_eq!(b.replay_dead_letter(&first).await.unwrap(), None);
}

/// Submits a task that fails for good on its last attempt; returns its id.
async fn fail(b: &Fixture, task: &str, dead_letter: bool) -> String {
    let mut m = message(task, "default", 5);
    m.attempt = 4;
    m.idempotency_key = Some(format!("key-{task}-{}", m.id));
    let id = submit(b, m).await;
    let d = take_one(b, "c").await.expect("the failing task");
    assert_eq!(d.message.id, id);
    let failure = TaskFailure::Fatal {
        message: format!("{task} broke"),
    };
    assert!(
        b.settle(
            &d,
            Settlement::Failure {
                failure,
                dead_letter,
                meta: meta("w")
            }
        )
        .await
        .unwrap()
    );
    id
}

async fn revoked_queued_task_never_starts(backend: Backend) {
    let b = open(backend).await;
    let id = submit(&b, message("doomed", "default", 5)).await;
    let mut eta = message("doomed-later", "default", 5);
    eta.eta_ms = Some(now_ms() + 300);
    let eta_id = submit(&b, eta).await;
    let keep = submit(&b, message("kept", "default", 5)).await;

    assert_eq!(b.revoke(&id).await.unwrap(), RevokeOutcome::Queued);
    assert_eq!(b.revoke(&eta_id).await.unwrap(), RevokeOutcome::Queued);
    assert_eq!(state(&b, &id).await, TaskState::Revoked);
    assert_eq!(state(&b, &eta_id).await, TaskState::Revoked);
    assert_eq!(b.revoke(&id).await.unwrap(), RevokeOutcome::AlreadyFinished);
    assert_eq!(
        b.revoke("no-such-task").await.unwrap(),
        RevokeOutcome::Unknown
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    b.maintain().await.unwrap();
    let got = take(&b, "c", &all_queues(), 10).await;
    assert_eq!(
        got.iter()
            .map(|d| d.message.id.as_str())
            .collect::<Vec<_>>(),
        [keep.as_str()]
    );
    assert!(b.scheduled(10).await.unwrap().is_empty());
    assert_eq!(
        b.wait(&id, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap()
            .state,
        TaskState::Revoked
    );
}

async fn revoked_running_task_is_reported(backend: Backend) {
    let b = open(backend).await;
    let mut feed = b.revocations();
    let id = submit(&b, message("running", "default", 5)).await;
    let d = take_one(&b, "c").await.unwrap();
    assert_eq!(b.mark_started(&d, "w").await.unwrap(), LeaseStatus::Held);

    assert_eq!(b.revoke(&id).await.unwrap(), RevokeOutcome::Running);
    let revoked = tokio::time::timeout(Duration::from_secs(5), feed.recv())
        .await
        .expect("the revocation arrives on the live feed")
        .expect("feed open");
    assert_eq!(revoked, id);
    assert_eq!(
        b.heartbeat(&d, LEASE).await.unwrap(),
        LeaseStatus::Revoked,
        "stored, not only broadcast"
    );
    assert_eq!(b.heartbeat(&d, LEASE).await.unwrap(), LeaseStatus::Revoked);
    assert!(!state(&b, &id).await.is_terminal(), "the worker settles it");

    assert!(
        b.settle(
            &d,
            Settlement::Revoked {
                meta: Some(meta("w"))
            }
        )
        .await
        .unwrap()
    );
    let record = b.task(&id).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Revoked);
    assert_eq!(b.revoke(&id).await.unwrap(), RevokeOutcome::AlreadyFinished);
    assert!(take_one(&b, "c").await.is_none());
}

async fn expired_task_never_starts(backend: Backend) {
    let b = open(backend).await;
    let mut m = message("stale", "default", 5);
    m.expires_ms = Some(now_ms() - 1);
    let id = submit(&b, m).await;
    assert!(
        take_one(&b, "c").await.is_none(),
        "an expired task is not handed out"
    );
    assert_eq!(state(&b, &id).await, TaskState::Revoked);
    assert!(
        b.queue_stats()
            .await
            .unwrap()
            .iter()
            .all(|s| s.ready == 0 && s.reserved == 0)
    );
}

/// A reserve that ends an expired task goes on to the next one: it does
/// not come back empty while tasks are ready.
async fn the_task_behind_an_expired_one_is_handed_out(backend: Backend) {
    let b = open(backend).await;
    let mut m = message("stale", "default", 5);
    m.expires_ms = Some(now_ms() - 1);
    let stale = submit(&b, m).await;
    let fresh = submit(&b, message("fresh", "default", 5)).await;
    let taken = take_one(&b, "c")
        .await
        .expect("the fresh task is handed out");
    assert_eq!(taken.message.id, fresh);
    assert_eq!(state(&b, &stale).await, TaskState::Revoked);
}
