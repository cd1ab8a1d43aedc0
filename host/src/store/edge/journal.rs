//! The write-ahead journal of an embedded collection.
//!
//! `qdrant-edge` 0.7 writes a WAL but never replays it: what was written
//! since the shard's last flush is gone when the process dies (the crash
//! test in `tests/store.rs` shows it). So every write is appended here and
//! synced before it is applied; opening the collection replays the journal
//! into the shard, and each flush of the shard empties it.
//!
//! A record is `length (u32 LE) | first 8 bytes of SHA-256(body) | body`,
//! the body a JSON [`Entry`]. Reading stops at the first record that is
//! short or fails its digest (a write torn by the crash) and cuts it off.

use crate::store::StoreError;
use crate::store::router::Point;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// One write, as applied to the shard.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Entry {
    Upsert(Vec<Point>),
    Delete(Vec<Uuid>),
}

const HEADER: usize = 4 + 8;

fn digest(body: &[u8]) -> [u8; 8] {
    let full = Sha256::digest(body);
    let mut out = [0; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// An open journal file.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes of whole records.
    len: u64,
}

impl Journal {
    /// Opens (or creates) the journal and reads its whole records.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Entry>), StoreError> {
        let io =
            |e: std::io::Error| StoreError::Unavailable(format!("journal {}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut entries = Vec::new();
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + HEADER) {
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let Some(body) = bytes.get(at + HEADER..at + HEADER + len) else {
                break;
            };
            if header[4..] != digest(body) {
                break;
            }
            match serde_json::from_slice(body) {
                Ok(entry) => entries.push(entry),
                Err(_) => break,
            }
            at += HEADER + len;
        }
        if at < bytes.len() {
            tracing::warn!(journal = %path.display(), dropped = bytes.len() - at, "cut a torn record off the journal");
        }
        let mut journal = Journal {
            path: path.to_owned(),
            file,
            len: at as u64,
        };
        journal.truncate(journal.len)?;
        Ok((journal, entries))
    }

    fn io(&self, e: std::io::Error) -> StoreError {
        StoreError::Unavailable(format!("journal {}: {e}", self.path.display()))
    }

    /// Appends `entry` and syncs it to disk; returns the length to
    /// [`truncate`](Self::truncate) back to if applying it fails.
    pub fn append(&mut self, entry: &Entry) -> Result<u64, StoreError> {
        let before = self.len;
        let body = serde_json::to_vec(entry)
            .map_err(|e| StoreError::Invalid(format!("journal record: {e}")))?;
        let len = u32::try_from(body.len()).map_err(|_| {
            StoreError::Invalid(format!("a write of {} bytes is too large", body.len()))
        })?;
        let mut record = Vec::with_capacity(HEADER + body.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&digest(&body));
        record.extend_from_slice(&body);
        self.file
            .seek(SeekFrom::Start(before))
            .map_err(|e| self.io(e))?;
        self.file.write_all(&record).map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        self.len = before + record.len() as u64;
        Ok(before)
    }

    /// Cuts the journal to `len` bytes (0: empty, once the shard is flushed).
    pub fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        self.file.set_len(len).map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        self.len = len;
        Ok(())
    }

    /// Bytes not yet flushed into the shard.
    pub fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::bm25::Sparse;

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
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
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
    fn a_corrupted_record_ends_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, _) = Journal::open(&path).unwrap();
        j.append(&Entry::Delete(vec![Uuid::from_u128(1)])).unwrap();
        j.append(&Entry::Delete(vec![Uuid::from_u128(2)])).unwrap();
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(Journal::open(&path).unwrap().1.len(), 1);
    }
}
