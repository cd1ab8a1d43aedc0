//! Conformance: what writes, deletes and snapshots do.

use super::fixtures::*;
use hippo_store::{Collection, Filter, Hit, MemoryType, StoreError, Stored, Visibility};

pub fn round_trip_keeps_every_field(f: &Fixture) {
    let mut rng = Rng(1);
    let mut full = memory(
        "alice",
        MemoryType::Procedural,
        "To brew: heat water to 85°C, steep 3 min",
    );
    full.session_id = Some("session-1".into());
    full.importance = 7.25;
    full.confidence = 0.61;
    full.tags = vec!["tea".into(), "howto".into()];
    full.updated_at = T0 + 5;
    full.expires_at = Some(T0 + 86_400_000);
    full.decayed_at = Some(T0 + 1);
    full.access_count = 42;
    full.metadata = serde_json::json!({"source": "chat", "nested": {"n": [1, 2.5, null]}})
        .as_object()
        .unwrap()
        .clone();
    full.agent_id = Some("agent-7".into());
    full.run_id = Some("run-9".into());
    full.visibility = Some(Visibility::Shared);
    full.is_archived = true;
    full.promotion_count = 3;
    let minimal = memory("alice", MemoryType::Event, "met Bob");
    let items = vec![
        stored(full.clone(), rng.unit(DIM)),
        stored(minimal.clone(), rng.unit(DIM)),
    ];
    f.store.upsert(items.clone()).unwrap();

    let missing = uuid_v4();
    let got = f
        .store
        .get(&[
            minimal.id.clone(),
            missing,
            full.id.clone(),
            minimal.id.clone(),
        ])
        .unwrap();
    assert_eq!(got.len(), 2, "existing ids, each once");
    assert_eq!(got[0].memory, minimal);
    assert_eq!(got[1].memory, full);
    for (g, want) in got.iter().zip([&items[1], &items[0]]) {
        assert_eq!(g.vector.len(), DIM);
        assert!(cosine(&g.vector, &want.vector) > 0.9999);
    }
}

pub fn changing_type_moves_the_memory(f: &Fixture) {
    let mut m = memory("u", MemoryType::Fact, "likes green tea");
    let v = Rng(2).unit(DIM);
    f.store.upsert(vec![stored(m.clone(), v.clone())]).unwrap();
    m.memory_type = MemoryType::Preference;
    f.store.upsert(vec![stored(m.clone(), v.clone())]).unwrap();

    let everything = Filter {
        include_archived: true,
        ..Filter::default()
    };
    assert_eq!(f.store.count(&everything).unwrap(), 1);
    let facts = Filter {
        memory_types: vec![MemoryType::Fact],
        ..everything.clone()
    };
    assert_eq!(f.store.count(&facts).unwrap(), 0);
    let got = f.store.get(std::slice::from_ref(&m.id)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].memory.memory_type, MemoryType::Preference);
    assert_eq!(scroll_all(&*f.store, &everything, 10).len(), 1);
    assert_eq!(f.store.search(&v, &everything, 10).unwrap().len(), 1);

    // Within one batch, the later item wins.
    let mut back = m.clone();
    back.memory_type = MemoryType::Event;
    f.store
        .upsert(vec![stored(m.clone(), v.clone()), stored(back, v)])
        .unwrap();
    assert_eq!(f.store.count(&everything).unwrap(), 1);
    assert_eq!(f.store.count(&facts).unwrap(), 0);
    assert_eq!(
        f.store.get(&[m.id]).unwrap()[0].memory.memory_type,
        MemoryType::Event
    );
}

pub fn scroll_sees_every_item_exactly_once(f: &Fixture) {
    let mut rng = Rng(5);
    let items: Vec<Stored> = (0..2500)
        .map(|i| {
            let t = MemoryType::ALL[i % MemoryType::ALL.len()];
            let user = if i % 10 == 0 { "other" } else { "main" };
            stored(memory(user, t, &format!("item {i}")), rng.unit(DIM))
        })
        .collect();
    for batch in items.chunks(500) {
        f.store.upsert(batch.to_vec()).unwrap();
    }
    let everything = Filter::default();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = f
            .store
            .scroll(&everything, cursor.as_deref(), 1000)
            .unwrap();
        pages.push(page.items.len());
        for s in &page.items {
            assert_eq!(s.vector.len(), DIM);
        }
        let done = page.next.is_none();
        cursor = page.next;
        if done {
            break;
        }
        assert_eq!(
            page.items.len(),
            1000,
            "a page that is not the last is full"
        );
    }
    let seen = scroll_all(&*f.store, &everything, 1000);
    assert_eq!(seen.len(), 2500, "pages {pages:?}");
    assert_eq!(
        ids_of(seen.iter().map(|s| &s.memory)),
        ids_of(items.iter().map(|s| &s.memory))
    );
    assert_eq!(pages.iter().sum::<usize>(), 2500);
    assert!(pages.len() >= 3);

    let other = scroll_all(&*f.store, &Filter::user("other"), 1000);
    assert_eq!(other.len(), 250);
    assert!(other.iter().all(|s| s.memory.user_id == "other"));
    assert_eq!(f.store.count(&everything).unwrap(), 2500);
}

pub fn count_and_delete_report_what_existed(f: &Fixture) {
    let mut rng = Rng(6);
    let items: Vec<Stored> = (0..6)
        .map(|i| {
            stored(
                memory("u", MemoryType::ALL[i], &format!("x{i}")),
                rng.unit(DIM),
            )
        })
        .collect();
    f.store.upsert(items.clone()).unwrap();
    let user = Filter::user("u");
    assert_eq!(f.store.count(&user).unwrap(), 6);
    let doomed = vec![
        items[0].memory.id.clone(),
        items[1].memory.id.clone(),
        uuid_v4(),
        items[0].memory.id.clone(),
    ];
    assert_eq!(f.store.delete(&doomed).unwrap(), 2);
    assert_eq!(f.store.delete(&doomed).unwrap(), 0);
    assert_eq!(f.store.count(&user).unwrap(), 4);
    assert!(f.store.get(&doomed[..2]).unwrap().is_empty());
    assert_eq!(f.store.get(&[items[2].memory.id.clone()]).unwrap().len(), 1);
    assert_eq!(f.store.delete(&[]).unwrap(), 0);
}

pub fn delete_matching_removes_exactly_the_matches(f: &Fixture) {
    let mut rng = Rng(7);
    let items = varied_memories(&mut rng);
    f.store.upsert(items.clone()).unwrap();
    let expired = Filter {
        expires_before: Some(T0 + 40_000),
        include_archived: true,
        ..Filter::default()
    };
    let expected = ids_of(
        items
            .iter()
            .map(|s| &s.memory)
            .filter(|m| matches(&expired, m)),
    );
    assert!(!expected.is_empty());
    assert_eq!(
        f.store.delete_matching(&expired).unwrap(),
        expected.len() as u64
    );
    let everything = Filter {
        include_archived: true,
        ..Filter::default()
    };
    let left = ids_of(
        scroll_all(&*f.store, &everything, 100)
            .iter()
            .map(|s| &s.memory),
    );
    let all = ids_of(items.iter().map(|s| &s.memory));
    assert_eq!(left, all.difference(&expected).cloned().collect());
    assert_eq!(f.store.delete_matching(&expired).unwrap(), 0);

    // More than one page of matches, in both collections.
    let bulk: Vec<Stored> = (0..2300)
        .map(|i| {
            stored(
                memory("bulk", MemoryType::ALL[i % 9], "bulk"),
                rng.unit(DIM),
            )
        })
        .collect();
    for batch in bulk.chunks(1000) {
        f.store.upsert(batch.to_vec()).unwrap();
    }
    assert_eq!(
        f.store.delete_matching(&Filter::user("bulk")).unwrap(),
        2300
    );
    assert_eq!(
        ids_of(
            scroll_all(&*f.store, &everything, 1000)
                .iter()
                .map(|s| &s.memory)
        ),
        left
    );
}

pub fn snapshots_keep_the_newest(f: &Fixture) {
    let mut rng = Rng(8);
    let items: Vec<Stored> = (0..20)
        .map(|i| stored(memory("u", MemoryType::ALL[i % 9], "snap"), rng.unit(DIM)))
        .collect();
    f.store.upsert(items).unwrap();
    // Each call returns what it kept, newest first per collection: the
    // first of each collection is the one it just made.
    let mut made = Vec::new();
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let kept = f.store.snapshot(2).unwrap();
        for c in Collection::ALL {
            let newest = kept
                .iter()
                .find(|s| s.collection.ends_with(collection_suffix(c)))
                .unwrap();
            made.push(newest.clone());
        }
        rounds.push(kept);
        // Server snapshot names carry the time in seconds.
        if !f.is_embedded() {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
    }
    let kept = rounds.pop().unwrap();
    assert_eq!(kept.len(), 4, "two per collection: {kept:?}");
    assert_eq!(f.store.list_snapshots().unwrap(), kept);
    let mut want: Vec<&str> = made[2..].iter().map(|s| s.name.as_str()).collect();
    let mut have: Vec<&str> = kept.iter().map(|s| s.name.as_str()).collect();
    want.sort();
    have.sort();
    assert_eq!(
        have, want,
        "the first round's snapshots are gone, the later ones kept"
    );
    for c in Collection::ALL {
        let of: Vec<_> = kept
            .iter()
            .filter(|s| s.collection.ends_with(collection_suffix(c)))
            .collect();
        assert_eq!(of.len(), 2);
        assert!(of[0].created_at >= of[1].created_at, "newest first");
        assert!(of.iter().all(|s| s.size_bytes > 0));
    }
    assert!(matches!(f.store.snapshot(0), Err(StoreError::Invalid(_))));
}

pub fn collection_suffix(c: Collection) -> &'static str {
    match c {
        Collection::Facts => "facts",
        Collection::Prefs => "prefs",
    }
}

pub fn users_are_isolated_by_the_user_filter(f: &Fixture) {
    let mut rng = Rng(9);
    let mut items = Vec::new();
    for user in ["amy", "ben"] {
        for i in 0..5 {
            let v = Rng(100 + i).unit(DIM);
            items.push(stored(
                memory(
                    user,
                    MemoryType::ALL[i as usize],
                    "shared words about chess",
                ),
                v,
            ));
        }
    }
    items.push(stored(
        memory("ben", MemoryType::Fact, "ben only"),
        rng.unit(DIM),
    ));
    f.store.upsert(items.clone()).unwrap();
    let amy = Filter::user("amy");
    let q = Rng(100).unit(DIM);
    let only_amy = |hits: &[Hit]| hits.iter().all(|h| h.memory.user_id == "amy");
    assert!(only_amy(&f.store.search(&q, &amy, 50).unwrap()));
    assert!(only_amy(
        &f.store.keyword_search("chess", &amy, 50).unwrap()
    ));
    assert!(only_amy(
        &f.store.hybrid_search(&q, "chess", &amy, 50, 50).unwrap()
    ));
    assert_eq!(f.store.count(&amy).unwrap(), 5);
    assert_eq!(f.store.delete_matching(&amy).unwrap(), 5);
    assert_eq!(f.store.count(&Filter::user("ben")).unwrap(), 6);
    assert!(f.store.search(&q, &amy, 50).unwrap().is_empty());
}

pub fn malformed_requests_are_invalid(f: &Fixture) {
    let invalid = |r: Result<(), StoreError>, what: &str| {
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{what}: {r:?}");
    };
    let good = stored(memory("u", MemoryType::Fact, "x"), Rng(10).unit(DIM));
    let mut short = good.clone();
    short.vector.pop();
    invalid(
        f.store.upsert(vec![good.clone(), short]).map(drop),
        "short vector",
    );
    assert_eq!(
        f.store.count(&Filter::default()).unwrap(),
        0,
        "nothing of a refused batch is written"
    );
    let mut bad_id = good.clone();
    bad_id.memory.id = "not-a-uuid".into();
    invalid(f.store.upsert(vec![bad_id]), "bad id");
    invalid(f.store.get(&["nope".into()]).map(drop), "get bad id");
    invalid(
        f.store.search(&[1.0; 3], &Filter::default(), 5).map(drop),
        "query vector length",
    );
    invalid(
        f.store
            .scroll(&Filter::default(), Some("facts:zzz"), 5)
            .map(drop),
        "bad cursor",
    );
    invalid(
        f.store.scroll(&Filter::default(), None, 0).map(drop),
        "zero page",
    );
    let bad_filter = Filter {
        ids: vec!["x".into()],
        ..Filter::default()
    };
    invalid(f.store.count(&bad_filter).map(drop), "bad id in a filter");
    // A cursor of one collection is refused by a filter that excludes it.
    f.store.upsert(vec![good]).unwrap();
    let prefs = Filter {
        memory_types: vec![MemoryType::Goal],
        ..Filter::default()
    };
    invalid(
        f.store.scroll(&prefs, Some("facts:"), 5).map(drop),
        "foreign cursor",
    );
}

pub fn probe_answers(f: &Fixture) {
    let took = f.store.probe().unwrap();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}
