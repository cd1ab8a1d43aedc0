//! The fixture of the memory tests: one process's memory services and both
//! plugins, loaded from `plugins/` as a registry scan finds them.

use hippo::broker::{BrokerConfig, EmbeddedBroker, SharedBroker};
use hippo::memory::MemoryServices;
use hippo::models::ModelsConfig;
use hippo::models::{Embedder, TextKind};
use hippo::runtime::{
    PluginRegistry, Runtime, RuntimeConfig, TaskFailure, TaskOutcome, TaskRequest,
};
use hippo::store::{Stored, VectorStore};
use hippo::task::acting_user;
use hippo_integration_tests::{copy_memory_plugins, memory_services_with, output};
use serde_json::{Value, json};
use std::sync::Arc;

pub const DAY_MS: i64 = 86_400_000;

/// One process's worth of memory services and both plugins.
pub struct Fixture {
    runtime: Arc<Runtime>,
    registry: PluginRegistry,
    pub store: Arc<dyn VectorStore>,
    pub embedder: Arc<Embedder>,
    // Kept alive: the broker's writer and the key-value calls run on it.
    _tokio: tokio::runtime::Runtime,
    _dirs: [tempfile::TempDir; 2],
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_models(None)
    }

    /// With the models of `models` (`None`: the defaults).
    pub fn with_models(models: Option<ModelsConfig>) -> Fixture {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let plugins = tempfile::tempdir().unwrap();
        let broker: SharedBroker = Arc::new(
            tokio
                .block_on(EmbeddedBroker::open(
                    &data.path().join("broker"),
                    BrokerConfig::default(),
                ))
                .unwrap(),
        );
        let services = {
            let _inside = tokio.enter();
            memory_services_with(&broker, data.path(), models)
        };
        let memory = MemoryServices::of(&services).expect("the test process has memory services");
        let store = memory.store.clone().expect("the test process has a store");
        let embedder = memory
            .embeddings
            .clone()
            .expect("the test process has models");
        let runtime = Arc::new(Runtime::with_services(RuntimeConfig::default(), services).unwrap());
        copy_memory_plugins(plugins.path());
        let registry = PluginRegistry::new(runtime.clone(), plugins.path(), None);
        registry.scan().unwrap();
        assert!(
            registry.rejections().is_empty(),
            "{:?}",
            registry.rejections()
        );
        Fixture {
            runtime,
            registry,
            store,
            embedder,
            _tokio: tokio,
            _dirs: [data, plugins],
        }
    }

    pub fn execute(&self, request: TaskRequest) -> TaskOutcome {
        let plugin = self
            .registry
            .resolve(&request.task_name)
            .unwrap_or_else(|| panic!("no plugin offers {}", request.task_name));
        self.runtime.execute_blocking(&plugin, &request)
    }

    /// `task` with `input`, acting for the input's user as a submission
    /// through the API would.
    fn request(task: &str, input: &Value) -> TaskRequest {
        let mut request = TaskRequest::new(task, input.to_string());
        request.acting_for = acting_user(input).unwrap().map(str::to_owned);
        request
    }

    /// Runs `task` and returns its failure, if it failed.
    pub fn run(&self, task: &str, input: Value) -> Result<Value, TaskFailure> {
        let outcome = self.execute(Self::request(task, &input));
        outcome
            .result
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
    }

    /// Runs `task`, which must succeed.
    pub fn ok(&self, task: &str, input: Value) -> Value {
        output(&self.execute(Self::request(task, &input)))
    }

    /// Runs `task` with a 1 ms soft time limit: it has passed by the time
    /// the first page is done.
    pub fn hurried(&self, task: &str, input: Value) -> Value {
        let mut request = Self::request(task, &input);
        request.limits.soft_time_limit_ms = Some(1);
        output(&self.execute(request))
    }

    pub fn create(&self, user: &str, text: &str, extra: Value) -> Value {
        let mut input = json!({ "user_id": user, "text": text });
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.ok("memory.create", input)
    }

    /// Every memory of `user`, through `memory.query`.
    pub fn memories_of(&self, user: &str) -> Vec<Value> {
        let page = self.ok("memory.query", json!({ "user_id": user, "limit": 1000 }));
        assert_eq!(page["next"], Value::Null);
        page["memories"].as_array().unwrap().clone()
    }

    pub fn vector(&self, text: &str) -> Vec<f32> {
        self.embedder
            .embed_blocking(vec![text.into()], TextKind::Document)
            .unwrap()
            .remove(0)
    }

    pub fn stored(&self, id: &str) -> Stored {
        self.store
            .get(&[id.to_string()])
            .unwrap()
            .pop()
            .expect("the memory is stored")
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A deterministic unit vector of `dimension` for `seed` (distinct seeds
/// give vectors far apart): for memories whose text the test does not search.
pub fn seeded_vector(seed: u64, dimension: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let raw: Vec<f32> = (0..dimension)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2_000) as f32 / 1_000.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    raw.into_iter().map(|x| x / norm).collect()
}

pub fn text_of(memory: &Value) -> &str {
    memory["text"].as_str().unwrap()
}
