//! Which memories a call applies to: the [`Filter`] (the WIT's `filter`)
//! and its translation into backend-neutral payload [`Cond`]itions that
//! each backend maps onto its own Qdrant filter type.

use super::StoreError;
use super::model::{Collection, MemoryType, field, parse_id};

/// Conditions that all hold; empty lists and `None` mean "any". Archived
/// memories are left out unless `include_archived`.
///
/// Time bounds are Unix milliseconds and strict: `created_after: t` keeps
/// memories created after `t` (`> t`), `created_before: t` those created
/// before it (`< t`). `expires_before` keeps memories whose `expires_at` is
/// set and earlier than it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub user_id: Option<String>,
    pub ids: Vec<String>,
    pub memory_types: Vec<MemoryType>,
    /// Memories with at least one of these tags.
    pub tags_any: Vec<String>,
    /// Inclusive.
    pub min_importance: Option<f32>,
    /// Inclusive.
    pub max_importance: Option<f32>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub updated_after: Option<i64>,
    pub updated_before: Option<i64>,
    pub expires_before: Option<i64>,
    pub session_id: Option<String>,
    pub include_archived: bool,
}

impl Filter {
    /// Every memory of one user (archived ones left out).
    pub fn user(user_id: impl Into<String>) -> Filter {
        Filter {
            user_id: Some(user_id.into()),
            ..Filter::default()
        }
    }

    /// The collections that can hold a match, in scroll order: both, unless
    /// `memory_types` names types of one collection only.
    pub fn collections(&self) -> Vec<Collection> {
        if self.memory_types.is_empty() {
            return Collection::ALL.to_vec();
        }
        Collection::ALL
            .into_iter()
            .filter(|c| self.memory_types.iter().any(|t| Collection::of(*t) == *c))
            .collect()
    }

    /// The payload conditions that must all hold.
    pub(crate) fn conditions(&self) -> Result<Vec<Cond>, StoreError> {
        let mut conds = Vec::new();
        if let Some(user) = &self.user_id {
            conds.push(Cond::Keyword(field::USER_ID, vec![user.clone()]));
        }
        if !self.ids.is_empty() {
            let ids = self
                .ids
                .iter()
                .map(|id| parse_id(id))
                .collect::<Result<_, _>>()?;
            conds.push(Cond::HasId(ids));
        }
        if !self.memory_types.is_empty() {
            let types = self
                .memory_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect();
            conds.push(Cond::Keyword(field::TYPE, types));
        }
        if !self.tags_any.is_empty() {
            conds.push(Cond::Keyword(field::TAGS, self.tags_any.clone()));
        }
        if let Some(session) = &self.session_id {
            conds.push(Cond::Keyword(field::SESSION_ID, vec![session.clone()]));
        }
        for bound in [self.min_importance, self.max_importance]
            .into_iter()
            .flatten()
        {
            if !bound.is_finite() {
                return Err(StoreError::Invalid(format!(
                    "importance bound {bound} is not finite"
                )));
            }
        }
        if self.min_importance.is_some() || self.max_importance.is_some() {
            conds.push(Cond::Range {
                key: field::IMPORTANCE,
                range: Range {
                    gte: self.min_importance.map(f64::from),
                    lte: self.max_importance.map(f64::from),
                    ..Range::default()
                },
            });
        }
        let time_ranges = [
            (field::CREATED_AT, self.created_after, self.created_before),
            (field::UPDATED_AT, self.updated_after, self.updated_before),
            (field::EXPIRES_AT, None, self.expires_before),
        ];
        for (key, after, before) in time_ranges {
            if after.is_some() || before.is_some() {
                // Unix milliseconds are below 2^53, so f64 holds them exactly.
                let range = Range {
                    gt: after.map(|t| t as f64),
                    lt: before.map(|t| t as f64),
                    ..Range::default()
                };
                conds.push(Cond::Range { key, range });
            }
        }
        if !self.include_archived {
            conds.push(Cond::NotTrue(field::IS_ARCHIVED));
        }
        Ok(conds)
    }
}

/// One payload condition, in the terms both Qdrant filter types share.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    /// The keyword field holds one of these values.
    Keyword(&'static str, Vec<String>),
    /// The point id is one of these.
    HasId(Vec<uuid::Uuid>),
    /// The numeric field lies in the range.
    Range { key: &'static str, range: Range },
    /// The boolean field is not `true` (false or missing).
    NotTrue(&'static str),
}

/// Bounds of a numeric range; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Range {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_pick_the_collections_to_search() {
        let mut f = Filter::default();
        assert_eq!(f.collections(), Collection::ALL);
        f.memory_types = vec![MemoryType::Goal, MemoryType::Habit];
        assert_eq!(f.collections(), [Collection::Prefs]);
        f.memory_types.push(MemoryType::Event);
        assert_eq!(f.collections(), Collection::ALL);
    }

    #[test]
    fn archived_memories_are_left_out_by_default() {
        let conds = Filter::user("u").conditions().unwrap();
        assert_eq!(
            conds,
            [
                Cond::Keyword("user_id", vec!["u".into()]),
                Cond::NotTrue("is_archived")
            ]
        );
        let all = Filter {
            include_archived: true,
            ..Filter::default()
        };
        assert!(all.conditions().unwrap().is_empty());
    }

    #[test]
    fn time_bounds_are_strict_and_importance_inclusive() {
        let f = Filter {
            min_importance: Some(2.5),
            created_after: Some(10),
            created_before: Some(20),
            expires_before: Some(30),
            include_archived: true,
            ..Filter::default()
        };
        let conds = f.conditions().unwrap();
        assert!(conds.contains(&Cond::Range {
            key: "importance",
            range: Range {
                gte: Some(2.5),
                ..Range::default()
            }
        }));
        assert!(conds.contains(&Cond::Range {
            key: "created_at",
            range: Range {
                gt: Some(10.0),
                lt: Some(20.0),
                ..Range::default()
            }
        }));
        assert!(conds.contains(&Cond::Range {
            key: "expires_at",
            range: Range {
                lt: Some(30.0),
                ..Range::default()
            }
        }));
    }

    #[test]
    fn bad_ids_and_bounds_are_invalid() {
        let f = Filter {
            ids: vec!["nope".into()],
            ..Filter::default()
        };
        assert!(matches!(f.conditions(), Err(StoreError::Invalid(_))));
        let f = Filter {
            max_importance: Some(f32::NAN),
            ..Filter::default()
        };
        assert!(matches!(f.conditions(), Err(StoreError::Invalid(_))));
    }
}
