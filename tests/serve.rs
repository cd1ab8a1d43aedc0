//! `hippo serve` as a child process, for end-to-end tests of the service:
//! started on the embedded broker and a free loopback port, ready once it
//! listens, killed when dropped; with its memory figures from `/proc`.

use crate::hippo_bin;
use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `hippo serve`.
#[derive(Debug)]
pub struct Serve {
    child: Child,
    /// Its API's base URL (`http://127.0.0.1:<port>`).
    pub url: String,
}

impl Serve {
    /// Starts `hippo serve` with the plugins folder `plugins`, the data
    /// directory `data`, extra arguments `args` and environment `env` (its
    /// keys: `HIPPO_API_KEY`, `HIPPO_API_KEYS_FILE`; neither is inherited),
    /// and waits until its API listens.
    ///
    /// # Panics
    /// When it exits or does not listen within a minute.
    pub fn start(plugins: &Path, data: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Serve {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(hippo_bin())
            .args(["serve", "--listen", &listen, "--broker", "embedded"])
            .arg("--data-dir")
            .arg(data)
            .arg("--plugins")
            .arg(plugins)
            .args(args)
            .env_remove("HIPPO_API_KEY")
            .env_remove("HIPPO_API_KEYS_FILE")
            .env_remove("HIPPO_BROKER_URL")
            .envs(env.iter().copied())
            .env("HIPPO_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("hippo serve starts");
        let mut serve = Serve {
            child,
            url: format!("http://{listen}"),
        };
        // The API listens once the broker and the plugins are ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(&listen).is_err() {
            if let Some(status) = serve.child.try_wait().unwrap() {
                panic!("hippo serve exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "hippo serve never listened on {listen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        serve
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
