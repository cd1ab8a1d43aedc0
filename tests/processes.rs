//! Child processes of the process-level tests (`failover`, `cluster`): a
//! `hippo` or `redis-server` that is killed when dropped, signals to kill,
//! freeze and thaw it, and free loopback ports.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process that is killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`).
    ///
    /// # Panics
    /// When `kill` fails.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of the test's own on loopback (AOF on, synced always),
/// which the test may kill, restart or freeze without disturbing others.
pub fn private_redis(dir: &Path, port: u16) -> Process {
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    std::thread::sleep(Duration::from_millis(300));
    Process(child)
}
