//! Benchmarks of the memory engine: its parts (`embed`) and the whole
//! (`engine`: batch creation, recall at scale, a worker's memory).

pub mod embed;
pub mod engine;
