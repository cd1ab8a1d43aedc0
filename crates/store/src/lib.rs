//! The memory store: typed memory records with their vectors, in Qdrant.
//!
//! [`VectorStore`] is what the `memory-store` WIT interface calls. [`open`]
//! returns one of two backends:
//! - **embedded** (the default): `qdrant-edge`, Qdrant's engine in-process,
//!   with its data under a directory (`<data_dir>/store`). One process owns
//!   the directory.
//! - **server**: a Qdrant server over gRPC (`qdrant-client`).
//!
//! Both pass one conformance suite (this crate's `tests/store.rs`). Their shared shape:
//! - two collections, `facts` and `prefs` (with a configurable name
//!   prefix), chosen by the memory's type ([`Collection::of`]); each has a
//!   dense vector `dense` (cosine, HNSW m = 48, ef_construct = 256, searched
//!   with ef = 128) and a sparse vector `bm25` with Qdrant's IDF modifier,
//!   plus payload indexes on user, type, tags, session (keyword),
//!   importance (float), created/updated/expires (integer Unix ms) and the
//!   archive flag;
//! - a write is durable when it returns (embedded: a synced journal;
//!   server: Qdrant's WAL, with `wait`);
//! - keyword search is BM25: the host computes term weights ([`bm25`]) and
//!   Qdrant applies the IDF;
//! - a hybrid search confined to one collection is one Qdrant query (two
//!   prefetches fused by Qdrant's RRF); one over both collections fuses in
//!   the host, because ranks from two collections cannot be fused by either
//!   collection. Both use the reference's `1 / (60 + rank)`.
//!
//! The trait is synchronous: its callers (WASM host functions) run on
//! blocking threads. Async code calls it through `spawn_blocking`. The
//! server backend drives its gRPC client on a small runtime of its own and
//! must not be called from inside an async task (it would block, and tokio
//! refuses to block a runtime thread on another runtime).
//!
//! Depends only on `hippo-journal`: it knows nothing of tasks, plugins,
//! brokers or models (vectors come in computed).

mod bm25;
mod collections;
mod edge;
mod filter;
mod fusion;
mod model;
mod server;
mod snapshot;

pub use filter::Filter;
pub use model::{Collection, Hit, Memory, MemoryType, Page, SnapshotInfo, Stored, Visibility};
pub use server::drop_collections;
pub use snapshot::restore_embedded;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Errors of the memory store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The request is malformed: a field out of range, a vector of the
    /// wrong length, an id that is not a UUID, a bad cursor.
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The store failed (disk, server, connection); retrying may help.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed, ending with its cause's text when it has one.
        message: String,
        /// The cause, when it is an error of its own (I/O, the Qdrant
        /// client, qdrant-edge).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A stored record could not be decoded into a memory.
    #[error("corrupt stored memory: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A [`StoreError::Unavailable`] with nothing to it but `message`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// A [`StoreError::Unavailable`] caused by `cause` while doing
    /// `context` (`"creating /data/store"`).
    pub fn unavailable_in(
        context: impl std::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            message: format!("{context}: {cause}"),
            source: Some(Box::new(cause)),
        }
    }

    /// A [`StoreError::Unavailable`] that is `cause` and nothing more.
    pub fn unavailable_from(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable {
            message: cause.to_string(),
            source: Some(Box::new(cause)),
        }
    }
}

/// The memory store's operations (the WIT's `memory-store`, minus the
/// per-user scoping the host adds on top).
pub trait VectorStore: Send + Sync + std::fmt::Debug {
    /// Inserts or replaces memories by id, each in its type's collection
    /// (one bulk write per collection). A memory whose type moved it to the
    /// other collection leaves no copy behind. When one id appears twice,
    /// the later item wins.
    fn upsert(&self, items: Vec<Stored>) -> Result<(), StoreError>;
    /// The memories with these ids that exist, in the order asked
    /// (duplicates once).
    fn get(&self, ids: &[String]) -> Result<Vec<Stored>, StoreError>;
    /// The `limit` memories nearest to `vector` by cosine similarity, best
    /// first, over the collections the filter allows.
    fn search(&self, vector: &[f32], filter: &Filter, limit: usize)
    -> Result<Vec<Hit>, StoreError>;
    /// The best `limit` BM25 matches for `query`, best first. A query of
    /// stopwords only matches nothing. Over both collections, scores are
    /// merged as they are, though each collection weighs a term by its own
    /// IDF.
    fn keyword_search(
        &self,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError>;
    /// The `candidates` best of [`search`](Self::search) and of
    /// [`keyword_search`](Self::keyword_search), fused by reciprocal rank
    /// (`1 / (60 + rank)`, rank 1 = best; a hit found by one of them only is
    /// kept), the best `limit`.
    fn hybrid_search(
        &self,
        vector: &[f32],
        query: &str,
        filter: &Filter,
        candidates: usize,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError>;
    /// One page (at most `limit`) of every memory that matches, across both
    /// collections; pass the page's `next` back as `cursor` for the
    /// following one. Memories written during a scroll may or may not show.
    fn scroll(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError>;
    /// How many memories match (exactly).
    fn count(&self, filter: &Filter) -> Result<u64, StoreError>;
    /// Deletes these memories; returns how many existed.
    fn delete(&self, ids: &[String]) -> Result<u64, StoreError>;
    /// Deletes every memory that matches; returns how many.
    fn delete_matching(&self, filter: &Filter) -> Result<u64, StoreError>;
    /// Snapshots each collection once, then keeps the newest `keep` (at
    /// least 1) of each. Returns the snapshots kept, newest first per
    /// collection.
    fn snapshot(&self, keep: usize) -> Result<Vec<SnapshotInfo>, StoreError>;
    /// Every snapshot there is, newest first per collection.
    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError>;
    /// Health: one cheap real round trip to each collection, timed.
    fn probe(&self) -> Result<Duration, StoreError>;
    /// Builds the vector indexes now (embedded: Qdrant's optimizers, which
    /// otherwise run in the background once enough points changed; server:
    /// nothing, the server optimizes by itself).
    fn optimize(&self) -> Result<(), StoreError>;
}

/// Which Qdrant holds the memories.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreBackend {
    /// Qdrant embedded (`qdrant-edge`): collections under `dir`, snapshot
    /// archives under `snapshots_dir`.
    Embedded {
        dir: PathBuf,
        snapshots_dir: PathBuf,
    },
    /// A Qdrant server's gRPC endpoint (e.g. `http://127.0.0.1:6334`).
    Server {
        url: String,
        api_key: Option<String>,
    },
}

/// How to open the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Length of every dense vector (the embedder's dimension).
    pub dimension: usize,
    /// Prepended to the collection names (`hippo_facts`, `hippo_prefs`).
    pub collection_prefix: String,
}

impl StoreConfig {
    /// The reference embedder's dimension (BAAI/bge-small-en-v1.5).
    pub const DEFAULT_DIMENSION: usize = 384;
    pub const DEFAULT_PREFIX: &str = "hippo_";

    /// The embedded store under `data_dir` (`store/` and `snapshots/`).
    pub fn embedded(data_dir: &Path) -> StoreConfig {
        StoreConfig {
            backend: StoreBackend::Embedded {
                dir: data_dir.join("store"),
                snapshots_dir: data_dir.join("snapshots"),
            },
            dimension: Self::DEFAULT_DIMENSION,
            collection_prefix: Self::DEFAULT_PREFIX.into(),
        }
    }

    /// A Qdrant server at `url` (gRPC).
    pub fn server(url: impl Into<String>, api_key: Option<String>) -> StoreConfig {
        StoreConfig {
            backend: StoreBackend::Server {
                url: url.into(),
                api_key,
            },
            dimension: Self::DEFAULT_DIMENSION,
            collection_prefix: Self::DEFAULT_PREFIX.into(),
        }
    }
}

/// Opens the store, creating its collections (and indexes) when missing.
/// Fails with [`StoreError::Invalid`] when existing collections have
/// another dimension, and with [`StoreError::Unavailable`] when the
/// directory is held by another store or the server is unreachable.
pub fn open(config: &StoreConfig) -> Result<Arc<dyn VectorStore>, StoreError> {
    if config.dimension == 0 {
        return Err(StoreError::Invalid("dimension must be positive".into()));
    }
    let prefix = &config.collection_prefix;
    Ok(match &config.backend {
        StoreBackend::Embedded { dir, snapshots_dir } => Arc::new(collections::Collections::new(
            edge::EdgeBackend::open(dir, snapshots_dir, prefix, config.dimension)?,
            config.dimension,
        )),
        StoreBackend::Server { url, api_key } => Arc::new(collections::Collections::new(
            server::ServerBackend::connect(url, api_key.as_deref(), prefix, config.dimension)?,
            config.dimension,
        )),
    })
}
