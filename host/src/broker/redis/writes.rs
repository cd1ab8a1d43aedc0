//! Grouped writes: submissions, starts and settlements from every caller of
//! one [`RedisBroker`] go through one task that sends whatever is waiting as
//! a single script call (the `WRITES` script), one call in flight at a
//! time. An idle broker sends each write at once; a busy one pays Redis'
//! per-script cost once for many tasks instead of once per write, which is
//! what bounds a single Redis server's task rate.

use super::*;
use tokio::sync::mpsc;

/// Writes sent in one script call at most, and the bytes of arguments after
/// which a group takes no more: enough to amortise the call without making
/// one call hold Redis for long (Redis runs a script alone).
const MAX_GROUP: usize = 256;
const MAX_GROUP_BYTES: usize = 1 << 20;

/// One write of a group: its kind and arguments (as the `WRITES` script
/// reads them) and where its reply goes.
pub(super) struct Write {
    pub(super) args: Vec<String>,
    pub(super) reply: oneshot::Sender<Result<Value, BrokerError>>,
}

/// The sending side, held by the broker; the loop ends when it is dropped.
pub(super) type Writes = mpsc::UnboundedSender<Write>;

/// What the loop needs to build its script calls.
pub(super) struct WriteContext {
    pub(super) con: ConnectionManager,
    pub(super) script: Script,
    pub(super) prefix: String,
    pub(super) event_log_capacity: u64,
    pub(super) result_expires_ms: u64,
}

/// Sends waiting writes in groups until every sender is gone.
pub(super) async fn write_loop(context: WriteContext, mut queue: mpsc::UnboundedReceiver<Write>) {
    let WriteContext {
        mut con,
        script,
        prefix,
        event_log_capacity,
        result_expires_ms,
    } = context;
    while let Some(first) = queue.recv().await {
        let size = |write: &Write| write.args.iter().map(String::len).sum::<usize>();
        let mut bytes = size(&first);
        let mut group = vec![first];
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            match queue.try_recv() {
                Ok(write) => {
                    bytes += size(&write);
                    group.push(write);
                }
                Err(_) => break,
            }
        }
        let mut call = script.prepare_invoke();
        call.arg(&prefix)
            .arg(now_ms())
            .arg(event_log_capacity)
            .arg(result_expires_ms);
        for write in &group {
            call.arg(&write.args);
        }
        let replies: Result<Vec<Value>, BrokerError> =
            call.invoke_async(&mut con).await.map_err(storage);
        match replies {
            Ok(replies) if replies.len() == group.len() => {
                for (write, reply) in group.into_iter().zip(replies) {
                    let _ = write.reply.send(Ok(reply));
                }
            }
            Ok(replies) => {
                let error = format!("{} replies to {} writes", replies.len(), group.len());
                for write in group {
                    let _ = write.reply.send(Err(corrupt(&error)));
                }
            }
            Err(error) => {
                let error = error.to_string();
                for write in group {
                    let _ = write.reply.send(Err(BrokerError::Storage(error.clone())));
                }
            }
        }
    }
}
