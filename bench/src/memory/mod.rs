//! Benchmarks of the memory engine's parts.

pub mod embed;
