//! What the benchmark sends: one workload (a task and its inputs) through
//! the broker directly or through the API over HTTP, one call at a time or
//! from many concurrent clients.

use super::stack::{KEY, Stack};
use crate::queues::finished;
use anyhow::{Context, bail, ensure};
use hippo::broker::{SharedBroker, TaskMessage, TaskState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a round trip through the API waits for its task (`?wait=`).
const WAIT_S: u32 = 10;

/// A task the benchmark submits, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The bench guest's `bench.noop` through `POST /api/v1/tasks/submit`.
    Noop,
    /// `memory.create` through `POST /api/v1/tasks/memory/create`.
    MemoryCreate,
}

impl Workload {
    /// The task's name.
    pub fn task(self) -> &'static str {
        match self {
            Workload::Noop => "bench.noop",
            Workload::MemoryCreate => "memory.create",
        }
    }

    /// The prefix of this workload's figures in the report.
    pub fn prefix(self) -> &'static str {
        match self {
            Workload::Noop => "",
            Workload::MemoryCreate => "memory_create_",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Workload::Noop => "/api/v1/tasks/submit",
            Workload::MemoryCreate => "/api/v1/tasks/memory/create",
        }
    }

    /// The task's input for call `n`.
    pub fn input(self, n: usize) -> Value {
        match self {
            Workload::Noop => Value::Null,
            Workload::MemoryCreate => super::memory::new_memory(n),
        }
    }

    /// For `memory.create`, the percentage of `results` that stored a new
    /// memory (`"action": "created"`); `None` for tasks that store nothing.
    pub fn created_pct(self, results: &[Value]) -> Option<f64> {
        match self {
            Workload::Noop => None,
            Workload::MemoryCreate => {
                let created = results.iter().filter(|r| r["action"] == "created").count();
                Some(100.0 * created as f64 / results.len().max(1) as f64)
            }
        }
    }

    /// The HTTP body of call `n`: the route's shape of the same input.
    fn body(self, n: usize) -> Value {
        match self {
            Workload::Noop => json!({ "task": self.task(), "input": self.input(n) }),
            Workload::MemoryCreate => self.input(n),
        }
    }
}

/// One client of the API, on its own keep-alive connection.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Arc<str>,
    auth: Arc<str>,
}

impl Client {
    /// A client of the API at `base_url`.
    pub fn new(base_url: &str) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?,
            base_url: base_url.into(),
            auth: format!("Bearer {KEY}").into(),
        })
    }

    /// `GET /healthz`: a request that needs no key and touches no broker.
    /// The first opens the connection.
    async fn health(&self) -> anyhow::Result<()> {
        let response = self
            .http
            .get(format!("{}/healthz", self.base_url))
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "healthz: {}",
            response.status()
        );
        response.bytes().await?;
        Ok(())
    }

    async fn post(
        &self,
        workload: Workload,
        n: usize,
        wait: bool,
        expect: StatusCode,
    ) -> anyhow::Result<Value> {
        let mut url = format!("{}{}", self.base_url, workload.route());
        if wait {
            url.push_str(&format!("?wait={WAIT_S}"));
        }
        let response = self
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, &*self.auth)
            .json(&workload.body(n))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(
            status == expect,
            "{} answered {status}: {body}",
            workload.route()
        );
        Ok(body)
    }

    /// Submits call `n` without waiting; returns the task's id.
    pub async fn submit(&self, workload: Workload, n: usize) -> anyhow::Result<String> {
        let body = self.post(workload, n, false, StatusCode::ACCEPTED).await?;
        Ok(body["task_id"]
            .as_str()
            .context("the answer lacks task_id")?
            .to_string())
    }

    /// Submits call `n` with `?wait=`; the task's result, unless it failed.
    pub async fn round_trip(&self, workload: Workload, n: usize) -> anyhow::Result<Value> {
        let mut body = self.post(workload, n, true, StatusCode::OK).await?;
        if body["status"] != "SUCCESS" {
            bail!(
                "{} ended {}: {}",
                workload.task(),
                body["status"],
                body["error"]
            );
        }
        Ok(body["result"].take())
    }
}

/// One submit-and-wait straight through the broker, as the queues
/// benchmark measures it; returns the task's result.
pub async fn broker_round_trip(
    broker: &SharedBroker,
    message: TaskMessage,
) -> anyhow::Result<Value> {
    let id = broker.submit(message).await?.task_id;
    finished(broker, &id).await
}

/// Sequential round trips of one workload, the broker's and the API's,
/// and of `GET /healthz` on the same connection: what HTTP itself costs.
#[derive(Debug)]
pub struct Sequential {
    pub broker: Vec<Duration>,
    pub http: Vec<Duration>,
    pub health: Vec<Duration>,
}

/// Calls taken in blocks of this many, alternating broker, HTTP and health
/// blocks so that drift (other processes, the broker's growth) hits all.
const BLOCK: usize = 50;

/// `count` sequential round trips straight through the broker, `count`
/// through the API on one keep-alive connection and `count` health checks
/// on it, after `warm_up` of each kind of round trip.
pub async fn sequential(
    stack: &Stack,
    workload: Workload,
    count: usize,
    warm_up: usize,
) -> anyhow::Result<Sequential> {
    let client = Client::new(&stack.base_url)?;
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for _ in 0..warm_up {
        broker_round_trip(
            &stack.broker,
            stack.message(workload.task(), workload.input(next()))?,
        )
        .await?;
        client.round_trip(workload, next()).await?;
    }
    let mut times = Sequential {
        broker: Vec::with_capacity(count),
        http: Vec::with_capacity(count),
        health: Vec::with_capacity(count),
    };
    while times.http.len() < count {
        let block = BLOCK.min(count - times.http.len());
        for _ in 0..block {
            let message = stack.message(workload.task(), workload.input(next()))?;
            let sent = Instant::now();
            broker_round_trip(&stack.broker, message).await?;
            times.broker.push(sent.elapsed());
        }
        for _ in 0..block {
            let n = next();
            let sent = Instant::now();
            client.round_trip(workload, n).await?;
            times.http.push(sent.elapsed());
        }
        for _ in 0..block {
            let sent = Instant::now();
            client.health().await?;
            times.health.push(sent.elapsed());
        }
    }
    Ok(times)
}

/// What concurrent clients did: how long they took, and each call's
/// latency and answer.
#[derive(Debug)]
pub struct FanOut<T> {
    pub elapsed: Duration,
    pub calls: Vec<(Duration, T)>,
}

/// `total` calls of `call` from `clients` concurrent clients, each on its
/// own connection (opened before the clock starts), taking the next call
/// number until none is left. Call numbers start at `first`.
pub async fn fan_out<T, F, Fut>(
    base_url: &str,
    clients: usize,
    first: usize,
    total: usize,
    call: F,
) -> anyhow::Result<FanOut<T>>
where
    T: Send + 'static,
    F: Fn(Client, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, next, start, call) = (
            Client::new(base_url)?,
            next.clone(),
            start.clone(),
            call.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let connected = client.health().await;
            start.wait().await;
            connected?;
            let mut calls = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(calls);
                }
                let sent = Instant::now();
                let answer = call(client.clone(), first + n).await?;
                calls.push((sent.elapsed(), answer));
            }
        }));
    }
    start.wait().await;
    let started = Instant::now();
    let mut calls = Vec::with_capacity(total);
    for task in tasks {
        calls.extend(task.await??);
    }
    Ok(FanOut {
        elapsed: started.elapsed(),
        calls,
    })
}

/// Waits until the broker holds no ready, reserved or scheduled task.
pub async fn drained(broker: &SharedBroker) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let waiting: u64 = broker
            .queue_stats()
            .await?
            .iter()
            .map(|q| q.ready + q.reserved + q.scheduled)
            .sum();
        if waiting == 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{waiting} tasks still queued after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The results of the tasks of `ids`, unless one did not succeed.
pub async fn results(broker: &SharedBroker, ids: &[String]) -> anyhow::Result<Vec<Value>> {
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let record = broker
            .task(id)
            .await?
            .with_context(|| format!("task {id} vanished"))?;
        ensure!(
            record.state == TaskState::Success,
            "task {id} ended {:?}: {:?}",
            record.state,
            record.error
        );
        results.push(record.result.map(|r| r.to_value()).unwrap_or_default());
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noop_bodies_are_submissions_of_the_noop_task() {
        let request: hippo::api::SubmitRequest =
            serde_json::from_value(Workload::Noop.body(7)).unwrap();
        assert_eq!(request.task, "bench.noop");
        assert!(request.input.is_null());
        assert!(request.queue.is_none());
    }

    #[test]
    fn memory_bodies_are_the_task_input() {
        let body = Workload::MemoryCreate.body(3);
        assert_eq!(body, Workload::MemoryCreate.input(3));
        assert!(body["text"].as_str().unwrap().ends_with('.'));
        assert_eq!(body["user_id"], "bench-user-3");
    }

    #[test]
    fn the_created_share_counts_created_actions() {
        let results = [
            json!({"action": "created"}),
            json!({"action": "skipped_duplicate"}),
            json!({"action": "created"}),
            json!({"action": "updated_existing"}),
        ];
        assert_eq!(Workload::MemoryCreate.created_pct(&results), Some(50.0));
        assert_eq!(Workload::Noop.created_pct(&results), None);
    }
}
