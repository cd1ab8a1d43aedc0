//! Conformance: what searches, counts and scrolls select and how they rank.

use super::fixtures::*;
use hippo_store::{Filter, Hit, MemoryType, Stored};
use std::collections::{HashMap, HashSet};

pub fn every_filter_field_selects_what_it_says(f: &Fixture) {
    let mut rng = Rng(3);
    let items = varied_memories(&mut rng);
    f.store.upsert(items.clone()).unwrap();
    let some_ids: Vec<String> = items
        .iter()
        .step_by(7)
        .map(|s| s.memory.id.clone())
        .collect();
    let base = Filter::default();
    let filters = [
        ("nothing", base.clone()),
        (
            "include_archived",
            Filter {
                include_archived: true,
                ..base.clone()
            },
        ),
        ("user", Filter::user("bob")),
        (
            "ids",
            Filter {
                ids: some_ids,
                include_archived: true,
                ..base.clone()
            },
        ),
        (
            "prefs types",
            Filter {
                memory_types: vec![MemoryType::Goal, MemoryType::Habit],
                ..base.clone()
            },
        ),
        (
            "mixed types",
            Filter {
                memory_types: vec![MemoryType::Fact, MemoryType::Preference],
                ..base.clone()
            },
        ),
        (
            "tags_any",
            Filter {
                tags_any: vec!["health".into(), "travel".into()],
                ..base.clone()
            },
        ),
        (
            "min_importance",
            Filter {
                min_importance: Some(7.0),
                ..base.clone()
            },
        ),
        (
            "importance band",
            Filter {
                min_importance: Some(2.0),
                max_importance: Some(4.0),
                ..base.clone()
            },
        ),
        (
            "created_after",
            Filter {
                created_after: Some(T0 + 30_000),
                ..base.clone()
            },
        ),
        (
            "created_before",
            Filter {
                created_before: Some(T0 + 10_000),
                ..base.clone()
            },
        ),
        (
            "updated window",
            Filter {
                updated_after: Some(T0 + 10_000),
                updated_before: Some(T0 + 40_000),
                ..base.clone()
            },
        ),
        (
            "expires_before",
            Filter {
                expires_before: Some(T0 + 50_000),
                include_archived: true,
                ..base.clone()
            },
        ),
        (
            "session",
            Filter {
                session_id: Some("s0".into()),
                ..base.clone()
            },
        ),
        (
            "everything at once",
            Filter {
                user_id: Some("ann".into()),
                memory_types: vec![MemoryType::Preference, MemoryType::Habit, MemoryType::Event],
                min_importance: Some(1.0),
                created_after: Some(T0),
                include_archived: true,
                ..base.clone()
            },
        ),
    ];
    let query = rng.unit(DIM);
    for (name, filter) in filters {
        let expected: HashSet<String> = ids_of(
            items
                .iter()
                .map(|s| &s.memory)
                .filter(|m| matches(&filter, m)),
        );
        // A filter that selects nothing or everything would test little.
        assert!(!expected.is_empty(), "{name}");
        if filter != base && !filter.include_archived {
            assert!(expected.len() < items.len() - 10, "{name}");
        }
        let scrolled = scroll_all(&*f.store, &filter, 7);
        assert_eq!(
            ids_of(scrolled.iter().map(|s| &s.memory)),
            expected,
            "{name}: scroll"
        );
        assert_eq!(scrolled.len(), expected.len(), "{name}: scroll repeats");
        assert_eq!(
            f.store.count(&filter).unwrap(),
            expected.len() as u64,
            "{name}: count"
        );
        let found = f.store.search(&query, &filter, 100).unwrap();
        assert_eq!(
            ids_of(found.iter().map(|h| &h.memory)),
            expected,
            "{name}: search"
        );
        let words = f.store.keyword_search("memory", &filter, 100).unwrap();
        assert_eq!(
            ids_of(words.iter().map(|h| &h.memory)),
            expected,
            "{name}: keyword search"
        );
    }
}

pub fn search_ranks_by_cosine_similarity(f: &Fixture) {
    // Angles from the query direction (axis 0), each memory in either collection.
    let angles = [0.9f32, 0.1, 1.4, 0.5, 2.5, 0.3, 3.0];
    let items: Vec<Stored> = angles
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let t = if i % 2 == 0 {
                MemoryType::Fact
            } else {
                MemoryType::Preference
            };
            stored(memory("u", t, &format!("m{i}")), at_angle(*a))
        })
        .collect();
    f.store.upsert(items.clone()).unwrap();

    let mut by_angle: Vec<(f32, String)> = angles
        .iter()
        .zip(&items)
        .map(|(a, s)| (*a, s.memory.id.clone()))
        .collect();
    by_angle.sort_by(|a, b| a.0.total_cmp(&b.0));
    let hits = f
        .store
        .search(&at_angle(0.0), &Filter::user("u"), 5)
        .unwrap();
    let expected: Vec<String> = by_angle.iter().take(5).map(|(_, id)| id.clone()).collect();
    assert_eq!(hit_ids(&hits), expected);
    for (hit, (angle, _)) in hits.iter().zip(&by_angle) {
        assert!(
            (hit.score - angle.cos()).abs() < 1e-4,
            "score {} for angle {angle}",
            hit.score
        );
    }
    // One collection only.
    let prefs = Filter {
        memory_types: vec![MemoryType::Preference],
        ..Filter::user("u")
    };
    let hits = f.store.search(&at_angle(0.0), &prefs, 10).unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(
        hits.iter()
            .all(|h| h.memory.memory_type == MemoryType::Preference)
    );
}

pub fn keyword_search_matches_words_and_weighs_rare_terms(f: &Fixture) {
    let mut rng = Rng(4);
    let mut items = Vec::new();
    for i in 0..12 {
        items.push(memory(
            "u",
            MemoryType::Fact,
            &format!("morning coffee with friends, day {i}"),
        ));
    }
    let rare = memory("u", MemoryType::Fact, "coffee tasting trip to Zanzibar");
    let oolong = memory(
        "u",
        MemoryType::Preference,
        "prefers oolong tea over green tea",
    );
    let unrelated = memory("u", MemoryType::Event, "went hiking in the alps");
    items.extend([rare.clone(), oolong.clone(), unrelated.clone()]);
    f.store
        .upsert(
            items
                .iter()
                .map(|m| stored(m.clone(), rng.unit(DIM)))
                .collect(),
        )
        .unwrap();
    let user = Filter::user("u");

    // An exact word finds its memory, in the other collection too, and nothing else.
    let hits = f.store.keyword_search("Oolong", &user, 10).unwrap();
    assert_eq!(hit_ids(&hits), std::slice::from_ref(&oolong.id));
    assert!(hits[0].score > 0.0);

    // The rare term outweighs the common one.
    let hits = f
        .store
        .keyword_search("coffee zanzibar", &user, 20)
        .unwrap();
    assert_eq!(hits[0].memory.id, rare.id);
    assert_eq!(hits.len(), 13, "every coffee memory, nothing else");
    assert!(!hit_ids(&hits).contains(&unrelated.id));
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(hits[0].score > hits[1].score);

    // Stopwords alone match nothing; unknown words match nothing.
    assert!(
        f.store
            .keyword_search("the and of", &user, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        f.store
            .keyword_search("xylophone", &user, 10)
            .unwrap()
            .is_empty()
    );
}

/// The reference's fusion, computed here from the two lists.
pub fn expected_rrf(lists: &[Vec<Hit>]) -> HashMap<String, f32> {
    let mut scores = HashMap::new();
    for list in lists {
        for (i, hit) in list.iter().enumerate() {
            *scores.entry(hit.memory.id.clone()).or_insert(0.0) += 1.0 / (60.0 + (i + 1) as f32);
        }
    }
    scores
}

pub fn hybrid_search_fuses_ranks_and_keeps_keyword_only_hits(f: &Fixture) {
    // Ten memories close to the query direction without the keyword, one
    // far from it with the keyword, in both collections.
    let mut items = Vec::new();
    for i in 0..10 {
        let t = if i % 2 == 0 {
            MemoryType::Fact
        } else {
            MemoryType::Goal
        };
        items.push(stored(
            memory("u", t, &format!("weekly planning note {i}")),
            at_angle(0.05 * i as f32),
        ));
    }
    let far = memory("u", MemoryType::Fact, "the marathon in Lisbon is in May");
    let near_keyword = memory("u", MemoryType::Fact, "Lisbon trip planning note");
    items.push(stored(far.clone(), at_angle(2.8)));
    items.push(stored(near_keyword.clone(), at_angle(0.12)));
    f.store.upsert(items).unwrap();

    let q = at_angle(0.0);
    let both = Filter::user("u");
    let facts = Filter {
        memory_types: vec![MemoryType::Fact, MemoryType::Event],
        ..both.clone()
    };
    for (name, filter) in [("both collections", &both), ("one collection", &facts)] {
        let candidates = 4;
        let fused = f
            .store
            .hybrid_search(&q, "lisbon", filter, candidates, 10)
            .unwrap();
        let dense = f.store.search(&q, filter, candidates).unwrap();
        let keyword = f
            .store
            .keyword_search("lisbon", filter, candidates)
            .unwrap();
        assert!(
            !hit_ids(&dense).contains(&far.id),
            "{name}: the far memory is a keyword-only hit"
        );
        let expected = expected_rrf(&[dense, keyword]);
        assert_eq!(fused.len(), expected.len(), "{name}: {fused:?}");
        for hit in &fused {
            let want = expected[&hit.memory.id];
            assert!(
                (hit.score - want).abs() < 1e-6,
                "{name}: {} scored {} not {want}",
                hit.memory.text,
                hit.score
            );
        }
        assert!(
            fused.windows(2).all(|w| w[0].score >= w[1].score),
            "{name}: best first"
        );
        assert!(
            hit_ids(&fused).contains(&far.id),
            "{name}: keyword-only hit kept"
        );
        assert_eq!(
            fused[0].memory.id, near_keyword.id,
            "{name}: found by both, ranked first"
        );
        assert_eq!(fused[0].vector.len(), DIM);

        let top2 = f
            .store
            .hybrid_search(&q, "lisbon", filter, candidates, 2)
            .unwrap();
        assert_eq!(top2.len(), 2);
        assert_eq!(top2[0].memory.id, near_keyword.id);
    }
    // A query of stopwords is a vector search fused alone.
    let only_dense = f.store.hybrid_search(&q, "the", &facts, 3, 3).unwrap();
    let dense = f.store.search(&q, &facts, 3).unwrap();
    assert_eq!(hit_ids(&only_dense), hit_ids(&dense));
}
