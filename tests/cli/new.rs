//! `hippo new`: a project made in an empty folder builds, tests and runs as
//! its README says, with no file of hippo's tree: the Rust one with `cargo
//! test` and `cargo build --target wasm32-wasip2`, the Python one with its
//! `test.sh` (componentize-py from the tools virtualenv, then `hippo run`).

use hippo_integration_tests::hippo_bin;
use hippo_integration_tests::serve::parts;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `hippo new ARGS` in `dir`.
fn hippo_new(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(hippo_bin())
        .arg("new")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The build directory of the generated projects: outside the test's
/// temporary folder, so a second run reuses the first one's build.
fn project_target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    base.join("hippo-new-projects")
}

fn cargo(project: &Path, args: &[&str]) {
    let done = Command::new(env!("CARGO"))
        .args(args)
        .arg("--offline")
        .current_dir(project)
        .env("CARGO_TARGET_DIR", project_target_dir())
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

#[test]
fn a_new_rust_plugin_builds_tests_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let made = hippo_new(dir.path(), &["greeter"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let project = dir.path().join("greeter");
    // The versions hippo's own build uses (the registry cache has them).
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"),
        project.join("Cargo.lock"),
    )
    .unwrap();
    cargo(&project, &["test", "--quiet"]);
    cargo(
        &project,
        &["build", "--target", "wasm32-wasip2", "--release", "--quiet"],
    );
    let component = project_target_dir().join("wasm32-wasip2/release/greeter.wasm");
    std::fs::copy(
        project.join("greeter.toml"),
        component.with_file_name("greeter.toml"),
    )
    .unwrap();

    let run = |input: &str| {
        let output = Command::new(hippo_bin())
            .args([
                "run",
                component.to_str().unwrap(),
                "greeter.hello",
                "--input",
                input,
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        parts(&output)
    };
    let (code, report, stderr) = run(r#"{"name": "Ada"}"#);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["output"]["greeting"], "Hello, Ada!", "{report}");
    assert_eq!(
        report["log"]["lines"][0]["message"], "greeted Ada",
        "{report}"
    );
    let (code, report, _) = run(r#"{"name": " "}"#);
    assert_eq!(code, 1);
    assert_eq!(report["error"]["detail"]["kind"], "bad_input", "{report}");
}

#[test]
fn a_new_python_plugin_builds_and_its_test_passes() {
    let dir = tempfile::tempdir().unwrap();
    let made = hippo_new(dir.path(), &["py-greeter", "--lang", "python"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tools = std::env::var_os("HIPPO_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/hippo/tools-venv")
        });
    let test = Command::new(dir.path().join("py-greeter/test.sh"))
        .env("COMPONENTIZE_PY", tools.join("bin/componentize-py"))
        .env("HIPPO", hippo_bin())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "test.sh (scripts/setup installs componentize-py): {stdout}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(
        stdout.contains("Hello, Ada!") && stdout.trim_end().ends_with("ok"),
        "{stdout}"
    );
}

#[test]
fn hippo_new_refuses_a_bad_name_and_a_folder_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let refused = hippo_new(dir.path(), &["My_Plugin"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("NAME \"My_Plugin\""));
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/keep.txt"), "mine").unwrap();
    let refused = hippo_new(dir.path(), &["taken"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
}
