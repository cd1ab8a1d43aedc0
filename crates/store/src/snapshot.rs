//! Snapshots of the embedded store. `qdrant-edge` has no snapshot call, so
//! a snapshot is the collection's directory, flushed, archived with `tar`
//! as `<snapshots_dir>/<collection>/<unix-ms>.tar` while the store holds
//! its writers back. [`restore_embedded`] unpacks one for the store to open.

use super::StoreError;
use super::model::SnapshotInfo;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const EXTENSION: &str = "tar";

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = format!("{what} {}", path.display());
    move |e| StoreError::unavailable_in(context, e)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The creation time a snapshot's name holds (`<unix-ms>.tar`), or `None`
/// for a file that is not a snapshot.
fn created_at(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Archives the collection directory `source` into `dir` (created when
/// missing). The archive is written beside its final name and renamed, so
/// a crash never leaves a partial snapshot that looks whole.
pub(crate) fn archive(
    source: &Path,
    dir: &Path,
    collection: &str,
) -> Result<SnapshotInfo, StoreError> {
    fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let mut ms = now_ms();
    let path = loop {
        let path = dir.join(format!("{ms}.{EXTENSION}"));
        if !path.exists() {
            break path;
        }
        ms += 1;
    };
    let partial = path.with_extension("tar.partial");
    let file = fs::File::create(&partial).map_err(io("creating", &partial))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder
        .append_dir_all(".", source)
        .map_err(io("archiving", source))?;
    let writer = builder.into_inner().map_err(io("writing", &partial))?;
    let file = writer
        .into_inner()
        .map_err(|e| io("writing", &partial)(e.into_error()))?;
    file.sync_all().map_err(io("syncing", &partial))?;
    let size_bytes = file.metadata().map_err(io("reading", &partial))?.len();
    fs::rename(&partial, &path).map_err(io("renaming", &partial))?;
    Ok(SnapshotInfo {
        collection: collection.into(),
        name: file_name(&path),
        created_at: ms,
        size_bytes,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The snapshots in `dir` (none when it does not exist).
pub(crate) fn list(dir: &Path, collection: &str) -> Result<Vec<SnapshotInfo>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(created_at) = created_at(&name) else {
            continue;
        };
        let size_bytes = entry
            .metadata()
            .map_err(io("reading", &entry.path()))?
            .len();
        out.push(SnapshotInfo {
            collection: collection.into(),
            name,
            created_at,
            size_bytes,
        });
    }
    Ok(out)
}

/// Deletes the snapshot `name` from `dir`.
pub(crate) fn remove(dir: &Path, name: &str) -> Result<(), StoreError> {
    if created_at(name).is_none() {
        return Err(StoreError::Invalid(format!(
            "{name:?} is not a snapshot name"
        )));
    }
    let path = dir.join(name);
    fs::remove_file(&path).map_err(io("deleting", &path))
}

/// Unpacks an embedded snapshot archive into `collection_dir` (the
/// collection's directory under the store's, e.g. `<data>/store/hippo_facts`),
/// which must not exist yet: move the damaged one away first, then open the
/// store. Fails with [`StoreError::Invalid`] when the directory exists.
pub fn restore_embedded(archive: &Path, collection_dir: &Path) -> Result<(), StoreError> {
    if collection_dir.exists() {
        return Err(StoreError::Invalid(format!(
            "{} exists: restore into a fresh directory",
            collection_dir.display()
        )));
    }
    let file = fs::File::open(archive).map_err(io("opening", archive))?;
    let staging = PathBuf::from(format!("{}.restoring", collection_dir.display()));
    tar::Archive::new(std::io::BufReader::new(file))
        .unpack(&staging)
        .map_err(io("unpacking", archive))?;
    fs::rename(&staging, collection_dir).map_err(io("renaming", &staging))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timestamped_archives_are_snapshots() {
        assert_eq!(created_at("1700000000000.tar"), Some(1_700_000_000_000));
        for name in ["x.tar", ".tar", "1.tar.partial", "../1.tar", "12"] {
            assert_eq!(created_at(name), None, "{name}");
        }
    }

    #[test]
    fn archives_list_restore_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("coll");
        fs::create_dir_all(source.join("sub")).unwrap();
        fs::write(source.join("sub/data"), b"payload").unwrap();
        let dir = tmp.path().join("snaps");
        let a = archive(&source, &dir, "c").unwrap();
        let b = archive(&source, &dir, "c").unwrap();
        assert_ne!(a.name, b.name);
        assert!(a.size_bytes > 0);
        let mut listed = list(&dir, "c").unwrap();
        listed.sort_by_key(|s| s.created_at);
        assert_eq!(listed, [a.clone(), b]);

        let restored = tmp.path().join("restored");
        restore_embedded(&dir.join(&a.name), &restored).unwrap();
        assert_eq!(fs::read(restored.join("sub/data")).unwrap(), b"payload");
        assert!(restore_embedded(&dir.join(&a.name), &restored).is_err());

        remove(&dir, &a.name).unwrap();
        assert_eq!(list(&dir, "c").unwrap().len(), 1);
        assert!(remove(&dir, "../coll").is_err());
    }
}
