//! The embedded store's directory stays proportional to what it holds,
//! although qdrant-edge 0.7 never truncates its WAL: compaction rebuilds a
//! collection whose WAL outgrew its data into a fresh directory and swaps
//! it in; a crash at any point of that loses nothing.

use super::fixtures::*;
use hippo_store::{Filter, MemoryType, StoreConfig, Stored, VectorStore, open};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The default embedder's dimension: the WAL grows by what a real point
/// weighs.
const MODEL_DIM: usize = 384;

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        dimension: MODEL_DIM,
        ..StoreConfig::embedded(dir)
    }
}

/// The disk space (allocated blocks) of the files under `path`.
fn bytes_under(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                bytes_under(&e.path())
            } else {
                std::os::unix::fs::MetadataExt::blocks(&m) * 512
            }
        })
        .sum()
}

/// `n` memories of user `u` (facts), ids fixed, texts and vectors of
/// `round`.
fn round_of(ids: &[String], round: usize, rng: &mut Rng) -> Vec<Stored> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let mut m = memory("u", MemoryType::Fact, &format!("memory {i} round {round}"));
            m.id = id.clone();
            stored(m, rng.unit(MODEL_DIM))
        })
        .collect()
}

/// Every one of `ids` is there with the text of `round`.
fn assert_holds(store: &Arc<dyn VectorStore>, ids: &[String], round: usize) {
    assert_eq!(store.count(&Filter::user("u")).unwrap(), ids.len() as u64);
    let got = store.get(ids).unwrap();
    assert_eq!(got.len(), ids.len());
    for s in got {
        assert!(
            s.memory.text.ends_with(&format!(" round {round}")),
            "{}",
            s.memory.text
        );
    }
    let hits = store
        .keyword_search(&format!("round {round}"), &Filter::user("u"), 5)
        .unwrap();
    assert_eq!(hits.len(), 5);
}

/// Most the directory may take for 1,000 memories rewritten 200 times:
/// the live data (a few MB), the WAL's compaction threshold (64 MiB),
/// what is written between two compaction checks (10,000 points, about
/// 26 MB) and the segments' rewritten points until they are vacuumed.
/// Without compaction the WAL alone passes 500 MB.
const BOUND: u64 = 128 << 20;

#[test]
fn rewriting_the_same_memories_keeps_the_directory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&config(dir.path())).unwrap();
    let ids: Vec<String> = (0..1_000).map(|_| uuid_v4()).collect();
    let mut rng = Rng(41);
    let mut largest = 0;
    for round in 0..200 {
        store.upsert(round_of(&ids, round, &mut rng)).unwrap();
        // The journals hold the writes of the last few seconds (flushed
        // every 5 s, emptied by the flush), more here than a service
        // writes: this loop writes 1,000 points in a few milliseconds.
        let journals: u64 = collections(dir.path())
            .iter()
            .map(|c| std::fs::metadata(c.join("hippo-journal")).unwrap().len())
            .sum();
        let bytes = bytes_under(dir.path()).saturating_sub(journals);
        largest = largest.max(bytes);
        assert!(
            bytes < BOUND,
            "round {round}: {bytes} bytes under the store"
        );
    }
    assert_holds(&store, &ids, 199);
    // Closing flushes: the journals are empty, the whole directory bounded.
    drop(store);
    let closed = bytes_under(dir.path());
    eprintln!(
        "1,000 memories written 200 times: at most {} MiB besides the journals, {} MiB closed",
        largest >> 20,
        closed >> 20
    );
    assert!(closed < BOUND, "{closed} bytes once closed");
    let store = open(&config(dir.path())).unwrap();
    assert_holds(&store, &ids, 199);
}

/// The collection directories of a store at `dir` (facts and prefs).
fn collections(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("store"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("edge_config.json").exists())
        .collect();
    found.sort();
    assert_eq!(found.len(), 2, "{found:?}");
    found
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.metadata().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Leaves a collection's directory as a crash at one point of a
/// compaction would.
type Interrupt = fn(&Path);

/// Each state a crash can leave a compaction in (see `edge/compact.rs`),
/// made by hand from a flushed store: opening finishes or undoes it, and
/// every memory is there.
#[test]
fn opening_recovers_from_every_point_of_an_interrupted_compaction() {
    let ids: Vec<String> = (0..500).map(|_| uuid_v4()).collect();
    let written = || {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&config(dir.path())).unwrap();
        store.upsert(round_of(&ids, 1, &mut Rng(42))).unwrap();
        drop(store);
        dir
    };
    let states: [(&str, Interrupt); 3] = [
        ("the rebuild half done", |c| {
            let compacting = sibling(c, ".compacting");
            std::fs::create_dir_all(compacting.join("segments")).unwrap();
            std::fs::write(compacting.join("wal-torn"), b"half").unwrap();
        }),
        ("between the renames", |c| {
            copy_dir(c, &sibling(c, ".compacting"));
            std::fs::rename(c, sibling(c, ".old")).unwrap();
        }),
        ("after the swap, before the old one went", |c| {
            copy_dir(c, &sibling(c, ".old"));
        }),
    ];
    for (state, make) in states {
        let dir = written();
        for collection in collections(dir.path()) {
            make(&collection);
        }
        let store = open(&config(dir.path())).unwrap();
        assert_holds(&store, &ids, 1);
        for collection in collections(dir.path()) {
            for leftover in [".compacting", ".old"] {
                assert!(
                    !sibling(&collection, leftover).exists(),
                    "{state}: {leftover} left"
                );
            }
        }
    }
}

/// Set in the child processes of the next test: the store directory, and
/// how long the child lets its compaction run before it aborts.
const CRASH_DIR: &str = "HIPPO_TEST_COMPACTION_CRASH_DIR";
const CRASH_AFTER_MS: &str = "HIPPO_TEST_COMPACTION_CRASH_AFTER_MS";
/// Memories and rounds the child writes: enough for the WAL to outgrow
/// the data (over 64 MiB).
const CRASH_MEMORIES: usize = 600;
const CRASH_ROUNDS: usize = 70;

#[test]
fn a_compaction_killed_midway_loses_nothing() {
    if let Some(dir) = std::env::var_os(CRASH_DIR) {
        let after: u64 = std::env::var(CRASH_AFTER_MS).unwrap().parse().unwrap();
        let dir = PathBuf::from(dir);
        let store = open(&config(&dir)).unwrap();
        let ids: Vec<String> = std::fs::read_to_string(dir.join("ids"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let mut rng = Rng(43);
        for round in 0..CRASH_ROUNDS {
            store.upsert(round_of(&ids, round, &mut rng)).unwrap();
        }
        let compacting = Arc::clone(&store);
        std::thread::spawn(move || compacting.optimize());
        std::thread::sleep(std::time::Duration::from_millis(after));
        std::process::abort();
    }
    for after_ms in [0, 30, 120, 400] {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..CRASH_MEMORIES).map(|_| uuid_v4()).collect();
        std::fs::write(dir.path().join("ids"), ids.join("\n")).unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "compaction::a_compaction_killed_midway_loses_nothing",
                "--nocapture",
            ])
            .env(CRASH_DIR, dir.path())
            .env(CRASH_AFTER_MS, after_ms.to_string())
            .status()
            .unwrap();
        assert!(!status.success(), "the child aborts");
        let store = open(&config(dir.path())).unwrap();
        assert_holds(&store, &ids, CRASH_ROUNDS - 1);
    }
}
