//! Decoding what Redis holds and returns: task records (the hash, or the
//! record a settling script publishes) and deliveries (from a reserve's
//! reply or a consumer's inbox).

use super::*;

/// A hash field holding a count or a time (`runs`, `updated`): 0 when it is
/// missing or empty.
fn count_field(value: Option<&str>) -> Result<u64, std::num::ParseIntError> {
    value.filter(|s| !s.is_empty()).map_or(Ok(0), str::parse)
}

/// Decodes a task hash (`HGETALL`); `None` when the hash does not exist.
pub(super) fn decode_record(
    id: &str,
    h: &HashMap<String, String>,
) -> Result<Option<TaskRecord>, BrokerError> {
    if h.is_empty() {
        return Ok(None);
    }
    let text = |name: &str| h.get(name).map(String::as_str).filter(|s| !s.is_empty());
    fn json<T: DeserializeOwned>(
        id: &str,
        name: &str,
        s: Option<&str>,
    ) -> Result<Option<T>, BrokerError> {
        s.map(|s| {
            serde_json::from_str(s).map_err(|e| corrupt(format!("task {id}: field {name}: {e}")))
        })
        .transpose()
    }
    let number = |name: &str| -> Result<u64, BrokerError> {
        count_field(h.get(name).map(String::as_str))
            .map_err(|e| corrupt(format!("task {id}: field {name}: {e}")))
    };
    let message: TaskMessage =
        json(id, "msg", text("msg"))?.ok_or_else(|| corrupt(format!("task {id}: no message")))?;
    let state = text("state").ok_or_else(|| corrupt(format!("task {id}: no state")))?;
    let state: TaskState = serde_json::from_value(serde_json::Value::String(state.to_owned()))
        .map_err(|e| corrupt(format!("task {id}: state {state:?}: {e}")))?;
    Ok(Some(TaskRecord {
        message,
        state,
        // A `null` output reads as none, as serde reads the published record.
        result: json::<TaskOutput>(id, "result", text("result"))?.filter(|v| !v.is_null()),
        error: json(id, "error", text("error"))?,
        progress: json(id, "progress", text("progress"))?,
        worker: text("worker").map(str::to_owned),
        last_run: json(id, "last_run", text("last_run"))?,
        runs: u32::try_from(number("runs")?).unwrap_or(u32::MAX),
        updated_ms: number("updated")?,
    }))
}

/// A finished task's record as a settling script publishes it (see
/// `announce`): the hash fields a record is made of, those holding JSON
/// embedded as they are.
#[derive(Deserialize)]
struct Published {
    msg: TaskMessage,
    state: TaskState,
    result: Option<TaskOutput>,
    error: Option<hippo_task::TaskFailure>,
    progress: Option<hippo_task::Progress>,
    worker: Option<String>,
    last_run: Option<RunMeta>,
    runs: Option<String>,
    updated: Option<String>,
}

/// The record a settling script published with a task's end, when it
/// decodes to a finished task (else the waiter reads the record itself).
pub(super) fn published_record(published: &str) -> Option<TaskRecord> {
    let p: Published = serde_json::from_str(published).ok()?;
    let number = |s: Option<String>| count_field(s.as_deref()).ok();
    let record = TaskRecord {
        message: p.msg,
        state: p.state,
        result: p.result,
        error: p.error,
        progress: p.progress,
        worker: p.worker.filter(|w| !w.is_empty()),
        last_run: p.last_run,
        runs: u32::try_from(number(p.runs)?).unwrap_or(u32::MAX),
        updated_ms: number(p.updated)?,
    };
    record.state.is_terminal().then_some(record)
}

/// The deliveries of a RESERVE reply: {entry id, message JSON, generation, ...}.
pub(super) fn reserved(consumer: &str, reply: &[String]) -> Result<Vec<Delivery>, BrokerError> {
    reply
        .chunks(3)
        .map(|chunk| match chunk {
            [receipt, message, generation] => delivery_of(consumer, receipt, generation, message),
            _ => Err(corrupt("reserve: truncated reply")),
        })
        .collect()
}

/// The delivery of an inbox entry, `{entry id}\n{generation}\n{message}`.
pub(super) fn handed_over(consumer: &str, handed: &str) -> Result<Delivery, BrokerError> {
    let mut parts = handed.splitn(3, '\n');
    let (Some(receipt), Some(generation), Some(message)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(corrupt("reserve: malformed hand-off"));
    };
    delivery_of(consumer, receipt, generation, message)
}

/// A delivery from the parts a script returns.
fn delivery_of(
    consumer: &str,
    receipt: &str,
    generation: &str,
    message: &str,
) -> Result<Delivery, BrokerError> {
    Ok(Delivery {
        message: serde_json::from_str(message)
            .map_err(|e| corrupt(format!("entry {receipt}: message: {e}")))?,
        generation: generation
            .parse()
            .map_err(|e| corrupt(format!("entry {receipt}: generation: {e}")))?,
        consumer: consumer.to_owned(),
        receipt: receipt.to_owned(),
    })
}
