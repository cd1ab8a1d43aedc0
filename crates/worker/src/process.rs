//! This process's CPU time, resident memory and host name, for the worker's
//! heartbeat. Read from `/proc` on Linux; zero elsewhere.

/// CPU seconds (user + system) and resident bytes of this process.
pub fn usage() -> (f64, u64) {
    (cpu_seconds().unwrap_or(0.0), rss_bytes().unwrap_or(0))
}

/// The machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Clock ticks per second of `/proc/self/stat` times: 100 on every Linux
/// architecture hippo builds for.
const TICKS_PER_SECOND: f64 = 100.0;
/// Page size of `/proc/self/statm` counts on x86-64 and aarch64 Linux.
const PAGE_BYTES: u64 = 4096;

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident * PAGE_BYTES)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn usage_is_read_from_proc() {
        let buffer = vec![1u8; 32 << 20];
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(&buffer);
        }
        let (cpu, rss) = super::usage();
        assert!(cpu > 0.0);
        assert!(rss >= 32 << 20, "rss {rss}");
        assert!(!super::hostname().is_empty());
    }
}
