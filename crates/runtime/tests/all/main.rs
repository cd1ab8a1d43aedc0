//! The runtime's end-to-end tests, one binary (as wasmtime's `tests/all`):
//! real guest components (built by `scripts/build-guests`) on a real
//! wasmtime engine. `sandbox` holds every hostile case and the limits in
//! every state of a guest; `registry` the plugin folder, hot replace and the
//! precompiled cache.

mod registry;
mod sandbox;

/// Runs `body` as the only test of a process of its own: for a test that
/// measures its whole process (peak RSS), which the other tests of this
/// binary, running on other threads, would disturb. `test` is the test's
/// full name; the test binary runs itself with that name as its filter.
///
/// # Panics
/// When the child fails, or did not run exactly that one test.
pub fn alone_in_a_process(test: &str, body: impl FnOnce()) {
    const ALONE: &str = "HIPPO_TEST_ALONE";
    if std::env::var(ALONE).is_ok_and(|name| name == test) {
        body();
        return;
    }
    let child = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--test-threads=1"])
        .env(ALONE, test)
        .output()
        .expect("the test binary runs itself");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} alone in a process: {}\n{stdout}{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );
}
