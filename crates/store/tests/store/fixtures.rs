//! What every store test uses: a store per backend, deterministic vectors
//! and memories, and the filter's meaning written out plainly.

use hippo_store::{
    Filter, Hit, Memory, MemoryType, StoreConfig, Stored, VectorStore, drop_collections, open,
};
use std::collections::HashSet;
use std::sync::Arc;

/// Vector length of the conformance tests (the benchmark uses 384).
pub const DIM: usize = 48;

pub struct Fixture {
    pub store: Arc<dyn VectorStore>,
    /// The embedded store's data directory.
    dir: Option<tempfile::TempDir>,
    /// The server's URL and this run's collection prefix, dropped at the end.
    server: Option<(String, String)>,
}

impl Fixture {
    pub fn edge() -> Fixture {
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

    /// A fixture on the Qdrant server `HIPPO_QDRANT_URL` names.
    ///
    /// # Panics
    /// When the variable is not set: a server test does not pass without
    /// its server.
    pub fn server() -> Fixture {
        let url = std::env::var("HIPPO_QDRANT_URL")
            .expect("HIPPO_QDRANT_URL is not set: this test needs a Qdrant server");
        let prefix = format!("t{}_", &uuid_v4()[..8]);
        let config = StoreConfig {
            dimension: DIM,
            collection_prefix: prefix.clone(),
            ..StoreConfig::server(url.clone(), None)
        };
        let store = open(&config).unwrap();
        Fixture {
            store,
            dir: None,
            server: Some((url, prefix)),
        }
    }

    pub fn is_embedded(&self) -> bool {
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

pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A deterministic generator (splitmix64) for vectors and choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A unit vector of `dim` components.
    pub fn unit(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim)
            .map(|_| (self.next() as f64 / u64::MAX as f64) as f32 * 2.0 - 1.0)
            .collect();
        normalized(v)
    }
}

pub fn normalized(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The unit vector at `angle` radians from axis 0 towards axis 1.
pub fn at_angle(angle: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[0] = angle.cos();
    v[1] = angle.sin();
    v
}

pub const T0: i64 = 1_700_000_000_000;

pub fn memory(user: &str, t: MemoryType, text: &str) -> Memory {
    Memory::new(uuid_v4(), user, t, text, T0)
}

pub fn stored(memory: Memory, vector: Vec<f32>) -> Stored {
    Stored { memory, vector }
}

pub fn ids_of<'a>(items: impl IntoIterator<Item = &'a Memory>) -> HashSet<String> {
    items.into_iter().map(|m| m.id.clone()).collect()
}

pub fn hit_ids(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.memory.id.clone()).collect()
}

/// Every memory that matches, through the scroll (pages of `page`).
pub fn scroll_all(store: &dyn VectorStore, filter: &Filter, page: usize) -> Vec<Stored> {
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

/// What the store's filter means, written out plainly.
pub fn matches(f: &Filter, m: &Memory) -> bool {
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
pub fn varied_memories(rng: &mut Rng) -> Vec<Stored> {
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
