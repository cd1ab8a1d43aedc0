//! Names and namespaces cannot be taken over (issue #15, item 3), tried as a
//! hostile plugin author would: a file `aaa-hijack.wasm` (sorting before
//! `memory.wasm`) declaring `memory.create` and `memory.recall`; a copy of a
//! plugin under another file name, declaring the same plugin name to read
//! its key-value keys; a clash at a cold start with no ledger; a refused
//! upload or manifest that must leave nothing behind. Each through the
//! registry in process (restarted as a new registry over the same folder)
//! and through the `hippo` binary (`hippo serve` restarted over the same
//! folders, `hippo plugins`, `hippo run`), with a well-behaved task right
//! after.

use hippo::broker::{BrokerConfig, EmbeddedBroker, KeyValue, KvSpace, SharedBroker};
use hippo::runtime::{HostServices, PluginRegistry, Runtime, RuntimeConfig, TaskRequest};
use hippo_integration_tests::serve::{Serve, hippo_local, parts};
use hippo_integration_tests::{copy_memory_plugins, guest, output, runtime};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The ownership ledger the registry keeps in the plugins folder.
const LEDGER: &str = ".hippo-names.json";
/// The manifest the keeper plugin needs (it imports `kv`).
const KEEPER_MANIFEST: &str = "grants = [\"log\", \"progress\", \"deadline\", \"kv\"]\n";
const KEY: &str = "names-test-key";

/// Puts the keeper plugin (and its manifest) into `dir` as `{deployment}.wasm`.
fn put_keeper(dir: &Path, deployment: &str) {
    std::fs::write(
        dir.join(format!("{deployment}.wasm")),
        guest("impostor_keeper"),
    )
    .unwrap();
    std::fs::write(dir.join(format!("{deployment}.toml")), KEEPER_MANIFEST).unwrap();
}

fn remove_plugin_files(dir: &Path, deployment: &str) {
    for extension in ["wasm", "toml"] {
        std::fs::remove_file(dir.join(format!("{deployment}.{extension}"))).unwrap();
    }
}

/// The names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

/// A fresh registry (a restart) over `dir`, scanned.
fn restart(runtime: Arc<Runtime>, dir: &Path, cache: &Path) -> PluginRegistry {
    let cache = runtime.open_cache(cache).unwrap();
    let registry = PluginRegistry::new(runtime, dir, Some(cache));
    registry.scan().unwrap();
    registry
}

/// Why the registry refuses `file`.
#[track_caller]
fn refusal(registry: &PluginRegistry, file: &str) -> String {
    registry
        .rejections()
        .into_iter()
        .find(|r| r.path.file_name().is_some_and(|n| n == file))
        .unwrap_or_else(|| panic!("{file} is not refused: {:?}", registry.plugins()))
        .reason
}

#[test]
fn a_hijacker_sorting_before_memory_never_gets_its_tasks_across_restarts() {
    let plugins = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    copy_memory_plugins(plugins.path());
    std::fs::write(
        plugins.path().join("aaa-hijack.wasm"),
        guest("impostor_hijack"),
    )
    .unwrap();
    // A cold start with no ledger, a restart with it, and one with the
    // ledger lost: the built-in's names are reserved in each.
    for start in ["cold, no ledger", "restart", "restart, ledger lost"] {
        if start == "restart, ledger lost" {
            std::fs::remove_file(plugins.path().join(LEDGER)).unwrap();
        }
        let registry = restart(runtime(), plugins.path(), cache.path());
        for task in ["memory.create", "memory.recall"] {
            let plugin = registry.resolve(task).expect("the memory task is served");
            assert_eq!(
                (plugin.deployment.as_str(), plugin.name.as_str()),
                ("memory", "memory"),
                "{start}: {task}"
            );
        }
        let reason = refusal(&registry, "aaa-hijack.wasm");
        assert!(
            reason.contains("reserved for the built-in plugin deployed as `memory.wasm`"),
            "{start}: {reason}"
        );
        assert!(
            registry
                .plugins()
                .iter()
                .all(|p| p.deployment != "aaa-hijack"),
            "{start}"
        );
    }
}

#[test]
fn a_clash_at_a_cold_start_refuses_every_party_and_the_first_deployed_then_keeps_its_names() {
    let plugins = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    put_keeper(plugins.path(), "b-keeper");
    put_keeper(plugins.path(), "c-keeper");
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();

    // Cold start, no ledger: neither copy gets `keeper` or its tasks.
    let registry = restart(runtime(), plugins.path(), cache.path());
    for (file, other) in [
        ("b-keeper.wasm", "c-keeper.wasm"),
        ("c-keeper.wasm", "b-keeper.wasm"),
    ] {
        let reason = refusal(&registry, file);
        assert!(
            reason.contains(&format!("also declared by `{other}`"))
                && reason.contains("no file owns it"),
            "{file}: {reason}"
        );
    }
    assert!(registry.resolve("keeper.get").is_none());
    // The rest serves.
    let echo = registry.resolve("test.echo").unwrap();
    let answer = registry.runtime().execute_blocking(
        &echo,
        &TaskRequest::new("test.echo", br#""still serving""#.to_vec()),
    );
    assert_eq!(output(&answer), json!("still serving"));

    // One party leaves: the other is admitted and owns the names.
    remove_plugin_files(plugins.path(), "c-keeper");
    registry.scan().unwrap();
    assert_eq!(
        registry.resolve("keeper.get").unwrap().deployment,
        "b-keeper"
    );
    drop(registry);

    // A newcomer sorting first is refused, now and after a restart.
    put_keeper(plugins.path(), "a-keeper");
    for start in ["drop-in", "restart"] {
        let registry = restart(runtime(), plugins.path(), cache.path());
        assert_eq!(
            registry.resolve("keeper.get").unwrap().deployment,
            "b-keeper",
            "{start}"
        );
        let reason = refusal(&registry, "a-keeper.wasm");
        assert!(
            reason.contains("already provided by `b-keeper.wasm`"),
            "{start}: {reason}"
        );
    }
}

/// A runtime whose tasks reach `broker` as their key-value store.
fn runtime_with_kv(broker: &SharedBroker, tokio: &tokio::runtime::Runtime) -> Arc<Runtime> {
    let services = HostServices {
        kv: Some(broker.clone() as Arc<dyn KeyValue>),
        handle: Some(tokio.handle().clone()),
        ..HostServices::default()
    };
    Arc::new(Runtime::with_services(RuntimeConfig::default(), services).unwrap())
}

/// Runs `task` with `input` on whichever plugin the registry resolves it to.
#[track_caller]
fn run_task(registry: &PluginRegistry, task: &str, input: Value) -> Value {
    let plugin = registry
        .resolve(task)
        .unwrap_or_else(|| panic!("{task} is not served"));
    output(&registry.runtime().execute_blocking(
        &plugin,
        &TaskRequest::new(task, input.to_string().into_bytes()),
    ))
}

#[test]
fn an_impostor_declaring_a_plugins_name_cannot_read_its_keys_after_a_restart() {
    let plugins = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let broker: SharedBroker = Arc::new(
        tokio
            .block_on(EmbeddedBroker::open(data.path(), BrokerConfig::default()))
            .unwrap(),
    );
    put_keeper(plugins.path(), "keeper");
    let registry = restart(
        runtime_with_kv(&broker, &tokio),
        plugins.path(),
        cache.path(),
    );
    let stored = run_task(
        &registry,
        "keeper.put",
        json!({"key": "secret", "value": "s3cret"}),
    );
    assert_eq!(stored, json!({"value": "s3cret"}));
    drop(registry);

    // The same component under a file name sorting first, after a restart:
    // refused, and the keeper's tasks still reach the keeper.
    put_keeper(plugins.path(), "aaa-evil");
    let registry = restart(
        runtime_with_kv(&broker, &tokio),
        plugins.path(),
        cache.path(),
    );
    assert!(refusal(&registry, "aaa-evil.wasm").contains("already provided by `keeper.wasm`"));
    assert_eq!(registry.resolve("keeper.get").unwrap().deployment, "keeper");
    assert_eq!(
        run_task(&registry, "keeper.get", json!({"key": "secret"})),
        json!({"value": "s3cret"})
    );
    drop(registry);

    // The keeper is gone: the impostor gets the free names after a restart,
    // declaring the name `keeper`, but its keys are its deployment's.
    remove_plugin_files(plugins.path(), "keeper");
    let registry = restart(
        runtime_with_kv(&broker, &tokio),
        plugins.path(),
        cache.path(),
    );
    let impostor = registry.resolve("keeper.get").unwrap();
    assert_eq!(
        (impostor.deployment.as_str(), impostor.name.as_str()),
        ("aaa-evil", "keeper")
    );
    assert_eq!(
        run_task(&registry, "keeper.get", json!({"key": "secret"})),
        json!({"value": null}),
        "the impostor read the keeper's key"
    );
    run_task(
        &registry,
        "keeper.put",
        json!({"key": "secret", "value": "overwritten?"}),
    );
    let stored = |key: &str| {
        tokio
            .block_on(broker.kv_get(KvSpace::Host, key))
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(stored("keeper/secret").as_deref(), Some("s3cret"));
    assert_eq!(stored("aaa-evil/secret").as_deref(), Some("overwritten?"));
}

// ---- through the binary ----

/// `hippo serve` over given folders with the admin key `KEY`, its log (WARN
/// and up) in a file; dropping it and a new `start` over the same folders is
/// a restart.
struct Service(Serve);

impl Service {
    /// Starts `hippo serve` (with the memory services when `memory`) and
    /// waits until it listens. Its log goes to `log`.
    fn start(plugins: &Path, data: &Path, memory: bool, log: &Path) -> Service {
        let args: &[&str] = if memory { &[] } else { &["--no-memory"] };
        let serve = Serve::command(plugins, data)
            .args(args)
            .envs(&[("HIPPO_API_KEY", OsStr::new(KEY))])
            .log_to(log)
            .start();
        Service(serve)
    }

    /// Sends a request with the admin key; the status and the JSON answer.
    async fn call(&self, method: &str, path: &str, body: Option<(Vec<u8>, &str)>) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut request = client
            .request(method.parse().unwrap(), format!("{}{path}", self.0.url))
            .bearer_auth(KEY)
            .timeout(Duration::from_secs(120));
        if let Some((bytes, content_type)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// `PUT /api/v1/plugins/{name}` of `wasm` answers 409 with a message
    /// containing `reason`.
    async fn assert_upload_conflicts(&self, name: &str, wasm: Vec<u8>, reason: &str) {
        let path = format!("/api/v1/plugins/{name}");
        let (status, answer) = self
            .call("PUT", &path, Some((wasm, "application/wasm")))
            .await;
        assert_eq!(status, 409, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{answer}");
    }

    async fn plugins(&self) -> Value {
        let (status, listing) = self.call("GET", "/api/v1/plugins", None).await;
        assert_eq!(status, 200, "{listing}");
        listing
    }

    /// Submits `task` and waits for it to finish; its status.
    async fn run(&self, task: &str, input: Value) -> Value {
        let body = json!({"task": task, "input": input})
            .to_string()
            .into_bytes();
        let (status, answer) = self
            .call(
                "POST",
                "/api/v1/tasks/submit?wait=60",
                Some((body, "application/json")),
            )
            .await;
        assert_eq!(status, 200, "{task}: {answer}");
        answer
    }

    /// A well-behaved task right after a hostile one: the service still serves.
    async fn still_serves(&self) {
        let answer = self.run("test.echo", json!({"still": "serving"})).await;
        assert_eq!(
            (&answer["status"], &answer["result"]),
            (&json!("SUCCESS"), &json!({"still": "serving"})),
            "{answer}"
        );
    }

    fn stop(self) -> String {
        self.0.log()
    }

    /// Runs `hippo ARGS` against this service; the exit code, stdout as JSON
    /// (null if empty) and stderr.
    fn hippo(&self, args: &[&str]) -> (i32, Value, String) {
        parts(&self.0.hippo(KEY, args))
    }
}

/// The refusal of `file` in a `/api/v1/plugins` or `hippo plugins` listing.
#[track_caller]
fn refused_in(listing: &Value, file: &str) -> String {
    listing["refused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("/{file}")))
        })
        .unwrap_or_else(|| panic!("{file} is not refused: {listing}"))["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The deployment serving `task` in a listing.
fn deployment_of(listing: &Value, task: &str) -> Option<String> {
    listing["plugins"].as_array().unwrap().iter().find_map(|p| {
        p["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == task)
            .then(|| p["deployment"].as_str().unwrap().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hippo_serve_keeps_memory_from_a_hijacker_across_restarts() {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    copy_memory_plugins(plugins.path());
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    std::fs::write(
        plugins.path().join("aaa-hijack.wasm"),
        guest("impostor_hijack"),
    )
    .unwrap();
    for start in ["cold start", "restart"] {
        let log = data.path().join(format!("{start}.log"));
        let serve = Service::start(plugins.path(), data.path(), true, &log);
        let listing = serve.plugins().await;
        assert!(
            refused_in(&listing, "aaa-hijack.wasm").contains("reserved"),
            "{start}: {listing}"
        );
        for task in ["memory.create", "memory.recall"] {
            assert_eq!(
                deployment_of(&listing, task).as_deref(),
                Some("memory"),
                "{start}"
            );
        }
        // Users' text reaches the real memory plugin: a created memory, not
        // the hijacker's echo.
        let text = format!("I like tea ({start})");
        let body = json!({"user_id": "alice", "text": text});
        let (status, created) = serve
            .call(
                "POST",
                "/api/v1/memories",
                Some((body.to_string().into_bytes(), "application/json")),
            )
            .await;
        assert_eq!(status, 201, "{start}: {created}");
        assert_eq!(
            (&created["action"], &created["memory"]["text"]),
            (&json!("created"), &json!(text)),
            "{created}"
        );
        serve.still_serves().await;
        let log = serve.stop();
        assert!(
            log.contains("WARN") && log.contains("plugin refused") && log.contains("aaa-hijack"),
            "{start}: no WARN line about the hijacker: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hippo_serve_keeps_names_and_keys_from_an_impostor_across_restarts() {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("serve.log");
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    put_keeper(plugins.path(), "keeper");
    let serve = Service::start(plugins.path(), data.path(), false, &log);
    let put = serve
        .run("keeper.put", json!({"key": "secret", "value": "s3cret"}))
        .await;
    assert_eq!(put["status"], "SUCCESS", "{put}");

    // Uploads declaring names others own: 409, and nothing written.
    let before = files_in(plugins.path());
    serve
        .assert_upload_conflicts("aaa-hijack", guest("impostor_hijack"), "reserved")
        .await;
    assert_eq!(files_in(plugins.path()), before, "nothing was written");
    // Over an existing plugin: the one in service stays.
    serve
        .assert_upload_conflicts(
            "keeper",
            guest("hostile_guest"),
            "already provided by `hostile.wasm`",
        )
        .await;
    assert_eq!(files_in(plugins.path()), before, "nothing was written");
    assert_eq!(
        std::fs::read(plugins.path().join("keeper.wasm")).unwrap(),
        guest("impostor_keeper")
    );
    // With its manifest in the same request (`hippo deploy --manifest`): the
    // impostor loads, and its names refuse it.
    let copy = data.path().join("keeper-copy.wasm");
    let manifest = data.path().join("keeper-copy.toml");
    std::fs::write(&copy, guest("impostor_keeper")).unwrap();
    std::fs::write(&manifest, KEEPER_MANIFEST).unwrap();
    let (code, _, stderr) = serve.hippo(&[
        "deploy",
        copy.to_str().unwrap(),
        "--name",
        "aaa-evil",
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("already provided by `keeper.wasm`") && stderr.contains("conflict"),
        "{stderr}"
    );
    assert_eq!(files_in(plugins.path()), before, "nothing was written");
    // A manifest for no plugin file: 404, and nothing written.
    let (status, answer) = serve
        .call(
            "PUT",
            "/api/v1/plugins/aaa-evil/manifest",
            Some((KEEPER_MANIFEST.as_bytes().to_vec(), "application/toml")),
        )
        .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &json!("not_found")),
        "{answer}"
    );
    assert_eq!(files_in(plugins.path()), before, "nothing was written");
    // A new plugin with its manifest deploys in one request.
    let versioned = data.path().join("versioned.wasm");
    std::fs::write(&versioned, guest("versioned_v1")).unwrap();
    std::fs::write(&manifest, "queue = \"scheduled\"\n").unwrap();
    let (code, deployed, stderr) = serve.hippo(&[
        "deploy",
        versioned.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        deployed["deployed"]["tasks"][0]["queue"], "scheduled",
        "{deployed}"
    );
    assert_eq!(
        std::fs::read_to_string(plugins.path().join("versioned.toml")).unwrap(),
        "queue = \"scheduled\"\n"
    );
    assert_eq!(
        deployment_of(&serve.plugins().await, "keeper.get").as_deref(),
        Some("keeper")
    );
    serve.still_serves().await;
    drop(serve);

    // The same component dropped in under a name sorting first: refused
    // after the restart, and the keeper's tasks reach the keeper.
    put_keeper(plugins.path(), "aaa-evil");
    let serve = Service::start(plugins.path(), data.path(), false, &log);
    let listing = serve.plugins().await;
    assert!(
        refused_in(&listing, "aaa-evil.wasm").contains("already provided by `keeper.wasm`"),
        "{listing}"
    );
    assert_eq!(
        deployment_of(&listing, "keeper.get").as_deref(),
        Some("keeper")
    );
    let got = serve.run("keeper.get", json!({"key": "secret"})).await;
    assert_eq!(got["result"], json!({"value": "s3cret"}), "{got}");
    serve.still_serves().await;
    let warned = serve.stop();
    assert!(
        warned.contains("plugin refused") && warned.contains("aaa-evil"),
        "{warned}"
    );

    // The keeper is removed: the impostor, declaring `keeper`, gets the free
    // names after a restart, but not the keeper's keys.
    remove_plugin_files(plugins.path(), "keeper");
    let serve = Service::start(plugins.path(), data.path(), false, &log);
    assert_eq!(
        deployment_of(&serve.plugins().await, "keeper.get").as_deref(),
        Some("aaa-evil")
    );
    let got = serve.run("keeper.get", json!({"key": "secret"})).await;
    assert_eq!(
        (&got["status"], &got["result"]),
        (&json!("SUCCESS"), &json!({"value": null})),
        "the impostor read the keeper's key: {got}"
    );
    serve.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hippo_serve_refuses_both_parties_to_a_clash_at_a_cold_start() {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    put_keeper(plugins.path(), "one");
    put_keeper(plugins.path(), "two");
    let serve = Service::start(
        plugins.path(),
        data.path(),
        false,
        &data.path().join("serve.log"),
    );
    let listing = serve.plugins().await;
    for (file, other) in [("one.wasm", "two.wasm"), ("two.wasm", "one.wasm")] {
        let reason = refused_in(&listing, file);
        assert!(
            reason.contains(&format!("also declared by `{other}`")),
            "{reason}"
        );
    }
    assert_eq!(deployment_of(&listing, "keeper.get"), None);
    let body = json!({"task": "keeper.get", "input": {"key": "x"}})
        .to_string()
        .into_bytes();
    let (status, answer) = serve
        .call(
            "POST",
            "/api/v1/tasks/submit",
            Some((body, "application/json")),
        )
        .await;
    assert_eq!(
        (status, &answer["error"]["field"]),
        (400, &json!("task")),
        "{answer}"
    );
    serve.still_serves().await;
    // Removing one party lets the other in, without a restart.
    let (status, answer) = serve.call("DELETE", "/api/v1/plugins/two", None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        deployment_of(&serve.plugins().await, "keeper.get").as_deref(),
        Some("one")
    );
    let got = serve.run("keeper.get", json!({"key": "x"})).await;
    assert_eq!(got["result"], json!({"value": null}), "{got}");
}

/// Runs `hippo ARGS` (with a data directory of its own); the exit code,
/// stdout as JSON (null if empty) and stderr.
fn hippo(args: &[&str], data: &Path) -> (i32, Value, String) {
    parts(&hippo_local(
        &[args, &["--data-dir", data.to_str().unwrap()]].concat(),
    ))
}

#[test]
fn hippo_plugins_and_hippo_run_refuse_without_recording_or_reading_whole() {
    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    copy_memory_plugins(plugins.path());
    std::fs::write(
        plugins.path().join("aaa-hijack.wasm"),
        guest("impostor_hijack"),
    )
    .unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    put_keeper(plugins.path(), "one");
    put_keeper(plugins.path(), "two");
    // 2 GiB, sparse, with a component's header: only its size refuses it.
    let huge = plugins.path().join("huge.wasm");
    let file = std::fs::File::create(&huge).unwrap();
    std::io::Write::write_all(&mut &file, b"\0asm\x0d\0\x01\0").unwrap();
    file.set_len(2 << 30).unwrap();

    let dir = plugins.path().to_str().unwrap();
    let (code, listing, stderr) = hippo(&["plugins", "--dir", dir], data.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        refused_in(&listing, "aaa-hijack.wasm").contains("reserved"),
        "{listing}"
    );
    assert!(refused_in(&listing, "one.wasm").contains("also declared by `two.wasm`"));
    assert!(refused_in(&listing, "huge.wasm").contains("2147483648 bytes, over the limit"));
    assert_eq!(
        deployment_of(&listing, "memory.create").as_deref(),
        Some("memory")
    );
    assert!(
        !plugins.path().join(LEDGER).exists(),
        "a listing wrote the ledger"
    );

    // `hippo run` refuses the huge file with the reason, and runs a
    // well-behaved task right after.
    let (code, _, stderr) = hippo(&["run", huge.to_str().unwrap(), "test.echo"], data.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("huge.wasm: 2147483648 bytes, over the limit"),
        "{stderr}"
    );
    let hostile = plugins.path().join("hostile.wasm");
    let (code, report, stderr) = hippo(
        &[
            "run",
            hostile.to_str().unwrap(),
            "test.echo",
            "--input",
            "[1]",
        ],
        data.path(),
    );
    assert_eq!((code, &report["output"]), (0, &json!([1])), "{stderr}");
}
