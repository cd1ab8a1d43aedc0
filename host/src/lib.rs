//! hippo: a task runtime for an LLM long-term-memory engine.
//!
//! Every task runs as a sandboxed WebAssembly component behind the
//! `hippo:tasks` WIT interface (see `tasks-wit/`). This crate is the host:
//! [`runtime`] owns the engine, the sandbox, the limits and the plugin
//! registry.

pub mod api;
pub mod broker;
pub mod config;
mod journal;
pub mod metrics;
pub mod models;
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod worker;
