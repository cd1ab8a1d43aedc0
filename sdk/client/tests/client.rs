//! The client against a real server in process: the REST API
//! (`hippo::api::serve` on loopback), the embedded broker in a temporary
//! directory, the plugin registry over a folder holding the hostile test
//! guest, and a worker. The guests are built by `scripts/build-guests`.
//!
//! The worker consumes every queue but `background`, so tasks sent there
//! stay ready (for the queue purge and the queue counts).

use hippo::api::{AppState, KeyConfig, KeyStore, Scope, hash_key};
use hippo::broker::{BrokerConfig, EmbeddedBroker, SharedBroker};
use hippo::runtime::{PluginRegistry, Runtime, RuntimeConfig};
use hippo::worker::{Worker, WorkerConfig};
use hippo_client::{
    BatchCreated, CancelOutcome, Client, ClientError, CreateAction, Created, Limits, NewMemory,
    RecallRequest, SubmitOptions, TaskState, Updated,
};
use hippo_integration_tests::{
    RunningWorker, TestDirs, copy_memory_plugins, memory_runtime, test_worker_config,
};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "client-test-admin";
const READER: &str = "client-test-reader";
const WORKER: &str = "client-test-worker";

/// A built guest component, e.g. `hostile_guest`: missing is a setup error.
fn guest(name: &str) -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/hippo/target")
        });
    let path = target
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "guest component {} is missing ({e}); run scripts/build-guests first",
            path.display()
        )
    })
}

struct Server {
    url: String,
    stop_server: Arc<tokio::sync::Notify>,
    worker: RunningWorker,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dirs: TestDirs,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(false).await
    }

    /// With `memory`, also the memory plugins on real memory services (the
    /// models and the embedded store).
    async fn start_with(memory: bool) -> Server {
        let plugins = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::write(plugins.path().join("hostile.wasm"), guest("hostile_guest")).unwrap();
        let broker: SharedBroker = Arc::new(
            EmbeddedBroker::open(data.path(), BrokerConfig::default())
                .await
                .unwrap(),
        );
        let runtime = if memory {
            copy_memory_plugins(plugins.path());
            memory_runtime(&broker, data.path()).await
        } else {
            Arc::new(Runtime::new(RuntimeConfig::default()).expect("runtime builds"))
        };
        let registry = Arc::new(PluginRegistry::new(runtime, plugins.path(), None));
        tokio::task::block_in_place(|| registry.scan()).unwrap();
        let config = WorkerConfig {
            queues: ["memory_ops", "default", "scheduled"]
                .map(String::from)
                .to_vec(),
            ..test_worker_config(WORKER, 2)
        };
        let worker = RunningWorker::start(Worker::new(broker.clone(), registry.clone(), config));
        let reader = KeyConfig {
            name: "reader".into(),
            sha256: hash_key(READER),
            scopes: [Scope::Read].into_iter().collect(),
            users: None,
            rate_per_s: None,
        };
        let keys = KeyStore::new(vec![KeyStore::admin_key("admin", ADMIN), reader]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState {
            broker,
            registry,
            keys: Arc::new(keys),
        };
        let stop_server = Arc::new(tokio::sync::Notify::new());
        let server = tokio::spawn(hippo::api::serve(listener, state, {
            let stop = stop_server.clone();
            async move { stop.notified().await }
        }));
        Server {
            url,
            stop_server,
            worker,
            server,
            _dirs: TestDirs(vec![plugins, data]),
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.url, ADMIN).unwrap()
    }

    async fn shutdown(self) {
        self.stop_server.notify_one();
        self.server.await.unwrap().unwrap();
        self.worker.stop().await;
    }
}

/// Polls until the task is in `state`.
async fn until_state(client: &Client, id: &str, state: TaskState) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client.status(id).await.unwrap();
        if status.status == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never reached {state}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_get_status() {
    let server = Server::start().await;
    let client = server.client();

    // delay() / get(timeout).
    let task = client.submit("test.echo", json!({"a": 1})).await.unwrap();
    assert!(task.created);
    assert_eq!(
        task.get(Duration::from_secs(10)).await.unwrap(),
        json!({"a": 1})
    );
    let status = task.status().await.unwrap();
    assert_eq!(
        (status.status, &status.task, &status.queue),
        (
            TaskState::Success,
            &"test.echo".to_string(),
            &"default".to_string()
        )
    );
    assert_eq!(
        (status.result, status.attempt, status.runs),
        (Some(json!({"a": 1})), 1, 1)
    );
    assert_eq!(status.worker.as_deref(), Some(WORKER));
    assert!(status.last_run.is_some_and(|run| run["worker"] == WORKER));
    assert_eq!(client.status(&task.id).await.unwrap().task_id, task.id);
    // A handle on an existing id; any serializable input.
    assert_eq!(
        client
            .task(task.id.clone())
            .get(Duration::ZERO)
            .await
            .unwrap(),
        json!({"a": 1})
    );
    #[derive(serde::Serialize)]
    struct Input {
        ms: u64,
    }
    let slept = client.submit("test.sleep", Input { ms: 1 }).await.unwrap();
    slept.get(Duration::from_secs(10)).await.unwrap();

    // apply_async(): options, and one task per idempotency key.
    let options = SubmitOptions {
        queue: Some("memory_ops".into()),
        priority: Some(9),
        max_retries: Some(0),
        expires: Some(Duration::from_secs(60)),
        idempotency_key: Some("client-test-once".into()),
        limits: Some(Limits {
            hard_time_limit_ms: Some(5_000),
            fuel: Some(1_000_000_000),
            ..Limits::default()
        }),
        ..SubmitOptions::default()
    };
    let first = client
        .submit_with("test.echo", json!("once"), &options)
        .await
        .unwrap();
    let again = client
        .submit_with("test.echo", json!("twice"), &options)
        .await
        .unwrap();
    assert_eq!(
        (first.created, again.created, &again.id),
        (true, false, &first.id)
    );
    assert_eq!(
        again.get(Duration::from_secs(10)).await.unwrap(),
        json!("once")
    );
    assert_eq!(first.status().await.unwrap().queue, "memory_ops");

    // A countdown: the task waits (scheduled), then runs.
    let options = SubmitOptions {
        countdown: Some(Duration::from_millis(300)),
        ..SubmitOptions::default()
    };
    let started = Instant::now();
    let later = client
        .submit_with("test.noop", json!(null), &options)
        .await
        .unwrap();
    assert_eq!(
        later.get(Duration::from_secs(10)).await.unwrap(),
        json!(null)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "ran after {:?}",
        started.elapsed()
    );

    // The wait (`wait`) returns the status, finished or not.
    let sleeper = client
        .submit("test.sleep", json!({"ms": 400}))
        .await
        .unwrap();
    let early = sleeper.wait(Duration::from_millis(50)).await.unwrap();
    assert!(!early.is_finished(), "{early:?}");
    assert_eq!(
        sleeper.wait(Duration::from_secs(10)).await.unwrap().status,
        TaskState::Success
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_revocations_and_timeouts() {
    let server = Server::start().await;
    let client = server.client();

    // FAILURE: TaskFailed with the task's error.
    let options = SubmitOptions {
        max_retries: Some(0),
        ..SubmitOptions::default()
    };
    let failing = client
        .submit_with("test.fail", json!({"kind": "fatal"}), &options)
        .await
        .unwrap();
    match failing.get(Duration::from_secs(10)).await {
        Err(ClientError::TaskFailed { id, error }) => {
            assert_eq!(id, failing.id);
            assert_eq!(error["kind"], "fatal", "{error}");
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }

    // Cancel a running task: interrupted, then REVOKED.
    let spinning = client.submit("test.spin", json!(null)).await.unwrap();
    until_state(&client, &spinning.id, TaskState::Started).await;
    let cancelled = spinning.cancel().await.unwrap();
    assert_eq!(
        (cancelled.task_id.as_str(), cancelled.outcome),
        (spinning.id.as_str(), CancelOutcome::Running)
    );
    match spinning.get(Duration::from_secs(10)).await {
        Err(ClientError::Revoked { id }) => assert_eq!(id, spinning.id),
        other => panic!("expected Revoked, got {other:?}"),
    }
    // Cancel a queued task: it never runs.
    let options = SubmitOptions {
        countdown: Some(Duration::from_secs(60)),
        ..SubmitOptions::default()
    };
    let queued = client
        .submit_with("test.echo", json!(1), &options)
        .await
        .unwrap();
    assert_eq!(
        queued.cancel().await.unwrap().outcome,
        CancelOutcome::Queued
    );
    assert!(matches!(
        queued.get(Duration::from_secs(5)).await,
        Err(ClientError::Revoked { .. })
    ));
    assert_eq!(queued.status().await.unwrap().runs, 0);
    // Cancelling a finished task changes nothing.
    assert_eq!(
        failing.cancel().await.unwrap().outcome,
        CancelOutcome::AlreadyFinished
    );

    // Timeout: the task takes longer than the wait.
    let sleeping = client
        .submit("test.sleep", json!({"ms": 3_000}))
        .await
        .unwrap();
    let started = Instant::now();
    match sleeping.get(Duration::from_millis(500)).await {
        Err(ClientError::Timeout { id, waited, state }) => {
            assert_eq!(
                (id.as_str(), waited),
                (sleeping.id.as_str(), Duration::from_millis(500))
            );
            assert!(!state.is_finished(), "{state}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(480) && took < Duration::from_millis(2_500),
        "waited {took:?}"
    );
    sleeping.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors() {
    let server = Server::start().await;
    let client = server.client();

    // Wrong key, no key.
    for key in ["not-a-key", ""] {
        let stranger = Client::new(&server.url, key).unwrap();
        match stranger.submit("test.echo", json!(1)).await {
            Err(ClientError::Api {
                status: 401,
                code,
                message,
                field: None,
            }) => {
                assert_eq!(code, "unauthorized");
                assert!(!message.is_empty());
            }
            other => panic!("expected unauthorized, got {other:?}"),
        }
    }
    // A key without the scope.
    let reader = Client::new(&server.url, READER).unwrap();
    let error = reader.submit("test.echo", json!(1)).await.unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(403), Some("forbidden")),
        "{error}"
    );
    assert!(reader.inspect_queues().await.is_ok());

    // Bad input names the field.
    match client.submit("no.such-task", json!(null)).await {
        Err(ClientError::Api {
            status: 400,
            code,
            field,
            ..
        }) => {
            assert_eq!(
                (code.as_str(), field.as_deref()),
                ("invalid_input", Some("task"))
            );
        }
        other => panic!("expected an invalid task, got {other:?}"),
    }
    let cases = [
        (
            SubmitOptions {
                priority: Some(12),
                ..SubmitOptions::default()
            },
            "priority",
        ),
        (
            SubmitOptions {
                queue: Some("nope".into()),
                ..SubmitOptions::default()
            },
            "queue",
        ),
        (
            SubmitOptions {
                max_retries: Some(1_000),
                ..SubmitOptions::default()
            },
            "max_retries",
        ),
        (
            SubmitOptions {
                countdown: Some(Duration::from_secs(1)),
                eta_ms: Some(1),
                ..SubmitOptions::default()
            },
            "eta_ms",
        ),
    ];
    for (options, field) in cases {
        let error = client
            .submit_with("test.echo", json!(null), &options)
            .await
            .unwrap_err();
        match &error {
            ClientError::Api {
                status: 400,
                field: Some(f),
                ..
            } => assert_eq!(f, field, "{error}"),
            other => panic!("expected a bad {field}, got {other:?}"),
        }
        assert!(
            error.to_string().contains(&format!("field {field}")),
            "{error}"
        );
    }

    // Unknown ids are 404.
    let error = client.status("no-such-task").await.unwrap_err();
    assert!(
        error.is_not_found() && error.code() == Some("not_found"),
        "{error}"
    );
    assert!(
        client
            .task("no-such-task")
            .cancel()
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        client
            .task("no-such-task")
            .get(Duration::from_secs(1))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        client
            .replay_dead_letter("no-such-task")
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Health answers without a key.
    let anonymous = Client::new(&server.url, "").unwrap();
    assert!(anonymous.health().await.unwrap().is_ok());
    let ready = anonymous.ready().await.unwrap();
    assert!(ready.is_ok(), "{ready:?}");
    assert_eq!(ready.checks["broker"]["status"], "ok");

    // Nobody listening: an HTTP error, not a panic.
    let url = server.url.clone();
    server.shutdown().await;
    let gone = Client::new(&url, ADMIN)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    assert!(matches!(gone.health().await, Err(ClientError::Http(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_purge_and_dead_letters() {
    let server = Server::start().await;
    let client = server.client();

    // Queues: tasks sent to `background` stay ready (no worker consumes it).
    let background = SubmitOptions {
        queue: Some("background".into()),
        ..SubmitOptions::default()
    };
    for i in 0..3 {
        client
            .submit_with("test.echo", json!(i), &background)
            .await
            .unwrap();
    }
    let queues = client.inspect_queues().await.unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["memory_ops", "default", "scheduled", "background"]);
    assert_eq!(
        queues
            .iter()
            .find(|q| q.name == "background")
            .unwrap()
            .ready,
        3
    );
    assert_eq!(client.purge_queue("background").await.unwrap(), 3);
    assert!(
        client
            .inspect_queues()
            .await
            .unwrap()
            .iter()
            .all(|q| q.ready == 0)
    );
    assert!(client.purge_queue("nope").await.unwrap_err().is_not_found());

    // Workers and what they hold.
    let deadline = Instant::now() + Duration::from_secs(5);
    let worker = loop {
        let workers = client.inspect_stats().await.unwrap();
        if let Some(worker) = workers.into_iter().find(|w| w.name == WORKER) {
            break worker;
        }
        assert!(Instant::now() < deadline, "the worker never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((worker.concurrency, worker.queues.len()), (2, 3));
    let spinning = client.submit("test.spin", json!(null)).await.unwrap();
    until_state(&client, &spinning.id, TaskState::Started).await;
    let held = client.inspect_active().await.unwrap();
    let active = held.active.get(WORKER).expect("the worker runs a task");
    assert_eq!(
        active
            .iter()
            .map(|t| t.task_id.as_str())
            .collect::<Vec<_>>(),
        [spinning.id.as_str()]
    );
    spinning.cancel().await.unwrap();

    // Scheduled: a countdown waits there.
    let options = SubmitOptions {
        countdown: Some(Duration::from_secs(60)),
        ..SubmitOptions::default()
    };
    let waiting = client
        .submit_with("test.echo", json!(null), &options)
        .await
        .unwrap();
    let scheduled = client.inspect_scheduled().await.unwrap();
    assert_eq!(
        scheduled
            .iter()
            .map(|t| t.task_id.as_str())
            .collect::<Vec<_>>(),
        [waiting.id.as_str()]
    );
    assert_eq!(scheduled[0].status, TaskState::Pending);
    waiting.cancel().await.unwrap();

    // Dead letters: list, replay, purge.
    assert!(client.dead_letters().await.unwrap().is_empty());
    let failed = client
        .submit("test.fail", json!({"kind": "fatal"}))
        .await
        .unwrap();
    assert!(matches!(
        failed.get(Duration::from_secs(10)).await,
        Err(ClientError::TaskFailed { .. })
    ));
    let dead = client.dead_letters().await.unwrap();
    assert_eq!(
        dead.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(),
        [failed.id.as_str()]
    );
    assert_eq!(dead[0].status, TaskState::Failure);
    let replay = client.replay_dead_letter(&failed.id).await.unwrap();
    assert_ne!(replay.id, failed.id);
    assert!(matches!(
        replay.get(Duration::from_secs(10)).await,
        Err(ClientError::TaskFailed { .. })
    ));
    assert_eq!(
        client.dead_letters().await.unwrap().len(),
        1,
        "the replay failed again"
    );
    assert_eq!(client.purge_dead_letters().await.unwrap(), 1);
    assert!(client.dead_letters().await.unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_remove_plugins() {
    let server = Server::start().await;
    let client = server.client();

    let listed = client.plugins().await.unwrap();
    assert!(listed.refused.is_empty(), "{listed:?}");
    let hostile = listed
        .plugins
        .iter()
        .find(|p| p.tasks.iter().any(|t| t.name == "test.echo"))
        .expect("the hostile guest");
    assert!(
        hostile.file.ends_with("hostile.wasm") && hostile.wasm_sha256.len() == 64,
        "{hostile:?}"
    );

    // Deploy a new plugin: its task is live at once.
    let deployed = client
        .deploy("fib", guest("hippo_example_fib"))
        .await
        .unwrap();
    let tasks: Vec<&str> = deployed.tasks.iter().map(|t| t.name.as_str()).collect();
    assert!(tasks.contains(&"example.fib"), "{deployed:?}");
    let fib = client
        .submit("example.fib", json!({"n": 10}))
        .await
        .unwrap();
    assert_eq!(
        fib.get(Duration::from_secs(10)).await.unwrap(),
        json!({"value": 55})
    );

    // A garbage upload is refused, naming the body; the plugin keeps serving.
    match client.deploy("fib", b"not a component".to_vec()).await {
        Err(ClientError::Api {
            status: 400,
            code,
            field,
            message,
        }) => {
            assert_eq!(
                (code.as_str(), field.as_deref()),
                ("invalid_input", Some("body")),
                "{message}"
            );
        }
        other => panic!("expected a refused upload, got {other:?}"),
    }
    let fib = client
        .submit("example.fib", json!({"n": 20}))
        .await
        .unwrap();
    assert_eq!(
        fib.get(Duration::from_secs(10)).await.unwrap(),
        json!({"value": 6765})
    );
    // A bad name names the field.
    let error = client
        .deploy("Bad Name", guest("hippo_example_fib"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.status()),
        (Some("invalid_input"), Some(400)),
        "{error}"
    );

    // A manifest: the task moves to another queue.
    let plugin = client
        .deploy_manifest("fib", "queue = \"memory_ops\"\n")
        .await
        .unwrap()
        .expect("fib is deployed");
    let task = plugin
        .tasks
        .iter()
        .find(|t| t.name == "example.fib")
        .unwrap();
    assert_eq!(task.queue, "memory_ops");
    let fib = client.submit("example.fib", json!({"n": 1})).await.unwrap();
    assert_eq!(
        fib.get(Duration::from_secs(10)).await.unwrap(),
        json!({"value": 1})
    );
    assert_eq!(fib.status().await.unwrap().queue, "memory_ops");
    let error = client
        .deploy_manifest("fib", "queue = [")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("invalid_input"), "{error}");

    // Remove: the task is gone; removing again is 404.
    client.remove_plugin("fib").await.unwrap();
    let error = client
        .submit("example.fib", json!({"n": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Api { field: Some(f), .. } if f == "task"),
        "{error}"
    );
    assert!(
        client
            .remove_plugin("fib")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        client
            .plugins()
            .await
            .unwrap()
            .plugins
            .iter()
            .all(|p| !p.tasks.iter().any(|t| t.name == "example.fib"))
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_helpers_answer_typed_memories() {
    let server = Server::start_with(true).await;
    let client = server.client();
    let wait = Duration::from_secs(30);

    // Queued, the reference's delay() / get(timeout) flow, read typed.
    let chocolate = NewMemory::new("alice", "I like dark chocolate")
        .memory_type("preference")
        .importance(8.0)
        .tags(["food"]);
    let task = client.create_memory(&chocolate).await.unwrap();
    let created: Created = task.get_as(wait).await.unwrap();
    assert_eq!(created.action, CreateAction::Created);
    let memory = &created.memory;
    assert_eq!(
        (
            memory.text.as_str(),
            memory.user_id.as_str(),
            memory.memory_type.as_str()
        ),
        ("I like dark chocolate", "alice", "preference")
    );
    assert_eq!((memory.importance, memory.confidence), (8.0, 0.9));
    assert_eq!(memory.tags, ["food"]);
    let batch = [
        NewMemory::new("alice", "I prefer dark chocolate"),
        NewMemory::new("alice", "My sister lives in Berlin").ttl_days(30.0),
    ];
    let task = client.batch_create_memories(&batch, true).await.unwrap();
    let batch: BatchCreated = task.get_as(wait).await.unwrap();
    assert_eq!((batch.created, batch.updated, batch.skipped), (1, 1, 0));
    assert_eq!(batch.results[0].action, CreateAction::UpdatedExisting);
    assert_eq!(
        batch.results[0].duplicate_of.as_deref(),
        Some(memory.id.as_str())
    );
    assert!(batch.results[1].memory.expires_at.is_some());
    let task = client
        .update_memory("alice", &memory.id, &json!({"tags": ["sweets"]}))
        .await
        .unwrap();
    let updated: Updated = task.get_as(wait).await.unwrap();
    assert_eq!(
        (updated.reembedded, updated.memory.tags.clone()),
        (false, vec!["sweets".to_string()])
    );

    // Inline.
    let recalled = client
        .recall_now(&RecallRequest::new("alice", "which sweets does she like?").k(1))
        .await
        .unwrap();
    assert_eq!(recalled.results.len(), 1);
    assert_eq!(recalled.results[0].memory.id, memory.id);
    assert_eq!(
        (recalled.mode.as_str(), recalled.reranked),
        ("hybrid", false)
    );
    let weights = recalled.results[0].breakdown.weights;
    assert!(
        (weights.relevance + weights.rerank + weights.recency + weights.importance - 1.0).abs()
            < 1e-9
    );
    let tea = client
        .create_memory_now(&NewMemory::new("alice", "My favourite tea is oolong"))
        .await
        .unwrap();
    assert_eq!(
        client.get_memory("alice", &tea.memory.id).await.unwrap(),
        tea.memory
    );
    let renamed = client
        .update_memory_now(
            "alice",
            &tea.memory.id,
            &json!({"text": "My favourite tea is green tea"}),
        )
        .await
        .unwrap();
    assert!(renamed.reembedded);
    let page = client
        .query_memories("alice", None, Some(2), None)
        .await
        .unwrap();
    assert_eq!(page.memories.len(), 2);
    let cursor = page.next.expect("a second page");
    let rest = client
        .query_memories("alice", None, Some(2), Some(&cursor))
        .await
        .unwrap();
    assert_eq!((rest.memories.len(), rest.next), (1, None));
    client
        .delete_memory_now("alice", &tea.memory.id)
        .await
        .unwrap();
    match client.get_memory("alice", &tea.memory.id).await {
        Err(ClientError::Api {
            status: 404, code, ..
        }) => assert_eq!(code, "not_found"),
        other => panic!("a deleted memory is a 404: {other:?}"),
    }
    // bob cannot delete alice's memory: it does not exist for him.
    let task = client.delete_memory("bob", &memory.id).await.unwrap();
    assert_eq!(
        task.get(wait).await.unwrap(),
        json!({"deleted": false, "memory_id": memory.id})
    );
    server.shutdown().await;
}
