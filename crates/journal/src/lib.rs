//! A journal file: checksummed records appended to one file, read back
//! after a crash. The write-ahead journals of the embedded broker
//! (`broker::embedded`) and of an embedded memory collection
//! (`store::edge`) are both made of it.
//!
//! A record is `length (u32 LE) | first 8 bytes of SHA-256(body) | body`.
//! Reading stops at the first record that is short or fails its digest (a
//! write torn by the crash) and cuts it off.
//!
//! Depends on no other hippo crate.

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 4 + 8;

fn digest(body: &[u8]) -> [u8; 8] {
    let full = Sha256::digest(body);
    let mut out = [0; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// An open journal file.
#[derive(Debug)]
pub struct JournalFile {
    path: PathBuf,
    file: File,
    /// Bytes of whole records.
    len: u64,
}

impl JournalFile {
    /// Opens (or creates) the journal and reads its whole records' bodies.
    pub fn open(path: &Path) -> std::io::Result<(JournalFile, Vec<Vec<u8>>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut bodies = Vec::new();
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + HEADER) {
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let Some(body) = bytes.get(at + HEADER..at + HEADER + len) else {
                break;
            };
            if header[4..] != digest(body) {
                break;
            }
            bodies.push(body.to_vec());
            at += HEADER + len;
        }
        if at < bytes.len() {
            tracing::warn!(journal = %path.display(), dropped = bytes.len() - at, "cut a torn record off the journal");
        }
        let mut journal = JournalFile {
            path: path.to_owned(),
            file,
            len: at as u64,
        };
        journal.truncate(journal.len)?;
        Ok((journal, bodies))
    }

    /// Appends a record, synced to disk when `sync`; returns the length to
    /// [`truncate`](Self::truncate) back to if what it records fails.
    pub fn append(&mut self, body: &[u8], sync: bool) -> std::io::Result<u64> {
        let before = self.len;
        let len = u32::try_from(body.len()).map_err(|_| {
            std::io::Error::other(format!("a record of {} bytes is too large", body.len()))
        })?;
        let mut record = Vec::with_capacity(HEADER + body.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&digest(body));
        record.extend_from_slice(body);
        self.file.seek(SeekFrom::Start(before))?;
        self.file.write_all(&record)?;
        if sync {
            self.sync()?;
        }
        self.len = before + record.len() as u64;
        Ok(before)
    }

    /// Syncs what was appended to disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Cuts the journal to `len` bytes (0: empty), synced.
    pub fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_data()?;
        self.len = len;
        Ok(())
    }

    /// Bytes a record with a body of `body_len` bytes takes in the file.
    pub fn record_len(body_len: usize) -> u64 {
        (HEADER + body_len) as u64
    }

    /// Bytes of whole records.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no whole record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, bodies) = JournalFile::open(&path).unwrap();
        assert!(bodies.is_empty());
        j.append(b"one", true).unwrap();
        let whole = j.append(b"two", false).unwrap();
        let len = j.len();
        assert!(len > whole);
        drop(j);
        // A crash in the middle of a third record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);

        let (mut j, bodies) = JournalFile::open(&path).unwrap();
        assert_eq!(j.len(), len);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        assert_eq!(bodies, [b"one".to_vec(), b"two".to_vec()]);
        j.truncate(whole).unwrap();
        assert_eq!(JournalFile::open(&path).unwrap().1.len(), 1);
    }

    #[test]
    fn a_corrupted_record_ends_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut j, _) = JournalFile::open(&path).unwrap();
        for body in [b"first".as_slice(), b"second", b"third"] {
            j.append(body, false).unwrap();
        }
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        // Flip a bit in the second record's body.
        bytes[HEADER + 5 + HEADER] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(JournalFile::open(&path).unwrap().1, [b"first".to_vec()]);
    }
}
