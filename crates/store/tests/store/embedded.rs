//! What only the embedded store has: a directory (reopening it, its lock,
//! surviving a crash, restoring a snapshot), background optimization, and
//! the benchmark.

use super::fixtures::*;
use hippo_store::{
    Filter, MemoryType, StoreBackend, StoreConfig, StoreError, Stored, open, restore_embedded,
};
use std::sync::Arc;

fn edge_config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        dimension: DIM,
        ..StoreConfig::embedded(dir)
    }
}

#[test]
fn data_survives_reopening_and_the_directory_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let config = edge_config(dir.path());
    let m = memory("u", MemoryType::Goal, "run a marathon");
    {
        let store = open(&config).unwrap();
        store
            .upsert(vec![stored(m.clone(), Rng(11).unit(DIM))])
            .unwrap();
        let second = open(&config);
        assert!(
            matches!(second, Err(StoreError::Unavailable { .. })),
            "{second:?}"
        );
        // The cause was flattened into the message; it is the source now.
        let error = second.unwrap_err();
        assert!(std::error::Error::source(&error).is_some(), "{error:?}");
    }
    let store = open(&config).unwrap();
    assert_eq!(store.get(std::slice::from_ref(&m.id)).unwrap()[0].memory, m);
    assert_eq!(
        store
            .keyword_search("marathon", &Filter::user("u"), 5)
            .unwrap()
            .len(),
        1
    );
    drop(store);
    let other_dimension = StoreConfig {
        dimension: DIM + 1,
        ..config
    };
    assert!(matches!(
        open(&other_dimension),
        Err(StoreError::Invalid(_))
    ));
}

/// Regression: dropping a store whose directory was removed under it
/// aborted the process. qdrant-edge's own drop flushes and panics when
/// that fails; the second shard's did so while the first one's panic
/// unwound. The API fuzz test hit it when, after a failure, its temporary
/// directory went before the worker holding the store did.
#[test]
fn dropping_a_store_whose_directory_is_gone_does_not_abort() {
    let written = |dir: &std::path::Path| {
        let store = open(&edge_config(dir)).unwrap();
        let m = memory("u", MemoryType::Goal, "run a marathon");
        store.upsert(vec![stored(m, Rng(12).unit(DIM))]).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        store
    };
    let dir = tempfile::tempdir().unwrap();
    drop(written(dir.path()));
    // And while the thread unwinds from a panic of its own.
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let unwound = std::thread::spawn(move || {
        let _store = store;
        panic!("unwinding with the store");
    })
    .join();
    assert!(unwound.is_err());
}

/// Set in the child process of the crash test: the store directory it
/// writes to before it aborts.
const CRASH_DIR: &str = "HIPPO_TEST_STORE_CRASH_DIR";

#[test]
fn acknowledged_writes_survive_a_crash() {
    if let Some(dir) = std::env::var_os(CRASH_DIR) {
        // The child: write, then die without dropping (flushing) the store.
        let store = open(&edge_config(std::path::Path::new(&dir))).unwrap();
        let mut rng = Rng(16);
        for batch in 0..5 {
            let items: Vec<Stored> = (0..100)
                .map(|i| {
                    stored(
                        memory("u", MemoryType::ALL[i % 9], &format!("crash {batch} {i}")),
                        rng.unit(DIM),
                    )
                })
                .collect();
            store.upsert(items).unwrap();
        }
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "embedded::acknowledged_writes_survive_a_crash",
            "--nocapture",
        ])
        .env(CRASH_DIR, dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts");
    let store = open(&edge_config(dir.path())).unwrap();
    assert_eq!(store.count(&Filter::user("u")).unwrap(), 500);
    assert_eq!(
        store
            .keyword_search("crash", &Filter::user("u"), 1000)
            .unwrap()
            .len(),
        500
    );
}

#[test]
fn snapshot_restores_into_a_working_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = edge_config(dir.path());
    let store = open(&config).unwrap();
    let mut rng = Rng(12);
    let items: Vec<Stored> = (0..50)
        .map(|i| {
            stored(
                memory("u", MemoryType::ALL[i % 9], &format!("snapshot item {i}")),
                rng.unit(DIM),
            )
        })
        .collect();
    store.upsert(items.clone()).unwrap();
    let snapshots = store.snapshot(1).unwrap();
    // Written after the snapshot: not in it.
    store
        .upsert(vec![stored(
            memory("u", MemoryType::Fact, "later"),
            rng.unit(DIM),
        )])
        .unwrap();
    drop(store);

    let restored_data = tempfile::tempdir().unwrap();
    let StoreBackend::Embedded {
        dir: store_dir,
        snapshots_dir,
    } = edge_config(restored_data.path()).backend
    else {
        unreachable!()
    };
    let StoreBackend::Embedded {
        snapshots_dir: taken,
        ..
    } = &config.backend
    else {
        unreachable!()
    };
    for s in &snapshots {
        restore_embedded(
            &taken.join(&s.collection).join(&s.name),
            &store_dir.join(&s.collection),
        )
        .unwrap();
    }
    assert!(!snapshots_dir.exists());
    let restored = open(&edge_config(restored_data.path())).unwrap();
    let all = scroll_all(&*restored, &Filter::default(), 100);
    assert_eq!(
        ids_of(all.iter().map(|s| &s.memory)),
        ids_of(items.iter().map(|s| &s.memory))
    );
    let hits = restored
        .keyword_search("snapshot", &Filter::user("u"), 100)
        .unwrap();
    assert_eq!(hits.len(), 50);
}

#[test]
fn writes_go_on_while_the_index_builds() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&edge_config(dir.path())).unwrap();
    let mut rng = Rng(13);
    let first: Vec<Stored> = (0..12_000)
        .map(|i| {
            stored(
                memory("u", MemoryType::Fact, &format!("a{i}")),
                rng.unit(DIM),
            )
        })
        .collect();
    // Past the threshold: a background optimization starts.
    store.upsert(first.clone()).unwrap();
    let writer = {
        let store = Arc::clone(&store);
        let mut rng = Rng(14);
        std::thread::spawn(move || {
            for round in 0..20 {
                let batch: Vec<Stored> = (0..100)
                    .map(|i| {
                        stored(
                            memory("u", MemoryType::Event, &format!("b{round}-{i}")),
                            rng.unit(DIM),
                        )
                    })
                    .collect();
                store.upsert(batch).unwrap();
            }
        })
    };
    store.optimize().unwrap();
    writer.join().unwrap();
    store.optimize().unwrap();
    let user = Filter::user("u");
    assert_eq!(store.count(&user).unwrap(), 14_000);
    let probe = &first[777];
    let hits = store.search(&probe.vector, &user, 3).unwrap();
    assert_eq!(hits[0].memory.id, probe.memory.id);
    assert!(hits[0].score > 0.999);
}
