//! A plugin granted `kv` that floods the store (issue #15, item 5: 200
//! values of 1 MiB took the data directory up 1.6 GiB) meets its quota,
//! sees a refusal that names the quota and its numbers, and the next,
//! well-behaved task is served: through `hippo run` and `hippo serve`.

use super::serve_with;
use hippo_integration_tests::guest;
use hippo_integration_tests::serve::{hippo_local, parts};
use serde_json::{Value, json};
use std::path::Path;

const MIB: u64 = 1 << 20;

/// `hippo run PLUGIN TASK --input INPUT` with its data in `data`: the exit
/// code and the task's report (status, output, error).
fn run(plugin: &Path, data: &Path, task: &str, input: &Value) -> (i32, Value) {
    let output = hippo_local(&[
        "run",
        plugin.to_str().unwrap(),
        task,
        "--input",
        &input.to_string(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let (code, report, stderr) = parts(&output);
    assert!(report.is_object(), "no report: {stderr}");
    (code, report)
}

/// The output of a `hippo run` that must succeed.
#[track_caller]
fn run_ok(plugin: &Path, data: &Path, task: &str, input: Value) -> Value {
    let (code, report) = run(plugin, data, task, &input);
    assert_eq!(
        (code, &report["status"]),
        (0, &json!("SUCCESS")),
        "{report}"
    );
    report["output"].clone()
}

#[test]
fn a_kv_flood_through_hippo_run_stops_at_the_manifests_key_quota() {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let plugin = plugins.path().join("kv-hostile.wasm");
    std::fs::write(&plugin, guest("kv_hostile_guest")).unwrap();
    std::fs::write(
        plugins.path().join("kv-hostile.toml"),
        "grants = [\"log\", \"kv\"]\n[kv]\nmax_keys = 5\n",
    )
    .unwrap();

    let flood = run_ok(
        &plugin,
        data.path(),
        "kv.flood",
        json!({"count": 8, "bytes": 10}),
    );
    assert_eq!(
        flood,
        json!({
            "stored": 5,
            "refused": 3,
            "first_error": "kv: quota exceeded: 5 of 5 keys used, and this write adds 1 \
                            ([kv] max_keys in the plugin's manifest)",
            "quota_exceeded": true,
        })
    );
    // The store is the data directory's: the next run finds the quota
    // full, and fails for good (no retry can help) saying so.
    let note = json!({"key": "greeting", "text": "hello"});
    let (code, report) = run(&plugin, data.path(), "kv.note", &note);
    assert_eq!(
        (code, &report["status"]),
        (1, &json!("FAILURE")),
        "{report}"
    );
    assert_eq!(report["error"]["detail"]["kind"], "fatal", "{report}");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("kv: quota exceeded: 5 of 5 keys used")),
        "{report}"
    );
    // A well-behaved task that frees the keys, and the note fits.
    let cleared = run_ok(&plugin, data.path(), "kv.clear", json!({"count": 8}));
    assert_eq!(cleared, json!({"deleted": 5}));
    assert_eq!(run_ok(&plugin, data.path(), "kv.note", note.clone()), note);
}

#[test]
fn a_kv_flood_through_hippo_serve_stops_at_the_default_byte_quota_and_the_ceiling() {
    // The manifest asks for 1,000 keys; the operator's ceiling is 20.
    let manifest = b"grants = [\"log\", \"kv\"]\n[kv]\nmax_keys = 1000\n";
    let server = serve_with(
        &[
            ("kv-hostile.wasm", &guest("kv_hostile_guest")),
            ("kv-hostile.toml", manifest),
        ],
        &["--kv-max-keys", "20"],
    );
    let submit = |task: &str, input: Value| {
        let (code, status, stderr) = parts(&server.hippo(&[
            "submit",
            task,
            "--input",
            &input.to_string(),
            "--wait",
            "60",
        ]));
        assert_eq!(
            (code, &status["status"]),
            (0, &json!("SUCCESS")),
            "{status} {stderr}"
        );
        status["result"].clone()
    };

    // The flood: 1 MiB values, under the default 16 MiB. Keys
    // `flood-0` to `flood-14` take 110 bytes, the values 15 MiB.
    let used = 15 * MIB + 110;
    assert_eq!(
        submit("kv.flood", json!({"count": 20, "bytes": MIB})),
        json!({
            "stored": 15,
            "refused": 5,
            "first_error": format!(
                "kv: quota exceeded: {used} of {} bytes used, and this write adds {} \
                 ([kv] max_bytes in the plugin's manifest)",
                16 * MIB,
                MIB + 8
            ),
            "quota_exceeded": true,
        })
    );
    // A well-behaved task right after: there is room for a small value.
    let note = json!({"key": "greeting", "text": "hello"});
    assert_eq!(submit("kv.note", note.clone()), note);
    // Small values: the 15 keys shrink, 4 more fit under the ceiling of 20.
    assert_eq!(
        submit("kv.flood", json!({"count": 30, "bytes": 1})),
        json!({
            "stored": 19,
            "refused": 11,
            "first_error": "kv: quota exceeded: 20 of 20 keys used, and this write adds 1 \
                            ([kv] max_keys in the plugin's manifest)",
            "quota_exceeded": true,
        })
    );
    assert_eq!(
        submit("kv.clear", json!({"count": 30})),
        json!({"deleted": 19})
    );
    assert_eq!(
        submit("kv.flood", json!({"count": 3, "bytes": MIB})),
        json!({"stored": 3, "refused": 0, "first_error": null, "quota_exceeded": false})
    );
}
