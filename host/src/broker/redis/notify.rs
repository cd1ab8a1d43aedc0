//! Notifications: the pub/sub task that feeds `wait` callers and the
//! revocation feed.

use super::*;

// ---------------------------------------------------------------------------
// Notifications: the pub/sub task feeds waiters and the revocation feed.
// ---------------------------------------------------------------------------

/// What wakes a waiter: the finished task's record as the settling script
/// published it (a JSON array of the hash's fields and values), or `None`
/// when the waiter must read the record itself.
pub(super) type Wake = Option<Arc<str>>;

/// Callers of `wait`, by task id.
#[derive(Default)]
pub(super) struct Waiters {
    next_token: u64,
    by_task: HashMap<String, Vec<(u64, oneshot::Sender<Wake>)>>,
}

/// State shared with the pub/sub task.
pub(super) struct Notifications {
    pub(super) waiters: Mutex<Waiters>,
    pub(super) revocations: broadcast::Sender<String>,
}

impl Notifications {
    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        // A panic while holding this lock leaves the map consistent.
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers interest in `task_id`; the receiver fires when it may have
    /// finished. Dropping the guard unregisters.
    pub(super) fn register<'a>(
        &'a self,
        task_id: &'a str,
    ) -> (WaitGuard<'a>, oneshot::Receiver<Wake>) {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters();
        waiters.next_token += 1;
        let token = waiters.next_token;
        waiters
            .by_task
            .entry(task_id.to_owned())
            .or_default()
            .push((token, tx));
        (
            WaitGuard {
                notifications: self,
                task_id,
                token,
            },
            rx,
        )
    }

    /// Wakes the waiters of one task.
    pub(super) fn finished(&self, task_id: &str, record: Wake) {
        let senders = self.waiters().by_task.remove(task_id);
        for (_, tx) in senders.into_iter().flatten() {
            let _ = tx.send(record.clone());
        }
    }

    /// Wakes every waiter (they read their task again): used when the
    /// subscription was interrupted and notifications may have been missed.
    pub(super) fn wake_all(&self) {
        let all = std::mem::take(&mut self.waiters().by_task);
        for (_, tx) in all.into_values().flatten() {
            let _ = tx.send(None);
        }
    }
}

/// Unregisters a waiter when dropped.
pub(super) struct WaitGuard<'a> {
    notifications: &'a Notifications,
    task_id: &'a str,
    token: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut waiters = self.notifications.waiters();
        if let Some(list) = waiters.by_task.get_mut(self.task_id) {
            list.retain(|(token, _)| *token != self.token);
            if list.is_empty() {
                waiters.by_task.remove(self.task_id);
            }
        }
    }
}

/// Subscribes to the completion and revocation channels.
pub(super) async fn subscribe(
    client: &Client,
    channels: &[String],
) -> Result<PubSubStream, RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    for channel in channels {
        pubsub.subscribe(channel).await?;
    }
    Ok(pubsub.into_on_message())
}

/// Relays published messages until the broker is dropped, resubscribing
/// (with backoff) whenever the connection drops.
pub(super) async fn relay(
    client: Client,
    channels: [String; 2],
    notifications: Arc<Notifications>,
    mut stream: PubSubStream,
) {
    let [done, revoked] = &channels;
    loop {
        while let Some(msg) = stream.next().await {
            let Ok(payload) = msg.get_payload::<Vec<u8>>() else {
                continue;
            };
            let channel = msg.get_channel_name();
            if channel == done {
                // `{id}\n{record}`: a record that is not UTF-8 is left out
                // (the waiter reads it), the id is always there.
                let (id, record) = match payload.iter().position(|&b| b == b'\n') {
                    Some(end) => (&payload[..end], &payload[end + 1..]),
                    None => (&payload[..], &[][..]),
                };
                let Ok(id) = std::str::from_utf8(id) else {
                    continue;
                };
                let record = std::str::from_utf8(record)
                    .ok()
                    .filter(|r| !r.is_empty())
                    .map(Arc::from);
                notifications.finished(id, record);
            } else if channel == revoked {
                let Ok(id) = String::from_utf8(payload) else {
                    continue;
                };
                // No receiver is fine: heartbeats report revocations too.
                let _ = notifications.revocations.send(id);
            }
        }
        notifications.wake_all();
        let mut backoff = Duration::from_millis(50);
        stream = loop {
            tokio::time::sleep(backoff).await;
            match subscribe(&client, &channels).await {
                Ok(stream) => break stream,
                Err(e) => {
                    tracing::warn!("redis broker: resubscribing failed: {e}");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        // Completions published while we were away were missed.
        notifications.wake_all();
    }
}
