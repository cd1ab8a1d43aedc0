//! Compaction: keeping a collection's directory proportional to what it
//! holds.
//!
//! `qdrant-edge` 0.7 appends every write to its WAL and never truncates it
//! (nor can it be removed: see the module above), so a collection whose
//! 1,000 memories are rewritten every day grows by about 2 MB a day for
//! ever. Compaction rebuilds the collection from its live points into a
//! fresh directory, whose WAL holds one entry per point, and swaps it in.
//! It runs when the WAL has outgrown the data ([`outgrown`]), from the
//! background job that also optimizes the collection.
//!
//! A swap is two renames: `<dir>` to `<dir>.old`, then `<dir>.compacting` to
//! `<dir>`; `<dir>.old` is removed afterwards. Writers are held back from
//! the flush before the rebuild until the swap is done, so the old and the
//! new directory hold the same points and the journal is empty throughout.
//! [`recover`], run before a collection opens, finishes or undoes a
//! compaction that a crash interrupted at any point:
//!
//! | found | meaning | done |
//! |---|---|---|
//! | `<dir>.compacting` | the rebuild did not finish (or `<dir>` was not yet moved) | removed |
//! | `<dir>.old`, no `<dir>` | a crash between the renames | `<dir>.old` renamed back |
//! | `<dir>.old` and `<dir>` | a crash after the swap | `<dir>.old` removed |

use super::convert::{self, unavailable};
use crate::StoreError;
use crate::model::PAYLOAD_INDEXES;
use qdrant_edge::{
    CreateIndex, EdgeConfig, EdgeShard, FieldIndexOperations, PointInsertOperations,
    PointOperations, PointStructPersisted, ScrollRequest, UpdateOperation, WithPayloadInterface,
    WithVector,
};
use std::fs;
use std::path::{Path, PathBuf};

/// The WAL may grow to this multiple of the segments before compaction...
const WAL_PER_DATA: u64 = 2;
/// ...and at least to this (about 25,000 points written at 384
/// dimensions), so that small collections are not rebuilt over and over.
const WAL_FLOOR: u64 = 64 << 20;
/// Points copied per scroll page and per upsert while rebuilding.
const PAGE: usize = 1_000;

/// Where a collection is rebuilt before it is swapped in.
pub(super) fn compacting(dir: &Path) -> PathBuf {
    with_suffix(dir, "compacting")
}

/// Where the collection's old directory waits for removal after a swap.
fn old(dir: &Path) -> PathBuf {
    with_suffix(dir, "old")
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}

fn io(context: impl std::fmt::Display, error: std::io::Error) -> StoreError {
    StoreError::unavailable_in(context, error)
}

/// Finishes or undoes a compaction a crash interrupted (see the module
/// docs). Run before the collection at `dir` is opened.
pub(super) fn recover(dir: &Path) -> Result<(), StoreError> {
    let (old, compacting) = (old(dir), compacting(dir));
    if old.exists() {
        if dir.exists() {
            tracing::info!(dir = %dir.display(), "removing the directory a compaction replaced");
            remove(&old)?;
        } else {
            tracing::warn!(dir = %dir.display(), "a compaction was interrupted: restoring the collection");
            fs::rename(&old, dir)
                .map_err(|e| io(format_args!("restoring {}", dir.display()), e))?;
            sync_parent(dir)?;
        }
    }
    if compacting.exists() {
        tracing::info!(dir = %dir.display(), "removing an unfinished compaction");
        remove(&compacting)?;
    }
    Ok(())
}

fn remove(path: &Path) -> Result<(), StoreError> {
    fs::remove_dir_all(path).map_err(|e| io(format_args!("removing {}", path.display()), e))
}

/// Whether the WAL of the collection at `dir` has outgrown its data:
/// larger than [`WAL_PER_DATA`] times the segments and than [`WAL_FLOOR`].
pub(super) fn outgrown(dir: &Path) -> bool {
    let wal = bytes_under(&dir.join("wal"));
    let data = bytes_under(&dir.join("segments"));
    wal > WAL_FLOOR.max(WAL_PER_DATA.saturating_mul(data))
}

/// The disk space the files under `path` take (0 when it cannot be
/// read): allocated blocks, not lengths, because qdrant-edge preallocates
/// sparse files (each WAL file is 32 MiB long from its first write).
pub(super) fn bytes_under(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => bytes_under(&entry.path()),
            Ok(m) => allocated(&m),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(unix)]
fn allocated(m: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(m: &fs::Metadata) -> u64 {
    m.len()
}

/// Creates the payload indexes `shard` lacks.
pub(super) fn create_missing_indexes(shard: &EdgeShard) -> Result<(), StoreError> {
    let present = shard.info().payload_schema;
    for (field, kind) in PAYLOAD_INDEXES {
        let key = convert::key_path(field);
        if present.contains_key(&key) {
            continue;
        }
        let create = CreateIndex {
            field_name: key,
            field_schema: Some(convert::index_schema(kind)),
        };
        let op = UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(create));
        shard.update(op).map_err(unavailable)?;
    }
    Ok(())
}

/// Copies every point of `from` (ids, vectors, payloads) into a new
/// collection at `into` made with `config`, with the payload indexes, and
/// flushes it. `into` must not exist. Returns the points copied.
pub(super) fn rebuild(
    from: &EdgeShard,
    into: &Path,
    config: EdgeConfig,
) -> Result<usize, StoreError> {
    fs::create_dir_all(into).map_err(|e| io(format_args!("creating {}", into.display()), e))?;
    let copy = EdgeShard::new(into, config).map_err(unavailable)?;
    create_missing_indexes(&copy)?;
    let mut copied = 0;
    let mut offset = None;
    loop {
        let request = ScrollRequest {
            offset,
            limit: Some(PAGE),
            filter: None,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Bool(true),
            order_by: None,
        };
        let (records, next) = from.scroll(request).map_err(unavailable)?;
        copied += records.len();
        let points: Vec<PointStructPersisted> = records
            .into_iter()
            .map(|r| {
                let vector = r.vector.ok_or_else(|| {
                    StoreError::Corrupt(format!("point {:?} has no vectors", r.id))
                })?;
                Ok(PointStructPersisted {
                    id: r.id,
                    vector: vector.into(),
                    payload: r.payload,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        if !points.is_empty() {
            let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
            copy.update(UpdateOperation::PointOperation(upsert))
                .map_err(unavailable)?;
        }
        match next {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| copy.flush())).map_err(|_| {
        StoreError::unavailable(format!(
            "{}: flushing the rebuilt collection failed",
            into.display()
        ))
    })?;
    Ok(copied)
}

/// Swaps the rebuilt collection in: `dir` to `<dir>.old`, `<dir>.compacting`
/// to `dir`, then removes `<dir>.old`. Nothing may have `dir` open.
pub(super) fn swap(dir: &Path) -> Result<(), StoreError> {
    let (old, compacting) = (old(dir), compacting(dir));
    fs::rename(dir, &old).map_err(|e| io(format_args!("moving {} aside", dir.display()), e))?;
    fs::rename(&compacting, dir)
        .map_err(|e| io(format_args!("moving the rebuilt {} in", dir.display()), e))?;
    sync_parent(dir)?;
    remove(&old)
}

/// Makes the renames in `dir`'s parent durable.
fn sync_parent(dir: &Path) -> Result<(), StoreError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::File::open(parent)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(format_args!("syncing {}", parent.display()), e))
}
