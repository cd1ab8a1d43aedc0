//! History: every attempt and its log kept after the result expired,
//! queries by every filter with cursor pages, retention by count and age,
//! long inputs and outputs kept cut.

use super::*;
use hippo_broker::{
    HistoryEntry, HistoryQuery, HistoryRetention, INPUT_KEPT_BYTES, OUTPUT_KEPT_BYTES,
};
use hippo_task::{LogLevel, LogLine, LogSource, TaskLogRecord};

conformance!(
    history_keeps_every_attempt_and_its_log_after_the_result_expired,
    history_lists_newest_first_by_every_filter_in_pages,
    history_drops_the_oldest_past_its_count_and_age,
    history_keeps_a_long_input_and_output_cut,
);

fn log_of(text: &str) -> TaskLogRecord {
    TaskLogRecord {
        lines: vec![LogLine {
            at_ms: now_ms(),
            level: LogLevel::Info,
            source: LogSource::Guest,
            message: text.to_owned(),
        }],
        dropped_lines: 2,
    }
}

fn logged(worker: &str, text: &str) -> RunMeta {
    RunMeta {
        log: log_of(text),
        ..meta(worker)
    }
}

/// Every entry of the history passing `query`, page by page of `limit`.
async fn all_pages(b: &Fixture, query: HistoryQuery) -> Vec<HistoryEntry> {
    let mut query = HistoryQuery { limit: 2, ..query };
    let mut found = Vec::new();
    for _ in 0..100 {
        let page = b.history(&query).await.expect("history");
        assert!(page.entries.len() <= 2, "a page holds at most its limit");
        found.extend(page.entries);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return found,
        }
    }
    panic!("the history did not end within 100 pages");
}

fn ids(entries: &[HistoryEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

async fn history_keeps_every_attempt_and_its_log_after_the_result_expired(backend: Backend) {
    let config = BrokerConfig {
        result_expires: Duration::from_secs(1),
        ..BrokerConfig::default()
    };
    let b = open_with(backend, config).await;
    let id = submit(&b, message("flaky", "default", 5)).await;
    assert_eq!(
        b.history_entry(&id).await.unwrap(),
        None,
        "queued: no entry"
    );

    let first = take_one(&b, "c").await.unwrap();
    let failure = TaskFailure::Retry {
        message: "upstream busy".into(),
        delay_ms: None,
    };
    let retry = Settlement::Retry {
        failure: failure.clone(),
        at_ms: now_ms(),
        meta: logged("w1", "first try"),
    };
    assert!(b.settle(&first, retry).await.unwrap());
    let waiting = b.history_entry(&id).await.unwrap().expect("an entry");
    assert_eq!(waiting.state, TaskState::Retry);
    assert_eq!(waiting.attempts.len(), 1);

    b.maintain().await.unwrap();
    let second = take_one(&b, "c").await.expect("the retry is due");
    let done = Settlement::Success {
        output: output(json!({"ok": true})),
        meta: logged("w2", "second try"),
    };
    assert!(b.settle(&second, done).await.unwrap());

    let record = b.task(&id).await.unwrap().expect("record");
    let last_run = record.last_run.expect("last run");
    assert!(last_run.log.is_empty(), "the record keeps no log");

    let entry = b.history_entry(&id).await.unwrap().expect("an entry");
    assert_eq!(entry.task, "flaky");
    assert_eq!(entry.queue, "default");
    assert_eq!(entry.state, TaskState::Success);
    assert_eq!(entry.worker.as_deref(), Some("w2"));
    assert_eq!(entry.result, Some(output(json!({"ok": true}))));
    assert_eq!(entry.input, message("flaky", "default", 5).input);
    assert!(!entry.input_truncated);
    assert_eq!(entry.acting_for, None);
    assert_eq!(entry.submitted_ms, record.message.submitted_ms);
    let states: Vec<_> = entry
        .attempts
        .iter()
        .map(|a| (a.attempt, a.state))
        .collect();
    assert_eq!(states, [(1, TaskState::Retry), (2, TaskState::Success)]);
    assert_eq!(entry.attempts[0].error, Some(failure));
    let run = entry.attempts[0]
        .run
        .as_ref()
        .expect("the first attempt ran");
    assert_eq!(run.worker, "w1");
    assert_eq!(run.stats, meta("w1").stats, "its figures are kept");
    assert!(run.log.is_empty(), "logs are kept apart");

    let logs = b.task_log(&id).await.unwrap();
    let texts: Vec<_> = logs
        .iter()
        .map(|l| {
            (
                l.attempt,
                l.log.lines[0].message.as_str(),
                l.log.dropped_lines,
            )
        })
        .collect();
    assert_eq!(texts, [(1, "first try", 2), (2, "second try", 2)]);

    // The result expires; the history and the logs stay.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    b.maintain().await.unwrap();
    assert_eq!(b.task(&id).await.unwrap(), None, "the result expired");
    assert_eq!(b.history_entry(&id).await.unwrap(), Some(entry));
    assert_eq!(b.task_log(&id).await.unwrap(), logs);
}

async fn history_lists_newest_first_by_every_filter_in_pages(backend: Backend) {
    let b = open(backend).await;
    let mut ended = Vec::new();
    // Six tasks: two names, two queues, two workers, three final states.
    let plan = [
        ("mail.send", "default", "w1", TaskState::Success),
        ("mail.send", "background", "w2", TaskState::Failure),
        ("index.build", "default", "w1", TaskState::Failure),
        ("index.build", "background", "w2", TaskState::Success),
        ("mail.send", "default", "w2", TaskState::Success),
    ];
    for (task, queue, worker, state) in plan {
        let id = submit(&b, message(task, queue, 5)).await;
        let d = take(&b, "c", &queues(&[queue]), 1).await.pop().unwrap();
        let settlement = match state {
            TaskState::Success => success(json!(1), worker),
            _ => Settlement::Failure {
                failure: TaskFailure::Fatal {
                    message: "no".into(),
                },
                dead_letter: false,
                meta: meta(worker),
            },
        };
        assert!(b.settle(&d, settlement).await.unwrap());
        ended.push(id);
        // Distinct times, so that the order is the order of the plan.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let revoked = submit(&b, message("index.build", "default", 5)).await;
    assert_eq!(b.revoke(&revoked).await.unwrap(), RevokeOutcome::Queued);
    ended.push(revoked.clone());
    let newest_first: Vec<&str> = ended.iter().rev().map(String::as_str).collect();

    let everything = all_pages(&b, HistoryQuery::default()).await;
    assert_eq!(
        ids(&everything),
        newest_first,
        "newest first, every page once"
    );
    assert!(
        everything
            .windows(2)
            .all(|w| w[0].updated_ms >= w[1].updated_ms)
    );
    let revoked_entry = &everything[0];
    assert_eq!(revoked_entry.state, TaskState::Revoked);
    assert_eq!(revoked_entry.attempts.len(), 1);
    assert_eq!(revoked_entry.attempts[0].run, None, "it never ran");

    let pick = |keep: &dyn Fn(usize) -> bool| -> Vec<&str> {
        newest_first
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(newest_first.len() - 1 - i))
            .map(|(_, id)| *id)
            .collect()
    };
    let query = |f: fn(&mut HistoryQuery)| {
        let mut q = HistoryQuery::default();
        f(&mut q);
        q
    };
    let cases: Vec<(&str, HistoryQuery, Vec<&str>)> = vec![
        (
            "task",
            query(|q| q.task = Some("mail.send".into())),
            pick(&|i| [0, 1, 4].contains(&i)),
        ),
        (
            "state",
            query(|q| q.state = Some(TaskState::Failure)),
            pick(&|i| [1, 2].contains(&i)),
        ),
        (
            "task and state",
            query(|q| {
                q.task = Some("index.build".into());
                q.state = Some(TaskState::Success);
            }),
            pick(&|i| i == 3),
        ),
        (
            "queue",
            query(|q| q.queue = Some("background".into())),
            pick(&|i| [1, 3].contains(&i)),
        ),
        (
            "worker",
            query(|q| q.worker = Some("w1".into())),
            pick(&|i| [0, 2].contains(&i)),
        ),
        (
            "worker and queue",
            query(|q| {
                q.worker = Some("w2".into());
                q.queue = Some("default".into());
            }),
            pick(&|i| i == 4),
        ),
        (
            "text in the name, any case",
            query(|q| q.text = Some("INDEX".into())),
            pick(&|i| [2, 3, 5].contains(&i)),
        ),
        (
            "state revoked",
            query(|q| q.state = Some(TaskState::Revoked)),
            pick(&|i| i == 5),
        ),
        (
            "an unknown name",
            query(|q| q.task = Some("nothing".into())),
            vec![],
        ),
    ];
    for (what, q, expected) in cases {
        assert_eq!(ids(&all_pages(&b, q).await), expected, "filter: {what}");
    }
    let by_id = |i: usize| everything.iter().find(|e| e.id == ended[i]).unwrap();
    let text = ended[3][ended[3].len() - 8..].to_uppercase();
    assert_eq!(
        ids(&all_pages(
            &b,
            HistoryQuery {
                text: Some(text),
                ..Default::default()
            }
        )
        .await),
        [ended[3].as_str()],
        "text in the id"
    );
    let (from, to) = (by_id(1).updated_ms, by_id(3).updated_ms);
    let window = all_pages(
        &b,
        HistoryQuery {
            since_ms: Some(from),
            until_ms: Some(to),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&window), pick(&|i| (1..=3).contains(&i)), "time range");
}

async fn history_drops_the_oldest_past_its_count_and_age(backend: Backend) {
    let config = BrokerConfig {
        history: HistoryRetention {
            max_age: Duration::from_secs(2),
            max_tasks: 3,
        },
        ..BrokerConfig::default()
    };
    let b = open_with(backend, config).await;
    let mut ended = Vec::new();
    for n in 0..5 {
        let id = submit(&b, message(&format!("t{n}"), "default", 5)).await;
        let d = take_one(&b, "c").await.unwrap();
        let done = Settlement::Success {
            output: output(json!(n)),
            meta: logged("w", "hello"),
        };
        assert!(b.settle(&d, done).await.unwrap());
        ended.push(id);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(all_pages(&b, HistoryQuery::default()).await.len(), 5);
    b.maintain().await.unwrap();
    let kept = all_pages(&b, HistoryQuery::default()).await;
    let newest: Vec<&str> = ended[2..].iter().rev().map(String::as_str).collect();
    assert_eq!(ids(&kept), newest, "the three newest are kept");
    assert_eq!(b.history_entry(&ended[0]).await.unwrap(), None);
    assert!(
        b.task_log(&ended[0]).await.unwrap().is_empty(),
        "logs go too"
    );
    let by_name = HistoryQuery {
        task: Some("t0".into()),
        ..Default::default()
    };
    assert!(all_pages(&b, by_name).await.is_empty(), "and index entries");

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    b.maintain().await.unwrap();
    assert!(
        all_pages(&b, HistoryQuery::default()).await.is_empty(),
        "older than the age kept"
    );
    assert_eq!(b.history_entry(&ended[4]).await.unwrap(), None);
}

async fn history_keeps_a_long_input_and_output_cut(backend: Backend) {
    let b = open(backend).await;
    let long = "é".repeat(INPUT_KEPT_BYTES);
    let input = json!({"text": long, "user_id": "alice"});
    let mut settled = TaskMessage::new("big", "default", input.clone());
    settled.priority = 5;
    let settled = submit(&b, settled).await;
    let d = take_one(&b, "c").await.unwrap();
    let big_output = json!({"echo": "ü".repeat(OUTPUT_KEPT_BYTES)});
    assert!(
        b.settle(&d, success(big_output.clone(), "w"))
            .await
            .unwrap()
    );
    let record = b.task(&settled).await.unwrap().expect("record");
    assert_eq!(
        record.result,
        Some(output(big_output)),
        "the record keeps it all"
    );
    let entry = b.history_entry(&settled).await.unwrap().expect("an entry");
    assert!(entry.result_truncated);
    let kept = entry.result.expect("a result").to_value();
    let kept = kept.as_str().expect("kept as text");
    assert!(kept.len() <= OUTPUT_KEPT_BYTES && kept.starts_with("{\"echo\":\"üü"));
    let revoked = submit(&b, TaskMessage::new("big", "default", input)).await;
    assert_eq!(b.revoke(&revoked).await.unwrap(), RevokeOutcome::Queued);
    for id in [settled, revoked] {
        let entry = b.history_entry(&id).await.unwrap().expect("an entry");
        assert!(entry.input_truncated, "{id}: cut");
        let kept = entry.input.as_str().expect("kept as text");
        assert!(kept.len() <= INPUT_KEPT_BYTES, "{id}: {} bytes", kept.len());
        assert!(kept.starts_with("{\"text\":\"éé"), "{id}: {}", &kept[..20]);
        assert_eq!(entry.task, "big");
        assert_eq!(entry.acting_for.as_deref(), Some("alice"), "{id}");
        assert!(entry.submitted_ms > 0, "{id}: its submission time");
    }
}
