//! The maintenance tasks end to end. Memories the plugins could not create
//! as a test needs them (dated in the past, thousands of them) are written
//! straight into the store.

use super::fixture::{DAY_MS, Fixture, now_ms, seeded_vector, text_of};
use hippo::store::{Filter, Memory, MemoryType, Stored};
use serde_json::{Value, json};
use std::collections::HashSet;

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A memory of `user` with a vector far from every other's.
fn seeded(f: &Fixture, seed: u64, user: &str, created_at: i64) -> Stored {
    let memory = Memory::new(
        new_id(),
        user,
        MemoryType::Fact,
        format!("memory number {seed}"),
        created_at,
    );
    Stored {
        memory,
        vector: seeded_vector(seed, f.embedder.dimension()),
    }
}

fn all_memories() -> Filter {
    Filter {
        include_archived: true,
        ..Filter::default()
    }
}

#[test]
fn expiry_deletes_every_expired_memory_across_pages_and_nothing_else() {
    let f = Fixture::new();
    let now = now_ms();
    let mut items = Vec::new();
    let mut survivors = HashSet::new();
    for seed in 0..2_700u64 {
        let user = ["alice", "bob", "carol"][seed as usize % 3];
        let mut stored = seeded(&f, seed, user, now - 10 * DAY_MS);
        match seed {
            // 2,500 expired, 50 of them archived.
            0..2_500 => {
                stored.memory.expires_at = Some(now - DAY_MS + seed as i64);
                stored.memory.is_archived = seed < 50;
            }
            // 100 expiring tomorrow, 100 never.
            2_500..2_600 => stored.memory.expires_at = Some(now + DAY_MS),
            _ => {}
        }
        if seed >= 2_500 {
            survivors.insert(stored.memory.id.clone());
        }
        items.push(stored);
    }
    for chunk in items.chunks(500) {
        f.store.upsert(chunk.to_vec()).unwrap();
    }

    let out = f.ok("maintenance.expire", json!({ "page_size": 300 }));
    assert_eq!(
        out,
        json!({ "deleted": 2_500, "expired_at_start": 2_500, "complete": true })
    );
    let left: HashSet<String> = f
        .store
        .scroll(&all_memories(), None, 1_000)
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.memory.id)
        .collect();
    assert_eq!(left, survivors);
    let again = f.ok("maintenance.expire", Value::Null);
    assert_eq!(again["deleted"], 0);
}

#[test]
fn decay_counts_from_the_last_decay_so_its_schedule_does_not_matter() {
    let f = Fixture::new();
    let now = now_ms();
    let half_life = 14.0 * DAY_MS as f64;
    // Both 30 days old: one never decayed, one decayed daily until yesterday.
    let mut once = seeded(&f, 1, "alice", now - 30 * DAY_MS);
    once.memory.memory_type = MemoryType::Event;
    once.memory.importance = 10.0;
    let mut daily = seeded(&f, 2, "bob", now - 30 * DAY_MS);
    daily.memory.memory_type = MemoryType::Event;
    daily.memory.importance = (10.0 * 0.5f64.powf(29.0 * DAY_MS as f64 / half_life)) as f32;
    daily.memory.decayed_at = Some(now - DAY_MS);
    // A day old at importance 1: it loses 0.02, not worth a write.
    let mut fresh = seeded(&f, 3, "alice", now - DAY_MS);
    fresh.memory.importance = 1.0;
    let ids = [&once, &daily, &fresh].map(|s| s.memory.id.clone());
    f.store.upsert(vec![once, daily, fresh]).unwrap();

    let out = f.ok("maintenance.decay", json!({}));
    assert_eq!(
        (out["decayed"].as_u64(), out["unchanged"].as_u64()),
        (Some(2), Some(1)),
        "{out}"
    );
    assert_eq!(out["complete"], true);
    let [once, daily, fresh] = ids.map(|id| f.stored(&id).memory);
    assert!(
        (once.importance - daily.importance).abs() < 1e-4,
        "{} vs {}",
        once.importance,
        daily.importance
    );
    let expected = 10.0 * 0.5f32.powf(30.0 / 14.0);
    assert!(
        (once.importance - expected).abs() < 1e-3,
        "{}",
        once.importance
    );
    assert!(once.decayed_at.is_some_and(|t| t >= now));
    assert_eq!((fresh.importance, fresh.decayed_at), (1.0, None));

    // Running again at once decays nothing more: no compounding.
    let again = f.ok("maintenance.decay", json!({}));
    assert_eq!(again["decayed"], 0);
}

#[test]
fn dedup_keeps_the_most_important_and_never_takes_a_memory_for_its_own_duplicate() {
    let f = Fixture::new();
    let no_check = |extra: Value| {
        let mut extra = extra;
        extra["check_duplicates"] = json!(false);
        extra
    };
    let weak = f.create(
        "alice",
        "I like dark chocolate",
        no_check(json!({"importance": 4, "tags": ["a"]})),
    );
    let strong = f.create(
        "alice",
        "I prefer dark chocolate",
        no_check(json!({"importance": 7, "tags": ["b"]})),
    );
    f.create(
        "alice",
        "Paris is the capital of France",
        no_check(json!({})),
    );
    f.create("alice", "My sister lives in Berlin", no_check(json!({})));
    f.create(
        "bob",
        "I like dark chocolate",
        no_check(json!({"importance": 5})),
    );
    f.create("carol", "I am allergic to peanuts", no_check(json!({})));
    f.create(
        "carol",
        "I am allergic to peanuts",
        no_check(json!({"importance": 9})),
    );

    let out = f.ok("maintenance.dedup", json!({}));
    assert_eq!(
        [
            &out["clusters"],
            &out["removed"],
            &out["exact"],
            &out["near"]
        ]
        .map(|v| v.as_u64()),
        [Some(2), Some(2), Some(1), Some(1)],
        "{out}"
    );
    let alice = f.memories_of("alice");
    assert_eq!(alice.len(), 3);
    let kept = alice
        .iter()
        .find(|m| m["id"] == strong["memory"]["id"])
        .expect("the important one stays");
    assert_eq!(kept["tags"], json!(["b", "a"]));
    assert!(alice.iter().all(|m| m["id"] != weak["memory"]["id"]));
    assert_eq!(
        f.memories_of("bob").len(),
        1,
        "bob's memory is nobody's duplicate"
    );
    let carol = f.memories_of("carol");
    assert_eq!(carol.len(), 1);
    assert_eq!(carol[0]["importance"], 9.0);

    let again = f.ok("maintenance.dedup", json!({}));
    assert_eq!(
        again["removed"], 0,
        "a memory is never its own duplicate: {again}"
    );
    assert_eq!(f.memories_of("alice").len(), 3);
}

#[test]
fn consolidation_merges_similar_memories_of_one_type() {
    let f = Fixture::new();
    let no_check = json!({"check_duplicates": false, "memory_type": "preference"});
    let mut lead = no_check.clone();
    lead["importance"] = json!(8);
    let leader = f.create("alice", "I prefer dark chocolate over milk chocolate", lead);
    let mut other = no_check.clone();
    other["importance"] = json!(6);
    other["tags"] = json!(["sweets"]);
    let member = f.create(
        "alice",
        "I like dark chocolate more than milk chocolate",
        other,
    );
    // As close, but a fact: consolidation keeps types apart.
    f.create(
        "alice",
        "I like dark chocolate more than milk chocolate!",
        json!({"check_duplicates": false}),
    );

    let out = f.ok("maintenance.consolidate", json!({"user_id": "alice"}));
    assert_eq!(
        (out["groups"].as_u64(), out["merged"].as_u64()),
        (Some(1), Some(1)),
        "{out}"
    );
    let alice = f.memories_of("alice");
    assert_eq!(alice.len(), 2);
    let merged = alice
        .iter()
        .find(|m| m["id"] == leader["memory"]["id"])
        .unwrap();
    assert_eq!(
        text_of(merged),
        "I prefer dark chocolate over milk chocolate"
    );
    assert_eq!(merged["importance"], 8.0);
    assert_eq!(merged["tags"], json!(["sweets"]));
    assert_eq!(
        merged["metadata"]["consolidated_from"],
        json!([member["memory"]["id"]])
    );
}

#[test]
fn snapshots_keep_the_newest() {
    let f = Fixture::new();
    f.create("alice", "I like dark chocolate", json!({}));
    // A Qdrant server names snapshots to the second: two in one second are
    // one file. The schedule takes one an hour; the test waits a second.
    let pause = || std::thread::sleep(std::time::Duration::from_millis(1100));
    let first = f.ok("maintenance.snapshot", json!({"keep": 2}));
    pause();
    f.ok("maintenance.snapshot", json!({"keep": 2}));
    pause();
    let third = f.ok("maintenance.snapshot", json!({"keep": 2}));
    let names = |out: &Value| -> Vec<String> {
        out["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    // Two collections (facts and prefs), two snapshots each.
    assert_eq!(names(&third).len(), 4, "{third}");
    assert!(
        names(&first).iter().all(|n| !names(&third).contains(n)),
        "the oldest are gone"
    );
    assert_eq!(f.store.list_snapshots().unwrap().len(), 4);
}

#[test]
fn long_passes_stop_at_the_soft_limit_and_resume_where_they_stopped() {
    let f = Fixture::new();
    let old = now_ms() - 60 * DAY_MS;
    let items: Vec<Stored> = (0..450)
        .map(|seed| seeded(&f, seed, "alice", old))
        .collect();
    f.store.upsert(items).unwrap();

    let first = f.hurried("maintenance.decay", json!({"page_size": 100}));
    assert_eq!(
        (first["complete"].as_bool(), first["resumed"].as_bool()),
        (Some(false), Some(false)),
        "{first}"
    );
    assert_eq!(
        (first["scanned"].as_u64(), first["total"].as_u64()),
        (Some(100), Some(450))
    );
    let second = f.hurried("maintenance.decay", json!({"page_size": 100}));
    assert_eq!(
        (second["resumed"].as_bool(), second["scanned"].as_u64()),
        (Some(true), Some(100))
    );
    let rest = f.ok("maintenance.decay", json!({"page_size": 100}));
    assert_eq!(
        (
            rest["complete"].as_bool(),
            rest["resumed"].as_bool(),
            rest["scanned"].as_u64()
        ),
        (Some(true), Some(true), Some(250))
    );
    assert_eq!(
        first["decayed"].as_u64().unwrap()
            + second["decayed"].as_u64().unwrap()
            + rest["decayed"].as_u64().unwrap(),
        450
    );
    let fresh = f.ok("maintenance.decay", json!({"page_size": 100}));
    assert_eq!(
        (
            fresh["resumed"].as_bool(),
            fresh["scanned"].as_u64(),
            fresh["decayed"].as_u64()
        ),
        (Some(false), Some(450), Some(0))
    );
}

#[test]
fn health_reports_every_service() {
    let f = Fixture::new();
    let out = f.ok("maintenance.health", json!({}));
    assert_eq!(out["status"], "healthy", "{out}");
    let components: HashSet<&str> = out["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"].as_str().unwrap())
        .collect();
    assert_eq!(components, HashSet::from(["store", "broker", "embedder"]));
}
