//! Prometheus metrics in the text exposition format (version 0.0.4), as
//! `GET /metrics` serves them: the cluster as the broker sees it (queues and
//! every worker's last heartbeat, the same from any process), plus what this
//! process holds (plugins, the models' batching).
//!
//! Counters come from the workers' heartbeats, so they are per worker
//! process and restart from zero with it, as Prometheus counters may.

use hippo_broker::{BrokerError, SharedBroker};
use hippo_memory::MemoryServices;
use hippo_runtime::PluginRegistry;
use std::fmt::Write as _;

/// One metric family being written: its help and type once, then samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'a str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                .collect();
            let _ = write!(self.out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The metrics text, read now from `broker` and `registry`.
pub async fn render(
    broker: &SharedBroker,
    registry: &PluginRegistry,
    now_ms: u64,
) -> Result<String, BrokerError> {
    let queues = broker.queue_stats().await?;
    let workers = broker.workers().await?;
    let mut out = String::new();

    let name = "hippo_queue_tasks";
    let mut family = Family::new(&mut out, name, "gauge", "Tasks in a queue, by state.");
    for queue in &queues {
        for (state, count) in [
            ("ready", queue.ready),
            ("reserved", queue.reserved),
            ("scheduled", queue.scheduled),
        ] {
            family.sample(&[("queue", &queue.name), ("state", state)], count as f64);
        }
    }

    let name = "hippo_workers";
    Family::new(&mut out, name, "gauge", "Workers with a live heartbeat.")
        .sample(&[], workers.len() as f64);
    type Gauge = fn(&hippo_broker::WorkerHeartbeat, u64) -> f64;
    let per_worker: [(&str, &str, &str, Gauge); 7] = [
        (
            "hippo_worker_concurrency",
            "gauge",
            "Tasks the worker may run at once.",
            |w, _| f64::from(w.concurrency),
        ),
        (
            "hippo_worker_active_tasks",
            "gauge",
            "Tasks the worker is running.",
            |w, _| w.active.len() as f64,
        ),
        (
            "hippo_worker_processed_total",
            "counter",
            "Tasks the worker finished, any outcome.",
            |w, _| w.processed as f64,
        ),
        (
            "hippo_worker_cpu_seconds_total",
            "counter",
            "CPU time of the worker's process.",
            |w, _| w.cpu_seconds,
        ),
        (
            "hippo_worker_resident_memory_bytes",
            "gauge",
            "Resident memory of the worker's process.",
            |w, _| w.rss_bytes as f64,
        ),
        (
            "hippo_worker_uptime_seconds",
            "gauge",
            "Time since the worker started.",
            |w, now| now.saturating_sub(w.started_ms) as f64 / 1e3,
        ),
        (
            "hippo_worker_heartbeat_age_seconds",
            "gauge",
            "Time since the worker's last heartbeat.",
            |w, now| now.saturating_sub(w.heartbeat_ms) as f64 / 1e3,
        ),
    ];
    for (name, kind, help, value) in per_worker {
        let mut family = Family::new(&mut out, name, kind, help);
        for worker in &workers {
            family.sample(&[("worker", &worker.name)], value(worker, now_ms));
        }
    }
    let name = "hippo_worker_tasks_total";
    let mut family = Family::new(
        &mut out,
        name,
        "counter",
        "Task attempts the worker ended, by outcome.",
    );
    for worker in &workers {
        for (outcome, count) in [
            ("succeeded", worker.succeeded),
            ("failed", worker.failed),
            ("retried", worker.retried),
        ] {
            family.sample(
                &[("worker", &worker.name), ("outcome", outcome)],
                count as f64,
            );
        }
    }

    let name = "hippo_plugins_loaded";
    Family::new(
        &mut out,
        name,
        "gauge",
        "Plugins this process has in service.",
    )
    .sample(&[], registry.plugins().len() as f64);
    let memory = MemoryServices::of(registry.runtime().services());
    let models = [
        (
            "embedder",
            memory
                .and_then(|m| m.embeddings.as_ref())
                .map(|e| e.stats()),
        ),
        (
            "reranker",
            memory.and_then(|m| m.reranker.as_ref()).map(|r| r.stats()),
        ),
    ];
    type Count = fn(&hippo_models::BatchStats) -> u64;
    let per_model: [(&str, &str, Count); 3] = [
        (
            "hippo_model_requests_total",
            "Calls answered by a model of this process.",
            |s| s.requests,
        ),
        (
            "hippo_model_batches_total",
            "Batches a model of this process ran.",
            |s| s.batches,
        ),
        (
            "hippo_model_items_total",
            "Texts or pairs a model of this process ran.",
            |s| s.items,
        ),
    ];
    for (name, help, count) in per_model {
        let mut family = Family::new(&mut out, name, "counter", help);
        for (model, stats) in &models {
            if let Some(stats) = stats {
                family.sample(&[("model", model)], count(stats) as f64);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        Family::new(&mut out, "x_total", "counter", "An x.").sample(&[("k", "v\"")], 2.0);
        assert_eq!(
            out,
            "# HELP x_total An x.\n# TYPE x_total counter\nx_total{k=\"v\\\"\"} 2\n"
        );
    }
}
