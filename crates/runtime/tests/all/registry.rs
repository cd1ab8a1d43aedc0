//! The plugin registry on a real folder: validation, hot replace while a
//! task of the old version runs, removal, and the precompiled cache.

use hippo_runtime::{PluginRegistry, TaskRequest};
use hippo_test_support::{guest, output, runtime};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes `bytes` to `path` the way a deploy should: a temporary file, then a rename.
fn deploy(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn broken_files_are_refused_with_a_reason_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("garbage.wasm"), b"this is not wasm").unwrap();
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("evil.wasm"), guest("unknown_import_guest")).unwrap();
    std::fs::write(dir.path().join("fib.wasm"), guest("hippo_example_fib")).unwrap();
    std::fs::write(dir.path().join("bad-manifest.wasm"), guest("hostile_guest")).unwrap();
    std::fs::write(
        dir.path().join("bad-manifest.toml"),
        "grants = [\"everything\"]",
    )
    .unwrap();
    let registry = PluginRegistry::new(runtime(), dir.path(), None);
    let report = registry.scan().unwrap();

    let reason = |file: &str| {
        report
            .rejected
            .iter()
            .find(|r| r.path.ends_with(file))
            .map(|r| r.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason("garbage.wasm").contains("not a WebAssembly file"),
        "{report:?}"
    );
    assert!(
        reason("core.wasm").contains("core WebAssembly module"),
        "{report:?}"
    );
    assert!(
        reason("evil.wasm").contains("hippo:evil/raw-net"),
        "{report:?}"
    );
    assert!(
        reason("bad-manifest.wasm").contains("manifest"),
        "{report:?}"
    );
    assert_eq!(report.loaded.len(), 1);
    let names: Vec<_> = registry.plugins().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["example-fib"]);
    assert!(registry.resolve("example.fib").is_some());
    assert_eq!(registry.rejections().len(), 4);
}

/// Held by the tests that start a folder watcher, so one can tell its
/// watcher thread from another test's.
static WATCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn hot_replace_swaps_versions_while_the_old_task_finishes() {
    let _watching = WATCHING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let plugin_file = dir.path().join("versioned.wasm");
    deploy(&plugin_file, &guest("versioned_v1"));
    let registry = Arc::new(PluginRegistry::new(runtime(), dir.path(), None));
    registry.scan().unwrap();
    let _watch = registry.watch().unwrap();
    let v1 = registry.resolve("test.version").unwrap();
    assert_eq!(v1.version, "1.0.0");

    // A task of version 1 that runs for 1.5 s.
    let running = std::thread::spawn({
        let runtime = registry.runtime().clone();
        move || {
            runtime.execute_blocking(
                &v1,
                &TaskRequest::new("test.version", br#"{"ms": 1500}"#.to_vec()),
            )
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    deploy(&plugin_file, &guest("versioned_v2"));
    wait_until("version 2 is registered", || {
        registry
            .resolve("test.version")
            .is_some_and(|p| p.version == "2.0.0")
    });

    let v2 = registry.resolve("test.version").unwrap();
    let fresh = registry.runtime().execute_blocking(
        &v2,
        &TaskRequest::new("test.version", br#"{"ms": 0}"#.to_vec()),
    );
    assert_eq!(output(&fresh), json!({"version": "2.0.0"}));
    let old = running.join().unwrap();
    assert_eq!(
        output(&old),
        json!({"version": "1.0.0"}),
        "the running task finished on its own version"
    );
    assert!(!running_is_finished_early(&old));

    // A broken replacement leaves version 2 in service.
    deploy(&plugin_file, b"\0asm\x01\0\0\0");
    wait_until("the broken file is refused", || {
        !registry.rejections().is_empty()
    });
    assert_eq!(registry.resolve("test.version").unwrap().version, "2.0.0");

    // Removing the file unregisters the plugin.
    std::fs::remove_file(&plugin_file).unwrap();
    wait_until("the plugin is unregistered", || {
        registry.resolve("test.version").is_none()
    });
    assert!(registry.plugins().is_empty());
}

fn running_is_finished_early(outcome: &hippo_runtime::TaskOutcome) -> bool {
    outcome.stats.wall_time_us < 1_500_000
}

#[test]
fn a_clashing_plugin_never_displaces_the_one_in_service() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b-first.wasm"), guest("versioned_v1")).unwrap();
    let registry = PluginRegistry::new(runtime(), dir.path(), None);
    registry.scan().unwrap();
    std::fs::write(dir.path().join("a-clash.wasm"), guest("versioned_v2")).unwrap();
    let report = registry.scan().unwrap();
    assert!(
        report
            .rejected
            .iter()
            .any(|r| r.path.ends_with("a-clash.wasm") && r.reason.contains("already provided"))
    );
    assert_eq!(registry.resolve("test.version").unwrap().version, "1.0.0");
}

#[test]
fn precompiled_cache_is_reused_on_restart() {
    let plugins = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("fib.wasm"), guest("hippo_example_fib")).unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();

    let first = runtime();
    let cache = first.open_cache(cache_dir.path()).unwrap();
    let registry = PluginRegistry::new(first, plugins.path(), Some(cache));
    registry.scan().unwrap();
    let stats = registry.cache().unwrap().stats();
    assert_eq!((stats.compiled, stats.hits), (2, 0));
    assert!(!registry.resolve("example.fib").unwrap().from_cache);
    drop(registry);

    // A new process: a new engine and registry over the same cache.
    let second = runtime();
    let cache = second.open_cache(cache_dir.path()).unwrap();
    let registry = PluginRegistry::new(second, plugins.path(), Some(cache));
    let started = Instant::now();
    registry.scan().unwrap();
    let warm_scan = started.elapsed();
    let stats = registry.cache().unwrap().stats();
    assert_eq!(
        (stats.compiled, stats.hits),
        (0, 2),
        "both components came from the cache"
    );
    let fib = registry.resolve("example.fib").unwrap();
    assert!(fib.from_cache);
    let value = output(&registry.runtime().execute_blocking(
        &fib,
        &TaskRequest::new("example.fib", br#"{"n": 10}"#.to_vec()),
    ));
    assert_eq!(value, json!({"value": 55}));
    eprintln!("warm scan of two plugins took {warm_scan:?}");
}

/// A figure of this process from /proc/self/status, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib << 10
}

/// A 2 GiB file in the plugins folder was read whole before its header was
/// checked, at every scan: 2 GiB of RSS each time. Size and header are now
/// checked first, and the size is capped as the REST route caps uploads.
#[test]
fn huge_or_foreign_plugin_files_were_read_whole_before_their_header_was_checked() {
    // The peak RSS is the process's: no other test may run beside it.
    crate::alone_in_a_process(
        "registry::huge_or_foreign_plugin_files_were_read_whole_before_their_header_was_checked",
        || {
            let dir = tempfile::tempdir().unwrap();
            let sparse = |name: &str, header: &[u8], size: u64| {
                let path = dir.path().join(name);
                let file = std::fs::File::create(&path).unwrap();
                std::io::Write::write_all(&mut &file, header).unwrap();
                file.set_len(size).unwrap();
                path
            };
            // A component's header, 2 GiB: only the size refuses it.
            let huge = sparse("huge.wasm", b"\0asm\x0d\0\x01\0", 2 << 30);
            // Under the cap, with a foreign header: refused after 8 bytes.
            sparse("foreign.wasm", b"\x7fELF\x02\x01\x01\0", 60 << 20);
            // A manifest of 2 GiB beside a real plugin.
            std::fs::write(dir.path().join("fib.wasm"), guest("hippo_example_fib")).unwrap();
            sparse("fib.toml", b"queue = \"default\"\n", 2 << 30);
            std::fs::write(dir.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();

            let registry = PluginRegistry::new(runtime(), dir.path(), None);
            // Reset the peak RSS to the current one, so the peak after the scans is
            // what they cost.
            std::fs::write("/proc/self/clear_refs", "5").unwrap();
            let before = status_bytes("VmRSS");
            for _ in 0..3 {
                registry.scan().unwrap();
            }
            let grown = status_bytes("VmHWM").saturating_sub(before);
            assert!(
                grown < 256 << 20,
                "three scans grew the peak RSS by {} MiB",
                grown >> 20
            );
            let reason = |file: &str| {
                registry
                    .rejections()
                    .into_iter()
                    .find(|r| r.path.ends_with(file))
                    .map(|r| r.reason)
                    .unwrap_or_default()
            };
            assert!(
                reason("huge.wasm").contains(&format!(
                    "2147483648 bytes, over the limit of {}",
                    hippo_runtime::MAX_PLUGIN_BYTES
                )),
                "{:?}",
                registry.rejections()
            );
            assert!(reason("foreign.wasm").contains("not a WebAssembly file"));
            assert!(
                reason("fib.wasm").contains("manifest")
                    && reason("fib.wasm").contains("over the limit"),
                "{:?}",
                registry.rejections()
            );
            let served: Vec<_> = registry.plugins().into_iter().map(|p| p.name).collect();
            assert_eq!(served, ["hostile"]);
            // `hippo run` reads files the same way.
            let refused =
                hippo_runtime::load_plugin_file(registry.runtime(), &huge, None).unwrap_err();
            assert!(refused.contains("over the limit"), "{refused}");
        },
    );
}

/// Bytes read so far by the thread `tid` of this process.
fn thread_reads(tid: &str) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/self/task/{tid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.parse().ok())
        .expect("rchar in /proc/self/task/*/io")
}

/// This process's folder-watcher threads.
fn watcher_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let tid = t.ok()?.file_name().into_string().ok()?;
            let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            // The kernel keeps 15 bytes of a thread's name.
            name.starts_with("hippo-plugin-wa").then_some(tid)
        })
        .collect()
}

/// The watcher took the opens of its own scans (the watch includes them) for
/// changes: after any change in the folder it rescanned, reading every
/// plugin file, every 200 ms, forever (`hippo serve` over the memory plugin
/// read 14.7 MB in 5 idle seconds after one `touch`).
#[test]
fn the_folder_watcher_rescanned_forever_after_one_change() {
    let _watching = WATCHING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest("hostile_guest");
    std::fs::write(dir.path().join("hostile.wasm"), &wasm).unwrap();
    let registry = Arc::new(PluginRegistry::new(runtime(), dir.path(), None));
    registry.scan().unwrap();
    let others = watcher_threads();
    let _watch = registry.watch().unwrap();
    // The thread names itself once it runs.
    let mut ours = Vec::new();
    wait_until("the watcher thread is named", || {
        ours = watcher_threads();
        ours.retain(|tid| !others.contains(tid));
        !ours.is_empty()
    });
    let [watcher] = ours.as_slice() else {
        panic!("more than one new watcher thread: {ours:?}")
    };
    // One change: the watcher scans once, reading the plugin.
    let start = thread_reads(watcher);
    std::fs::write(dir.path().join("notes.txt"), b"a change").unwrap();
    wait_until("the watcher scanned", || {
        thread_reads(watcher) >= start + wasm.len() as u64
    });
    std::thread::sleep(Duration::from_secs(1));
    // Then nothing more, while the folder does not change.
    let settled = thread_reads(watcher);
    std::thread::sleep(Duration::from_secs(2));
    let idle = thread_reads(watcher) - settled;
    assert!(
        idle < wasm.len() as u64,
        "the watcher read {idle} bytes in 2 idle seconds (the plugin is {} bytes)",
        wasm.len()
    );
}

/// `PUT /api/v1/plugins/{name}` wrote the file before the registry checked
/// its names, and left it in the folder when refused. Names are now checked
/// first; a clash the check could not see (a file dropped in since the last
/// scan) is caught by the rescan, and the previous file is put back.
#[test]
fn a_deploy_refused_for_its_names_was_left_in_the_plugins_folder() {
    let dir = tempfile::tempdir().unwrap();
    let registry = PluginRegistry::new(runtime(), dir.path(), None);
    let listing = || {
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    };
    let deployed = registry
        .deploy("first", &guest("versioned_v1"), None)
        .unwrap();
    assert_eq!(deployed.deployment, "first");
    let before = listing();
    assert_eq!(before, [".hippo-names.json", "first.wasm"]);

    // Checked before writing: refused, nothing written.
    let error = registry
        .deploy(
            "aaa-second",
            &guest("versioned_v2"),
            Some("queue = \"default\"\n"),
        )
        .unwrap_err();
    assert!(
        matches!(&error, hippo_runtime::DeployError::Conflict(reason) if reason.contains("already provided by `first.wasm`")),
        "{error}"
    );
    assert_eq!(listing(), before);
    // A manifest for no plugin: refused, nothing written.
    let error = registry
        .set_manifest("ghost", "queue = \"default\"\n")
        .unwrap_err();
    assert!(
        matches!(error, hippo_runtime::DeployError::NotFound(_)),
        "{error}"
    );
    assert_eq!(listing(), before);

    // A file dropped in since the last scan (no watcher here): the check
    // cannot see it, the rescan does; the upload is taken back.
    std::fs::write(dir.path().join("zz-dropped.wasm"), guest("hostile_guest")).unwrap();
    let error = registry
        .deploy("new", &guest("hostile_guest"), None)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("also declared by `zz-dropped.wasm`"),
        "{error}"
    );
    assert!(!dir.path().join("new.wasm").exists());
    // Over an existing plugin: its previous file is put back and serves.
    let error = registry
        .deploy("first", &guest("hostile_guest"), None)
        .unwrap_err();
    assert!(error.to_string().contains("zz-dropped.wasm"), "{error}");
    assert_eq!(
        std::fs::read(dir.path().join("first.wasm")).unwrap(),
        guest("versioned_v1")
    );
    assert_eq!(
        registry.resolve("test.version").unwrap().deployment,
        "first"
    );
    assert_eq!(
        registry.resolve("test.echo").unwrap().deployment,
        "zz-dropped"
    );
    assert_eq!(
        listing(),
        [".hippo-names.json", "first.wasm", "zz-dropped.wasm"]
    );
}
