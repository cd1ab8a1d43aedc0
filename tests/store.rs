//! The memory-store conformance suite: every test in `conformance!` runs
//! against the embedded backend (qdrant-edge, in a fresh directory) and
//! against a Qdrant server when `HIPPO_QDRANT_URL` names one (gRPC, e.g.
//! `http://127.0.0.1:6334`; under a random collection prefix, dropped at
//! the end). Without that variable the server variants return at once and
//! say so on stderr.
//!
//! Vectors are deterministic pseudo-random unit vectors: no embedder needed.
//! The edge-only tests at the end cover what only a directory has
//! (reopening, its lock, restoring a snapshot, background optimization),
//! and `edge_performance` (ignored; run with `--ignored --nocapture`)
//! measures upsert throughput and filtered search latency.

use hippo::store::{
    Collection, Filter, Hit, Memory, MemoryType, StoreBackend, StoreConfig, StoreError, Stored,
    VectorStore, Visibility, drop_collections, open, restore_embedded,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod edge {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Fixture::edge());
                }
            )*
        }
        mod server {
            $(
                #[test]
                fn $test() {
                    if let Some(fixture) = super::Fixture::server() {
                        super::$test(&fixture);
                    }
                }
            )*
        }
    };
}

conformance!(
    round_trip_keeps_every_field,
    changing_type_moves_the_memory,
    every_filter_field_selects_what_it_says,
    search_ranks_by_cosine_similarity,
    keyword_search_matches_words_and_weighs_rare_terms,
    hybrid_search_fuses_ranks_and_keeps_keyword_only_hits,
    scroll_sees_every_item_exactly_once,
    count_and_delete_report_what_existed,
    delete_matching_removes_exactly_the_matches,
    snapshots_keep_the_newest,
    users_are_isolated_by_the_user_filter,
    malformed_requests_are_invalid,
    probe_answers,
);

// ---------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------

/// Vector length of the conformance tests (the benchmark uses 384).
const DIM: usize = 48;

struct Fixture {
    store: Arc<dyn VectorStore>,
    /// The embedded store's data directory.
    dir: Option<tempfile::TempDir>,
    /// The server's URL and this run's collection prefix, dropped at the end.
    server: Option<(String, String)>,
}

impl Fixture {
    fn edge() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            dimension: DIM,
            ..StoreConfig::embedded(dir.path())
        };
        Fixture {
            store: open(&config).unwrap(),
            dir: Some(dir),
            server: None,
        }
    }

    fn server() -> Option<Fixture> {
        let Ok(url) = std::env::var("HIPPO_QDRANT_URL") else {
            eprintln!("HIPPO_QDRANT_URL is not set: the Qdrant server variant did not run");
            return None;
        };
        let prefix = format!("t{}_", &uuid_v4()[..8]);
        let config = StoreConfig {
            dimension: DIM,
            collection_prefix: prefix.clone(),
            ..StoreConfig::server(url.clone(), None)
        };
        let store = open(&config).unwrap();
        Some(Fixture {
            store,
            dir: None,
            server: Some((url, prefix)),
        })
    }

    fn is_embedded(&self) -> bool {
        self.dir.is_some()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some((url, prefix)) = &self.server {
            drop_collections(url, None, prefix).unwrap();
        }
    }
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A deterministic generator (splitmix64) for vectors and choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A unit vector of `dim` components.
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim)
            .map(|_| (self.next() as f64 / u64::MAX as f64) as f32 * 2.0 - 1.0)
            .collect();
        normalized(v)
    }
}

fn normalized(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The unit vector at `angle` radians from axis 0 towards axis 1.
fn at_angle(angle: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[0] = angle.cos();
    v[1] = angle.sin();
    v
}

const T0: i64 = 1_700_000_000_000;

fn memory(user: &str, t: MemoryType, text: &str) -> Memory {
    Memory::new(uuid_v4(), user, t, text, T0)
}

fn stored(memory: Memory, vector: Vec<f32>) -> Stored {
    Stored { memory, vector }
}

fn ids_of<'a>(items: impl IntoIterator<Item = &'a Memory>) -> HashSet<String> {
    items.into_iter().map(|m| m.id.clone()).collect()
}

fn hit_ids(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.memory.id.clone()).collect()
}

/// Every memory that matches, through the scroll (pages of `page`).
fn scroll_all(store: &dyn VectorStore, filter: &Filter, page: usize) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let p = store.scroll(filter, cursor.as_deref(), page).unwrap();
        assert!(p.items.len() <= page);
        out.extend(p.items);
        match p.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
    panic!("scroll never ended");
}

// ---------------------------------------------------------------------------
// The conformance tests.
// ---------------------------------------------------------------------------

fn round_trip_keeps_every_field(f: &Fixture) {
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

fn changing_type_moves_the_memory(f: &Fixture) {
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

/// What the store's filter means, written out plainly.
fn matches(f: &Filter, m: &Memory) -> bool {
    f.user_id.as_ref().is_none_or(|u| *u == m.user_id)
        && (f.ids.is_empty() || f.ids.contains(&m.id))
        && (f.memory_types.is_empty() || f.memory_types.contains(&m.memory_type))
        && (f.tags_any.is_empty() || m.tags.iter().any(|t| f.tags_any.contains(t)))
        && f.min_importance.is_none_or(|x| m.importance >= x)
        && f.max_importance.is_none_or(|x| m.importance <= x)
        && f.created_after.is_none_or(|t| m.created_at > t)
        && f.created_before.is_none_or(|t| m.created_at < t)
        && f.updated_after.is_none_or(|t| m.updated_at > t)
        && f.updated_before.is_none_or(|t| m.updated_at < t)
        && f.expires_before
            .is_none_or(|t| m.expires_at.is_some_and(|e| e < t))
        && f.session_id
            .as_ref()
            .is_none_or(|s| m.session_id.as_ref() == Some(s))
        && (f.include_archived || !m.is_archived)
}

/// Sixty memories whose fields vary independently.
fn varied_memories(rng: &mut Rng) -> Vec<Stored> {
    let tags = ["work", "home", "health", "travel"];
    (0..60)
        .map(|i| {
            let t = MemoryType::ALL[i % MemoryType::ALL.len()];
            let mut m = memory(
                ["ann", "bob", "cy"][i % 3],
                t,
                &format!("memory number {i}"),
            );
            m.importance = (i % 11) as f32;
            m.created_at = T0 + (i as i64) * 1000;
            m.updated_at = T0 + ((i * 7) % 60) as i64 * 1000;
            m.expires_at = (i % 4 == 0).then_some(T0 + (i as i64 % 10) * 10_000);
            m.session_id = (i % 5 == 0).then(|| format!("s{}", i % 2));
            m.tags = (0..rng.below(3))
                .map(|_| tags[rng.below(4) as usize].to_string())
                .collect();
            m.is_archived = i % 6 == 0;
            stored(m, rng.unit(DIM))
        })
        .collect()
}

fn every_filter_field_selects_what_it_says(f: &Fixture) {
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

fn search_ranks_by_cosine_similarity(f: &Fixture) {
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

fn keyword_search_matches_words_and_weighs_rare_terms(f: &Fixture) {
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
fn expected_rrf(lists: &[Vec<Hit>]) -> HashMap<String, f32> {
    let mut scores = HashMap::new();
    for list in lists {
        for (i, hit) in list.iter().enumerate() {
            *scores.entry(hit.memory.id.clone()).or_insert(0.0) += 1.0 / (60.0 + (i + 1) as f32);
        }
    }
    scores
}

fn hybrid_search_fuses_ranks_and_keeps_keyword_only_hits(f: &Fixture) {
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

fn scroll_sees_every_item_exactly_once(f: &Fixture) {
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

fn count_and_delete_report_what_existed(f: &Fixture) {
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

fn delete_matching_removes_exactly_the_matches(f: &Fixture) {
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

fn snapshots_keep_the_newest(f: &Fixture) {
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

fn collection_suffix(c: Collection) -> &'static str {
    match c {
        Collection::Facts => "facts",
        Collection::Prefs => "prefs",
    }
}

fn users_are_isolated_by_the_user_filter(f: &Fixture) {
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

fn malformed_requests_are_invalid(f: &Fixture) {
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

fn probe_answers(f: &Fixture) {
    let took = f.store.probe().unwrap();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

// ---------------------------------------------------------------------------
// The embedded store's own behaviour.
// ---------------------------------------------------------------------------

fn edge_config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        dimension: DIM,
        ..StoreConfig::embedded(dir)
    }
}

#[test]
fn edge_data_survives_reopening_and_the_directory_is_exclusive() {
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
            matches!(second, Err(StoreError::Unavailable(_))),
            "{second:?}"
        );
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

/// Set in the child process of the crash test: the store directory it
/// writes to before it aborts.
const CRASH_DIR: &str = "HIPPO_TEST_STORE_CRASH_DIR";

#[test]
fn edge_acknowledged_writes_survive_a_crash() {
    if let Some(dir) = std::env::var_os(CRASH_DIR) {
        // The child: write, then die without dropping (flushing) the store.
        let store = open(&edge_config(std::path::Path::new(&dir))).unwrap();
        let mut rng = Rng(16);
        for batch in 0..5 {
            let items: Vec<Stored> = (0..100)
                .map(|i| stored(memory("u", MemoryType::ALL[i % 9], &format!("crash {batch} {i}")), rng.unit(DIM)))
                .collect();
            store.upsert(items).unwrap();
        }
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "edge_acknowledged_writes_survive_a_crash", "--nocapture"])
        .env(CRASH_DIR, dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts");
    let store = open(&edge_config(dir.path())).unwrap();
    assert_eq!(store.count(&Filter::user("u")).unwrap(), 500);
    assert_eq!(store.keyword_search("crash", &Filter::user("u"), 1000).unwrap().len(), 500);
}

#[test]
fn edge_snapshot_restores_into_a_working_store() {
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
fn edge_writes_go_on_while_the_index_builds() {
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

/// Figures for the report: upsert throughput (10,000 points of 384
/// dimensions) and search latency for one user holding 10,000 of 100,000
/// memories after `optimize`.
#[test]
#[ignore = "a benchmark: cargo test --release --test store -- --ignored --nocapture"]
fn edge_performance() {
    const BENCH_DIM: usize = 384;
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::embedded(dir.path());
    assert_eq!(config.dimension, BENCH_DIM);
    let store = open(&config).unwrap();
    let mut rng = Rng(15);
    let make = |rng: &mut Rng, user: &str, i: usize| {
        let t = MemoryType::ALL[i % 9];
        let text = format!(
            "memory {i} of {user} about topic {} and detail {}",
            i % 97,
            i % 13
        );
        stored(memory(user, t, &text), rng.unit(BENCH_DIM))
    };

    let target: Vec<Stored> = (0..10_000).map(|i| make(&mut rng, "target", i)).collect();
    let start = Instant::now();
    for batch in target.chunks(1000) {
        store.upsert(batch.to_vec()).unwrap();
    }
    let upsert = start.elapsed();
    println!(
        "upsert: 10,000 points in {:.2?} = {:.0} points/s (batches of 1,000)",
        upsert,
        10_000.0 / upsert.as_secs_f64()
    );

    for u in 0..9 {
        let user = format!("user{u}");
        let others: Vec<Stored> = (0..10_000).map(|i| make(&mut rng, &user, i)).collect();
        for batch in others.chunks(2000) {
            store.upsert(batch.to_vec()).unwrap();
        }
    }
    let start = Instant::now();
    store.optimize().unwrap();
    println!(
        "optimize (HNSW m=48 ef_construct=256) of 100,000 points: {:.2?}",
        start.elapsed()
    );

    let user = Filter::user("target");
    let mut timings = Vec::new();
    let mut keyword = Vec::new();
    let mut hybrid = Vec::new();
    for i in 0..200 {
        let probe = &target[(i * 37) % target.len()];
        let start = Instant::now();
        let hits = store.search(&probe.vector, &user, 10).unwrap();
        timings.push(start.elapsed());
        assert_eq!(hits[0].memory.id, probe.memory.id);
        assert!(hits.iter().all(|h| h.memory.user_id == "target"));
        let start = Instant::now();
        store
            .keyword_search(&format!("topic {}", i % 97), &user, 10)
            .unwrap();
        keyword.push(start.elapsed());
        let start = Instant::now();
        store
            .hybrid_search(&probe.vector, &format!("topic {}", i % 97), &user, 200, 10)
            .unwrap();
        hybrid.push(start.elapsed());
    }
    for (name, mut t) in [
        ("search", timings),
        ("keyword_search", keyword),
        ("hybrid_search (200 candidates)", hybrid),
    ] {
        t.sort();
        println!(
            "{name}, one user of 10 (10,000 of 100,000 points), limit 10: p50 {:.2?}, p95 {:.2?}, max {:.2?}",
            t[t.len() / 2],
            t[t.len() * 95 / 100],
            t[t.len() - 1]
        );
    }
}
