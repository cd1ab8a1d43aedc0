//! The embedded backend: each collection is a `qdrant-edge` shard in its
//! own directory (`<dir>/<prefix>facts`, `<dir>/<prefix>prefs`).
//!
//! `qdrant-edge` 0.7 is synchronous and does no background work: it builds
//! the HNSW index only when asked (`optimize`), searching by brute force
//! (over the payload index's candidates when filtered) until then. Here a
//! shard optimizes on a thread of its own once enough points have changed
//! since the last run ([`AUTO_OPTIMIZE_AFTER`]), and writers go on meanwhile;
//! [`VectorStore::optimize`](crate::VectorStore::optimize) runs it
//! at once.
//!
//! Its WAL is never replayed, so every write also goes to a [`journal`]
//! that opening replays; a flusher thread flushes each shard every
//! [`FLUSH_EVERY`] (when it is not optimizing) and empties its journal.
//! Nor is that WAL ever truncated (0.7 never acknowledges it): it grows by
//! about 2 KB per point written at 384 dimensions, in 32 MiB files. Removing
//! it is no way out: a write's WAL index is the version its points get, and
//! a fresh WAL would number from zero again, below the stored versions, so
//! later writes of those points would be ignored. So the background job
//! that optimizes a shard first rebuilds it into a fresh directory when its
//! WAL has outgrown its data ([`compact`]). Newer `qdrant-edge` lines need
//! unstable Rust.
//! `EdgeShard::flush` panics when the WAL or the segments are busy, so
//! flushes (periodic, snapshots, drop) hold writers and optimizations back
//! through a gate.

mod compact;
mod convert;
mod journal;

use super::StoreError;
use super::collections::{Backend, Point, Query};
use super::filter::Cond;
use super::model::{Collection, Hit, SnapshotInfo, Stored};
use super::snapshot;
use convert::{DENSE, SPARSE, unavailable};
use journal::{Entry, Journal};
use qdrant_edge::{
    CountRequest, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams, EdgeVectorParams,
    HnswIndexConfig, Modifier, PointId, PointInsertOperations, PointOperations, ScrollRequest,
    UpdateOperation, WithPayloadInterface, WithVector,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use uuid::Uuid;

/// Points written or deleted in a shard after which it optimizes in the
/// background, once they are also half as many as the shard holds: a bulk
/// load then rebuilds the index a few times (at 10k, 20k, 30k, 45k, ...
/// points), not once per 10,000. Below Qdrant's default indexing threshold
/// (~10 MB of vectors, ~6,500 of 384 dimensions) a segment stays plain
/// anyway.
const AUTO_OPTIMIZE_AFTER: usize = 10_000;

/// How often written shards are flushed (and their journals emptied), as
/// the Qdrant server's default `flush_interval_sec`.
const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// The journal's file in a collection's directory.
const JOURNAL_FILE: &str = "hippo-journal";

/// The embedded store: both collections' shards.
#[derive(Debug)]
pub(crate) struct EdgeBackend {
    shards: [Arc<Shard>; 2],
    /// The background optimizations started, joined on drop so that the
    /// directories are released when the store is.
    background: Mutex<Vec<JoinHandle<()>>>,
    /// The flusher thread; dropping the sender stops it.
    flusher: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// One collection.
#[derive(Debug)]
struct Shard {
    name: String,
    dir: PathBuf,
    dimension: usize,
    snapshots_dir: PathBuf,
    /// Replaced only when a compaction swaps the directory.
    edge: RwLock<PanicFreeDrop>,
    /// Updates and optimizations hold it shared, flushes and compactions
    /// exclusively.
    gate: RwLock<()>,
    /// Held from journaling a write to applying it, so the journal's order
    /// is the shard's.
    journal: Mutex<Journal>,
    /// One optimization at a time.
    optimizing: Mutex<()>,
    /// A background optimization is queued or running.
    scheduled: AtomicBool,
    /// Points changed since the last optimization began.
    changed: AtomicUsize,
}

fn config(dimension: usize) -> EdgeConfig {
    let dense = EdgeVectorParams {
        size: dimension,
        distance: Distance::Cosine,
        on_disk: None,
        multivector_config: None,
        datatype: None,
        quantization_config: None,
        hnsw_config: None,
    };
    let sparse = EdgeSparseVectorParams {
        modifier: Some(Modifier::Idf),
        ..Default::default()
    };
    EdgeConfig {
        vectors: [(DENSE.to_owned(), dense)].into(),
        sparse_vectors: [(SPARSE.to_owned(), sparse)].into(),
        // The reference's HNSW parameters.
        hnsw_config: HnswIndexConfig {
            m: 48,
            ef_construct: 256,
            ..HnswIndexConfig::default()
        },
        ..EdgeConfig::default()
    }
}

impl Shard {
    fn open(
        dir: &Path,
        name: String,
        snapshots_dir: PathBuf,
        dimension: usize,
    ) -> Result<Shard, StoreError> {
        compact::recover(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::unavailable_in(format_args!("creating {}", dir.display()), e)
        })?;
        let in_use = |e: qdrant_edge::OperationError| {
            StoreError::unavailable_in(
                format_args!("opening collection {name} at {}", dir.display()),
                e,
            )
        };
        let shard = if dir.join("edge_config.json").exists() {
            let shard = EdgeShard::load(dir, None).map_err(in_use)?;
            let stored = shard.config().vectors.get(DENSE).map(|v| v.size);
            if stored != Some(dimension) {
                return Err(StoreError::Invalid(format!(
                    "collection {name} holds vectors of dimension {stored:?}, the store is configured for {dimension}"
                )));
            }
            shard
        } else {
            EdgeShard::new(dir, config(dimension)).map_err(in_use)?
        };
        let (journal, unflushed) = Journal::open(&dir.join(JOURNAL_FILE))?;
        let shard = Shard {
            name,
            dir: dir.to_owned(),
            dimension,
            snapshots_dir,
            edge: RwLock::new(PanicFreeDrop(Some(shard))),
            gate: RwLock::new(()),
            journal: Mutex::new(journal),
            optimizing: Mutex::new(()),
            scheduled: AtomicBool::new(false),
            changed: AtomicUsize::new(0),
        };
        if !unflushed.is_empty() {
            tracing::info!(collection = %shard.name, writes = unflushed.len(), "replaying the journal");
        }
        for entry in unflushed {
            shard.edge().update(operation(entry)).map_err(unavailable)?;
        }
        // Not journaled: opening creates whatever a crash lost.
        compact::create_missing_indexes(&shard.edge())?;
        shard.flush()?;
        Ok(shard)
    }

    /// The open qdrant-edge shard.
    fn edge(&self) -> RwLockReadGuard<'_, PanicFreeDrop> {
        self.edge.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Journals `entry`, then applies it.
    fn write(&self, entry: Entry) -> Result<(), StoreError> {
        let _writer = self.gate.read().unwrap_or_else(|e| e.into_inner());
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let before = journal.append(&entry)?;
        if let Err(e) = self.edge().update(operation(entry)) {
            // Never replay a write that failed.
            journal.truncate(before)?;
            return Err(unavailable(e));
        }
        Ok(())
    }

    /// Flushes the shard and empties its journal. The caller holds the gate
    /// exclusively (or is alone, when opening).
    fn flush(&self) -> Result<(), StoreError> {
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        // qdrant-edge 0.7 panics when it cannot write a segment, and when its
        // directory was removed under it, it panics again while unwinding,
        // which aborts the process: check for the directory first, and catch
        // what panics cleanly. Either is an error here; the journal keeps the
        // writes for the next open.
        let edge = self.edge();
        if !edge.path().exists() {
            return Err(StoreError::unavailable(format!(
                "{}: the store's directory {} is gone",
                self.name,
                edge.path().display()
            )));
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| edge.flush())).map_err(|_| {
            StoreError::unavailable(format!("{}: the segments could not be flushed", self.name))
        })?;
        journal.truncate(0)
    }

    /// Flushes when something was written since the last flush, unless a
    /// writer or an optimization holds the gate (the next round will).
    fn flush_if_idle(&self) {
        let unflushed = self.journal.lock().unwrap_or_else(|e| e.into_inner()).len();
        if unflushed == 0 {
            return;
        }
        let Ok(_exclusive) = self.gate.try_write() else {
            return;
        };
        if let Err(e) = self.flush() {
            tracing::warn!(collection = %self.name, error = %e, "flush failed");
        }
    }

    /// Compacts the shard when its WAL has outgrown its data, then builds
    /// its index.
    fn optimize_now(&self) -> Result<(), StoreError> {
        let _one = self.optimizing.lock().unwrap_or_else(|e| e.into_inner());
        if compact::outgrown(&self.dir) {
            self.compact()?;
        }
        let _writer = self.gate.read().unwrap_or_else(|e| e.into_inner());
        self.changed.store(0, Ordering::Relaxed);
        self.edge().optimize().map(drop).map_err(unavailable)
    }

    /// Rebuilds the shard from its points into a fresh directory and swaps
    /// it in (see [`compact`]). Writers wait from the flush to the swap;
    /// readers only while the directories are swapped.
    fn compact(&self) -> Result<(), StoreError> {
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        self.flush()?;
        let before = compact::bytes_under(&self.dir);
        let into = compact::compacting(&self.dir);
        compact::recover(&self.dir)?;
        if let Err(e) = compact::rebuild(&self.edge(), &into, config(self.dimension)) {
            let _ = std::fs::remove_dir_all(&into);
            return Err(e);
        }
        let mut edge = self.edge.write().unwrap_or_else(|e| e.into_inner());
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        // The old shard is flushed and closed before its directory moves.
        drop(PanicFreeDrop(edge.0.take()));
        let swapped = compact::swap(&self.dir);
        if swapped.is_err() {
            // Undoes a half swap: `dir` holds the old collection again.
            compact::recover(&self.dir)?;
        }
        edge.0 = Some(EdgeShard::load(&self.dir, None).map_err(unavailable)?);
        *journal = Journal::open(&self.dir.join(JOURNAL_FILE))?.0;
        swapped?;
        tracing::info!(
            collection = %self.name,
            bytes_before = before,
            bytes_after = compact::bytes_under(&self.dir),
            "compacted"
        );
        Ok(())
    }

    fn scroll(
        &self,
        conds: &[Cond],
        offset: Option<Uuid>,
        limit: usize,
        (with_payload, with_vector): (WithPayloadInterface, WithVector),
    ) -> Result<(Vec<qdrant_edge::Record>, Option<Uuid>), StoreError> {
        let request = ScrollRequest {
            offset: offset.map(PointId::Uuid),
            limit: Some(limit),
            filter: convert::filter(conds),
            with_payload: Some(with_payload),
            with_vector,
            order_by: None,
        };
        let (records, next) = self.edge().scroll(request).map_err(unavailable)?;
        Ok((records, next.map(convert::uuid).transpose()?))
    }
}

/// The shard operation a journal entry stands for.
fn operation(entry: Entry) -> UpdateOperation {
    UpdateOperation::PointOperation(match entry {
        Entry::Upsert(points) => PointOperations::UpsertPoints(PointInsertOperations::PointsList(
            points.into_iter().map(convert::point).collect(),
        )),
        Entry::Delete(ids) => PointOperations::DeletePoints {
            ids: ids.into_iter().map(PointId::Uuid).collect(),
        },
    })
}

impl Drop for Shard {
    fn drop(&mut self) {
        // Unwinding already: a second panic here would abort the process, and
        // the journal replays the unflushed writes at the next open anyway.
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = self.flush() {
            tracing::warn!(collection = %self.name, error = %e, "final flush failed");
        }
    }
}

/// An `EdgeShard` whose drop cannot abort the process. qdrant-edge's own
/// drop flushes and panics when that fails (its directory removed, a full
/// disk); a panic in a drop while the thread unwinds is an abort.
#[derive(Debug)]
struct PanicFreeDrop(Option<EdgeShard>);

impl std::ops::Deref for PanicFreeDrop {
    type Target = EdgeShard;

    fn deref(&self) -> &EdgeShard {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for PanicFreeDrop {
    fn drop(&mut self) {
        let Some(shard) = self.0.take() else { return };
        if std::thread::panicking() {
            // Leaked, not flushed: a panic now could not be caught. The
            // journal replays the unflushed writes at the next open.
            std::mem::forget(shard);
            return;
        }
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(shard))).is_err() {
            tracing::warn!("the final flush of a collection failed; its journal keeps the writes");
        }
    }
}

/// Flushes every shard every [`FLUSH_EVERY`] until `stop` is dropped.
fn start_flusher(
    shards: [Arc<Shard>; 2],
) -> Result<(mpsc::Sender<()>, JoinHandle<()>), StoreError> {
    let (stop, stopped) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("hippo-store-flush".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(FLUSH_EVERY) {
                shards.iter().for_each(|s| s.flush_if_idle());
            }
        })
        .map_err(|e| StoreError::unavailable_in("starting the store flusher", e))?;
    Ok((stop, handle))
}

impl EdgeBackend {
    pub fn open(
        dir: &Path,
        snapshots_dir: &Path,
        prefix: &str,
        dimension: usize,
    ) -> Result<EdgeBackend, StoreError> {
        let shard = |c: Collection| -> Result<Arc<Shard>, StoreError> {
            let name = c.name(prefix);
            let snapshots = snapshots_dir.join(&name);
            Ok(Arc::new(Shard::open(
                &dir.join(&name),
                name,
                snapshots,
                dimension,
            )?))
        };
        let shards = [shard(Collection::Facts)?, shard(Collection::Prefs)?];
        let flusher = start_flusher(shards.clone())?;
        Ok(EdgeBackend {
            shards,
            background: Mutex::new(Vec::new()),
            flusher: Some(flusher),
        })
    }

    /// Counts `n` changed points of `c` and starts a background
    /// optimization once enough have changed (unless one is queued).
    fn changed(&self, c: Collection, n: usize) {
        let shard = self.shard(c);
        let total = shard.changed.fetch_add(n, Ordering::Relaxed) + n;
        if total < AUTO_OPTIMIZE_AFTER
            || total < shard.edge().info().points_count / 2
            || shard.scheduled.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let worker = Arc::clone(shard);
        let spawned = std::thread::Builder::new().name("hippo-store-optimize".into()).spawn(move || {
            if let Err(e) = worker.optimize_now() {
                tracing::warn!(collection = %worker.name, error = %e, "background optimization failed");
            }
            worker.scheduled.store(false, Ordering::Release);
        });
        let mut background = self.background.lock().unwrap_or_else(|e| e.into_inner());
        background.retain(|h| !h.is_finished());
        match spawned {
            Ok(handle) => background.push(handle),
            Err(e) => {
                shard.scheduled.store(false, Ordering::Release);
                tracing::warn!(collection = %shard.name, error = %e, "could not start a background optimization");
            }
        }
    }

    fn shard(&self, c: Collection) -> &Arc<Shard> {
        match c {
            Collection::Facts => &self.shards[0],
            Collection::Prefs => &self.shards[1],
        }
    }
}

impl Backend for EdgeBackend {
    fn upsert(&self, c: Collection, points: Vec<Point>) -> Result<(), StoreError> {
        let n = points.len();
        self.shard(c).write(Entry::Upsert(points))?;
        self.changed(c, n);
        Ok(())
    }

    fn retrieve(&self, c: Collection, ids: &[Uuid]) -> Result<Vec<Stored>, StoreError> {
        let ids: Vec<PointId> = ids.iter().map(|id| PointId::Uuid(*id)).collect();
        let (with_payload, with_vector) = convert::returning(true);
        let records = self
            .shard(c)
            .edge()
            .retrieve(&ids, Some(with_payload), Some(with_vector))
            .map_err(unavailable)?;
        records.into_iter().map(convert::record).collect()
    }

    fn query(
        &self,
        c: Collection,
        query: Query<'_>,
        filter: &[Cond],
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let request = convert::query_request(query, filter, limit, true);
        let points = self.shard(c).edge().query(request).map_err(unavailable)?;
        points.into_iter().map(convert::hit).collect()
    }

    fn query_ids(
        &self,
        c: Collection,
        query: Query<'_>,
        filter: &[Cond],
        limit: usize,
    ) -> Result<Vec<(Uuid, f32)>, StoreError> {
        let request = convert::query_request(query, filter, limit, false);
        let points = self.shard(c).edge().query(request).map_err(unavailable)?;
        points
            .into_iter()
            .map(|p| Ok((convert::uuid(p.id)?, p.score)))
            .collect()
    }

    fn scroll(
        &self,
        c: Collection,
        filter: &[Cond],
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Stored>, Option<Uuid>), StoreError> {
        let (records, next) =
            self.shard(c)
                .scroll(filter, offset, limit, convert::returning(true))?;
        Ok((
            records
                .into_iter()
                .map(convert::record)
                .collect::<Result<_, _>>()?,
            next,
        ))
    }

    fn scroll_ids(
        &self,
        c: Collection,
        filter: &[Cond],
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, Option<Uuid>), StoreError> {
        let (records, next) =
            self.shard(c)
                .scroll(filter, offset, limit, convert::returning(false))?;
        Ok((
            records
                .into_iter()
                .map(|r| convert::uuid(r.id))
                .collect::<Result<_, _>>()?,
            next,
        ))
    }

    fn count(&self, c: Collection, filter: &[Cond]) -> Result<u64, StoreError> {
        let request = CountRequest {
            filter: convert::filter(filter),
            exact: true,
        };
        Ok(self.shard(c).edge().count(request).map_err(unavailable)? as u64)
    }

    fn delete(&self, c: Collection, ids: Vec<Uuid>) -> Result<(), StoreError> {
        let n = ids.len();
        self.shard(c).write(Entry::Delete(ids))?;
        self.changed(c, n);
        Ok(())
    }

    fn snapshot(&self, c: Collection) -> Result<SnapshotInfo, StoreError> {
        let shard = self.shard(c);
        // No writer and no optimization may run while the directory is
        // flushed and archived.
        let _exclusive = shard.gate.write().unwrap_or_else(|e| e.into_inner());
        shard.flush()?;
        snapshot::archive(&shard.dir, &shard.snapshots_dir, &shard.name)
    }

    fn list_snapshots(&self, c: Collection) -> Result<Vec<SnapshotInfo>, StoreError> {
        let shard = self.shard(c);
        snapshot::list(&shard.snapshots_dir, &shard.name)
    }

    fn delete_snapshot(&self, c: Collection, name: &str) -> Result<(), StoreError> {
        snapshot::remove(&self.shard(c).snapshots_dir, name)
    }

    fn probe(&self) -> Result<(), StoreError> {
        for shard in &self.shards {
            shard
                .edge()
                .count(CountRequest {
                    filter: None,
                    exact: false,
                })
                .map_err(unavailable)?;
        }
        Ok(())
    }

    fn optimize(&self) -> Result<(), StoreError> {
        self.shards.iter().try_for_each(|s| s.optimize_now())
    }
}

impl Drop for EdgeBackend {
    fn drop(&mut self) {
        if let Some((stop, flusher)) = self.flusher.take() {
            drop(stop);
            let _ = flusher.join();
        }
        let background = self.background.get_mut().unwrap_or_else(|e| e.into_inner());
        for handle in background.drain(..) {
            // A panicked optimization has been logged by the panic hook.
            let _ = handle.join();
        }
    }
}
