//! Grouped writes: submissions, starts and settlements from every caller of
//! one [`RedisBroker`] go to Redis through the `WRITES` script, many in one
//! call when they come together. A busy broker pays Redis' per-script cost
//! once for many tasks instead of once per write, which is what bounds a
//! single Redis server's task rate.
//!
//! A write that finds no call in flight is sent at once by its caller,
//! alone. Others queue for a task that sends whatever is waiting as one
//! call, one call at a time. Sending it from the caller saves two
//! hand-overs between tasks (often between threads) on the way to Redis and
//! back, which a lone write, such as the submission a caller then waits
//! for, would pay on its round trip.

use super::*;
use std::sync::atomic::AtomicUsize;
use tokio::sync::mpsc;

/// Writes sent in one script call at most, and the bytes of arguments after
/// which a group takes no more: enough to amortise the call without making
/// one call hold Redis for long (Redis runs a script alone).
const MAX_GROUP: usize = 256;
const MAX_GROUP_BYTES: usize = 1 << 20;

/// One queued write: its kind and arguments (as the `WRITES` script reads
/// them) and where its reply goes.
struct Queued {
    args: Vec<String>,
    reply: oneshot::Sender<Result<Value, BrokerError>>,
}

/// The `WRITES` script and what every call of it needs.
struct WriteScript {
    con: ConnectionManager,
    script: Script,
    prefix: String,
    event_log_capacity: u64,
    result_expires_ms: u64,
}

impl WriteScript {
    /// Sends `group` (each write's arguments) as one script call and
    /// returns each write's reply, in order.
    async fn send(&self, group: &[&[String]]) -> Result<Vec<Value>, BrokerError> {
        let mut call = self.script.prepare_invoke();
        call.arg(&self.prefix)
            .arg(now_ms())
            .arg(self.event_log_capacity)
            .arg(self.result_expires_ms);
        for args in group {
            call.arg(*args);
        }
        let replies: Vec<Value> = call
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(storage)?;
        if replies.len() != group.len() {
            return Err(corrupt(format!(
                "{} replies to {} writes",
                replies.len(),
                group.len()
            )));
        }
        Ok(replies)
    }
}

/// The writes of one broker. The queue's task ends when this is dropped.
pub(super) struct Writes {
    script: Arc<WriteScript>,
    /// Script calls in flight: a caller's own, the queue's, or both.
    calls: Arc<AtomicUsize>,
    queue: mpsc::UnboundedSender<Queued>,
}

impl Writes {
    pub(super) fn new(
        con: ConnectionManager,
        script: Script,
        prefix: String,
        event_log_capacity: u64,
        result_expires_ms: u64,
    ) -> Self {
        let write_script = Arc::new(WriteScript {
            con,
            script,
            prefix,
            event_log_capacity,
            result_expires_ms,
        });
        let calls = Arc::new(AtomicUsize::new(0));
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(send_queued(write_script.clone(), calls.clone(), queued));
        Writes {
            script: write_script,
            calls,
            queue,
        }
    }

    /// Applies one write (its kind, then its arguments) and returns its reply.
    pub(super) async fn write(&self, args: Vec<String>) -> Result<Value, BrokerError> {
        if let Some(_call) = Call::alone(&self.calls) {
            let mut replies = self.script.send(&[&args]).await?;
            return Ok(replies.remove(0));
        }
        let stopped = || BrokerError::storage("redis: the write queue stopped");
        let (reply, replied) = oneshot::channel();
        self.queue
            .send(Queued { args, reply })
            .map_err(|_| stopped())?;
        replied.await.map_err(|_| stopped())?
    }
}

/// A script call in flight, counted until dropped (also when the caller's
/// future is dropped mid-call).
struct Call<'a>(&'a AtomicUsize);

impl<'a> Call<'a> {
    /// A call of its own for a caller, when no other is in flight.
    fn alone(calls: &'a AtomicUsize) -> Option<Self> {
        calls
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| Call(calls))
    }

    /// A call of the queue's, whatever else is in flight.
    fn queued(calls: &'a AtomicUsize) -> Self {
        calls.fetch_add(1, Ordering::AcqRel);
        Call(calls)
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sends queued writes in groups, one call at a time, until every sender
/// is gone.
async fn send_queued(
    script: Arc<WriteScript>,
    calls: Arc<AtomicUsize>,
    mut queued: mpsc::UnboundedReceiver<Queued>,
) {
    while let Some(first) = queued.recv().await {
        let size = |write: &Queued| write.args.iter().map(String::len).sum::<usize>();
        let mut bytes = size(&first);
        let mut group = vec![first];
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            match queued.try_recv() {
                Ok(write) => {
                    bytes += size(&write);
                    group.push(write);
                }
                Err(_) => break,
            }
        }
        let args: Vec<&[String]> = group.iter().map(|write| write.args.as_slice()).collect();
        let sent = {
            let _call = Call::queued(&calls);
            script.send(&args).await
        };
        match sent {
            Ok(replies) => {
                for (write, reply) in group.into_iter().zip(replies) {
                    let _ = write.reply.send(Ok(reply));
                }
            }
            Err(error) => {
                for write in group {
                    let _ = write.reply.send(Err(error.clone()));
                }
            }
        }
    }
}
