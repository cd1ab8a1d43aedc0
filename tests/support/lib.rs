//! What the end-to-end tests of every crate share: the guest components
//! that `scripts/build-guests` builds, the `hippo` binary that `scripts/test`
//! builds, the test redis-server, a runtime to run guests on, and `hippo
//! serve` as a child process. Missing setup fails a test with the command
//! that provides it; it is never a reason to skip.

pub mod serve;

use hippo_runtime::{LoadedPlugin, Manifest, Runtime, RuntimeConfig, TaskOutcome, TaskRequest};
use std::path::PathBuf;
use std::sync::Arc;

/// Where `scripts/build-guests` puts the components: `$HIPPO_GUESTS_DIR`,
/// else `$CARGO_TARGET_DIR/wasm32-wasip2/release`, else the default target
/// directory the scripts use.
pub fn guests_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HIPPO_GUESTS_DIR") {
        return PathBuf::from(dir);
    }
    target_dir().join("wasm32-wasip2/release")
}

/// The `hippo` binary that `scripts/test` builds before the tests run:
/// `$HIPPO_BIN`, else `release/hippo` in the target directory.
pub fn hippo_bin() -> PathBuf {
    let path = std::env::var_os("HIPPO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release/hippo"));
    assert!(
        path.is_file(),
        "{} is missing: run the suite with scripts/test, which builds it",
        path.display()
    );
    path
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/hippo/target")
        })
}

/// The bytes of a built guest component, e.g. `guest("hostile_guest")`.
///
/// # Panics
/// When the component was not built: a missing guest is a setup error,
/// never a reason to skip a test.
pub fn guest(name: &str) -> Vec<u8> {
    let path = guest_path(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "guest component {} is missing ({e}); run scripts/build-guests first",
            path.display()
        )
    })
}

/// Path of a built guest component.
pub fn guest_path(name: &str) -> PathBuf {
    guests_dir().join(format!("{name}.wasm"))
}

/// A runtime with the default configuration.
pub fn runtime() -> Arc<Runtime> {
    runtime_with(RuntimeConfig::default())
}

/// A runtime with `config`.
pub fn runtime_with(config: RuntimeConfig) -> Arc<Runtime> {
    Arc::new(Runtime::new(config).expect("runtime builds"))
}

/// The hostile test guest, loaded with the default manifest.
pub fn hostile(runtime: &Runtime) -> Arc<LoadedPlugin> {
    Arc::new(
        runtime
            .load(&guest("hostile_guest"), Manifest::default(), None, None)
            .expect("hostile guest loads"),
    )
}

/// Runs `task` with JSON `input` on the current thread.
pub fn run(
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    task: &str,
    input: serde_json::Value,
) -> TaskOutcome {
    runtime.execute_blocking(
        plugin,
        &TaskRequest::new(task, input.to_string().into_bytes()),
    )
}

/// The successful output of `outcome` as JSON.
///
/// # Panics
/// When the task failed.
pub fn output(outcome: &TaskOutcome) -> serde_json::Value {
    match &outcome.result {
        Ok(bytes) => serde_json::from_slice(bytes).expect("task output is JSON"),
        Err(failure) => panic!("task failed: {failure} (log: {:?})", outcome.log),
    }
}

/// Asserts that the runtime still runs an ordinary task after a hostile one.
pub fn assert_still_healthy(runtime: &Runtime, plugin: &LoadedPlugin) {
    let outcome = run(
        runtime,
        plugin,
        "test.echo",
        serde_json::json!({"still": "alive"}),
    );
    assert_eq!(output(&outcome), serde_json::json!({"still": "alive"}));
}

/// The Redis server the tests use: `HIPPO_TEST_REDIS_URL`, which
/// `scripts/test` sets after starting a private redis-server.
///
/// # Panics
/// When it is not set: Redis tests never skip silently.
pub fn redis_url() -> String {
    std::env::var("HIPPO_TEST_REDIS_URL")
        .expect("HIPPO_TEST_REDIS_URL is not set: run the suite with scripts/test, which starts redis-server")
}

/// A test's temporary directories, removed when it passes and kept (named on
/// stderr) when it fails: a failing test's runtime shuts down after the test
/// body unwinds, and a store still flushing into a removed directory aborts
/// the whole test binary (qdrant-edge 0.7 panics while unwinding); kept, the
/// directories can also be inspected.
#[derive(Debug)]
pub struct TestDirs(pub Vec<tempfile::TempDir>);

impl Drop for TestDirs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for dir in self.0.drain(..) {
                eprintln!("kept the failed test's directory {}", dir.keep().display());
            }
        }
    }
}
