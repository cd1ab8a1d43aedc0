//! Limits: whether a submitter may raise a task's limits travels with the
//! task, so the runtime that runs it (which lowers the limits of a task whose
//! submitter may not raise them) decides by the original submission on every
//! path: a retry, a dead-letter replay, a redelivery.

use super::*;

conformance!(the_authority_to_raise_limits_survives_retries_and_replays);

async fn the_authority_to_raise_limits_survives_retries_and_replays(backend: Backend) {
    let b = open(backend).await;
    for authorised in [true, false] {
        let mut m = message("raiser", "default", 5);
        m.limits.memory_bytes = Some(1 << 30);
        m.may_raise_limits = authorised;
        let id = submit(&b, m).await;
        let keeps_it = |d: &Delivery, path: &str| {
            assert_eq!(
                (d.message.may_raise_limits, d.message.limits.memory_bytes),
                (authorised, Some(1 << 30)),
                "{path}"
            );
        };
        let first = take_one(&b, "w").await.expect("the submission is ready");
        keeps_it(&first, "first delivery");
        let retry = Settlement::Retry {
            failure: TaskFailure::Retry {
                message: "again".into(),
                delay_ms: None,
            },
            at_ms: now_ms(),
            meta: meta("w"),
        };
        assert!(b.settle(&first, retry).await.unwrap());
        b.maintain().await.unwrap();
        let second = take_one(&b, "w").await.expect("the retry is due");
        assert_eq!(second.message.attempt, 2);
        keeps_it(&second, "retry");
        let failure = Settlement::Failure {
            failure: TaskFailure::Fatal {
                message: "broke".into(),
            },
            dead_letter: true,
            meta: meta("w"),
        };
        assert!(b.settle(&second, failure).await.unwrap());
        let replayed = b.replay_dead_letter(&id).await.unwrap().expect("a letter");
        let third = take_one(&b, "w").await.expect("the replay is ready");
        assert_eq!(third.message.id, replayed);
        keeps_it(&third, "dead-letter replay");
        assert!(b.settle(&third, success(json!(null), "w")).await.unwrap());
    }
}
