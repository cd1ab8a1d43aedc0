//! The binary: `hippo serve` runs the beat, `hippo schedule` drives it, and
//! two `hippo worker` processes on one Redis fire each slot once.

use super::{assert_consecutive_seconds, fired_slots, registry};
use hippo::broker::{BrokerConfig, Inspection, RedisBroker};
use hippo_integration_tests::processes::Process;
use hippo_integration_tests::serve::{Serve, hippo_api, parts};
use hippo_integration_tests::{hippo_bin, redis_url};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "scheduler-cli-key";

/// A schedules file with `fib-every-second` (and the health check off).
fn schedules_file(dir: &Path) -> PathBuf {
    let path = dir.join("test-schedules.toml");
    std::fs::write(
        &path,
        r#"
[schedules.fib-every-second]
task = "example.fib"
cron = "* * * * * *"
queue = "default"
input = { n = 10 }

[schedules.health-check]
enabled = false
"#,
    )
    .unwrap();
    path
}

fn hippo(args: &[&str], url: &str) -> Output {
    hippo_api(url, KEY, args)
}

/// `hippo serve` on the embedded broker with the schedules file, ready to
/// answer.
fn start_serve(plugins: &Path, data: &Path, extra: &[&str]) -> Serve {
    let schedules = schedules_file(data);
    Serve::command(plugins, data)
        .args(&["--schedules", schedules.to_str().unwrap()])
        .args(extra)
        .envs(&[
            ("HIPPO_API_KEY", OsStr::new(KEY)),
            ("HIPPO_LOG", OsStr::new("error")),
        ])
        .start()
}

fn listed_entry(url: &str, name: &str) -> Value {
    let (code, listed, stderr) = parts(&hippo(&["schedule", "list"], url));
    assert_eq!(code, 0, "{stderr}");
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone()
}

#[test]
fn serve_runs_the_beat_and_the_schedule_commands_drive_it() {
    let (plugins, _) = registry();
    let data = tempfile::tempdir().unwrap();
    let server = start_serve(plugins.path(), data.path(), &[]);
    let url = server.url.clone();

    // The beat in `hippo serve` fires the entry; its worker runs the task.
    let deadline = Instant::now() + Duration::from_secs(20);
    let fired = loop {
        let entry = listed_entry(&url, "fib-every-second");
        if entry["last_trigger"] == "schedule" {
            break entry;
        }
        assert!(Instant::now() < deadline, "never fired: {entry}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(fired["cron"], "* * * * * *");
    assert_eq!(fired["next_fire_times"].as_array().unwrap().len(), 5);
    let task = fired["last_task_id"].as_str().unwrap();
    let (code, result, stderr) = parts(&hippo(&["result", task, "--wait", "20"], &url));
    assert_eq!((code, &result), (0, &json!({"value": 55})), "{stderr}");
    assert_eq!(listed_entry(&url, "health-check")["enabled"], false);

    // Run by hand.
    let (code, run, stderr) = parts(&hippo(&["schedule", "run", "fib-every-second"], &url));
    assert_eq!(code, 0, "{stderr}");
    let (code, result, stderr) = parts(&hippo(
        &["result", run["task_id"].as_str().unwrap(), "--wait", "20"],
        &url,
    ));
    assert_eq!((code, &result), (0, &json!({"value": 55})), "{stderr}");
    let (code, _, stderr) = parts(&hippo(&["schedule", "run", "no-such-entry"], &url));
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown schedule"), "{stderr}");
    drop(server);

    // `--no-beat`: the API lists and runs entries, nothing fires on its own.
    let data = tempfile::tempdir().unwrap();
    let server = start_serve(plugins.path(), data.path(), &["--no-beat"]);
    let url = server.url.clone();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        listed_entry(&url, "fib-every-second")["last_task_id"],
        Value::Null
    );
    let (code, _, stderr) = parts(&hippo(&["schedule", "run", "fib-every-second"], &url));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        listed_entry(&url, "fib-every-second")["last_trigger"],
        "manual"
    );
}

#[test]
fn schedule_next_shows_when_an_expression_fires() {
    let (code, daily, stderr) = parts(&hippo(
        &["schedule", "next", "0 0 * * *", "--count", "3"],
        "http://127.0.0.1:9",
    ));
    assert_eq!(code, 0, "{stderr}");
    let times = daily["next_fire_times"].as_array().unwrap();
    assert_eq!(times.len(), 3);
    assert!(
        times
            .iter()
            .all(|t| t.as_str().unwrap().ends_with("T00:00:00Z")),
        "{daily}"
    );
    assert_eq!(daily["warning"], Value::Null);
    // The reference's mistake: only the hour set fires every minute of it.
    let (code, hour_only, _) = parts(&hippo(
        &["schedule", "next", "* 0 * * *"],
        "http://127.0.0.1:9",
    ));
    assert_eq!(code, 0);
    assert!(
        hour_only["warning"]
            .as_str()
            .unwrap()
            .contains("every minute"),
        "{hour_only}"
    );
    let minutes: Vec<&str> = hour_only["next_fire_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(minutes.iter().all(|t| t.contains("T00:")), "{minutes:?}");
    let (code, _, stderr) = parts(&hippo(
        &["schedule", "next", "0 25 * * *"],
        "http://127.0.0.1:9",
    ));
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid cron expression"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_on_redis_fire_each_slot_once() {
    let url = format!("{}/11", redis_url().trim_end_matches('/'));
    let flushed = Command::new("redis-cli")
        .args(["-u", &url, "flushdb"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(flushed.success());
    let (plugins, _) = registry();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // The workers take only memory_ops, so the fired tasks stay queued.
    let spawn = |data: &Path| {
        Process(
            Command::new(hippo_bin())
                .args(["worker", "--broker", &url, "--queues", "memory_ops"])
                .arg("--data-dir")
                .arg(data)
                .arg("--plugins")
                .arg(plugins.path())
                .arg("--schedules")
                .arg(schedules_file(data))
                .env("HIPPO_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("hippo worker starts"),
        )
    };
    let workers: Vec<Process> = dirs.iter().map(|d| spawn(d.path())).collect();
    tokio::time::sleep(Duration::from_secs(8)).await;
    drop(workers);

    let broker = RedisBroker::connect(&url, BrokerConfig::default())
        .await
        .unwrap();
    let slots = fired_slots(&broker, "fib-every-second").await;
    assert!(slots.len() >= 3, "{slots:?}");
    assert_consecutive_seconds(&slots);
    let default = broker
        .queue_stats()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.name == "default")
        .unwrap();
    assert_eq!(default.ready, slots.len() as u64, "one task per fire time");
}
