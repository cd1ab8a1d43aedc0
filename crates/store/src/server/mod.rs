//! The server backend: a Qdrant server over gRPC (`qdrant-client`).
//!
//! The client is async; the store's callers are blocking threads. The
//! backend owns a one-worker tokio runtime that drives the gRPC
//! connections, and each call waits on it with `Runtime::block_on` from
//! the caller's thread. Calling from inside an async task panics (tokio
//! refuses to block a runtime thread): async code goes through
//! `spawn_blocking`.

mod convert;

use super::StoreError;
use super::collections::{Backend, Point, Query};
use super::filter::Cond;
use super::model::{Collection, Hit, PAYLOAD_INDEXES, SnapshotInfo, Stored};
use convert::{DENSE, SPARSE, error};
use qdrant_client::Qdrant;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, DeleteSnapshotRequestBuilder, Distance, GetPointsBuilder,
    HnswConfigDiffBuilder, Modifier, PointId, PointsIdsList, ScrollPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder,
    VectorParamsBuilder, VectorsConfigBuilder,
};
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// How long one gRPC call may take (snapshots of large collections are the slowest).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A Qdrant server's two collections.
pub(crate) struct ServerBackend {
    client: Qdrant,
    prefix: String,
    /// Dropped with `shutdown_background`, which is allowed anywhere (a
    /// plain drop panics inside an async context).
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ServerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBackend")
            .field("url", &self.client.config.uri)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Drop for ServerBackend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A runtime and a client on it (the client's channels need one to start).
fn client(
    url: &str,
    api_key: Option<&str>,
) -> Result<(tokio::runtime::Runtime, Qdrant), StoreError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hippo-qdrant")
        .enable_all()
        .build()
        .map_err(|e| StoreError::unavailable_in("starting the Qdrant client runtime", e))?;
    let client = {
        let _context = runtime.enter();
        Qdrant::from_url(url)
            .api_key(api_key.map(str::to_owned))
            .timeout(CALL_TIMEOUT)
            .skip_compatibility_check()
            .build()
            .map_err(|e| StoreError::Invalid(format!("Qdrant URL {url:?}: {e}")))?
    };
    Ok((runtime, client))
}

/// Deletes this prefix's collections (with their snapshots) from the
/// server at `url`; missing ones are fine. For tests and for resetting a
/// deployment. Call it from a blocking thread.
pub fn drop_collections(url: &str, api_key: Option<&str>, prefix: &str) -> Result<(), StoreError> {
    let (runtime, client) = client(url, api_key)?;
    let result = runtime.block_on(async {
        for c in Collection::ALL {
            let name = c.name(prefix);
            if client.collection_exists(&name).await.map_err(error)? {
                // The server keeps a collection's snapshot files after the collection.
                let snapshots = client.list_snapshots(name.as_str()).await.map_err(error)?;
                for s in snapshots.snapshot_descriptions {
                    let request = DeleteSnapshotRequestBuilder::new(name.as_str(), s.name);
                    client.delete_snapshot(request).await.map_err(error)?;
                }
                client.delete_collection(&name).await.map_err(error)?;
            }
        }
        Ok(())
    });
    runtime.shutdown_background();
    result
}

impl ServerBackend {
    /// Connects and creates the collections and indexes that are missing.
    pub fn connect(
        url: &str,
        api_key: Option<&str>,
        prefix: &str,
        dimension: usize,
    ) -> Result<ServerBackend, StoreError> {
        let (runtime, client) = client(url, api_key)?;
        let backend = ServerBackend {
            client,
            prefix: prefix.into(),
            runtime: Some(runtime),
        };
        for c in Collection::ALL {
            backend.ensure_collection(&c.name(prefix), dimension)?;
        }
        Ok(backend)
    }

    fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .block_on(f)
    }

    fn name(&self, c: Collection) -> String {
        c.name(&self.prefix)
    }

    fn ensure_collection(&self, name: &str, dimension: usize) -> Result<(), StoreError> {
        self.block_on(async {
            if !self.client.collection_exists(name).await.map_err(error)? {
                let mut dense = VectorsConfigBuilder::default();
                dense.add_named_vector_params(
                    DENSE,
                    VectorParamsBuilder::new(dimension as u64, Distance::Cosine)
                        // The reference's HNSW parameters.
                        .hnsw_config(HnswConfigDiffBuilder::default().m(48).ef_construct(256)),
                );
                let mut sparse = SparseVectorsConfigBuilder::default();
                sparse.add_named_vector_params(SPARSE, SparseVectorParamsBuilder::default().modifier(Modifier::Idf));
                let create = CreateCollectionBuilder::new(name).vectors_config(dense).sparse_vectors_config(sparse);
                match self.client.create_collection(create).await {
                    Ok(_) => {}
                    // Another process created it meanwhile: checked below like any existing one.
                    Err(e) if self.client.collection_exists(name).await.unwrap_or(false) => {
                        tracing::debug!(collection = name, error = %e, "collection created concurrently");
                    }
                    Err(e) => return Err(error(e)),
                }
            }
            let info = self.client.collection_info(name).await.map_err(error)?.result.unwrap_or_default();
            let stored = info
                .config
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config)
                .and_then(|v| v.config)
                .and_then(|kind| match kind {
                    VectorsConfigKind::ParamsMap(map) => map.map.get(DENSE).map(|p| p.size as usize),
                    VectorsConfigKind::Params(_) => None,
                });
            if stored != Some(dimension) {
                return Err(StoreError::Invalid(format!(
                    "collection {name} holds dense vectors of dimension {stored:?}, the store is configured for {dimension}"
                )));
            }
            for (field, kind) in PAYLOAD_INDEXES {
                if !info.payload_schema.contains_key(field) {
                    let index = CreateFieldIndexCollectionBuilder::new(name, field, convert::field_type(kind)).wait(true);
                    self.client.create_field_index(index).await.map_err(error)?;
                }
            }
            Ok(())
        })
    }

    fn scroll_points(
        &self,
        c: Collection,
        conds: &[Cond],
        offset: Option<Uuid>,
        limit: usize,
        with_data: bool,
    ) -> Result<(Vec<qdrant_client::qdrant::RetrievedPoint>, Option<Uuid>), StoreError> {
        let mut request = ScrollPointsBuilder::new(self.name(c))
            .limit(u32::try_from(limit).unwrap_or(u32::MAX))
            .with_payload(with_data);
        request = if with_data {
            request.with_vectors(convert::dense_only())
        } else {
            request.with_vectors(false)
        };
        if let Some(f) = convert::filter(conds) {
            request = request.filter(f);
        }
        if let Some(offset) = offset {
            request = request.offset(offset.to_string());
        }
        let response = self.block_on(self.client.scroll(request)).map_err(error)?;
        let next = response
            .next_page_offset
            .map(|id| convert::uuid(Some(id)))
            .transpose()?;
        Ok((response.result, next))
    }
}

fn point_ids(ids: &[Uuid]) -> Vec<PointId> {
    ids.iter().map(|id| PointId::from(id.to_string())).collect()
}

impl Backend for ServerBackend {
    fn upsert(&self, c: Collection, points: Vec<Point>) -> Result<(), StoreError> {
        let points: Vec<_> = points.into_iter().map(convert::point).collect();
        let request = UpsertPointsBuilder::new(self.name(c), points).wait(true);
        self.block_on(self.client.upsert_points(request))
            .map_err(error)?;
        Ok(())
    }

    fn retrieve(&self, c: Collection, ids: &[Uuid]) -> Result<Vec<Stored>, StoreError> {
        let request = GetPointsBuilder::new(self.name(c), point_ids(ids))
            .with_payload(true)
            .with_vectors(convert::dense_only());
        let response = self
            .block_on(self.client.get_points(request))
            .map_err(error)?;
        response.result.into_iter().map(convert::record).collect()
    }

    fn query(
        &self,
        c: Collection,
        query: Query<'_>,
        filter: &[Cond],
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let request = convert::query_request(&self.name(c), query, filter, limit, true);
        let response = self.block_on(self.client.query(request)).map_err(error)?;
        response.result.into_iter().map(convert::hit).collect()
    }

    fn query_ids(
        &self,
        c: Collection,
        query: Query<'_>,
        filter: &[Cond],
        limit: usize,
    ) -> Result<Vec<(Uuid, f32)>, StoreError> {
        let request = convert::query_request(&self.name(c), query, filter, limit, false);
        let response = self.block_on(self.client.query(request)).map_err(error)?;
        response
            .result
            .into_iter()
            .map(|p| Ok((convert::uuid(p.id)?, p.score)))
            .collect()
    }

    fn scroll(
        &self,
        c: Collection,
        filter: &[Cond],
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Stored>, Option<Uuid>), StoreError> {
        let (points, next) = self.scroll_points(c, filter, offset, limit, true)?;
        Ok((
            points
                .into_iter()
                .map(convert::record)
                .collect::<Result<_, _>>()?,
            next,
        ))
    }

    fn scroll_ids(
        &self,
        c: Collection,
        filter: &[Cond],
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, Option<Uuid>), StoreError> {
        let (points, next) = self.scroll_points(c, filter, offset, limit, false)?;
        Ok((
            points
                .into_iter()
                .map(|p| convert::uuid(p.id))
                .collect::<Result<_, _>>()?,
            next,
        ))
    }

    fn count(&self, c: Collection, filter: &[Cond]) -> Result<u64, StoreError> {
        let mut request = CountPointsBuilder::new(self.name(c)).exact(true);
        if let Some(f) = convert::filter(filter) {
            request = request.filter(f);
        }
        let response = self.block_on(self.client.count(request)).map_err(error)?;
        Ok(response.result.map_or(0, |r| r.count))
    }

    fn delete(&self, c: Collection, ids: Vec<Uuid>) -> Result<(), StoreError> {
        let request = DeletePointsBuilder::new(self.name(c))
            .points(PointsIdsList {
                ids: point_ids(&ids),
            })
            .wait(true);
        self.block_on(self.client.delete_points(request))
            .map_err(error)?;
        Ok(())
    }

    fn snapshot(&self, c: Collection) -> Result<SnapshotInfo, StoreError> {
        let name = self.name(c);
        let response = self
            .block_on(self.client.create_snapshot(name.as_str()))
            .map_err(error)?;
        let description = response.snapshot_description.ok_or_else(|| {
            StoreError::unavailable(format!("the server described no snapshot of {name}"))
        })?;
        Ok(snapshot_info(&name, description))
    }

    fn list_snapshots(&self, c: Collection) -> Result<Vec<SnapshotInfo>, StoreError> {
        let name = self.name(c);
        let response = self
            .block_on(self.client.list_snapshots(name.as_str()))
            .map_err(error)?;
        Ok(response
            .snapshot_descriptions
            .into_iter()
            .map(|d| snapshot_info(&name, d))
            .collect())
    }

    fn delete_snapshot(&self, c: Collection, name: &str) -> Result<(), StoreError> {
        let request = DeleteSnapshotRequestBuilder::new(self.name(c), name);
        self.block_on(self.client.delete_snapshot(request))
            .map_err(error)?;
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.block_on(async {
            for c in Collection::ALL {
                let request = CountPointsBuilder::new(self.name(c)).exact(false);
                self.client.count(request).await.map_err(error)?;
            }
            Ok(())
        })
    }

    fn optimize(&self) -> Result<(), StoreError> {
        // The server runs its optimizers by itself.
        Ok(())
    }
}

fn snapshot_info(collection: &str, d: qdrant_client::qdrant::SnapshotDescription) -> SnapshotInfo {
    let created_at = d
        .creation_time
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    SnapshotInfo {
        collection: collection.into(),
        name: d.name,
        created_at,
        size_bytes: u64::try_from(d.size).unwrap_or(0),
    }
}
