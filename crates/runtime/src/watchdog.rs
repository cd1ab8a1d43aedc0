//! The watchdog that stops a task whatever state its guest is in.
//!
//! The epoch callback ([`super::host_api::on_epoch_tick`]) only runs while
//! wasm code runs. A guest can also wait: in a WASI call (a sleep, a
//! pollable that never becomes ready) or in a host service call (a model
//! batch, a store search, the key-value store). Its call future is then
//! pending and no wasm runs, so no tick reaches it. Every guest call is
//! therefore raced against a [`Watchdog`]: a future that is ready once the
//! task is revoked or its hard deadline passes. When it wins, the guest's
//! call future is dropped, which wasmtime turns into a trap inside the
//! suspended host call (the fiber resumes with an error and unwinds), and
//! the task ends with the watchdog's reason.
//!
//! Invariants:
//! - the watchdog needs no timer of any async runtime: the epoch ticker
//!   thread ([`super::engine::EpochTicker`]) checks every registered watch
//!   at each tick and wakes those whose condition holds, so the race works
//!   the same under Tokio and under the plain executor of `block_on_here`;
//! - a watch is registered only when its future is first found pending,
//!   and removed when the future is dropped: a task that ends in one poll
//!   (a no-op) never takes the lock.

use super::host_api::{CancelToken, Interruption};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The watches of every waiting task, checked by the epoch ticker.
#[derive(Debug, Default)]
pub(crate) struct Watches {
    entries: Mutex<HashMap<u64, Watch>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Watch {
    deadline: Instant,
    cancel: CancelToken,
    waker: Waker,
}

impl Watches {
    /// Wakes (and forgets) every watch whose task was revoked or whose
    /// deadline passed by `now`. Called by the ticker once per tick.
    pub(crate) fn check(&self, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, watch| {
            let fired = now >= watch.deadline || watch.cancel.is_cancelled();
            if fired {
                watch.waker.wake_by_ref();
            }
            !fired
        });
    }

    /// A watchdog for a task with `deadline` and `cancel`.
    pub(crate) fn watchdog(self: &Arc<Self>, deadline: Instant, cancel: CancelToken) -> Watchdog {
        Watchdog {
            watches: self.clone(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            deadline,
            cancel,
            registered: None,
        }
    }

    fn register(&self, id: u64, watch: Watch) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, watch);
    }

    fn remove(&self, id: u64) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Ready with the reason once its task is revoked or its hard deadline
/// passes (revocation first, as the epoch callback decides).
#[derive(Debug)]
pub(crate) struct Watchdog {
    watches: Arc<Watches>,
    id: u64,
    deadline: Instant,
    cancel: CancelToken,
    /// The waker last registered, so a poll with the same one takes no lock.
    registered: Option<Waker>,
}

impl Watchdog {
    fn fired(&self) -> Option<Interruption> {
        if self.cancel.is_cancelled() {
            Some(Interruption::Revoked)
        } else if Instant::now() >= self.deadline {
            Some(Interruption::HardTimeLimit)
        } else {
            None
        }
    }
}

impl Future for Watchdog {
    type Output = Interruption;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Interruption> {
        if let Some(reason) = self.fired() {
            return Poll::Ready(reason);
        }
        if !self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            let watch = Watch {
                deadline: self.deadline,
                cancel: self.cancel.clone(),
                waker: cx.waker().clone(),
            };
            self.watches.register(self.id, watch);
            self.registered = Some(cx.waker().clone());
        }
        // The ticker may have checked between `fired` and `register`; it
        // looks again at the next tick, which bounds the delay to one tick.
        Poll::Pending
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if self.registered.is_some() {
            self.watches.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_watchdog_fires_at_its_deadline_and_on_revocation() {
        let watches = Arc::new(Watches::default());
        let soon = watches.watchdog(
            Instant::now() + Duration::from_millis(20),
            CancelToken::new(),
        );
        let ticker = {
            let watches = watches.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    std::thread::sleep(Duration::from_millis(5));
                    watches.check(Instant::now());
                }
            })
        };
        let started = Instant::now();
        assert_eq!(
            futures::executor::block_on(soon),
            Interruption::HardTimeLimit
        );
        assert!(started.elapsed() < Duration::from_millis(500));

        let cancel = CancelToken::new();
        let revoked = watches.watchdog(Instant::now() + Duration::from_secs(3600), cancel.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            cancel.cancel();
        });
        assert_eq!(futures::executor::block_on(revoked), Interruption::Revoked);
        assert_eq!(watches.len(), 0, "a fired watch is forgotten");
        ticker.join().unwrap();
    }

    #[test]
    fn a_dropped_watchdog_leaves_no_watch_behind() {
        let watches = Arc::new(Watches::default());
        let mut dog = watches.watchdog(
            Instant::now() + Duration::from_secs(3600),
            CancelToken::new(),
        );
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut dog).poll(&mut cx).is_pending());
        assert_eq!(watches.len(), 1);
        drop(dog);
        assert_eq!(watches.len(), 0);
    }
}
