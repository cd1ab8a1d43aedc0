//! Greedy grouping of similar memories, shared by deduplication and
//! consolidation.
//!
//! Candidates are taken in order of precedence (highest importance, then
//! newest `updated_at`, then id). Each one not yet in a group leads a new
//! group and takes in every later candidate with the same key (same user,
//! and for consolidation the same type) that is similar enough *to the
//! leader*. So every member of a group is similar to the memory that
//! survives, never merely to another member. A memory appears once however
//! often it is listed (a search for a memory's neighbours returns the
//! memory itself): it is never its own duplicate.

use std::cmp::Ordering;
use std::collections::HashSet;

use hippo_sdk::memory::cosine;

/// How similar two memories must be to group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// Cosine similarity strictly above this (deduplication: 0.88).
    Above(f32),
    /// Cosine similarity at least this (consolidation: 0.85).
    AtLeast(f32),
}

impl Threshold {
    fn admits(self, similarity: f32) -> bool {
        match self {
            Threshold::Above(t) => similarity > t,
            Threshold::AtLeast(t) => similarity >= t,
        }
    }
}

/// One candidate memory.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a, K> {
    pub id: &'a str,
    /// Only candidates with equal keys group.
    pub key: K,
    pub vector: &'a [f32],
    pub importance: f32,
    pub updated_at: i64,
}

/// A group: its leader (the memory that survives) and the members similar
/// to it, as indices into the candidates, with each member's similarity to
/// the leader.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub leader: usize,
    pub members: Vec<(usize, f32)>,
}

/// Whether `a` takes precedence over `b`: higher importance, then newer,
/// then the smaller id (so that the order is total and runs agree).
fn precedence<K>(a: &Item<'_, K>, b: &Item<'_, K>) -> Ordering {
    b.importance
        .total_cmp(&a.importance)
        .then(b.updated_at.cmp(&a.updated_at))
        .then(a.id.cmp(b.id))
}

/// The groups of at least two among `items` (see the module docs).
pub fn greedy_groups<K: PartialEq>(items: &[Item<'_, K>], threshold: Threshold) -> Vec<Group> {
    let mut seen = HashSet::new();
    let mut order: Vec<usize> = (0..items.len())
        .filter(|&i| seen.insert(items[i].id))
        .collect();
    order.sort_by(|&a, &b| precedence(&items[a], &items[b]));
    let mut grouped = vec![false; items.len()];
    let mut groups = Vec::new();
    for (position, &leader) in order.iter().enumerate() {
        if grouped[leader] {
            continue;
        }
        grouped[leader] = true;
        let mut members = Vec::new();
        for &candidate in &order[position + 1..] {
            if grouped[candidate] || items[candidate].key != items[leader].key {
                continue;
            }
            let similarity = cosine(items[leader].vector, items[candidate].vector);
            if threshold.admits(similarity) {
                grouped[candidate] = true;
                members.push((candidate, similarity));
            }
        }
        if !members.is_empty() {
            groups.push(Group { leader, members });
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector at cosine `similarity` to `[1, 0]`.
    fn at(similarity: f32) -> Vec<f32> {
        vec![similarity, (1.0 - similarity * similarity).sqrt()]
    }

    fn item<'a>(
        id: &'a str,
        key: &'a str,
        vector: &'a [f32],
        importance: f32,
        updated_at: i64,
    ) -> Item<'a, &'a str> {
        Item {
            id,
            key,
            vector,
            importance,
            updated_at,
        }
    }

    #[test]
    fn a_memory_is_never_its_own_duplicate() {
        let v = at(1.0);
        // The seed and the seed again, as a neighbour search returns it.
        let items = [
            item("m1", "alice", &v, 5.0, 0),
            item("m1", "alice", &v, 5.0, 0),
        ];
        assert!(greedy_groups(&items, Threshold::Above(0.88)).is_empty());
        assert!(greedy_groups(&items, Threshold::AtLeast(0.0)).is_empty());
        // With a real duplicate, the repeated memory still counts once.
        let items = [
            item("m1", "alice", &v, 5.0, 0),
            item("m2", "alice", &v, 4.0, 0),
            item("m1", "alice", &v, 5.0, 0),
        ];
        let groups = greedy_groups(&items, Threshold::Above(0.88));
        assert_eq!(
            groups,
            [Group {
                leader: 0,
                members: vec![(1, 1.0)]
            }]
        );
    }

    #[test]
    fn the_most_important_then_newest_leads() {
        let (a, b, c) = (at(1.0), at(0.99), at(0.97));
        let items = [
            item("old", "alice", &a, 7.0, 100),
            item("new", "alice", &b, 7.0, 200),
            item("low", "alice", &c, 3.0, 300),
        ];
        let groups = greedy_groups(&items, Threshold::Above(0.88));
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].leader, 1);
        let members: Vec<usize> = groups[0].members.iter().map(|m| m.0).collect();
        assert_eq!(members, [0, 2]);
    }

    #[test]
    fn members_must_be_similar_to_the_leader_not_just_to_each_other() {
        // b is close to both a and c, but a and c are far apart: with a
        // leading, c is not pulled in through b.
        let (a, b, c) = (vec![1.0, 0.0], at(0.93), at(0.75));
        let items = [
            item("a", "u", &a, 9.0, 0),
            item("b", "u", &b, 5.0, 0),
            item("c", "u", &c, 1.0, 0),
        ];
        let groups = greedy_groups(&items, Threshold::Above(0.88));
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].leader, 0);
        assert_eq!(groups[0].members.len(), 1);
        assert_eq!(groups[0].members[0].0, 1);
    }

    #[test]
    fn different_keys_never_group() {
        let v = at(1.0);
        let items = [
            item("m1", "alice", &v, 5.0, 0),
            item("m2", "bob", &v, 5.0, 0),
        ];
        assert!(greedy_groups(&items, Threshold::AtLeast(0.5)).is_empty());
    }

    #[test]
    fn above_is_strict_and_at_least_is_not() {
        let v = vec![1.0, 0.0];
        let items = [item("m1", "u", &v, 5.0, 0), item("m2", "u", &v, 5.0, 0)];
        assert!(greedy_groups(&items, Threshold::Above(1.0)).is_empty());
        assert_eq!(greedy_groups(&items, Threshold::AtLeast(1.0)).len(), 1);
    }

    #[test]
    fn dissimilar_memories_stay_apart_and_several_groups_form() {
        let (x, x2, y, y2, z) = (
            vec![1.0, 0.0, 0.0],
            vec![0.99, 0.1, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.98, 0.1],
            vec![0.0, 0.0, 1.0],
        );
        let items = [
            item("x", "u", &x, 5.0, 0),
            item("y", "u", &y, 6.0, 0),
            item("z", "u", &z, 7.0, 0),
            item("x2", "u", &x2, 4.0, 0),
            item("y2", "u", &y2, 3.0, 0),
        ];
        let groups = greedy_groups(&items, Threshold::Above(0.88));
        let pairs: Vec<(usize, usize)> =
            groups.iter().map(|g| (g.leader, g.members[0].0)).collect();
        assert_eq!(pairs, [(1, 4), (0, 3)]);
    }
}
