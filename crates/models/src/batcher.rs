//! Dynamic batching: requests from many tasks (each a list of items) are
//! coalesced by one thread per model into batches, run together, and their
//! results split back to each caller.

use super::ModelError;
use hippo_task::{BATCH_BOUNDS_S, Histogram};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What a model's batching thread has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchStats {
    /// Requests answered (each a call of embed or score with at least one item).
    pub requests: u64,
    /// Batches run: each one coalesces the requests that arrived together.
    pub batches: u64,
    /// Items (texts or pairs) in those batches.
    pub items: u64,
    /// How long the model took per batch, seconds.
    pub latency_s: Histogram,
}

impl BatchStats {
    /// Items per batch on average (0 before the first batch).
    pub fn mean_batch_size(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.items as f64 / self.batches as f64
        }
    }
}

#[derive(Debug)]
struct Counters {
    requests: AtomicU64,
    batches: AtomicU64,
    items: AtomicU64,
    latency_s: Mutex<Histogram>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: AtomicU64::default(),
            batches: AtomicU64::default(),
            items: AtomicU64::default(),
            latency_s: Mutex::new(Histogram::new(BATCH_BOUNDS_S)),
        }
    }
}

type Reply<R> = oneshot::Sender<Result<Vec<R>, ModelError>>;

#[derive(Debug)]
struct Request<T, R> {
    items: Vec<T>,
    reply: Reply<R>,
}

/// The sending side of a model's batching thread. The thread ends when the
/// batcher is dropped, after answering what was queued.
#[derive(Debug)]
pub(crate) struct Batcher<T, R> {
    model: String,
    requests: mpsc::Sender<Request<T, R>>,
    counters: Arc<Counters>,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the batching thread. Once a request is there it takes every
    /// request queued behind it, up to `max_items`, and, when callers are
    /// running concurrently (the last batch held more than one request), waits
    /// up to `max_wait` for more; then it hands every item to `process` at
    /// once, which returns one result per item, in order. A lone caller never
    /// waits: nobody else's texts would come.
    pub(crate) fn start(
        model: &str,
        max_items: usize,
        max_wait: Duration,
        mut process: impl FnMut(Vec<T>) -> Result<Vec<R>, ModelError> + Send + 'static,
    ) -> Result<Self, ModelError> {
        let (sender, receiver) = mpsc::channel::<Request<T, R>>();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread_model = model.to_string();
        std::thread::Builder::new()
            .name(format!("model-{model}"))
            .spawn(move || {
                let mut concurrent = false;
                while let Some(mut batch) = next_batch(&receiver, max_items, max_wait, concurrent) {
                    concurrent = batch.len() > 1;
                    // A caller that gave up (a task stopped at its deadline
                    // or revoked, its future dropped) costs no model time.
                    batch.retain(|request| !request.reply.is_closed());
                    if batch.is_empty() {
                        continue;
                    }
                    let sizes: Vec<usize> = batch.iter().map(|r| r.items.len()).collect();
                    let (items, replies): (Vec<Vec<T>>, Vec<Reply<R>>) =
                        batch.into_iter().map(|r| (r.items, r.reply)).unzip();
                    let items: Vec<T> = items.into_iter().flatten().collect();
                    let total = items.len();
                    let started = Instant::now();
                    let outcome = process(items).and_then(|results| {
                        if results.len() == total {
                            Ok(results)
                        } else {
                            Err(ModelError::Graph {
                                model: thread_model.clone(),
                                message: format!("{} results for {total} inputs", results.len()),
                            })
                        }
                    });
                    thread_counters
                        .latency_s
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .observe(started.elapsed().as_secs_f64());
                    thread_counters.batches.fetch_add(1, Ordering::Relaxed);
                    thread_counters
                        .items
                        .fetch_add(total as u64, Ordering::Relaxed);
                    thread_counters
                        .requests
                        .fetch_add(replies.len() as u64, Ordering::Relaxed);
                    match outcome {
                        Ok(results) => {
                            let mut results = results.into_iter();
                            for (reply, size) in replies.into_iter().zip(sizes) {
                                // A caller that gave up (a dropped future) is no error.
                                let _ = reply.send(Ok(results.by_ref().take(size).collect()));
                            }
                        }
                        Err(error) => {
                            for reply in replies {
                                let _ = reply.send(Err(error.clone()));
                            }
                        }
                    }
                }
            })
            .map_err(|e| {
                ModelError::runtime(Some(&format!("starting the thread of {model}")), e)
            })?;
        Ok(Self {
            model: model.to_string(),
            requests: sender,
            counters,
        })
    }

    fn submit(
        &self,
        items: Vec<T>,
    ) -> Result<oneshot::Receiver<Result<Vec<R>, ModelError>>, ModelError> {
        let (reply, receiver) = oneshot::channel();
        self.requests
            .send(Request { items, reply })
            .map_err(|_| ModelError::Stopped(self.model.clone()))?;
        Ok(receiver)
    }

    /// Runs `items` in the next batch and waits for the results, blocking the
    /// thread. For blocking threads (a task's, `spawn_blocking`): on a tokio
    /// worker thread this panics, use [`Batcher::run`] there.
    pub(crate) fn run_blocking(&self, items: Vec<T>) -> Result<Vec<R>, ModelError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(items)?
            .blocking_recv()
            .map_err(|_| ModelError::Stopped(self.model.clone()))?
    }

    /// Runs `items` in the next batch and waits for the results.
    pub(crate) async fn run(&self, items: Vec<T>) -> Result<Vec<R>, ModelError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(items)?
            .await
            .map_err(|_| ModelError::Stopped(self.model.clone()))?
    }

    /// What the batching thread has done so far.
    pub(crate) fn stats(&self) -> BatchStats {
        BatchStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            items: self.counters.items.load(Ordering::Relaxed),
            latency_s: self
                .counters
                .latency_s
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// The next batch: the first request (waiting as long as it takes), then
/// what is queued behind it and, if `wait`, what arrives within `max_wait`,
/// until `max_items` are there. `None` when every sender is gone.
fn next_batch<T, R>(
    receiver: &mpsc::Receiver<Request<T, R>>,
    max_items: usize,
    max_wait: Duration,
    wait: bool,
) -> Option<Vec<Request<T, R>>> {
    let first = receiver.recv().ok()?;
    let mut count = first.items.len();
    let mut batch = vec![first];
    let deadline = Instant::now() + if wait { max_wait } else { Duration::ZERO };
    while count < max_items {
        let next = match receiver.try_recv() {
            Ok(request) => request,
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match receiver.recv_timeout(left) {
                    Ok(request) => request,
                    Err(_) => break,
                }
            }
        };
        count += next.items.len();
        batch.push(next);
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn concurrent_requests_share_batches_and_get_their_own_results() {
        let batcher: Arc<Batcher<u32, u32>> = Arc::new(
            Batcher::start(
                "doubler",
                64,
                Duration::from_millis(5),
                |items: Vec<u32>| {
                    // as slow as a model: the requests arriving meanwhile queue up
                    std::thread::sleep(Duration::from_millis(20));
                    Ok(items.into_iter().map(|x| x * 2).collect())
                },
            )
            .unwrap(),
        );
        let barrier = Arc::new(Barrier::new(8));
        let callers: Vec<_> = (0..8u32)
            .map(|caller| {
                let (batcher, barrier) = (Arc::clone(&batcher), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let items: Vec<u32> = (0..=caller).map(|i| caller * 100 + i).collect();
                    barrier.wait();
                    let expected: Vec<u32> = items.iter().map(|x| x * 2).collect();
                    assert_eq!(batcher.run_blocking(items).unwrap(), expected);
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        let stats = batcher.stats();
        assert_eq!(stats.requests, 8);
        assert_eq!(stats.items, (1..=8).sum::<u64>());
        assert!(
            stats.batches < 8,
            "requests arriving together share batches: {stats:?}"
        );
        assert_eq!(
            stats.latency_s.count(),
            stats.batches,
            "one latency per batch"
        );
    }

    #[test]
    fn a_failed_batch_fails_each_of_its_requests_and_an_empty_request_runs_nothing() {
        let batcher: Batcher<u32, u32> = Batcher::start("failing", 8, Duration::ZERO, |_| {
            Err(ModelError::Config("no".into()))
        })
        .unwrap();
        assert!(matches!(
            batcher.run_blocking(vec![1]),
            Err(ModelError::Config(_))
        ));
        assert_eq!(batcher.run_blocking(Vec::new()).unwrap(), Vec::<u32>::new());
        assert_eq!(batcher.stats().batches, 1);
    }

    #[test]
    fn a_panicked_thread_answers_stopped() {
        let batcher: Batcher<u32, u32> =
            Batcher::start("panicking", 8, Duration::ZERO, |_| panic!("model crashed")).unwrap();
        assert!(matches!(
            batcher.run_blocking(vec![1]),
            Err(ModelError::Stopped(_))
        ));
        assert!(matches!(
            batcher.run_blocking(vec![1]),
            Err(ModelError::Stopped(_))
        ));
    }
}
