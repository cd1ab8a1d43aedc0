//! Between the store's shapes and `qdrant-edge`'s: filters, points,
//! queries and the records that come back.

use crate::StoreError;
use crate::bm25::Sparse;
use crate::collections::{Point, Query};
use crate::filter::{Cond, Range};
use crate::fusion::QDRANT_RRF_K;
use crate::model::{Hit, IndexKind, Stored, from_payload};
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition, FieldCondition, Filter, Fusion, HasIdCondition, JsonPath, Match, NamedQuery,
    OperationError, Payload, PayloadFieldSchema, PayloadSchemaType, PointId, PointStructPersisted,
    Prefetch, QueryEnum, QueryRequest, Record, ScoredPoint, ScoringQuery, SearchParams,
    SparseVector, ValueVariants, VectorInternal, VectorPersisted, VectorStructInternal,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use uuid::Uuid;

/// The dense vector's name in both collections.
pub(super) const DENSE: &str = "dense";
/// The BM25 sparse vector's name.
pub(super) const SPARSE: &str = "bm25";
/// HNSW beam width at search time (the reference's `ef`).
const SEARCH_EF: usize = 128;

/// The JSON path of a payload field (the store's own field names, all plain keys).
pub(super) fn key_path(field: &str) -> JsonPath {
    field
        .parse()
        .expect("payload field names are valid JSON paths")
}

pub(super) fn unavailable(e: OperationError) -> StoreError {
    StoreError::unavailable_from(e)
}

pub(super) fn index_schema(kind: IndexKind) -> PayloadFieldSchema {
    PayloadFieldSchema::FieldType(match kind {
        IndexKind::Keyword => PayloadSchemaType::Keyword,
        IndexKind::Float => PayloadSchemaType::Float,
        IndexKind::Integer => PayloadSchemaType::Integer,
        IndexKind::Bool => PayloadSchemaType::Bool,
    })
}

fn range(r: Range) -> qdrant_edge::Range<OrderedFloat<f64>> {
    qdrant_edge::Range {
        gt: r.gt.map(OrderedFloat),
        gte: r.gte.map(OrderedFloat),
        lt: r.lt.map(OrderedFloat),
        lte: r.lte.map(OrderedFloat),
    }
}

/// The conditions as one Qdrant filter (`None` when there are none).
pub(super) fn filter(conds: &[Cond]) -> Option<Filter> {
    let mut must = Vec::new();
    let mut must_not = Vec::new();
    for cond in conds {
        match cond {
            Cond::Keyword(key, values) => {
                let matching = match values.as_slice() {
                    [one] => Match::from(one.clone()),
                    many => Match::from(many.to_vec()),
                };
                must.push(Condition::Field(FieldCondition::new_match(
                    key_path(key),
                    matching,
                )));
            }
            Cond::HasId(ids) => must.push(Condition::HasId(
                ids.iter()
                    .map(|id| PointId::Uuid(*id))
                    .collect::<HasIdCondition>(),
            )),
            Cond::Range { key, range: r } => must.push(Condition::Field(
                FieldCondition::new_range(key_path(key), range(*r)),
            )),
            Cond::NotTrue(key) => must_not.push(Condition::Field(FieldCondition::new_match(
                key_path(key),
                Match::new_value(ValueVariants::Bool(true)),
            ))),
        }
    }
    if must.is_empty() && must_not.is_empty() {
        return None;
    }
    Some(Filter {
        should: None,
        min_should: None,
        must: (!must.is_empty()).then_some(must),
        must_not: (!must_not.is_empty()).then_some(must_not),
    })
}

pub(super) fn point(p: Point) -> PointStructPersisted {
    let vectors = [
        (DENSE.to_owned(), VectorPersisted::Dense(p.dense)),
        (SPARSE.to_owned(), VectorPersisted::Sparse(sparse(p.sparse))),
    ];
    PointStructPersisted {
        id: PointId::Uuid(p.id),
        vector: VectorStructPersisted::Named(vectors.into_iter().collect()),
        payload: Some(Payload(p.payload)),
    }
}

fn sparse(s: Sparse) -> SparseVector {
    SparseVector {
        indices: s.indices,
        values: s.values,
    }
}

pub(super) fn uuid(id: PointId) -> Result<Uuid, StoreError> {
    match id {
        PointId::Uuid(id) => Ok(id),
        PointId::NumId(n) => Err(StoreError::Corrupt(format!("point {n} has a numeric id"))),
    }
}

fn dense_of(id: &Uuid, vector: Option<VectorStructInternal>) -> Result<Vec<f32>, StoreError> {
    let missing = || StoreError::Corrupt(format!("point {id} has no dense vector"));
    match vector.ok_or_else(missing)? {
        VectorStructInternal::Named(mut named) => match named.remove(DENSE) {
            Some(VectorInternal::Dense(v)) => Ok(v),
            _ => Err(missing()),
        },
        VectorStructInternal::Single(v) => Ok(v),
        VectorStructInternal::MultiDense(_) => Err(missing()),
    }
}

fn stored(
    id: PointId,
    payload: Option<Payload>,
    vector: Option<VectorStructInternal>,
) -> Result<Stored, StoreError> {
    let id = uuid(id)?;
    let vector = dense_of(&id, vector)?;
    let payload = payload.map(|p| p.0).unwrap_or_default();
    Ok(Stored {
        memory: from_payload(id.to_string(), payload)?,
        vector,
    })
}

pub(super) fn record(r: Record) -> Result<Stored, StoreError> {
    stored(r.id, r.payload, r.vector)
}

pub(super) fn hit(p: ScoredPoint) -> Result<Hit, StoreError> {
    let score = p.score;
    let Stored { memory, vector } = stored(p.id, p.payload, p.vector)?;
    Ok(Hit {
        memory,
        vector,
        score,
    })
}

fn nearest(query: Query<'_>) -> QueryEnum {
    let (vector, using) = match query {
        Query::Dense(v) => (VectorInternal::Dense(v.to_vec()), DENSE),
        Query::Sparse(s) => (VectorInternal::Sparse(sparse(s.clone())), SPARSE),
        Query::Fused { .. } => unreachable!("fusion is not a nearest query"),
    };
    QueryEnum::Nearest(NamedQuery {
        query: vector,
        using: Some(using.into()),
    })
}

/// What a request returns besides ids and scores.
pub(super) fn returning(with_data: bool) -> (WithPayloadInterface, WithVector) {
    if with_data {
        (
            WithPayloadInterface::Bool(true),
            WithVector::Selector(vec![DENSE.into()]),
        )
    } else {
        (WithPayloadInterface::Bool(false), WithVector::Bool(false))
    }
}

/// One Qdrant query request for `query`, returning payloads and dense
/// vectors when `with_data`.
pub(super) fn query_request(
    query: Query<'_>,
    conds: &[Cond],
    limit: usize,
    with_data: bool,
) -> QueryRequest {
    let filter = filter(conds);
    let params = Some(SearchParams {
        hnsw_ef: Some(SEARCH_EF),
        ..SearchParams::default()
    });
    let (with_payload, with_vector) = returning(with_data);
    let (prefetches, scoring) = match query {
        Query::Dense(_) | Query::Sparse(_) => (Vec::new(), ScoringQuery::Vector(nearest(query))),
        Query::Fused {
            dense,
            sparse,
            candidates,
        } => {
            let prefetch = |q: Query<'_>| Prefetch {
                prefetches: Vec::new(),
                query: Some(ScoringQuery::Vector(nearest(q))),
                limit: candidates,
                params,
                filter: filter.clone(),
                score_threshold: None,
            };
            let rrf = Fusion::Rrf {
                k: QDRANT_RRF_K,
                weights: None,
            };
            (
                vec![
                    prefetch(Query::Dense(dense)),
                    prefetch(Query::Sparse(sparse)),
                ],
                ScoringQuery::Fusion(rrf),
            )
        }
    };
    QueryRequest {
        prefetches,
        query: Some(scoring),
        filter,
        score_threshold: None,
        limit,
        offset: 0,
        params,
        with_vector,
        with_payload,
    }
}
