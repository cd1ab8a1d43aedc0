//! What both backends share: routing memories to their collection, queries
//! over both collections, scroll cursors, deletes that count, snapshot
//! retention. A [`Backend`] only knows single-collection Qdrant calls.

use super::bm25::{Bm25, Sparse};
use super::filter::{Cond, Filter};
use super::fusion::{Candidate, merge_by_score, rrf};
use super::model::{Collection, Hit, Page, SnapshotInfo, Stored, parse_id, to_payload, validate};
use super::{StoreError, VectorStore};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A point as written: id, payload, dense vector and BM25 weights.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Point {
    pub id: Uuid,
    pub payload: Map<String, Value>,
    pub dense: Vec<f32>,
    pub sparse: Sparse,
}

/// One single-collection query.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Query<'a> {
    /// Cosine similarity to this vector.
    Dense(&'a [f32]),
    /// BM25 (the query's term weights; Qdrant applies the IDF).
    Sparse(&'a Sparse),
    /// Qdrant's own fusion: both as prefetches of `candidates` each, fused
    /// by RRF with `k = QDRANT_RRF_K`.
    Fused {
        dense: &'a [f32],
        sparse: &'a Sparse,
        candidates: usize,
    },
}

/// Single-collection operations of one Qdrant (embedded or server). Filters
/// arrive as conditions that must all hold; `limit`s are positive.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug + 'static {
    fn upsert(&self, c: Collection, points: Vec<Point>) -> Result<(), StoreError>;
    fn retrieve(&self, c: Collection, ids: &[Uuid]) -> Result<Vec<Stored>, StoreError>;
    fn query(
        &self,
        c: Collection,
        query: Query<'_>,
        filter: &[Cond],
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError>;
    /// [`query`](Self::query) without payloads and vectors: ids and scores.
    fn query_ids(
        &self,
        c: Collection,
        query: Query<'_>,
        filter: &[Cond],
        limit: usize,
    ) -> Result<Vec<(Uuid, f32)>, StoreError>;
    /// A page in id order from `offset` (inclusive) and the id the next page starts at.
    fn scroll(
        &self,
        c: Collection,
        filter: &[Cond],
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Stored>, Option<Uuid>), StoreError>;
    /// [`scroll`](Self::scroll) without payloads and vectors.
    fn scroll_ids(
        &self,
        c: Collection,
        filter: &[Cond],
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, Option<Uuid>), StoreError>;
    fn count(&self, c: Collection, filter: &[Cond]) -> Result<u64, StoreError>;
    fn delete(&self, c: Collection, ids: Vec<Uuid>) -> Result<(), StoreError>;
    fn snapshot(&self, c: Collection) -> Result<SnapshotInfo, StoreError>;
    fn list_snapshots(&self, c: Collection) -> Result<Vec<SnapshotInfo>, StoreError>;
    fn delete_snapshot(&self, c: Collection, name: &str) -> Result<(), StoreError>;
    /// One cheap request that touches both collections.
    fn probe(&self) -> Result<(), StoreError>;
    fn optimize(&self) -> Result<(), StoreError>;
}

/// Page size of the id scans behind deletes.
const DELETE_PAGE: usize = 1000;

/// The memories of every user as a [`VectorStore`], over the collections
/// of a [`Backend`] (embedded or server).
#[derive(Debug)]
pub(crate) struct Collections<B> {
    backend: B,
    bm25: Bm25,
    dimension: usize,
}

impl<B: Backend> Collections<B> {
    pub fn new(backend: B, dimension: usize) -> Collections<B> {
        Collections {
            backend,
            bm25: Bm25::new(),
            dimension,
        }
    }

    fn check_vector(&self, vector: &[f32]) -> Result<(), StoreError> {
        if vector.len() != self.dimension {
            return Err(StoreError::Invalid(format!(
                "query vector has {} components, the store expects {}",
                vector.len(),
                self.dimension
            )));
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(StoreError::Invalid(
                "query vector has a non-finite component".into(),
            ));
        }
        Ok(())
    }

    /// The ids among `ids` that exist in `c`.
    fn existing(&self, c: Collection, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (found, _) =
            self.backend
                .scroll_ids(c, &[Cond::HasId(ids.to_vec())], None, ids.len())?;
        Ok(found)
    }

    /// Runs `query` on each collection the filter allows, best `limit` by score.
    fn query_all(
        &self,
        query: Query<'_>,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let conds = filter.conditions()?;
        let lists = filter
            .collections()
            .into_iter()
            .map(|c| self.backend.query(c, query, &conds, limit))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(merge_by_score(lists, limit))
    }
}

/// Parses an id list, dropping repeats (first occurrence kept).
fn parse_ids(ids: &[String]) -> Result<Vec<Uuid>, StoreError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id = parse_id(id)?;
        if seen.insert(id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// A scroll cursor: the collection to continue in and the id to continue
/// from (`None`: its start). Written `facts:<uuid>` / `prefs:`.
fn format_cursor(c: Collection, offset: Option<Uuid>) -> String {
    match offset {
        Some(id) => format!("{}:{id}", c.base_name()),
        None => format!("{}:", c.base_name()),
    }
}

fn parse_cursor(
    cursor: &str,
    allowed: &[Collection],
) -> Result<(Collection, Option<Uuid>), StoreError> {
    let bad = || {
        StoreError::Invalid(format!(
            "scroll cursor {cursor:?} is not one this filter gave"
        ))
    };
    let (name, offset) = cursor.split_once(':').ok_or_else(bad)?;
    let c = allowed
        .iter()
        .copied()
        .find(|c| c.base_name() == name)
        .ok_or_else(bad)?;
    let offset = match offset {
        "" => None,
        id => Some(Uuid::parse_str(id).map_err(|_| bad())?),
    };
    Ok((c, offset))
}

impl<B: Backend> VectorStore for Collections<B> {
    fn upsert(&self, items: Vec<Stored>) -> Result<(), StoreError> {
        // Validate everything before writing anything; a repeated id keeps
        // its last item.
        let mut slot: HashMap<Uuid, usize> = HashMap::new();
        let mut points: Vec<(Collection, Point)> = Vec::with_capacity(items.len());
        for item in items {
            let id = validate(&item, self.dimension)?;
            let point = Point {
                id,
                payload: to_payload(&item.memory)?,
                sparse: self.bm25.document(&item.memory.text),
                dense: item.vector,
            };
            let entry = (item.memory.collection(), point);
            match slot.get(&id) {
                Some(&i) => points[i] = entry,
                None => {
                    slot.insert(id, points.len());
                    points.push(entry);
                }
            }
        }
        let (facts, prefs): (Vec<_>, Vec<_>) = points
            .into_iter()
            .partition(|(c, _)| *c == Collection::Facts);
        for (c, batch) in [(Collection::Facts, facts), (Collection::Prefs, prefs)] {
            if batch.is_empty() {
                continue;
            }
            let batch: Vec<Point> = batch.into_iter().map(|(_, p)| p).collect();
            let ids: Vec<Uuid> = batch.iter().map(|p| p.id).collect();
            self.backend.upsert(c, batch)?;
            // Written first, then removed from the other collection: a crash
            // in between leaves a duplicate that the next write of the
            // memory clears, never a loss. (Two concurrent writes moving one
            // memory in opposite directions could both delete; the memory
            // tasks write a memory from one task at a time.)
            let stale = self.existing(c.other(), &ids)?;
            if !stale.is_empty() {
                self.backend.delete(c.other(), stale)?;
            }
        }
        Ok(())
    }

    fn get(&self, ids: &[String]) -> Result<Vec<Stored>, StoreError> {
        let ids = parse_ids(ids)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<String, Stored> = HashMap::new();
        for c in Collection::ALL {
            for s in self.backend.retrieve(c, &ids)? {
                found.insert(s.memory.id.clone(), s);
            }
        }
        Ok(ids
            .iter()
            .filter_map(|id| found.remove(&id.to_string()))
            .collect())
    }

    fn search(
        &self,
        vector: &[f32],
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        self.check_vector(vector)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.query_all(Query::Dense(vector), filter, limit)
    }

    fn keyword_search(
        &self,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let sparse = self.bm25.query(query);
        if limit == 0 || sparse.is_empty() {
            filter.conditions()?;
            return Ok(Vec::new());
        }
        self.query_all(Query::Sparse(&sparse), filter, limit)
    }

    fn hybrid_search(
        &self,
        vector: &[f32],
        query: &str,
        filter: &Filter,
        candidates: usize,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        self.check_vector(vector)?;
        if limit == 0 || candidates == 0 {
            filter.conditions()?;
            return Ok(Vec::new());
        }
        let sparse = self.bm25.query(query);
        let collections = filter.collections();
        if let ([c], false) = (collections.as_slice(), sparse.is_empty()) {
            let conds = filter.conditions()?;
            let fused = Query::Fused {
                dense: vector,
                sparse: &sparse,
                candidates,
            };
            return self.backend.query(*c, fused, &conds, limit);
        }
        // Over both collections: fuse ids and scores, then read only the
        // memories that made the cut.
        let conds = filter.conditions()?;
        let ranked = |query: Query<'_>| -> Result<Vec<Candidate>, StoreError> {
            let mut lists = Vec::new();
            for &collection in &collections {
                let found = self
                    .backend
                    .query_ids(collection, query, &conds, candidates)?;
                lists.push(
                    found
                        .into_iter()
                        .map(|(id, score)| Candidate {
                            collection,
                            id,
                            score,
                        })
                        .collect(),
                );
            }
            Ok(merge_by_score(lists, candidates))
        };
        let dense = ranked(Query::Dense(vector))?;
        let keyword = if sparse.is_empty() {
            Vec::new()
        } else {
            ranked(Query::Sparse(&sparse))?
        };
        let fused = rrf(vec![dense, keyword], limit);
        let mut found: HashMap<Uuid, Stored> = HashMap::new();
        for &c in &collections {
            let ids: Vec<Uuid> = fused
                .iter()
                .filter(|f| f.collection == c)
                .map(|f| f.id)
                .collect();
            if !ids.is_empty() {
                for s in self.backend.retrieve(c, &ids)? {
                    found.insert(parse_id(&s.memory.id)?, s);
                }
            }
        }
        // A memory deleted since the query is left out.
        Ok(fused
            .into_iter()
            .filter_map(|f| {
                found.remove(&f.id).map(|s| Hit {
                    memory: s.memory,
                    vector: s.vector,
                    score: f.score,
                })
            })
            .collect())
    }

    fn scroll(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        if limit == 0 {
            return Err(StoreError::Invalid("scroll limit must be positive".into()));
        }
        let conds = filter.conditions()?;
        let collections = filter.collections();
        let (start, mut offset) = match cursor {
            Some(cursor) => parse_cursor(cursor, &collections)?,
            None => (collections[0], None),
        };
        let mut items = Vec::new();
        let mut rest = collections
            .iter()
            .copied()
            .skip_while(|c| *c != start)
            .peekable();
        while let Some(c) = rest.next() {
            let (page, next) = self
                .backend
                .scroll(c, &conds, offset, limit - items.len())?;
            items.extend(page);
            if let Some(next) = next {
                return Ok(Page {
                    items,
                    next: Some(format_cursor(c, Some(next))),
                });
            }
            offset = None;
            if items.len() == limit {
                let next = rest.peek().map(|c| format_cursor(*c, None));
                return Ok(Page { items, next });
            }
        }
        Ok(Page { items, next: None })
    }

    fn count(&self, filter: &Filter) -> Result<u64, StoreError> {
        let conds = filter.conditions()?;
        filter
            .collections()
            .into_iter()
            .map(|c| self.backend.count(c, &conds))
            .sum()
    }

    fn delete(&self, ids: &[String]) -> Result<u64, StoreError> {
        let ids = parse_ids(ids)?;
        let mut deleted = 0;
        for c in Collection::ALL {
            let existing = self.existing(c, &ids)?;
            deleted += existing.len() as u64;
            if !existing.is_empty() {
                self.backend.delete(c, existing)?;
            }
        }
        Ok(deleted)
    }

    fn delete_matching(&self, filter: &Filter) -> Result<u64, StoreError> {
        // Deletes exactly the ids it found matching, page by page, so the
        // count is what was removed and memories written meanwhile that
        // match are left alone.
        let conds = filter.conditions()?;
        let mut deleted = 0;
        for c in filter.collections() {
            let mut offset = None;
            loop {
                let (ids, next) = self.backend.scroll_ids(c, &conds, offset, DELETE_PAGE)?;
                deleted += ids.len() as u64;
                if !ids.is_empty() {
                    self.backend.delete(c, ids)?;
                }
                match next {
                    Some(next) => offset = Some(next),
                    None => break,
                }
            }
        }
        Ok(deleted)
    }

    fn snapshot(&self, keep: usize) -> Result<Vec<SnapshotInfo>, StoreError> {
        if keep == 0 {
            return Err(StoreError::Invalid("keep at least one snapshot".into()));
        }
        let mut kept = Vec::new();
        for c in Collection::ALL {
            self.backend.snapshot(c)?;
            let mut all = self.backend.list_snapshots(c)?;
            sort_newest_first(&mut all);
            for old in all.split_off(keep.min(all.len())) {
                self.backend.delete_snapshot(c, &old.name)?;
            }
            kept.extend(all);
        }
        Ok(kept)
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        let mut out = Vec::new();
        for c in Collection::ALL {
            let mut all = self.backend.list_snapshots(c)?;
            sort_newest_first(&mut all);
            out.extend(all);
        }
        Ok(out)
    }

    fn probe(&self) -> Result<Duration, StoreError> {
        let start = Instant::now();
        self.backend.probe()?;
        Ok(start.elapsed())
    }

    fn optimize(&self) -> Result<(), StoreError> {
        self.backend.optimize()
    }
}

fn sort_newest_first(snapshots: &mut [SnapshotInfo]) {
    snapshots.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.name.cmp(&a.name))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_foreign_collections() {
        let id = Uuid::new_v4();
        let both = Collection::ALL;
        let c = format_cursor(Collection::Prefs, Some(id));
        assert_eq!(
            parse_cursor(&c, &both).unwrap(),
            (Collection::Prefs, Some(id))
        );
        let start = format_cursor(Collection::Facts, None);
        assert_eq!(
            parse_cursor(&start, &both).unwrap(),
            (Collection::Facts, None)
        );
        for bad in ["prefs", "other:", "facts:nope"] {
            assert!(parse_cursor(bad, &both).is_err(), "{bad}");
        }
        assert!(parse_cursor(&c, &[Collection::Facts]).is_err());
    }

    #[test]
    fn repeated_ids_are_asked_once() {
        let id = Uuid::new_v4().to_string();
        assert_eq!(parse_ids(&[id.clone(), id.clone()]).unwrap().len(), 1);
        assert!(parse_ids(&["x".into()]).is_err());
    }
}
