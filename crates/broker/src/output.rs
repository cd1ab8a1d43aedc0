//! A task's output, kept as the JSON text its guest returned.
//!
//! The output is checked once, when the worker receives it, and then only
//! ever moved and copied as text: into the broker's records, back out, and
//! verbatim into the API's answers. It is never parsed into a
//! `serde_json::Value` tree on the host, which costs many times its size (a
//! tree node per array element: a 15 MiB `[0,0,...]` took the service from
//! 67 to 653 MiB), so what a task's output costs the host stays within a
//! small multiple of its size, whatever shape a plugin gives it.
//!
//! The check accepts exactly what parsing into a `Value` accepted (strings
//! with valid escapes and no lone surrogates, numbers in range, nesting at
//! most 128 deep), so every client that parses a result still can; it walks
//! the text without keeping anything but the string being read.

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// A task's JSON output, as text. Equal when the texts are equal.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskOutput(Box<RawValue>);

/// Why a guest's output bytes are not a task output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// Not UTF-8 text.
    #[error("output is not JSON: {0}")]
    NotUtf8(#[from] std::string::FromUtf8Error),
    /// Not one well-formed JSON value.
    #[error("output is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

impl TaskOutput {
    /// Checks a guest's output bytes and keeps them as they are (the
    /// allocation too, when it has no spare capacity and no surrounding
    /// whitespace).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, OutputError> {
        let text = String::from_utf8(bytes)?;
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        Checked::deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(TaskOutput(RawValue::from_string(text)?))
    }

    /// The output `value` would be (for callers holding a tree already, and tests).
    pub fn from_value(value: &serde_json::Value) -> Self {
        TaskOutput(
            serde_json::value::to_raw_value(value)
                .expect("a JSON value always serializes: its keys are strings"),
        )
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Parses the output into a tree: for callers that need to look inside
    /// (tests, benchmarks), never on the service's path.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.as_str()).expect("a task output is checked JSON")
    }

    /// Whether the output is JSON `null`.
    pub fn is_null(&self) -> bool {
        self.as_str() == "null"
    }
}

impl PartialEq for TaskOutput {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TaskOutput {}

impl fmt::Debug for TaskOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 256;
        let text = self.as_str();
        match text.char_indices().nth(SHOWN) {
            None => write!(f, "TaskOutput({text})"),
            Some((end, _)) => write!(f, "TaskOutput({}... ({} bytes))", &text[..end], text.len()),
        }
    }
}

/// Reads one JSON value as `Value` would, keeping nothing.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Checked)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_what_a_json_value_accepts_and_keeps_the_text() {
        for text in [
            "null",
            "0",
            "-1.5e3",
            r#""caf\u00e9 \ud83e\udd9b""#,
            r#"{"a": [1, {"b": null}], "c": true}"#,
            "[0,0,0]",
        ] {
            let output = TaskOutput::from_bytes(text.as_bytes().to_vec()).unwrap();
            assert_eq!(output.as_str(), text);
            assert_eq!(
                output.to_value(),
                serde_json::from_str::<serde_json::Value>(text).unwrap()
            );
        }
        let padded = TaskOutput::from_bytes(b" [1] \n".to_vec()).unwrap();
        assert_eq!(padded.as_str(), "[1]");
    }

    #[test]
    fn refuses_what_a_json_value_refuses() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for text in [
            "",
            "[1,",
            "[1] [2]",
            "{1: 2}",
            r#""\ud800""#,
            r#""\x""#,
            "\"tab\there\"",
            "1e400",
            "NaN",
            deep.as_str(),
        ] {
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_err(),
                "{text:?} is a value"
            );
            assert!(
                matches!(
                    TaskOutput::from_bytes(text.as_bytes().to_vec()),
                    Err(OutputError::NotJson(_))
                ),
                "{text:?} is taken"
            );
        }
        assert!(matches!(
            TaskOutput::from_bytes(b"\"\xff\"".to_vec()),
            Err(OutputError::NotUtf8(_))
        ));
    }

    #[test]
    fn round_trips_through_a_record_as_the_same_text() {
        #[derive(Serialize, Deserialize)]
        struct Record {
            result: Option<TaskOutput>,
        }
        let output = TaskOutput::from_bytes(br#"{"x": [1, 2]}"#.to_vec()).unwrap();
        let stored = serde_json::to_string(&Record {
            result: Some(output.clone()),
        })
        .unwrap();
        assert_eq!(stored, r#"{"result":{"x": [1, 2]}}"#);
        let read: Record = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.result, Some(output));
        let null: Record = serde_json::from_str(r#"{"result":null}"#).unwrap();
        assert_eq!(null.result, None);
        assert_eq!(
            TaskOutput::from_value(&json!({"x": [1, 2]})).as_str(),
            r#"{"x":[1,2]}"#
        );
    }
}
