//! A schema-driven fuzz of the REST API: thousands of requests generated
//! from the OpenAPI document (`hippo::api::openapi()`: its paths, methods,
//! parameters and body schemas) by a seeded generator, most of them hostile
//! (wrong types, huge and negative numbers, NaN-like strings, deep nesting,
//! random bytes, unicode, long strings, missing and extra fields, odd path
//! segments and query strings, bad keys), sent to a real server on loopback
//! with a real broker and worker behind it.
//!
//! Every answer must be below 500, JSON, and a 4xx must carry `error.code`;
//! nothing in the process may panic. `HIPPO_FUZZ_SEED` replays a run,
//! `HIPPO_FUZZ_REQUESTS` changes its length.

use hippo::api::{AppState, KeyConfig, KeyStore, Scope, hash_key};
use hippo::broker::{BrokerConfig, EmbeddedBroker, RedisBroker, SharedBroker, TaskMessage};
use hippo::runtime::PluginRegistry;
use hippo::worker::{RetryPolicy, Worker, WorkerConfig};
use hippo_integration_tests::{copy_memory_plugins, guest, memory_runtime, redis_url};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ADMIN: &str = "fuzz-admin";
const READER: &str = "fuzz-reader";
const ALICE: &str = "fuzz-alice";

/// Panics anywhere in the process (server, broker, worker) during a run.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// SplitMix64: small, seeded, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn bytes_up_to(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

/// One operation of the document.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    path: String,
    path_params: Vec<String>,
    /// Query parameters with their schema.
    query_params: Vec<(String, Value)>,
    /// Body content type and schema.
    body: Option<(String, Value)>,
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let body = operation["requestBody"]["content"]
                .as_object()
                .and_then(|content| content.iter().next())
                .map(|(content_type, media)| (content_type.clone(), media["schema"].clone()));
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                path_params: parameters
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect(),
                query_params: parameters
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .map(|p| (p["name"].as_str().unwrap().to_string(), p["schema"].clone()))
                    .collect(),
                body,
            });
        }
    }
    operations
}

/// The types a schema allows (`type` may be a string or a list).
fn types(schema: &Value) -> Vec<String> {
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

const TASKS: &[&str] = &[
    "test.noop",
    "test.echo",
    "test.fail",
    "test.version",
    "memory.create",
    "no.such-task",
];
const QUEUES: &[&str] = &[
    "memory_ops",
    "default",
    "scheduled",
    "background",
    "nope",
    "",
];

fn hostile_string(rng: &mut Rng) -> String {
    match rng.below(16) {
        0 => String::new(),
        1 => rng
            .pick(&[
                "NaN",
                "Infinity",
                "-Infinity",
                "-0",
                "1e400",
                "0x10",
                " 5 ",
                "null",
                "true",
            ])
            .to_string(),
        2 => "ünïcödé 🦛 \u{202e}ǝpoɔıun \u{feff}".into(),
        3 => "\u{0}\u{1}\u{1b}[2J\u{7f}".into(),
        4 => "x".repeat(rng.pick(&[129, 257, 4096, 70_000]).to_owned()),
        5 => "🦛".repeat(200),
        6 => "../../../../etc/passwd".into(),
        7 => "%00%FF%2e%2e/".into(),
        8 => "'; DROP TABLE tasks; --".into(),
        9 => "{\"task\": \"test.noop\"}".into(),
        10 => rng.pick(TASKS).to_string(),
        11 => rng.pick(QUEUES).to_string(),
        12 => "\\u0000\\ud800".into(),
        13 => String::from_utf8_lossy(&rng.bytes(32)).into_owned(),
        14 => "alice".into(),
        _ => (0..rng.below(20))
            .map(|_| char::from(b'a' + rng.below(26) as u8))
            .collect(),
    }
}

fn hostile_number(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(i64::MIN),
        3 => json!(u64::MAX),
        4 => json!(1e308),
        5 => json!(-1e308),
        6 => json!(1.5),
        7 => json!(-0.0),
        8 => json!(9_007_199_254_740_993u64),
        9 => json!(4_294_967_296u64),
        10 => json!(256),
        11 => json!(10),
        12 => json!(101),
        13 => json!(f64::MIN_POSITIVE),
        14 => json!(365.0 * 24.0 * 3600.0 + 1.0),
        _ => json!(rng.next() as i64),
    }
}

fn nested(rng: &mut Rng, depth: usize) -> Value {
    let mut value = hostile_value(rng, 3);
    for _ in 0..depth {
        value = if rng.chance(50) {
            json!([value])
        } else {
            json!({"a": value})
        };
    }
    value
}

/// Any JSON value, mostly of the wrong kind.
fn hostile_value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 5 } else { 9 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 | 3 => hostile_number(rng),
        4 => json!(hostile_string(rng)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| hostile_value(rng, depth - 1))
                .collect(),
        ),
        6 => {
            let mut object = Map::new();
            for _ in 0..rng.below(4) {
                let key = if rng.chance(50) {
                    rng.pick(&["task", "input", "user_id", "queue", "fuel"])
                        .to_string()
                } else {
                    hostile_string(rng)
                };
                object.insert(key, hostile_value(rng, depth - 1));
            }
            Value::Object(object)
        }
        7 => {
            let depth = *rng.pick(&[10, 100, 127, 200]);
            nested(rng, depth)
        }
        _ => json!({"user_id": hostile_value(rng, depth - 1)}),
    }
}

/// A value for `schema`: valid with `valid`, else valid or hostile field by field.
fn from_schema(
    rng: &mut Rng,
    document: &Value,
    schema: &Value,
    name: &str,
    depth: usize,
    valid: bool,
) -> Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return from_schema(
            rng,
            document,
            &document["components"]["schemas"][name],
            name,
            depth,
            valid,
        );
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        let choice = rng.pick(choices).clone();
        return from_schema(rng, document, &choice, name, depth, valid);
    }
    if !valid && (depth == 0 || rng.chance(15)) {
        return hostile_value(rng, 2);
    }
    // In valid mode, the first choice of each kind below is the valid one.
    let variety = if valid { 1 } else { 3 };
    let types = types(schema);
    let kind = if types.is_empty() {
        "object".to_string()
    } else {
        rng.pick(&types).clone()
    };
    match kind.as_str() {
        "null" => Value::Null,
        "boolean" => json!(rng.chance(50)),
        "integer" => match (name, rng.below(variety)) {
            ("priority", 0) => json!(rng.below(10)),
            ("max_retries", 0) => json!(rng.below(101)),
            ("eta_ms", 0) => json!(hippo::broker::now_ms() + rng.below(120_000) as u64),
            (_, 0) => json!(rng.below(1_000_000)),
            _ => hostile_number(rng),
        },
        "number" => match rng.below(variety) {
            // Small delays: valid, and they keep the run short.
            0 => json!(rng.below(3000) as f64 / 1000.0),
            _ => hostile_number(rng),
        },
        "string" => match (name, rng.below(variety)) {
            ("task", 0) if valid => json!(rng.pick(&TASKS[..3])),
            ("task", 0 | 1) => json!(rng.pick(TASKS)),
            ("queue", 0) if valid => json!(rng.pick(&QUEUES[..4])),
            ("queue", 0 | 1) => json!(rng.pick(QUEUES)),
            ("idempotency_key", 0) => json!(format!("key-{}", rng.below(5))),
            (_, 0) if valid => json!("alice"),
            _ => json!(hostile_string(rng)),
        },
        "array" => Value::Array(
            (0..rng.below(5))
                .map(|_| from_schema(rng, document, &schema["items"], name, depth - 1, valid))
                .collect(),
        ),
        _ => {
            let properties = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            if properties.is_empty() {
                // Free-form (a task's input): anything.
                return if valid || rng.chance(50) {
                    let mut input =
                        json!({"ms": 1, "kind": rng.pick(&["fatal", "retry", "bad-input"])});
                    if rng.chance(30) {
                        input["user_id"] = json!(rng.pick(&["alice", "bob"]));
                    }
                    input
                } else {
                    hostile_value(rng, 3)
                };
            }
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut object = Map::new();
            for (field, field_schema) in &properties {
                let include = if required.contains(&field.as_str()) {
                    valid || rng.chance(90)
                } else {
                    rng.chance(35)
                };
                if include {
                    object.insert(
                        field.clone(),
                        from_schema(rng, document, field_schema, field, depth - 1, valid),
                    );
                }
            }
            if valid && object.contains_key("countdown") {
                object.remove("eta_ms");
            }
            if !valid && rng.chance(10) {
                object.insert(hostile_string(rng), hostile_value(rng, 2));
            }
            Value::Object(object)
        }
    }
}

/// A body that is not JSON, or JSON only at a stretch.
fn hostile_raw_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(14) {
        0 => rng.bytes_up_to(2048),
        1 => b"{\"task\": \"test.\xff\xfe\"}".to_vec(),
        2 => b"{\"task\": \"test.noop\"".to_vec(),
        3 => b"{\"task\": \"test.noop\"} {}".to_vec(),
        4 => b"\xef\xbb\xbf{\"task\": \"test.noop\"}".to_vec(),
        5 => b"{\"task\": \"test.noop\", \"countdown\": 1e999999}".to_vec(),
        6 => format!(
            "{{\"task\": \"test.noop\", \"priority\": 1{}}}",
            "0".repeat(1000)
        )
        .into_bytes(),
        7 => b"{\"task\": \"a\", \"task\": \"b\"}".to_vec(),
        8 => [b"[".repeat(100_000), b"]".repeat(100_000)].concat(),
        9 => [
            b"{\"a\":".repeat(10_000),
            b"1".to_vec(),
            b"}".repeat(10_000),
        ]
        .concat(),
        10 => {
            // Just over the 2 MiB limit.
            let mut body = b"{\"task\": \"test.echo\", \"input\": \"".to_vec();
            body.resize(hippo::api::MAX_JSON_BYTES + 1 + rng.below(1 << 20), b'a');
            body.extend_from_slice(b"\"}");
            body
        }
        11 => b"{\"task\": \"test.noop\", \"input\": \"\\ud800\"}".to_vec(),
        12 => Vec::new(),
        _ => b"\0\0\0\0".to_vec(),
    }
}

/// At most 600 characters of `text`.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(600).collect();
    if short.len() < text.len() {
        short.push_str("...");
    }
    short
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A path segment: a known value, or something odd (already encoded).
fn path_segment(rng: &mut Rng, param: &str, known_ids: &[String]) -> String {
    if rng.chance(45) {
        return match param {
            "task_id" if !known_ids.is_empty() => rng.pick(known_ids).clone(),
            "queue" => rng.pick(QUEUES).to_string(),
            // Never the plugin that serves the tasks, mostly.
            "name" => rng
                .pick(&["fuzzed", "fuzz-2", "hostile-copy", "x.y", "hostile"])
                .to_string(),
            _ => TaskMessage::new("", "", Value::Null).id,
        };
    }
    match rng.below(10) {
        0 => "%FF%FE".into(),
        1 => "%C3%28".into(),
        2 => "%00".into(),
        3 => "%2F".into(),
        4 => "%2E%2E".into(),
        5 => "x".repeat(rng.pick(&[65, 300, 5000]).to_owned()),
        6 => percent_encode(&hostile_string(rng).chars().take(2000).collect::<String>()),
        7 => "%20".into(),
        8 => "A".into(),
        _ => percent_encode("🦛"),
    }
}

/// A query string for `params`: valid values, odd values, repeats and strangers.
fn query(rng: &mut Rng, params: &[(String, Value)]) -> String {
    let mut pairs: Vec<String> = Vec::new();
    for (name, schema) in params {
        if !rng.chance(60) {
            continue;
        }
        let numeric = types(schema).iter().any(|t| t == "number");
        let value = match rng.below(4) {
            // Valid (waits stay short).
            0 if numeric => format!("{}", rng.below(500) as f64 / 1000.0),
            0 => rng.pick(&["true", "false"]).to_string(),
            1 => rng
                .pick(&[
                    "61", "-1", "NaN", "inf", "-inf", "1e309", "", "%FF", "true", "yes", "1", "0x1",
                ])
                .to_string(),
            2 => percent_encode(&hostile_string(rng).chars().take(2000).collect::<String>()),
            _ => "0".into(),
        };
        pairs.push(format!("{name}={value}"));
        if rng.chance(10) {
            pairs.push(format!("{name}=0"));
        }
    }
    if rng.chance(10) {
        pairs.push(
            rng.pick(&[
                "unknown=1",
                "wait",
                "=",
                "&&",
                "confirm",
                "%FF=%FF",
                "a[b]=c",
            ])
            .to_string(),
        );
    }
    if rng.chance(3) {
        pairs.push(format!("long={}", "q".repeat(10_000)));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

struct Request {
    method: Method,
    url: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url: String = self.url.chars().take(300).collect();
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
        write!(
            f,
            "{} {url} (authorization {:?}, content-type {:?}, {} body bytes: {body:?})",
            self.method,
            self.authorization,
            self.content_type,
            self.body.len()
        )
    }
}

fn generate(
    rng: &mut Rng,
    document: &Value,
    operations: &[Operation],
    base: &str,
    known_ids: &[String],
    wasm: &[Vec<u8>],
) -> Request {
    let operation = rng.pick(operations).clone();
    let mut path = operation.path.clone();
    for param in &operation.path_params {
        let segment = path_segment(rng, param, known_ids);
        path = path.replace(&format!("{{{param}}}"), &segment);
    }
    // Now and then: another method, or a path the router does not have.
    let method = match rng.below(100) {
        0..=5 => rng
            .pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
            .to_string(),
        _ => operation.method.clone(),
    };
    match rng.below(100) {
        0..=2 => path.push_str("/extra"),
        3 => {
            path = format!(
                "/api/v1/{}",
                percent_encode(&hostile_string(rng).chars().take(2000).collect::<String>())
            )
        }
        4 => path.push('/'),
        _ => {}
    }
    let url = format!("{base}{path}{}", query(rng, &operation.query_params));
    let authorization = match rng.below(100) {
        0..=79 => Some(format!("Bearer {ADMIN}")),
        80..=84 => Some(format!("Bearer {READER}")),
        85..=89 => Some(format!("Bearer {ALICE}")),
        90..=92 => None,
        93..=95 => Some("Bearer wrong".into()),
        _ => Some(
            rng.pick(&[
                "Basic YWRtaW4=",
                "Bearer",
                "bearer fuzz-admin",
                "Bearer  fuzz-admin ",
                "Bearer \u{1F99B}",
            ])
            .to_string(),
        ),
    }
    .filter(|header| reqwest::header::HeaderValue::from_str(header).is_ok());
    let (content_type, body) = match &operation.body {
        Some((content_type, schema)) if content_type == "application/json" => {
            let body = match rng.below(100) {
                0..=34 => {
                    serde_json::to_vec(&from_schema(rng, document, schema, "", 4, true)).unwrap()
                }
                35..=69 => {
                    serde_json::to_vec(&from_schema(rng, document, schema, "", 4, false)).unwrap()
                }
                70..=84 => serde_json::to_vec(&hostile_value(rng, 3)).unwrap(),
                _ => hostile_raw_body(rng),
            };
            (Some(content_type.clone()), body)
        }
        Some((content_type, _)) if content_type == "application/wasm" => {
            let body = match rng.below(10) {
                0 if !wasm.is_empty() => rng.pick(wasm).clone(),
                1 if !wasm.is_empty() => {
                    let component = rng.pick(wasm);
                    component[..rng.below(component.len())].to_vec()
                }
                2 if !wasm.is_empty() => {
                    let mut component = rng.pick(wasm).clone();
                    for _ in 0..8 {
                        let at = rng.below(component.len());
                        component[at] = rng.next() as u8;
                    }
                    component
                }
                3 => b"\0asm\x0d\0\x01\0".to_vec(),
                _ => rng.bytes_up_to(4096),
            };
            (Some(content_type.clone()), body)
        }
        Some((content_type, _)) => {
            let body = match rng.below(8) {
                0 => b"grants = [\"network\"]".to_vec(),
                1 => b"queue = \"nope\"\n[limits]\nfuel = 1".to_vec(),
                2 => b"[tasks.\"test.version\"]\nqueue = \"background\"".to_vec(),
                3 => b"[limits]\nhard_time_limit_ms = -1".to_vec(),
                4 => rng.bytes_up_to(512),
                5 => format!("queue = \"{}\"", "q".repeat(70_000)).into_bytes(),
                6 => b"grants = \"log\"\n\0".to_vec(),
                _ => hostile_string(rng).into_bytes(),
            };
            (Some(content_type.clone()), body)
        }
        None if rng.chance(10) => (
            Some("application/json".into()),
            serde_json::to_vec(&hostile_value(rng, 2)).unwrap(),
        ),
        None => (None, Vec::new()),
    };
    let content_type = match rng.below(100) {
        0..=3 => Some(
            rng.pick(&[
                "text/plain",
                "application/x-www-form-urlencoded",
                "application/json; charset=latin1",
                "*/*",
            ])
            .to_string(),
        ),
        4 => None,
        _ => content_type,
    };
    Request {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        url,
        authorization,
        content_type,
        body,
    }
}

fn keys() -> KeyStore {
    let key = |name: &str, secret: &str, scopes: &[Scope], users: Option<&[&str]>| KeyConfig {
        name: name.into(),
        sha256: hash_key(secret),
        scopes: scopes.iter().copied().collect(),
        users: users.map(|u| u.iter().map(|s| s.to_string()).collect()),
        rate_per_s: Some(1e9),
    };
    let mut admin = KeyStore::admin_key("admin", ADMIN);
    admin.rate_per_s = Some(1e9);
    KeyStore::new(vec![
        admin,
        key("reader", READER, &[Scope::Read], None),
        key(
            "alice",
            ALICE,
            &[Scope::Submit, Scope::Read],
            Some(&["alice"]),
        ),
    ])
    .unwrap()
}

/// One run at a time, so a run counts only its own panics.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Puts the plugin that serves the test tasks back, as it was, if the fuzz
/// removed, replaced or reconfigured it (so the rest of the run reaches the
/// broker and the worker).
fn restore_hostile(registry: &PluginRegistry, dir: &std::path::Path) {
    let serving = registry
        .resolve("test.noop")
        .is_some_and(|p| p.name == "hostile");
    let manifest = dir.join("hostile.toml");
    if !serving || manifest.exists() {
        let _ = std::fs::remove_file(&manifest);
        std::fs::write(dir.join("hostile.wasm"), guest("hostile_guest")).unwrap();
        registry.scan().unwrap();
    }
}

async fn fuzz(kind: &str, default_seed: u64) {
    let _serial = SERIAL.lock().await;
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous_hook(info);
        }));
    });
    let panics_before = PANICS.load(Ordering::SeqCst);
    let seed = std::env::var("HIPPO_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    let target: usize = std::env::var("HIPPO_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2500);
    eprintln!(
        "fuzzing the API on the {kind} broker: seed {seed} (HIPPO_FUZZ_SEED), {target} requests"
    );

    let plugins = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
    // The memory plugins with real memory services, so the memory routes
    // are fuzzed down to the models and the store.
    copy_memory_plugins(plugins.path());
    let config = BrokerConfig::default();
    let broker: SharedBroker = match kind {
        "embedded" => Arc::new(EmbeddedBroker::open(data.path(), config).await.unwrap()),
        _ => {
            let prefix = format!("hippo-fuzz-{}:", TaskMessage::new("", "", Value::Null).id);
            Arc::new(
                RedisBroker::connect_with_prefix(&redis_url(), config, &prefix)
                    .await
                    .unwrap(),
            )
        }
    };
    let runtime = memory_runtime(&broker, data.path()).await;
    let registry = Arc::new(PluginRegistry::new(runtime, plugins.path(), None));
    tokio::task::block_in_place(|| registry.scan()).unwrap();
    let worker = Worker::new(
        broker.clone(),
        registry.clone(),
        WorkerConfig {
            name: format!("fuzz-worker-{kind}"),
            concurrency: 2,
            min_concurrency: 2,
            heartbeat_interval: Duration::from_millis(200),
            maintain_interval: Duration::from_millis(50),
            drain_timeout: Duration::from_secs(2),
            retry: RetryPolicy {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(50),
            },
            ..WorkerConfig::default()
        },
    );
    let stop_worker = Arc::new(tokio::sync::Notify::new());
    let worker = tokio::spawn({
        let stop = stop_worker.clone();
        async move { worker.run(async move { stop.notified().await }).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState {
        broker: broker.clone(),
        registry: registry.clone(),
        keys: Arc::new(keys()),
    };
    let stop_server = Arc::new(tokio::sync::Notify::new());
    let server = tokio::spawn(hippo::api::serve(listener, state, {
        let stop = stop_server.clone();
        async move { stop.notified().await }
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let document = serde_json::to_value(hippo::api::openapi()).unwrap();
    let operations = operations(&document);
    assert!(operations.len() >= 15, "{operations:?}");
    let wasm = vec![
        guest("versioned_v1"),
        guest("versioned_v2"),
        guest("unknown_import_guest"),
    ];
    let mut rng = Rng(seed);
    let mut known_ids: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut by_status: std::collections::BTreeMap<u16, usize> = Default::default();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut unsendable = 0usize;
    while sent < target {
        if sent.is_multiple_of(50) {
            restore_hostile(&registry, plugins.path());
        }
        let request = generate(&mut rng, &document, &operations, &base, &known_ids, &wasm);
        let mut builder = http.request(request.method.clone(), &request.url);
        if let Some(authorization) = &request.authorization {
            builder = builder.header("authorization", authorization.as_str());
        }
        if let Some(content_type) = &request.content_type {
            builder = builder.header("content-type", content_type.as_str());
        }
        if !request.body.is_empty() || request.content_type.is_some() {
            builder = builder.body(request.body.clone());
        }
        let response = match builder.send().await {
            Ok(response) => {
                sent += 1;
                response
            }
            // The client refused to send it (e.g. an URL beyond http::Uri's limits).
            Err(error) if error.is_builder() => {
                unsendable += 1;
                continue;
            }
            Err(error) => {
                sent += 1;
                failures.push(format!(
                    "{request}\n  -> no answer: {}",
                    shorten(&format!("{error:?}"))
                ));
                continue;
            }
        };
        let status = response.status();
        *by_status.entry(status.as_u16()).or_default() += 1;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        // An event stream (`/api/v1/events`) does not end: its status and
        // content type are its answer, and dropping it closes it.
        if status.is_success()
            && content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            continue;
        }
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => {
                failures.push(format!(
                    "{request}\n  -> {status}, the body broke off: {}",
                    shorten(&format!("{error:?}"))
                ));
                continue;
            }
        };
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
        if status.is_server_error() {
            failures.push(format!("{request}\n  -> {status}: {shown}"));
            continue;
        }
        if request.method == Method::HEAD {
            continue;
        }
        // The one answer that is not JSON: the metrics, Prometheus text.
        let metrics_text = content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"));
        if status.is_success() && metrics_text {
            continue;
        }
        let body: Value = match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            Err(error) => {
                failures.push(format!("{request}\n  -> {status} with a body that is not JSON ({error}, content-type {content_type:?}): {shown}"));
                continue;
            }
        };
        if content_type.as_deref() != Some("application/json") {
            failures.push(format!(
                "{request}\n  -> {status} with content-type {content_type:?}"
            ));
        }
        if status.is_client_error() {
            let code_ok = body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty());
            let message_ok = body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty());
            if !code_ok || !message_ok {
                failures.push(format!(
                    "{request}\n  -> {status} without error.code and error.message: {shown}"
                ));
            }
        }
        if let Some(id) = body["task_id"].as_str()
            && known_ids.len() < 200
        {
            known_ids.push(id.to_string());
        }
    }
    let took = started.elapsed();
    eprintln!(
        "{sent} requests in {took:.1?} ({:.0}/s); answers by status: {by_status:?}; {} task ids seen; {unsendable} generated requests the client would not send",
        sent as f64 / took.as_secs_f64(),
        known_ids.len()
    );

    // The service is still whole: health, and a task through the worker
    // (the fuzz may have removed or replaced the plugin; put it back).
    let healthz = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    restore_hostile(&registry, plugins.path());
    let echo: Value = http
        .post(format!("{base}/api/v1/tasks/submit?wait=30"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .json(&json!({"task": "test.echo", "input": {"after": "fuzz"}, "queue": "default"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&echo["status"], &echo["result"]),
        (&json!("SUCCESS"), &json!({"after": "fuzz"})),
        "{echo}"
    );

    drop(http);
    stop_server.notify_one();
    server.await.unwrap().unwrap();
    stop_worker.notify_one();
    worker.await.unwrap();
    let panics = PANICS.load(Ordering::SeqCst) - panics_before;

    for failure in failures.iter().take(20) {
        eprintln!("FAILED: {failure}\n");
    }
    assert!(sent >= 1000, "only {sent} requests");
    assert!(
        unsendable * 100 <= sent,
        "{unsendable} requests could not be sent"
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed (seed {seed}); the first ones are printed above",
        failures.len()
    );
    assert_eq!(
        panics, 0,
        "the process panicked {panics} times (seed {seed})"
    );
    assert!(took < Duration::from_secs(60), "the run took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_never_get_a_5xx_on_the_embedded_broker() {
    fuzz("embedded", 0x5EED_0001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_never_get_a_5xx_on_redis() {
    fuzz("redis", 0x5EED_0002).await;
}
