//! `hippo new NAME [--lang rust|python]`: a plugin project that builds,
//! tests and runs from an empty folder. The guest SDK is not published, so
//! the project gets a copy of it (and of hippo's WIT) from this binary: it
//! builds offline, against exactly the interface this hippo runs.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct NewArgs {
    /// The plugin's name: its crate or package, its deployment
    /// (`NAME.wasm`, `NAME.toml`) and its tasks' prefix (`NAME.hello`).
    /// Lowercase letters, digits and `-`, starting with a letter.
    name: String,
    /// The language of its tasks.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// The folder to create (default: ./NAME); it must not exist or be empty.
    #[arg(long)]
    path: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
}

/// hippo's WIT package, the contract every plugin is built against.
const WIT: &str = include_str!("../../../../tasks-wit/wit/tasks.wit");
const MANIFEST: &str = include_str!("new/manifest.toml");

/// The Rust guest SDK's sources, by file name.
const RUST_SDK: [(&str, &str); 10] = [
    ("lib.rs", include_str!("../../../../sdk/guest/src/lib.rs")),
    (
        "context.rs",
        include_str!("../../../../sdk/guest/src/context.rs"),
    ),
    (
        "error.rs",
        include_str!("../../../../sdk/guest/src/error.rs"),
    ),
    (
        "health.rs",
        include_str!("../../../../sdk/guest/src/health.rs"),
    ),
    ("kv.rs", include_str!("../../../../sdk/guest/src/kv.rs")),
    (
        "memory.rs",
        include_str!("../../../../sdk/guest/src/memory.rs"),
    ),
    (
        "models.rs",
        include_str!("../../../../sdk/guest/src/models.rs"),
    ),
    (
        "plugin.rs",
        include_str!("../../../../sdk/guest/src/plugin.rs"),
    ),
    (
        "service_error.rs",
        include_str!("../../../../sdk/guest/src/service_error.rs"),
    ),
    ("time.rs", include_str!("../../../../sdk/guest/src/time.rs")),
];
/// Where the SDK's `generate!` finds the WIT in hippo's tree, and in the copy.
const SDK_WIT_PATH: (&str, &str) = ("\"../../tasks-wit/wit\"", "\"wit\"");
const RUST_SDK_MANIFEST: &str = include_str!("new/sdk-Cargo.toml");
const RUST_MANIFEST: &str = include_str!("new/rust-Cargo.toml");
const RUST_LIB: &str = include_str!("new/rust-lib.rs");

const PYTHON_SDK: &str = include_str!("../../../../sdk/python-guest/hippo_task/__init__.py");
const PYTHON_APP: &str = include_str!("new/python-app.py");
const PYTHON_BUILD: &str = include_str!("new/python-build.sh");
const PYTHON_TEST: &str = include_str!("new/python-test.sh");

/// Whether `name` can be a plugin, a crate, a deployment and a task prefix.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-')
}

pub fn new(args: NewArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        valid_name(&args.name),
        "NAME {:?}: lowercase letters, digits and `-`, starting with a letter, at most 64",
        args.name
    );
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("{}", dir.display()))?
            .next()
            .is_none();
        anyhow::ensure!(empty, "{} exists and is not empty", dir.display());
    }
    let files = match args.lang {
        Lang::Rust => rust_files(&args.name),
        Lang::Python => python_files(&args.name),
    };
    for (path, text) in &files {
        write(&dir, path, text)?;
    }
    for script in ["build.sh", "test.sh"] {
        if files.iter().any(|(path, _)| path == script) {
            make_executable(&dir.join(script))?;
        }
    }
    let next = match args.lang {
        Lang::Rust => "cargo test && cargo build --target wasm32-wasip2 --release",
        Lang::Python => "./test.sh",
    };
    println!(
        "created {} ({} files); next: cd {} && {next}",
        dir.display(),
        files.len(),
        dir.display()
    );
    Ok(0)
}

/// A template with its plugin name (`%NAME%`) and crate name (`%CRATE%`)
/// filled in (markers no Rust, Python, TOML or shell text uses).
fn fill(template: &str, name: &str) -> String {
    template
        .replace("%NAME%", name)
        .replace("%CRATE%", &name.replace('-', "_"))
}

fn rust_files(name: &str) -> Vec<(String, String)> {
    let mut files = vec![
        ("Cargo.toml".into(), fill(RUST_MANIFEST, name)),
        ("src/lib.rs".into(), fill(RUST_LIB, name)),
        (format!("{name}.toml"), fill(MANIFEST, name)),
        ("README.md".into(), readme(name, Lang::Rust)),
        (".gitignore".into(), "/target\n".into()),
        ("hippo-sdk/Cargo.toml".into(), RUST_SDK_MANIFEST.into()),
        ("hippo-sdk/wit/tasks.wit".into(), WIT.into()),
    ];
    for (file, source) in RUST_SDK {
        let source = if file == "lib.rs" {
            source.replace(SDK_WIT_PATH.0, SDK_WIT_PATH.1)
        } else {
            source.into()
        };
        files.push((format!("hippo-sdk/src/{file}"), source));
    }
    files
}

fn python_files(name: &str) -> Vec<(String, String)> {
    vec![
        ("app.py".into(), fill(PYTHON_APP, name)),
        ("build.sh".into(), fill(PYTHON_BUILD, name)),
        ("test.sh".into(), fill(PYTHON_TEST, name)),
        (format!("{name}.toml"), fill(MANIFEST, name)),
        ("README.md".into(), readme(name, Lang::Python)),
        (".gitignore".into(), "*.wasm\n__pycache__/\n".into()),
        ("hippo_task/__init__.py".into(), PYTHON_SDK.into()),
        ("wit/tasks.wit".into(), WIT.into()),
    ]
}

fn readme(name: &str, lang: Lang) -> String {
    let (build, test, component) = match lang {
        Lang::Rust => (
            "cargo build --target wasm32-wasip2 --release   # rustup target add wasm32-wasip2",
            "cargo test                                       # the pure parts, natively",
            format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
        ),
        Lang::Python => (
            "./build.sh     # componentize-py 0.25.1 (pip install componentize-py==0.25.1)",
            "./test.sh      # builds, then runs the task in hippo's sandbox",
            format!("{name}.wasm"),
        ),
    };
    format!(
        "# {name}\n\n\
         A hippo task plugin (made by `hippo new`).\n\n\
         ```sh\n{build}\n{test}\n\
         hippo run {component} {name}.hello --input '{{\"name\": \"Ada\"}}'\n```\n\n\
         `hippo run` applies the manifest `{name}.toml` beside the component and prints the\n\
         output with the fuel, memory and time it took. To deploy, copy the component as\n\
         `{name}.wasm` with `{name}.toml` into a service's plugins folder (it is loaded\n\
         without a restart), or `hippo deploy {component} --manifest {name}.toml`.\n\
         Then `hippo submit {name}.hello --input '{{\"name\": \"Ada\"}}' --wait 5`.\n"
    )
}

fn write(dir: &Path, path: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("{}", path.display()))
}

fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_a_crate_a_deployment_and_a_task() {
        for good in ["demo", "my-math", "a1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Demo",
            "1demo",
            "my_math",
            "demo-",
            "my.math",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_sdk_copy_reads_its_own_wit() {
        let files = rust_files("demo");
        let lib = &files
            .iter()
            .find(|(p, _)| p == "hippo-sdk/src/lib.rs")
            .unwrap()
            .1;
        assert!(
            lib.contains("path: \"wit\""),
            "the copy's generate! reads ./wit"
        );
        assert!(!lib.contains("../../tasks-wit"));
    }

    /// A file added to the SDK is in the copy too.
    #[test]
    fn the_sdk_copy_has_every_source_file() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/guest/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut copied: Vec<String> = RUST_SDK
            .iter()
            .map(|(file, _)| (*file).to_owned())
            .collect();
        copied.sort();
        assert_eq!(copied, on_disk);
    }

    /// The SDK copy's dependencies are the versions hippo's workspace builds
    /// the SDK with.
    #[test]
    fn the_sdk_copy_depends_on_the_workspace_versions() {
        let workspace: toml::Table =
            toml::from_str(include_str!("../../../../Cargo.toml")).unwrap();
        let sdk: toml::Table =
            toml::from_str(include_str!("../../../../sdk/guest/Cargo.toml")).unwrap();
        let copy: toml::Table = toml::from_str(RUST_SDK_MANIFEST).unwrap();
        let version = |dep: &toml::Value| -> String {
            match dep {
                toml::Value::String(v) => v.clone(),
                toml::Value::Table(t) => t["version"].as_str().unwrap().to_owned(),
                other => panic!("{other:?}"),
            }
        };
        for (name, dep) in sdk["dependencies"].as_table().unwrap() {
            let expected = if dep.get("workspace").is_some() {
                version(&workspace["workspace"]["dependencies"][name])
            } else {
                version(dep)
            };
            assert_eq!(
                version(&copy["dependencies"][name]),
                expected,
                "{name} in new/sdk-Cargo.toml"
            );
        }
    }
}
