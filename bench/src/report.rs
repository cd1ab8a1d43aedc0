//! The figures one benchmark measured, printed as one JSON object.

use serde_json::{Map, Value};

/// Named figures of one benchmark run, in a flat JSON object.
#[derive(Debug)]
pub struct Report {
    figures: Map<String, Value>,
}

impl Report {
    /// An empty report of benchmark `name` (its `"benchmark"` field).
    pub fn new(name: &str) -> Self {
        let mut figures = Map::new();
        figures.insert("benchmark".into(), name.into());
        Report { figures }
    }

    /// Records a figure; a float is rounded to `decimals` places.
    pub fn float(&mut self, key: &str, value: f64, decimals: i32) {
        let scale = 10f64.powi(decimals);
        self.set(key, (value * scale).round() / scale);
    }

    /// Records any other figure.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.figures.insert(key.into(), value.into());
    }

    /// The report as one line of JSON.
    pub fn json(&self) -> String {
        Value::Object(self.figures.clone()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_holds_the_name_and_rounded_figures() {
        let mut report = Report::new("runtime");
        report.float("p50_us", 12.345_6, 2);
        report.set("tasks", 20_000);
        let json: Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"benchmark": "runtime", "p50_us": 12.35, "tasks": 20000})
        );
        assert!(!report.json().contains('\n'));
    }
}
