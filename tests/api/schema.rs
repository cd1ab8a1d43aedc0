//! Checks an answer of the server against the response schema the OpenAPI
//! document gives for its route and status, so the document cannot drift
//! from what the server does: every object key must be a documented
//! property, every required property present, every value of the
//! documented type, recursively.

use serde_json::Value;

/// The document's path template that `path` (without its query) matches.
fn template<'d>(document: &'d Value, path: &str) -> Option<&'d str> {
    let segments: Vec<&str> = path.split('/').collect();
    document["paths"].as_object()?.keys().find_map(|template| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')));
        matches.then_some(template.as_str())
    })
}

/// Where `answer`, the body of a `method path` answered `status`, departs
/// from the document (empty when it conforms, or when the document gives no
/// schema for that answer).
pub fn departures(
    document: &Value,
    method: &str,
    path: &str,
    status: u16,
    answer: &Value,
) -> Vec<String> {
    let path = path.split('?').next().unwrap_or(path);
    let Some(template) = template(document, path) else {
        return Vec::new();
    };
    let operation = &document["paths"][template][method.to_lowercase()];
    let schema =
        &operation["responses"][status.to_string()]["content"]["application/json"]["schema"];
    let mut found = Vec::new();
    if !schema.is_null() {
        check(document, schema, answer, "$", &mut found);
    }
    found
}

fn resolve<'d>(document: &'d Value, schema: &'d Value) -> &'d Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(document: &Value, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let schema = resolve(document, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema[key].as_array() {
            let fits = alternatives.iter().any(|alternative| {
                let mut inner = Vec::new();
                check(document, alternative, value, at, &mut inner);
                inner.is_empty()
            });
            if !fits {
                found.push(format!("{at}: {value} fits none of {key} {schema}"));
            }
            return;
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            check(document, part, value, at, found);
        }
    }
    if let Some(choices) = schema["enum"].as_array()
        && !choices.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {choices:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let actual = type_of(value);
    // An integer is a number too.
    let typed = types.is_empty()
        || types.contains(&actual)
        || (actual == "integer" && types.contains(&"number"));
    if !typed {
        found.push(format!(
            "{at}: a {actual} ({value}) where the document says {types:?}"
        ));
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (key, inner) in map {
                    match properties.get(key) {
                        Some(property) => {
                            check(document, property, inner, &format!("{at}.{key}"), found)
                        }
                        None => found.push(format!("{at}.{key}: not in the document")),
                    }
                }
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !map.contains_key(name) {
                    found.push(format!("{at}.{name}: required but absent"));
                }
            }
        }
        Value::Array(items) if schema.get("items").is_some() => {
            for (i, item) in items.iter().enumerate() {
                check(
                    document,
                    &schema["items"],
                    item,
                    &format!("{at}[{i}]"),
                    found,
                );
            }
        }
        _ => {}
    }
}

/// The document is valid OpenAPI as an independent validator reads it
/// (`openapi-spec-validator`, which `scripts/setup` installs in
/// `~/.cache/hippo/tools-venv`; `HIPPO_OPENAPI_VALIDATOR` names another).
#[test]
fn the_document_is_valid_openapi() {
    let validator = std::env::var_os("HIPPO_OPENAPI_VALIDATOR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            std::path::Path::new(&home).join(".cache/hippo/tools-venv/bin/openapi-spec-validator")
        });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&hippo::api::openapi()).unwrap()).unwrap();
    let output = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run scripts/setup, which installs it",
                validator.display()
            )
        });
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
