//! What a worker does on a timer beside running tasks: heartbeats (its
//! leases and its own report), the broker's housekeeping, autoscaling,
//! and following revocations.

use crate::Worker;
use crate::fetch::Stop;
use crate::process;
use hippo_broker::{Delivery, LeaseStatus, TaskNameFigures, WorkerHeartbeat, now_ms};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use tokio::sync::Notify;

impl Worker {
    /// Renews every held lease, interrupts tasks that were revoked or lost,
    /// and publishes the worker's own heartbeat.
    pub(crate) async fn beat(self: Arc<Self>) {
        let deliveries: Vec<Delivery> = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|h| h.delivery.clone())
            .collect();
        for delivery in deliveries {
            let why = match self.broker.heartbeat(&delivery, self.config.lease).await {
                Ok(LeaseStatus::Held) => continue,
                Ok(LeaseStatus::Revoked) => Stop::Revoked,
                Ok(LeaseStatus::Lost) => Stop::LeaseLost,
                Err(error) => {
                    tracing::warn!(task = %delivery.message.id, %error, "heartbeat failed");
                    continue;
                }
            };
            if let Some(held) = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&delivery.message.id)
            {
                held.interrupt(why);
            }
        }
        let heartbeat = self.heartbeat();
        if let Err(error) = self
            .broker
            .record_worker(&heartbeat, self.config.heartbeat_interval * 3)
            .await
        {
            tracing::warn!(%error, "could not publish the worker heartbeat");
        }
    }

    /// This worker's current report.
    pub fn heartbeat(&self) -> WorkerHeartbeat {
        let (cpu_seconds, rss_bytes) = process::usage();
        let active = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        let tasks = self
            .counters
            .per_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let total = |outcome: fn(&TaskNameFigures) -> u64| tasks.values().map(outcome).sum();
        WorkerHeartbeat {
            name: self.config.name.clone(),
            hostname: process::hostname(),
            pid: std::process::id(),
            queues: self.config.queues.clone(),
            concurrency: self.current.load(Ordering::Relaxed) as u32,
            active,
            processed: total(|f| f.succeeded + f.failed + f.retried + f.revoked),
            failed: total(|f| f.failed),
            retried: total(|f| f.retried),
            succeeded: total(|f| f.succeeded),
            cpu_seconds,
            rss_bytes,
            started_ms: self.started_ms,
            heartbeat_ms: now_ms(),
            tasks,
        }
    }

    pub(crate) async fn maintain(self: Arc<Self>) {
        if let Err(error) = self.broker.maintain().await {
            tracing::warn!(%error, "broker maintenance failed");
        }
    }

    /// Grows concurrency to meet the work waiting while every slot is busy,
    /// and shrinks it by one slot a second while slots sit idle; within
    /// min..=max.
    pub(crate) async fn autoscale(self: Arc<Self>) {
        let current = self.current.load(Ordering::Relaxed);
        let idle = self.slots.available_permits();
        let waiting = self.held_count().saturating_sub(current - idle);
        if idle == 0 && waiting > 0 && current < self.config.concurrency {
            let grow = waiting.min(self.config.concurrency - current);
            self.slots.add_permits(grow);
            self.current.store(current + grow, Ordering::Relaxed);
        } else if idle > 1
            && waiting == 0
            && current > self.config.min_concurrency
            && let Ok(permit) = self.slots.try_acquire()
        {
            permit.forget();
            self.current.store(current - 1, Ordering::Relaxed);
        }
    }

    pub(crate) async fn follow_revocations(self: Arc<Self>, stop: Arc<Notify>) {
        let mut revocations = self.broker.revocations();
        let stopped = stop.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        loop {
            let task_id = tokio::select! {
                () = &mut stopped => return,
                received = revocations.recv() => match received {
                    Ok(task_id) => task_id,
                    // Missed messages are caught by the next heartbeat.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            };
            if let Some(held) = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&task_id)
            {
                held.interrupt(Stop::Revoked);
            }
        }
    }
}
