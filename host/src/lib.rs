//! hippo: a task runtime for an LLM long-term-memory engine.
//!
//! Every task runs as a sandboxed WebAssembly component behind the
//! `hippo:tasks` WIT interface (see `tasks-wit/`). Each capability is a
//! crate of its own (see the README's crate map); this one assembles them
//! into a service ([`config`]) and the `hippo` binary, and re-exports them
//! under one name so an embedder needs one dependency:
//!
//! | module | crate | owns |
//! |---|---|---|
//! | [`task`] | `hippo-task` | limits, failures, costs, progress |
//! | [`kv`] | `hippo-kv` | the plugins' key-value store contract |
//! | [`broker`] | `hippo-broker` | durable queues (embedded, Redis) |
//! | [`runtime`] | `hippo-runtime` | the WebAssembly sandbox and plugins |
//! | [`models`] | `hippo-models` | embedding and reranking models |
//! | [`memory`] | `hippo-memory` | the memory host capability, per user |
//! | [`store`] | `hippo-store` | the vector store (Qdrant) |
//! | [`scheduler`] | `hippo-scheduler` | the beat |
//! | [`worker`] | `hippo-worker` | workers |
//! | [`api`] | `hippo-api` | the REST API and metrics |

pub mod config;

pub use hippo_api as api;
pub use hippo_api::metrics;
pub use hippo_broker as broker;
pub use hippo_kv as kv;
pub use hippo_memory as memory;
pub use hippo_models as models;
pub use hippo_runtime as runtime;
pub use hippo_scheduler as scheduler;
pub use hippo_store as store;
pub use hippo_task as task;
pub use hippo_worker as worker;
