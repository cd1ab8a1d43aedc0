//! The write-ahead journal of an embedded collection.
//!
//! `qdrant-edge` 0.7 writes a WAL but never replays it: what was written
//! since the shard's last flush is gone when the process dies (the crash
//! test in `tests/store.rs` of this crate shows it). So every write is appended here and
//! synced before it is applied; opening the collection replays the journal
//! into the shard, and each flush of the shard empties it. Each record's
//! body is a JSON [`Entry`]; the file format is [`JournalFile`]'s.

use crate::StoreError;
use crate::collections::Point;
use hippo_journal::JournalFile;
use serde::{Deserialize, Serialize};
use std::path::Path;
use uuid::Uuid;

/// One write, as applied to the shard.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Entry {
    Upsert(Vec<Point>),
    Delete(Vec<Uuid>),
}

/// An open journal of entries.
#[derive(Debug)]
pub(super) struct Journal(JournalFile);

fn unavailable(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::unavailable_in(format_args!("journal {}", path.display()), error)
}

impl Journal {
    /// Opens (or creates) the journal and reads its whole entries.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Entry>), StoreError> {
        let (mut file, bodies) = JournalFile::open(path).map_err(|e| unavailable(path, e))?;
        let mut entries = Vec::with_capacity(bodies.len());
        let mut at = 0;
        for body in bodies {
            // A record that passed its digest but does not parse was written
            // by another version: it and what follows are cut off, as a torn
            // record is, so later appends are not stranded behind it.
            match serde_json::from_slice(&body) {
                Ok(entry) => entries.push(entry),
                Err(_) => {
                    tracing::warn!(journal = %path.display(), "cut an unreadable record off the journal");
                    file.truncate(at).map_err(|e| unavailable(path, e))?;
                    break;
                }
            }
            at += JournalFile::record_len(body.len());
        }
        Ok((Journal(file), entries))
    }

    /// Appends `entry` and syncs it to disk; returns the length to
    /// [`truncate`](Self::truncate) back to if applying it fails.
    pub fn append(&mut self, entry: &Entry) -> Result<u64, StoreError> {
        let body = serde_json::to_vec(entry)
            .map_err(|e| StoreError::Invalid(format!("journal record: {e}")))?;
        self.0
            .append(&body, true)
            .map_err(|e| unavailable(self.0.path(), e))
    }

    /// Cuts the journal to `len` bytes (0: empty, once the shard is flushed).
    pub fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        self.0
            .truncate(len)
            .map_err(|e| unavailable(self.0.path(), e))
    }

    /// Bytes not yet flushed into the shard.
    pub fn len(&self) -> u64 {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bm25::Sparse;
    use std::io::Write;

    fn point(n: u128) -> Point {
        Point {
            id: Uuid::from_u128(n),
            payload: serde_json::json!({"text": "x"})
                .as_object()
                .unwrap()
                .clone(),
            dense: vec![0.25, -1.5],
            sparse: Sparse {
                indices: vec![7],
                values: vec![1.25],
            },
        }
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, entries) = Journal::open(&path).unwrap();
        assert!(entries.is_empty());
        j.append(&Entry::Upsert(vec![point(1), point(2)])).unwrap();
        let whole = j.append(&Entry::Delete(vec![Uuid::from_u128(1)])).unwrap();
        let len = j.len();
        assert!(len > whole);
        drop(j);
        // A crash in the middle of a third record.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);

        let (mut j, entries) = Journal::open(&path).unwrap();
        assert_eq!(j.len(), len);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        match &entries[..] {
            [Entry::Upsert(points), Entry::Delete(ids)] => {
                assert_eq!(points[1].dense, [0.25, -1.5]);
                assert_eq!(points[0].sparse.values, [1.25]);
                assert_eq!(ids, &[Uuid::from_u128(1)]);
            }
            other => panic!("{other:?}"),
        }
        j.truncate(whole).unwrap();
        assert_eq!(Journal::open(&path).unwrap().1.len(), 1);
    }

    #[test]
    fn an_unreadable_record_is_cut_so_later_appends_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, _) = Journal::open(&path).unwrap();
        j.append(&Entry::Delete(vec![Uuid::from_u128(1)])).unwrap();
        // A whole record (its digest holds) that is not an entry.
        j.0.append(b"not an entry", true).unwrap();
        drop(j);
        let (mut j, entries) = Journal::open(&path).unwrap();
        assert_eq!(entries.len(), 1);
        j.append(&Entry::Delete(vec![Uuid::from_u128(2)])).unwrap();
        drop(j);
        match &Journal::open(&path).unwrap().1[..] {
            [Entry::Delete(first), Entry::Delete(second)] => {
                assert_eq!(first, &[Uuid::from_u128(1)]);
                assert_eq!(second, &[Uuid::from_u128(2)]);
            }
            other => panic!("{other:?}"),
        }
    }
}
