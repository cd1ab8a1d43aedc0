//! `GET /api/v1/events`: the broker's event log as server-sent events,
//! live. Each event's SSE id is its `seq`, so a client that reconnects
//! with `Last-Event-ID` (as a browser's `EventSource` does by itself)
//! misses nothing the log still holds; `?after=SEQ` does the same for a
//! first connection, and without either the stream starts with what
//! happens next.
//!
//! The log is read every [`POLL_EVERY`], so an event reaches a client
//! within about that of its change. A stream ends when the server shuts
//! down (see [`Stopping`]), so it never holds up a drain.

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::{AppState, ValidQuery};
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use hippo_broker::{Event, SharedBroker};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;
use utoipa::IntoParams;

/// How often a stream reads the log for new events.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// The largest event seq (the OpenAPI document's integers are signed 64-bit).
const MAX_SEQ: u64 = i64::MAX as u64;
/// Events read from the log at a time.
const READ_AT_ONCE: usize = 500;

/// One event of the stream, as a client's SSE parser sees it (what the
/// OpenAPI document describes; the handler writes them with axum's `Event`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StreamedEvent {
    /// Always `task`.
    event: String,
    /// The change's `seq`: what `Last-Event-ID` resumes after.
    id: String,
    /// The change as JSON text: `seq`, `at_ms`, `task_id`, `task`,
    /// `queue`, `state`, `worker`, `detail`.
    data: String,
}

/// Set when the server begins to shut down: open streams end.
#[derive(Debug, Clone)]
pub struct Stopping(pub watch::Receiver<bool>);

/// Where a stream starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Start after this event (its `seq`); `Last-Event-ID` wins over it.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub after: Option<u64>,
}

/// The broker's state changes, live, as server-sent events: `event: task`,
/// `id:` the change's `seq`, `data:` its JSON (`seq`, `at_ms`, `task_id`,
/// `task`, `queue`, `state`, `worker`, `detail`). Resume with
/// `Last-Event-ID` or `?after=`. Keys bound to users are refused (an event
/// does not say whom its task acts for).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, minimum = 0, maximum = 9223372036854775807_i64, description = "Resume after this event")),
    responses((status = 200, description = "A stream of server-sent events", content_type = "text/event-stream", body = StreamedEvent),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    stopping: Option<Extension<Stopping>>,
    headers: HeaderMap,
    ValidQuery(query): ValidQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    caller.require(Scope::Read)?;
    if !caller.sees(None) {
        return Err(ApiError::forbidden(format!(
            "key {:?} is bound to users and events do not say whom a task acts for",
            caller.name
        )));
    }
    if query.after.is_some_and(|seq| seq > MAX_SEQ) {
        return Err(ApiError::invalid(
            "after",
            format!("after must be an event seq, at most {MAX_SEQ}"),
        ));
    }
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|seq| *seq <= MAX_SEQ)
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "Last-Event-ID must be an event seq")
                })?,
        ),
        None => query.after,
    };
    let after = match resume {
        Some(seq) => seq,
        None => state.broker.last_event().await?,
    };
    let stopping = stopping.map(|Extension(s)| s.0);
    let feed = Feed {
        broker: state.broker.clone(),
        after,
        pending: VecDeque::new(),
        stopping,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(sse_of(&event)), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn sse_of(event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    SseEvent::default()
        .event("task")
        .id(event.seq.to_string())
        .data(data)
}

/// A stream's position in the log and the events read but not sent.
struct Feed {
    broker: SharedBroker,
    after: u64,
    pending: VecDeque<Event>,
    stopping: Option<watch::Receiver<bool>>,
}

impl Feed {
    /// The next event; `None` when the server stops or the broker fails
    /// (the client reconnects and resumes from its last id).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.stopping.as_ref().is_some_and(|s| *s.borrow()) {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                self.after = event.seq;
                return Some(event);
            }
            match self.broker.events(Some(self.after), READ_AT_ONCE).await {
                Ok(events) if !events.is_empty() => self.pending.extend(events),
                Ok(_) => {
                    if !self.pause().await {
                        return None;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "event stream: reading the log failed");
                    return None;
                }
            }
        }
    }

    /// Waits for the next read; false when the server stops meanwhile
    /// (or is gone).
    async fn pause(&mut self) -> bool {
        match &mut self.stopping {
            Some(stopping) => tokio::select! {
                _ = tokio::time::sleep(POLL_EVERY) => true,
                changed = stopping.changed() => changed.is_ok() && !*stopping.borrow(),
            },
            None => {
                tokio::time::sleep(POLL_EVERY).await;
                true
            }
        }
    }
}
