//! hippo's end-to-end tests of the whole host, one binary (as wasmtime's
//! `tests/all`): the API in process, workers, the scheduler, the memory
//! plugins, and `hippo serve` and the `hippo` command as child processes,
//! on both brokers. Each crate's own end-to-end tests live with the crate
//! (`crates/*/tests`); the shared setup is `lib.rs` and `support/`.

mod api;
mod api_fuzz;
mod cli;
mod cluster;
mod dashboard;
mod deployment;
mod failover;
mod limits;
mod memory;
mod names;
mod scheduler;
mod worker;
