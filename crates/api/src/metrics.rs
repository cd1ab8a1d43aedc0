//! Prometheus metrics in the text exposition format (version 0.0.4), as
//! `GET /metrics` serves them: the cluster as the broker sees it (queues,
//! dead letters and every worker's last heartbeat, with its figures per task
//! name; the same from any process), plus what this process holds (plugins,
//! the models' batching).
//!
//! Counters and histograms come from the workers' heartbeats, so they are
//! per worker process and restart from zero with it, as Prometheus counters
//! may. A histogram's buckets are the ones its worker used (`hippo_task`'s
//! bounds), carried in the heartbeat.

use hippo_broker::{BrokerError, SharedBroker, TaskNameFigures};
use hippo_memory::MemoryServices;
use hippo_runtime::PluginRegistry;
use hippo_task::Histogram;
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
        self.sample_of("", labels, value);
    }

    /// A sample of the family's series `{name}{suffix}` (a histogram's
    /// `_bucket`, `_sum`, `_count`).
    fn sample_of(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        self.out.push_str(suffix);
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

impl Family<'_> {
    /// A histogram's series: cumulative `_bucket`s up to `le="+Inf"`,
    /// `_sum` and `_count`.
    fn histogram(&mut self, labels: &[(&str, &str)], histogram: &Histogram) {
        let cumulative = histogram
            .cumulative()
            .map(|(bound, count)| (bound.to_string(), count));
        for (le, count) in cumulative.chain([("+Inf".to_owned(), histogram.count())]) {
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample_of("_bucket", &with_le, count as f64);
        }
        self.sample_of("_sum", labels, histogram.sum);
        self.sample_of("_count", labels, histogram.count() as f64);
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
    let dead_letters = broker.dead_letter_count().await?;
    let mut out = String::new();

    let name = "hippo_queue_tasks";
    let mut family = Family::new(
        &mut out,
        name,
        "gauge",
        "Tasks in a queue, by state (scheduled: delayed by an ETA, a countdown or a retry).",
    );
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

    Family::new(
        &mut out,
        "hippo_dead_letters",
        "gauge",
        "Tasks that failed for good and wait to be replayed or purged.",
    )
    .sample(&[], dead_letters as f64);
    task_figures(&mut out, &workers);

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
    let mut family = Family::new(
        &mut out,
        "hippo_model_batch_seconds",
        "histogram",
        "Time a model of this process took per batch.",
    );
    for (model, stats) in &models {
        if let Some(stats) = stats {
            family.histogram(&[("model", model)], &stats.latency_s);
        }
    }
    Ok(out)
}

/// Per worker and task name (from the heartbeats): attempts by outcome,
/// and histograms of their wall time, fuel and peak memory.
fn task_figures(out: &mut String, workers: &[hippo_broker::WorkerHeartbeat]) {
    let mut family = Family::new(
        out,
        "hippo_task_outcomes_total",
        "counter",
        "Task attempts a worker ended, by task name and outcome.",
    );
    for worker in workers {
        for (task, figures) in &worker.tasks {
            for (outcome, count) in [
                ("succeeded", figures.succeeded),
                ("failed", figures.failed),
                ("retried", figures.retried),
                ("revoked", figures.revoked),
            ] {
                let labels = [
                    ("worker", worker.name.as_str()),
                    ("task", task),
                    ("outcome", outcome),
                ];
                family.sample(&labels, count as f64);
            }
        }
    }
    type Of = fn(&TaskNameFigures) -> &Histogram;
    let histograms: [(&str, &str, Of); 3] = [
        (
            "hippo_task_runtime_seconds",
            "Wall time of the task attempts that ran.",
            |f| &f.runtime_s,
        ),
        (
            "hippo_task_fuel",
            "Fuel the task attempts used (those run with a fuel limit).",
            |f| &f.fuel,
        ),
        (
            "hippo_task_peak_memory_bytes",
            "Peak linear memory of the task attempts that ran.",
            |f| &f.peak_memory_bytes,
        ),
    ];
    for (name, help, of) in histograms {
        let mut family = Family::new(out, name, "histogram", help);
        for worker in workers {
            for (task, figures) in &worker.tasks {
                family.histogram(&[("worker", &worker.name), ("task", task)], of(figures));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_up_to_infinity() {
        let mut histogram = Histogram::new(&[0.5, 2.0]);
        for value in [0.1, 1.0, 3.0] {
            histogram.observe(value);
        }
        let mut out = String::new();
        Family::new(&mut out, "x_seconds", "histogram", "An x.")
            .histogram(&[("k", "v")], &histogram);
        assert_eq!(
            out,
            "# HELP x_seconds An x.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{k=\"v\",le=\"0.5\"} 1\n\
             x_seconds_bucket{k=\"v\",le=\"2\"} 2\n\
             x_seconds_bucket{k=\"v\",le=\"+Inf\"} 3\n\
             x_seconds_sum{k=\"v\"} 4.1\n\
             x_seconds_count{k=\"v\"} 3\n"
        );
    }

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
