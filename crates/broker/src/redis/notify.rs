//! Notifications: the pub/sub task that feeds `wait` callers and the
//! revocation feed.
//!
//! Every process follows the `revoked` channel. The `done` channel, which
//! carries every finished task's record, is followed only once the process
//! submits or waits for a task: a worker that does neither would otherwise
//! receive (and decode) every result of the cluster.
//!
//! Tasks this process submitted while following `done` are remembered for
//! a while (see [`Local`]), so a `wait` for one needs no read of its own: if
//! it finished, its record came with the announcement; if not, the
//! announcement is still to come on the same subscription.

use super::*;
use redis::aio::PubSubSink;
use std::collections::VecDeque;

/// What wakes a waiter: the finished task's record as the settling script
/// published it (see `Published`), or `None` when the waiter must read the
/// record itself.
pub(super) type Wake = Option<Arc<str>>;

/// How long a task submitted here is remembered, and how many at most: a
/// caller that submits and waits does so within seconds, and a caller that
/// never waits must not grow the map without bound.
const LOCAL_TTL: Duration = Duration::from_secs(60);
const LOCAL_MAX: usize = 16_384;

/// A task submitted by this process while it followed `done`.
enum Local {
    /// Not finished when last heard of; submitted during subscription `epoch`.
    Pending { epoch: u64 },
    /// Its end was announced at `at`, with this record.
    Finished { record: Wake, at: Instant },
}

/// What `register` knows of a task without reading it.
pub(super) enum Known {
    /// It finished; this is the record its end was announced with.
    Finished(Wake),
    /// It was submitted here and has not finished: its end will be
    /// announced on the live subscription, so there is nothing to read.
    Unfinished,
    /// Nothing: the caller reads the record.
    Nothing,
}

/// Callers of `wait`, by task id, and what is known of local tasks.
#[derive(Default)]
pub(super) struct Waiters {
    next_token: u64,
    by_task: HashMap<String, Vec<(u64, oneshot::Sender<Wake>)>>,
    /// The `done` subscription: `Some(epoch)` while it is live. Each
    /// (re)subscription starts a new epoch.
    following: Option<u64>,
    epochs: u64,
    local: HashMap<String, Local>,
    /// Local task ids, oldest first, with when they were submitted.
    local_order: VecDeque<(Instant, String)>,
}

impl Waiters {
    /// `done` is followed from now on, in a new subscription epoch.
    fn start_following(&mut self) {
        self.epochs += 1;
        self.following = Some(self.epochs);
    }

    fn forget_old_locals(&mut self, now: Instant) {
        while let Some((at, _)) = self.local_order.front() {
            if now.duration_since(*at) < LOCAL_TTL && self.local_order.len() < LOCAL_MAX {
                break;
            }
            if let Some((_, id)) = self.local_order.pop_front() {
                self.local.remove(&id);
            }
        }
    }
}

/// State shared with the pub/sub task.
pub(super) struct Notifications {
    waiters: Mutex<Waiters>,
    pub(super) revocations: broadcast::Sender<String>,
    /// The subscribing half of the pub/sub connection. The relay holds its
    /// lock while it reconnects, so subscribing waits for the new one.
    sink: tokio::sync::Mutex<PubSubSink>,
    /// Set once this process submits or waits: from then on `done` is
    /// followed, also after reconnecting.
    results_wanted: std::sync::atomic::AtomicBool,
    channels: Channels,
    /// How long a finished task's record is kept.
    result_expires: Duration,
}

/// The two channels, with the key prefix.
#[derive(Clone)]
pub(super) struct Channels {
    pub(super) done: String,
    pub(super) revoked: String,
}

impl Notifications {
    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        // A panic while holding this lock leaves the map consistent.
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts following `done` if this process does not yet. Returns once
    /// Redis confirmed the subscription; while the relay reconnects, once it
    /// is back (it then follows `done` itself).
    pub(super) async fn follow_results(&self) -> Result<(), RedisError> {
        if self.waiters().following.is_some() {
            return Ok(());
        }
        let mut sink = self.sink.lock().await;
        self.results_wanted.store(true, Ordering::SeqCst);
        if self.waiters().following.is_some() {
            return Ok(());
        }
        sink.subscribe(&self.channels.done).await?;
        self.waiters().start_following();
        Ok(())
    }

    /// Remembers a task about to be submitted from this process, when its
    /// end is sure to be heard (`done` is followed).
    pub(super) fn track(&self, task_id: &str) {
        let now = Instant::now();
        let mut waiters = self.waiters();
        let Some(epoch) = waiters.following else {
            return;
        };
        waiters.forget_old_locals(now);
        waiters
            .local
            .insert(task_id.to_owned(), Local::Pending { epoch });
        waiters.local_order.push_back((now, task_id.to_owned()));
    }

    /// Forgets a tracked task (its submission failed, or it was not new).
    pub(super) fn untrack(&self, task_id: &str) {
        self.waiters().local.remove(task_id);
    }

    /// Registers interest in `task_id`; the receiver fires when it may have
    /// finished. Dropping the guard unregisters.
    pub(super) fn register<'a>(
        &'a self,
        task_id: &'a str,
    ) -> (WaitGuard<'a>, oneshot::Receiver<Wake>, Known) {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters();
        let known = match waiters.local.get(task_id) {
            // Half the result lifetime: the announcement comes a moment
            // after the record's expiry started, and a record Redis has
            // dropped must not come back from here.
            Some(Local::Finished { at, .. }) if at.elapsed() < self.result_expires / 2 => {
                match waiters.local.remove(task_id) {
                    Some(Local::Finished { record, .. }) => Known::Finished(record),
                    _ => Known::Nothing,
                }
            }
            Some(Local::Pending { epoch }) if waiters.following == Some(*epoch) => {
                Known::Unfinished
            }
            _ => Known::Nothing,
        };
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
            known,
        )
    }

    /// Wakes the waiters of one task, and remembers its record when it was
    /// submitted here.
    fn finished(&self, task_id: &str, record: Wake) {
        let senders = {
            let mut waiters = self.waiters();
            let senders = waiters.by_task.remove(task_id);
            if let Some(local) = waiters.local.get_mut(task_id) {
                *local = Local::Finished {
                    record: record.clone(),
                    at: Instant::now(),
                };
            }
            senders
        };
        for (_, tx) in senders.into_iter().flatten() {
            let _ = tx.send(record.clone());
        }
    }

    /// Wakes every waiter (they read their task again): used when the
    /// subscription was interrupted and notifications may have been missed.
    fn wake_all(&self) {
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

/// Subscribes to the revocation channel; returns the notifications state
/// and the stream for [`relay`].
pub(super) async fn subscribe(
    client: &Client,
    channels: Channels,
    result_expires: Duration,
) -> Result<(Arc<Notifications>, PubSubStream), RedisError> {
    let (sink, stream) = connect(client, &channels, false).await?;
    let notifications = Arc::new(Notifications {
        waiters: Mutex::default(),
        revocations: broadcast::channel(1024).0,
        sink: tokio::sync::Mutex::new(sink),
        results_wanted: false.into(),
        channels,
        result_expires,
    });
    Ok((notifications, stream))
}

async fn connect(
    client: &Client,
    channels: &Channels,
    results: bool,
) -> Result<(PubSubSink, PubSubStream), RedisError> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    sink.subscribe(&channels.revoked).await?;
    if results {
        sink.subscribe(&channels.done).await?;
    }
    Ok((sink, stream))
}

/// Relays published messages until the broker is dropped, resubscribing
/// (with backoff) whenever the connection drops.
pub(super) async fn relay(
    client: Client,
    notifications: Arc<Notifications>,
    mut stream: PubSubStream,
) {
    let Channels { done, revoked } = notifications.channels.clone();
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
        let mut sink = notifications.sink.lock().await;
        notifications.waiters().following = None;
        notifications.wake_all();
        let mut backoff = Duration::from_millis(50);
        loop {
            tokio::time::sleep(backoff).await;
            let results = notifications.results_wanted.load(Ordering::SeqCst);
            match connect(&client, &notifications.channels, results).await {
                Ok((live, live_stream)) => {
                    *sink = live;
                    stream = live_stream;
                    if results {
                        notifications.waiters().start_following();
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!("redis broker: resubscribing failed: {e}");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        drop(sink);
        // Completions published while we were away were missed.
        notifications.wake_all();
    }
}
