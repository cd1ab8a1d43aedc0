//! Running a held task and settling it: the task's outcome becomes the
//! broker's settlement (success, retry with backoff, failure, revoked), and
//! its progress reports are forwarded to the broker while it runs.

use crate::RetryPolicy;
use crate::Worker;
use crate::fetch::{Stop, stop_reason};
use hippo_broker::{
    Delivery, LeaseStatus, RunMeta, Settlement, SharedBroker, TaskMessage, TaskOutput, TaskState,
    now_ms,
};
use hippo_runtime::{CancelToken, Progress, TaskFailure, TaskRequest};
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// How long a task runs before its worker marks it STARTED. Shorter tasks
/// (most memory operations) skip that write: their settlement records the
/// start, which halves the broker writes per task, and a state that lasts
/// less than this is not one anybody can watch.
const MARK_STARTED_AFTER: Duration = Duration::from_millis(10);

impl Worker {
    /// Runs a delivery in `slot` and settles it. The slot is free again as
    /// soon as the task has run: writing its outcome is the broker's work,
    /// and holding a slot through that round trip would cap a worker at
    /// `concurrency` tasks per round trip.
    pub(crate) async fn execute(
        &self,
        delivery: &Delivery,
        slot: tokio::sync::OwnedSemaphorePermit,
        cancel: CancelToken,
        stop: &AtomicU8,
    ) {
        if stop_reason(stop) == Stop::Revoked {
            drop(slot);
            self.settle(delivery, Settlement::Revoked { meta: None })
                .await;
            return;
        }
        // A task is marked STARTED only once it has run for a moment: one
        // that ends sooner is settled in one write that records its start
        // too (and ends REVOKED if it was revoked before it started).
        let run = self.run_task(delivery, cancel, stop);
        tokio::pin!(run);
        let settlement = tokio::select! {
            settlement = &mut run => {
                drop(slot);
                settlement
            }
            () = tokio::time::sleep(MARK_STARTED_AFTER) => {
                let started = self.broker.mark_started(delivery, &self.config.name);
                let (settlement, started) = tokio::join!(
                    async {
                        let settlement = run.await;
                        drop(slot);
                        settlement
                    },
                    started
                );
                match started {
                    Ok(LeaseStatus::Held) => settlement,
                    Ok(LeaseStatus::Lost) => return,
                    Ok(LeaseStatus::Revoked) => Some(Settlement::Revoked {
                        meta: settlement.and_then(Settlement::into_meta),
                    }),
                    Err(error) => {
                        tracing::warn!(task = %delivery.message.id, %error, "could not mark a task started; its lease will expire");
                        return;
                    }
                }
            }
        };
        if let Some(settlement) = settlement {
            self.settle(delivery, settlement).await;
        }
    }

    /// Runs the task; `None` when the worker must not settle it (its lease
    /// was lost, or it went back to the queue at shutdown).
    pub(crate) async fn run_task(
        &self,
        delivery: &Delivery,
        cancel: CancelToken,
        stop: &AtomicU8,
    ) -> Option<Settlement> {
        let message = &delivery.message;
        let Some(plugin) = self.registry.resolve(&message.task) else {
            let failure = TaskFailure::UnknownTask {
                task: message.task.clone(),
            };
            let meta = self.meta(now_ms(), None, String::new());
            return Some(Settlement::Failure {
                failure,
                dead_letter: true,
                meta,
            });
        };
        let forwarder = Arc::new(ProgressForwarder {
            runtime: tokio::runtime::Handle::current(),
            broker: self.broker.clone(),
            delivery: delivery.clone(),
            started: std::sync::OnceLock::new(),
        });
        let request = TaskRequest {
            task_id: message.id.clone(),
            task_name: message.task.clone(),
            attempt: message.attempt,
            queue: message.queue.clone(),
            input: serde_json::to_vec(&message.input).unwrap_or_else(|_| b"null".to_vec()),
            limits: message.limits,
            may_raise_limits: message.may_raise_limits,
            acting_for: message.acting_for.clone(),
            cancel,
            progress: Some(Arc::new({
                let forwarder = forwarder.clone();
                move |p: &Progress| forwarder.report(p)
            })),
        };
        let started_ms = now_ms();
        let outcome = self.registry.runtime().execute(plugin, request).await;
        forwarder.stop();
        let meta = RunMeta {
            log: outcome.log,
            ..self.meta(started_ms, Some(outcome.stats), outcome.plugin_version)
        };
        match settlement_of(
            outcome.result,
            message,
            stop_reason(stop),
            &self.config.retry,
            meta,
        ) {
            Ok(settlement) => Some(settlement),
            Err(Unsettled::LeaseLost) => None,
            Err(Unsettled::HandBack) => {
                self.hand_back(delivery).await;
                None
            }
        }
    }

    pub(crate) fn meta(
        &self,
        started_ms: u64,
        stats: Option<hippo_task::ExecStats>,
        plugin_version: String,
    ) -> RunMeta {
        RunMeta {
            worker: self.config.name.clone(),
            started_ms,
            finished_ms: now_ms(),
            stats: stats.unwrap_or_default(),
            plugin_version,
            log: Default::default(),
        }
    }

    pub(crate) async fn settle(&self, delivery: &Delivery, settlement: Settlement) {
        let state = match &settlement {
            Settlement::Success { .. } => TaskState::Success,
            Settlement::Retry { .. } => TaskState::Retry,
            Settlement::Failure { .. } => TaskState::Failure,
            Settlement::Revoked { .. } => TaskState::Revoked,
        };
        let stats = settlement.meta().map(|meta| meta.stats);
        match self.broker.settle(delivery, settlement).await {
            Ok(true) => {
                let mut per_task = self
                    .counters
                    .per_task
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let task = &delivery.message.task;
                // The name is copied once, at its first task here.
                match per_task.get_mut(task) {
                    Some(figures) => figures.count(state, stats.as_ref()),
                    None => per_task
                        .entry(task.clone())
                        .or_default()
                        .count(state, stats.as_ref()),
                }
            }
            Ok(false) => {
                tracing::warn!(task = %delivery.message.id, "lease lost before the result was written; result discarded")
            }
            Err(error) => {
                tracing::warn!(task = %delivery.message.id, %error, "could not settle a task; its lease will expire and it will run again")
            }
        }
    }
}

/// Sends a running task's progress reports to the broker, from a task of
/// its own that starts with the first report: most tasks report none, and
/// a task per run would cost more than the run of a short one.
struct ProgressForwarder {
    runtime: tokio::runtime::Handle,
    broker: SharedBroker,
    delivery: Delivery,
    started: std::sync::OnceLock<(
        tokio::sync::watch::Sender<Option<Progress>>,
        tokio::task::AbortHandle,
    )>,
}

impl ProgressForwarder {
    /// Called from the task's thread with each report.
    fn report(&self, progress: &Progress) {
        let (latest, _) = self.started.get_or_init(|| {
            let (latest, reports) = tokio::sync::watch::channel(None);
            let forwarding = self.runtime.spawn(forward_progress(
                self.broker.clone(),
                self.delivery.clone(),
                reports,
            ));
            (latest, forwarding.abort_handle())
        });
        let _ = latest.send(Some(progress.clone()));
    }

    /// Stops forwarding once the task ended.
    fn stop(&self) {
        if let Some((_, forwarding)) = self.started.get() {
            forwarding.abort();
        }
    }
}

/// Sends the latest progress report to the broker, at most every 100 ms.
async fn forward_progress(
    broker: SharedBroker,
    delivery: Delivery,
    mut reports: tokio::sync::watch::Receiver<Option<Progress>>,
) {
    while reports.changed().await.is_ok() {
        let latest = reports.borrow_and_update().clone();
        if let Some(progress) = latest {
            let _ = broker.report_progress(&delivery, &progress).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Why a task that ran is not the worker's to settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsettled {
    /// Another worker holds its lease now.
    LeaseLost,
    /// Interrupted at shutdown: it goes back to the queue, to run again.
    HandBack,
}

/// What the result of a run of `message` means for the broker: success
/// (when the output is a JSON document), a retry with backoff (when the
/// task asked for one and has retries left), revoked, or a failure that
/// goes to the dead letters. `stop` is why the worker interrupted it, if it
/// did; `meta` is the run's record.
pub(crate) fn settlement_of(
    result: Result<Vec<u8>, TaskFailure>,
    message: &TaskMessage,
    stop: Stop,
    retry: &RetryPolicy,
    meta: RunMeta,
) -> Result<Settlement, Unsettled> {
    let failure = match result {
        Ok(bytes) => {
            return Ok(match TaskOutput::from_bytes(bytes) {
                Ok(output) => Settlement::Success { output, meta },
                Err(error) => Settlement::Failure {
                    failure: TaskFailure::Fatal {
                        message: error.to_string(),
                    },
                    dead_letter: true,
                    meta,
                },
            });
        }
        Err(failure) => failure,
    };
    Ok(match failure {
        TaskFailure::Revoked => match stop {
            Stop::LeaseLost => return Err(Unsettled::LeaseLost),
            Stop::Shutdown => return Err(Unsettled::HandBack),
            Stop::Revoked | Stop::None => Settlement::Revoked { meta: Some(meta) },
        },
        TaskFailure::Retry { delay_ms, .. } if message.attempt <= message.max_retries => {
            let delay = retry.delay(
                message.attempt,
                delay_ms.map(Duration::from_millis),
                jitter_unit(),
            );
            Settlement::Retry {
                failure,
                at_ms: now_ms() + delay.as_millis() as u64,
                meta,
            }
        }
        failure => Settlement::Failure {
            failure,
            dead_letter: true,
            meta,
        },
    })
}

/// A uniform number in [0, 1) for retry jitter.
fn jitter_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(attempt: u32, max_retries: u32) -> TaskMessage {
        let mut message = TaskMessage::new("t.task", "default", serde_json::json!({}));
        message.attempt = attempt;
        message.max_retries = max_retries;
        message
    }

    fn meta() -> RunMeta {
        RunMeta {
            worker: "w".into(),
            started_ms: 1,
            finished_ms: 2,
            stats: hippo_task::ExecStats {
                fuel_used: None,
                peak_memory_bytes: 0,
                wall_time_us: 1,
                soft_limit_passed: false,
            },
            plugin_version: "1.0.0".into(),
            log: Default::default(),
        }
    }

    fn retry(delay_ms: Option<u64>) -> Result<Vec<u8>, TaskFailure> {
        Err(TaskFailure::Retry {
            message: "later".into(),
            delay_ms,
        })
    }

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
    };

    #[test]
    fn a_json_output_succeeds_and_anything_else_is_a_dead_letter() {
        let ok = settlement_of(
            Ok(b"{\"a\": 1}".to_vec()),
            &message(1, 3),
            Stop::None,
            &POLICY,
            meta(),
        );
        assert!(matches!(ok, Ok(Settlement::Success { .. })), "{ok:?}");
        let bad = settlement_of(
            Ok(b"not json".to_vec()),
            &message(1, 3),
            Stop::None,
            &POLICY,
            meta(),
        );
        assert!(
            matches!(
                bad,
                Ok(Settlement::Failure {
                    dead_letter: true,
                    failure: TaskFailure::Fatal { .. },
                    ..
                })
            ),
            "{bad:?}"
        );
    }

    #[test]
    fn a_retry_is_honoured_while_retries_last_then_dead_lettered() {
        let before = now_ms();
        match settlement_of(
            retry(Some(60_000)),
            &message(3, 3),
            Stop::None,
            &POLICY,
            meta(),
        ) {
            // The delay the task asked for, within the policy's cap.
            Ok(Settlement::Retry { at_ms, .. }) => {
                assert!(
                    (before + 5_000..=now_ms() + 5_000).contains(&at_ms),
                    "{at_ms}"
                )
            }
            other => panic!("{other:?}"),
        }
        let spent = settlement_of(retry(None), &message(4, 3), Stop::None, &POLICY, meta());
        assert!(
            matches!(
                spent,
                Ok(Settlement::Failure {
                    dead_letter: true,
                    failure: TaskFailure::Retry { .. },
                    ..
                })
            ),
            "{spent:?}"
        );
    }

    #[test]
    fn an_interrupted_task_is_settled_by_why_it_was_interrupted() {
        let interrupted = |stop| {
            settlement_of(
                Err(TaskFailure::Revoked),
                &message(1, 3),
                stop,
                &POLICY,
                meta(),
            )
        };
        assert!(matches!(
            interrupted(Stop::Revoked),
            Ok(Settlement::Revoked { meta: Some(_) })
        ));
        assert_eq!(
            interrupted(Stop::LeaseLost).unwrap_err(),
            Unsettled::LeaseLost
        );
        assert_eq!(
            interrupted(Stop::Shutdown).unwrap_err(),
            Unsettled::HandBack
        );
    }
}
