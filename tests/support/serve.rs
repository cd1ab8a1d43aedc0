//! `hippo serve` as a child process, for end-to-end tests of the service:
//! started on the embedded broker and a free loopback port, ready once it
//! listens, killed when dropped; with its memory figures from `/proc`. And
//! the `hippo` command itself, against such a service or on its own.

use crate::hippo_bin;
use serde_json::Value;
use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long `hippo serve` may take to listen: a cold artifact cache compiles
/// every plugin first (the memory plugins take the longest).
pub const STARTS_WITHIN: Duration = Duration::from_secs(120);

/// A running `hippo serve`.
#[derive(Debug)]
pub struct Serve {
    child: Child,
    /// Its API's base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    /// Its dashboard's base URL (another free loopback port).
    pub dashboard_url: String,
    log: Option<PathBuf>,
}

/// A `hippo serve` command line being put together; [`ServeCommand::start`]
/// runs it.
#[derive(Debug)]
pub struct ServeCommand {
    command: Command,
    listen: String,
    dashboard: String,
    log: Option<PathBuf>,
}

/// A loopback address with a port free a moment ago.
fn free_loopback() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

impl Serve {
    /// `hippo serve` with the plugins folder `plugins` and the data directory
    /// `data`, on the embedded broker and a free loopback port. No key or
    /// service URL is inherited from the test's environment (no
    /// `HIPPO_API_KEY`, `HIPPO_API_KEYS_FILE`, `HIPPO_BROKER_URL`,
    /// `HIPPO_QDRANT_URL`), and it logs warnings and errors to the test's
    /// stderr.
    pub fn command(plugins: &Path, data: &Path) -> ServeCommand {
        let (listen, dashboard) = (free_loopback(), free_loopback());
        let mut command = Command::new(hippo_bin());
        command
            .args(["serve", "--listen", &listen, "--broker", "embedded"])
            .args(["--dashboard-listen", &dashboard])
            .arg("--data-dir")
            .arg(data)
            .arg("--plugins")
            .arg(plugins)
            .env_remove("HIPPO_API_KEY")
            .env_remove("HIPPO_API_KEYS_FILE")
            .env_remove("HIPPO_BROKER_URL")
            .env_remove("HIPPO_QDRANT_URL")
            .env("HIPPO_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        ServeCommand {
            command,
            listen,
            dashboard,
            log: None,
        }
    }

    /// Starts `hippo serve` with extra arguments `args` and environment `env`
    /// (see [`Serve::command`]) and waits until its API listens.
    ///
    /// # Panics
    /// When it exits or does not listen within [`STARTS_WITHIN`].
    pub fn start(plugins: &Path, data: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Serve {
        Serve::command(plugins, data).args(args).envs(env).start()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// What it logged so far, when started with [`ServeCommand::log_to`].
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// Runs `hippo ARGS` against this service's API with the key `key`.
    pub fn hippo(&self, key: &str, args: &[&str]) -> Output {
        hippo_api(&self.url, key, args)
    }

    /// A memory figure of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
    ///
    /// # Panics
    /// When the process is gone or the line is missing.
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the service is running");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .map(|kib| kib << 10)
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// Resets the peak resident memory (`VmHWM`) to the current one, so a
    /// later peak is one of what happened since.
    pub fn reset_peak_memory(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .expect("the peak resident memory resets");
    }
}

impl ServeCommand {
    /// Adds arguments to its command line.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.command.args(args);
        self
    }

    /// Sets environment variables (a later value of a name wins).
    pub fn envs(mut self, env: &[(&str, &OsStr)]) -> Self {
        self.command.envs(env.iter().copied());
        self
    }

    /// Sends its stderr (its log) to the file `log`, read by [`Serve::log`].
    pub fn log_to(mut self, log: &Path) -> Self {
        self.command.stderr(std::fs::File::create(log).unwrap());
        self.log = Some(log.to_path_buf());
        self
    }

    /// Starts it and waits until its API listens.
    ///
    /// # Panics
    /// When it exits or does not listen within [`STARTS_WITHIN`].
    pub fn start(mut self) -> Serve {
        let mut serve = Serve {
            child: self.command.spawn().expect("hippo serve starts"),
            url: format!("http://{}", self.listen),
            dashboard_url: format!("http://{}", self.dashboard),
            log: self.log,
        };
        // The API listens once the broker and the plugins are ready.
        let deadline = Instant::now() + STARTS_WITHIN;
        while TcpStream::connect(&self.listen).is_err() {
            if let Some(status) = serve.try_wait() {
                panic!("hippo serve exited early: {status}: {}", serve.log());
            }
            assert!(
                Instant::now() < deadline,
                "hippo serve never listened on {}",
                self.listen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `hippo ARGS` against the API at `url` with the key `key`.
pub fn hippo_api(url: &str, key: &str, args: &[&str]) -> Output {
    hippo_with(args, &[("HIPPO_API_URL", url), ("HIPPO_API_KEY", key)])
}

/// Runs `hippo ARGS` on this machine alone (`hippo run`, `hippo plugins`):
/// no API is named.
pub fn hippo_local(args: &[&str]) -> Output {
    hippo_with(args, &[])
}

fn hippo_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(hippo_bin())
        .args(args)
        .env_remove("HIPPO_API_URL")
        .env_remove("HIPPO_API_KEY")
        .envs(env.iter().copied())
        .env("HIPPO_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("hippo runs")
}

/// The exit code, stdout as JSON (null when empty) and stderr of a `hippo`
/// command.
///
/// # Panics
/// When it was killed by a signal or its stdout is not JSON.
#[track_caller]
pub fn parts(output: &Output) -> (i32, Value, String) {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout:?} (stderr {stderr:?})"))
    };
    (output.status.code().expect("hippo exited"), json, stderr)
}
