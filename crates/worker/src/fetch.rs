//! Taking work: the fetch loop reserves tasks up to the prefetch limit,
//! and each task is held (leased, waiting for a slot, then running) until
//! it is let go. What interrupts a held task, and why, is here too.

use crate::Worker;
use hippo_broker::Delivery;
use hippo_runtime::CancelToken;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// Why the worker interrupted a task it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stop {
    None = 0,
    Revoked = 1,
    LeaseLost = 2,
    Shutdown = 3,
}

#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) delivery: Delivery,
    cancel: CancelToken,
    stop: Arc<AtomicU8>,
}

impl Held {
    pub(crate) fn interrupt(&self, why: Stop) {
        // The first reason wins: a revoked task stays revoked at shutdown.
        let _ = self.stop.compare_exchange(
            Stop::None as u8,
            why as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.cancel.cancel();
    }
}

pub(crate) fn stop_reason(stop: &AtomicU8) -> Stop {
    match stop.load(Ordering::SeqCst) {
        1 => Stop::Revoked,
        2 => Stop::LeaseLost,
        3 => Stop::Shutdown,
        _ => Stop::None,
    }
}

impl Worker {
    pub(crate) async fn fetch_until_stopped(self: Arc<Self>) {
        while !self.stopping.load(Ordering::SeqCst) {
            let limit =
                self.current.load(Ordering::Relaxed) * self.config.prefetch_multiplier.max(1);
            let room = limit.saturating_sub(self.held_count());
            if room == 0 {
                let released = self.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                if self.held_count() >= limit && !self.stopping.load(Ordering::SeqCst) {
                    released.await;
                }
                continue;
            }
            let reserved = self
                .broker
                .reserve(
                    &self.config.name,
                    &self.config.queues,
                    room,
                    self.config.lease,
                    Duration::from_secs(1),
                )
                .await;
            match reserved {
                Ok(deliveries) => {
                    let fetched = !deliveries.is_empty();
                    for delivery in deliveries {
                        self.hold(delivery);
                    }
                    if fetched {
                        // The tasks just held start first (each runs until
                        // it first waits, a short one until its result is
                        // sent): asking for more is a socket write and, over
                        // Redis, a command Redis runs, neither of which
                        // should come before a result someone waits for.
                        tokio::task::yield_now().await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "reserve failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        // Tasks handed to us after the last reserve go back to the queue
        // with the rest (no task starts after shutdown began).
        match self
            .broker
            .stop_waiting(&self.config.name, &self.config.queues)
            .await
        {
            Ok(late) => late.into_iter().for_each(|delivery| self.hold(delivery)),
            Err(error) => {
                tracing::warn!(%error, "could not end the wait for work; tasks handed meanwhile come back when their lease expires")
            }
        }
    }

    pub(crate) fn held_count(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn hold(self: &Arc<Self>, delivery: Delivery) {
        let cancel = CancelToken::new();
        let stop = Arc::new(AtomicU8::new(Stop::None as u8));
        let held = Held {
            delivery: delivery.clone(),
            cancel: cancel.clone(),
            stop: stop.clone(),
        };
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(delivery.message.id.clone(), held);
        let worker = self.clone();
        tokio::spawn(async move {
            // Waiting here is what "reserved" means: leased, not yet running.
            match worker.slots.clone().acquire_owned().await {
                Ok(slot) if stop_reason(&stop) != Stop::Shutdown => {
                    worker.execute(&delivery, slot, cancel, &stop).await;
                }
                _ => worker.hand_back(&delivery).await,
            }
            worker.let_go(&delivery.message.id);
        });
    }

    pub(crate) fn let_go(&self, task_id: &str) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(task_id);
        self.released.notify_waiters();
    }

    pub(crate) async fn hand_back(&self, delivery: &Delivery) {
        if let Err(error) = self.broker.release(delivery).await {
            tracing::warn!(task = %delivery.message.id, %error, "could not hand a task back; its lease will expire");
        }
    }
}
