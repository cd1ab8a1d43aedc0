//! Between the store's shapes and the Qdrant gRPC API's: filters, points,
//! queries and the records that come back.

use crate::StoreError;
use crate::collections::{Point, Query};
use crate::filter::Cond;
use crate::fusion::QDRANT_RRF_K;
use crate::model::{Hit, IndexKind, Stored, from_payload};
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    Condition, FieldType, Filter, NamedVectors, PointId, PointStruct, PrefetchQueryBuilder,
    QueryPointsBuilder, RetrievedPoint, RrfBuilder, ScoredPoint, SearchParamsBuilder, Vector,
    VectorInput, VectorsOutput, VectorsSelector, vector_output,
};
use qdrant_client::{Payload, QdrantError};
use std::collections::HashMap;
use uuid::Uuid;

/// The dense vector's name in both collections.
pub(super) const DENSE: &str = "dense";
/// The BM25 sparse vector's name.
pub(super) const SPARSE: &str = "bm25";
/// HNSW beam width at search time (the reference's `ef`).
const SEARCH_EF: u64 = 128;

/// A failed call: refused arguments are the caller's, anything else may pass on retry.
pub(super) fn error(e: QdrantError) -> StoreError {
    match &e {
        QdrantError::ResponseError { status } if status.code() == tonic::Code::InvalidArgument => {
            StoreError::Invalid(e.to_string())
        }
        _ => StoreError::unavailable_from(e),
    }
}

pub(super) fn field_type(kind: IndexKind) -> FieldType {
    match kind {
        IndexKind::Keyword => FieldType::Keyword,
        IndexKind::Float => FieldType::Float,
        IndexKind::Integer => FieldType::Integer,
        IndexKind::Bool => FieldType::Bool,
    }
}

/// The conditions as one Qdrant filter (`None` when there are none).
pub(super) fn filter(conds: &[Cond]) -> Option<Filter> {
    let mut filter = Filter::default();
    for cond in conds {
        match cond {
            Cond::Keyword(key, values) => filter.must.push(match values.as_slice() {
                [one] => Condition::matches(*key, one.clone()),
                many => Condition::matches(*key, many.to_vec()),
            }),
            Cond::HasId(ids) => {
                filter
                    .must
                    .push(Condition::has_id(ids.iter().map(|id| id.to_string())));
            }
            Cond::Range { key, range: r } => filter.must.push(Condition::range(
                *key,
                qdrant_client::qdrant::Range {
                    gt: r.gt,
                    gte: r.gte,
                    lt: r.lt,
                    lte: r.lte,
                },
            )),
            Cond::NotTrue(key) => filter.must_not.push(Condition::matches(*key, true)),
        }
    }
    (!conds.is_empty()).then_some(filter)
}

pub(super) fn point(p: Point) -> PointStruct {
    let vectors = NamedVectors::default()
        .add_vector(DENSE, Vector::new_dense(p.dense))
        .add_vector(
            SPARSE,
            Vector::new_sparse(p.sparse.indices, p.sparse.values),
        );
    PointStruct::new(p.id.to_string(), vectors, Payload::from(p.payload))
}

pub(super) fn uuid(id: Option<PointId>) -> Result<Uuid, StoreError> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => Uuid::parse_str(&s)
            .map_err(|_| StoreError::Corrupt(format!("point id {s:?} is not a UUID"))),
        other => Err(StoreError::Corrupt(format!(
            "point id {other:?} is not a UUID"
        ))),
    }
}

/// The vectors to return: the dense one only.
pub(super) fn dense_only() -> VectorsSelector {
    VectorsSelector {
        names: vec![DENSE.into()],
    }
}

fn stored(
    id: Option<PointId>,
    payload: HashMap<String, qdrant_client::qdrant::Value>,
    vectors: Option<VectorsOutput>,
) -> Result<Stored, StoreError> {
    let id = uuid(id)?;
    let vector = match vectors.and_then(|v| v.get_vector_by_name(DENSE)) {
        Some(vector_output::Vector::Dense(d)) => d.data,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "point {id} has no dense vector"
            )));
        }
    };
    let payload = payload
        .into_iter()
        .map(|(k, v)| (k, v.into_json()))
        .collect();
    Ok(Stored {
        memory: from_payload(id.to_string(), payload)?,
        vector,
    })
}

pub(super) fn record(p: RetrievedPoint) -> Result<Stored, StoreError> {
    stored(p.id, p.payload, p.vectors)
}

pub(super) fn hit(p: ScoredPoint) -> Result<Hit, StoreError> {
    let score = p.score;
    let Stored { memory, vector } = stored(p.id, p.payload, p.vectors)?;
    Ok(Hit {
        memory,
        vector,
        score,
    })
}

fn nearest(query: Query<'_>) -> (VectorInput, &'static str) {
    match query {
        Query::Dense(v) => (VectorInput::new_dense(v.to_vec()), DENSE),
        Query::Sparse(s) => (
            VectorInput::new_sparse(s.indices.clone(), s.values.clone()),
            SPARSE,
        ),
        Query::Fused { .. } => unreachable!("fusion is not a nearest query"),
    }
}

/// One query request for `query` on `collection`, returning payloads and
/// dense vectors when `with_data`.
pub(super) fn query_request(
    collection: &str,
    query: Query<'_>,
    conds: &[Cond],
    limit: usize,
    with_data: bool,
) -> QueryPointsBuilder {
    let filter = filter(conds);
    let params = SearchParamsBuilder::default().hnsw_ef(SEARCH_EF);
    let mut request = QueryPointsBuilder::new(collection)
        .limit(limit as u64)
        .params(params.clone())
        .with_payload(with_data);
    request = if with_data {
        request.with_vectors(dense_only())
    } else {
        request.with_vectors(false)
    };
    if let Some(f) = &filter {
        request = request.filter(f.clone());
    }
    match query {
        Query::Dense(_) | Query::Sparse(_) => {
            let (input, using) = nearest(query);
            request
                .query(qdrant_client::qdrant::Query::new_nearest(input))
                .using(using)
        }
        Query::Fused {
            dense,
            sparse,
            candidates,
        } => {
            let prefetch = |q: Query<'_>| {
                let (input, using) = nearest(q);
                let mut p = PrefetchQueryBuilder::default()
                    .query(qdrant_client::qdrant::Query::new_nearest(input))
                    .using(using)
                    .limit(candidates as u64)
                    .params(params.clone());
                if let Some(f) = &filter {
                    p = p.filter(f.clone());
                }
                p.build()
            };
            request
                .add_prefetch(prefetch(Query::Dense(dense)))
                .add_prefetch(prefetch(Query::Sparse(sparse)))
                .query(qdrant_client::qdrant::Query::new_rrf(RrfBuilder::with_k(
                    QDRANT_RRF_K as u32,
                )))
        }
    }
}
