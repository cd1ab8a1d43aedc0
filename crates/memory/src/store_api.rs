//! The host side of `hippo:tasks/memory-store`: typed records in and out,
//! and the isolation rule: a task acts for the user its submission acts for
//! (decided once, at submission) and sees and changes only that user's
//! memories, whatever it asks; only plugins granted `memory-maintenance`
//! act across users.

use crate::MemoryTask;
use crate::bindings::hippo::tasks::memory_store as wit;
use hippo_store::{self as store, StoreError, VectorStore};
use std::sync::Arc;

type WitResult<T> = Result<T, wit::StoreError>;

impl From<StoreError> for wit::StoreError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Invalid(message) => wit::StoreError::Invalid(message),
            other => wit::StoreError::Unavailable(other.to_string()),
        }
    }
}

fn forbidden(message: impl Into<String>) -> wit::StoreError {
    wit::StoreError::Forbidden(message.into())
}

impl MemoryTask {
    fn memory_store(&self) -> WitResult<Arc<dyn VectorStore>> {
        self.services.store.clone().ok_or_else(|| {
            wit::StoreError::Unavailable("no memory store is configured on this host".into())
        })
    }

    /// The user every call of this task is limited to (`None`: maintenance, all users).
    fn acting_user(&self) -> WitResult<Option<&str>> {
        if self.maintenance {
            return Ok(None);
        }
        match self.user.as_deref() {
            Some(user) => Ok(Some(user)),
            None => Err(forbidden(
                "the task acts for no user (its submission named no user_id), so it may not use the memory store",
            )),
        }
    }

    /// The guest's filter, limited to the acting user.
    fn scoped(&self, filter: wit::Filter) -> WitResult<store::Filter> {
        let mut filter = filter_from_wit(filter)?;
        if let Some(user) = self.acting_user()? {
            match filter.user_id.as_deref() {
                Some(asked) if asked != user => {
                    return Err(forbidden(format!(
                        "a task acting for {user:?} may not read {asked:?}'s memories"
                    )));
                }
                _ => filter.user_id = Some(user.to_string()),
            }
        }
        Ok(filter)
    }

    /// The user every call is limited to, owned, for work sent to another thread.
    fn acting_user_owned(&self) -> WitResult<Option<String>> {
        Ok(self.acting_user()?.map(str::to_owned))
    }
}

/// Runs `work` on `store` on a blocking thread: the store's calls block (an
/// embedded shard computes, a server is called synchronously), and the
/// guest waits for it as a future. A free function, so the future holds no
/// borrow of the task's state (which is not `Sync`).
async fn on_store<T: Send + 'static>(
    store: Arc<dyn VectorStore>,
    work: impl FnOnce(&dyn VectorStore) -> WitResult<T> + Send + 'static,
) -> WitResult<T> {
    tokio::task::spawn_blocking(move || work(&*store))
        .await
        .map_err(|e| wit::StoreError::Unavailable(format!("the store call failed: {e}")))?
}

/// The memories with `ids` that exist and `user` may see (`None`: all).
fn visible(
    store: &dyn VectorStore,
    ids: &[String],
    user: Option<&str>,
) -> WitResult<Vec<store::Stored>> {
    Ok(store
        .get(ids)?
        .into_iter()
        .filter(|s| user.is_none_or(|u| s.memory.user_id == u))
        .collect())
}

impl wit::Host for MemoryTask {
    async fn upsert(&mut self, items: Vec<wit::Stored>) -> WitResult<()> {
        let items = items
            .into_iter()
            .map(stored_from_wit)
            .collect::<WitResult<Vec<_>>>()?;
        let user = self.acting_user_owned()?;
        if let Some(user) = &user
            && let Some(other) = items.iter().find(|s| s.memory.user_id != *user)
        {
            return Err(forbidden(format!(
                "a task acting for {user:?} may not write a memory of {:?}",
                other.memory.user_id
            )));
        }
        on_store(self.memory_store()?, move |store| {
            if let Some(user) = user {
                // An id taken by another user's memory must not be overwritten.
                let ids: Vec<String> = items.iter().map(|s| s.memory.id.clone()).collect();
                if let Some(taken) = store.get(&ids)?.iter().find(|s| s.memory.user_id != user) {
                    return Err(forbidden(format!(
                        "memory {} belongs to another user",
                        taken.memory.id
                    )));
                }
            }
            Ok(store.upsert(items)?)
        })
        .await
    }

    async fn get(&mut self, ids: Vec<String>) -> WitResult<Vec<wit::Stored>> {
        let user = self.acting_user_owned()?;
        on_store(self.memory_store()?, move |store| {
            Ok(visible(store, &ids, user.as_deref())?
                .into_iter()
                .map(stored_to_wit)
                .collect())
        })
        .await
    }

    async fn search(
        &mut self,
        vector: Vec<f32>,
        filter: wit::Filter,
        limit: u32,
    ) -> WitResult<Vec<wit::Hit>> {
        let filter = self.scoped(filter)?;
        on_store(self.memory_store()?, move |store| {
            Ok(hits(store.search(&vector, &filter, limit as usize)?))
        })
        .await
    }

    async fn keyword_search(
        &mut self,
        query: String,
        filter: wit::Filter,
        limit: u32,
    ) -> WitResult<Vec<wit::Hit>> {
        let filter = self.scoped(filter)?;
        on_store(self.memory_store()?, move |store| {
            Ok(hits(store.keyword_search(
                &query,
                &filter,
                limit as usize,
            )?))
        })
        .await
    }

    async fn hybrid_search(
        &mut self,
        vector: Vec<f32>,
        query: String,
        filter: wit::Filter,
        candidates: u32,
        limit: u32,
    ) -> WitResult<Vec<wit::Hit>> {
        let filter = self.scoped(filter)?;
        on_store(self.memory_store()?, move |store| {
            Ok(hits(store.hybrid_search(
                &vector,
                &query,
                &filter,
                candidates as usize,
                limit as usize,
            )?))
        })
        .await
    }

    async fn scroll(
        &mut self,
        filter: wit::Filter,
        cursor: Option<String>,
        limit: u32,
    ) -> WitResult<wit::Page> {
        let filter = self.scoped(filter)?;
        on_store(self.memory_store()?, move |store| {
            let page = store.scroll(&filter, cursor.as_deref(), limit as usize)?;
            Ok(wit::Page {
                items: page.items.into_iter().map(stored_to_wit).collect(),
                next: page.next,
            })
        })
        .await
    }

    async fn count(&mut self, filter: wit::Filter) -> WitResult<u64> {
        let filter = self.scoped(filter)?;
        on_store(self.memory_store()?, move |store| Ok(store.count(&filter)?)).await
    }

    async fn delete(&mut self, ids: Vec<String>) -> WitResult<u64> {
        let user = self.acting_user_owned()?;
        on_store(self.memory_store()?, move |store| {
            let owned: Vec<String> = visible(store, &ids, user.as_deref())?
                .into_iter()
                .map(|s| s.memory.id)
                .collect();
            if owned.is_empty() {
                return Ok(0);
            }
            Ok(store.delete(&owned)?)
        })
        .await
    }

    async fn delete_matching(&mut self, filter: wit::Filter) -> WitResult<u64> {
        let filter = self.scoped(filter)?;
        on_store(self.memory_store()?, move |store| {
            Ok(store.delete_matching(&filter)?)
        })
        .await
    }

    async fn snapshot(&mut self, keep: u32) -> WitResult<Vec<wit::SnapshotInfo>> {
        if !self.maintenance {
            return Err(forbidden("snapshots need the memory-maintenance grant"));
        }
        on_store(self.memory_store()?, move |store| {
            Ok(store
                .snapshot(keep as usize)?
                .into_iter()
                .map(|s| wit::SnapshotInfo {
                    collection: s.collection,
                    name: s.name,
                    created_at: s.created_at,
                    size_bytes: s.size_bytes,
                })
                .collect())
        })
        .await
    }
}

fn hits(hits: Vec<store::Hit>) -> Vec<wit::Hit> {
    hits.into_iter()
        .map(|h| wit::Hit {
            memory: memory_to_wit(h.memory),
            vector: h.vector,
            score: h.score,
        })
        .collect()
}

fn memory_type_from_wit(t: wit::MemoryType) -> store::MemoryType {
    use store::MemoryType as S;
    use wit::MemoryType as W;
    match t {
        W::Preference => S::Preference,
        W::Fact => S::Fact,
        W::Goal => S::Goal,
        W::Habit => S::Habit,
        W::Event => S::Event,
        W::Context => S::Context,
        W::Summary => S::Summary,
        W::Procedural => S::Procedural,
        W::Prospective => S::Prospective,
    }
}

fn memory_type_to_wit(t: store::MemoryType) -> wit::MemoryType {
    use store::MemoryType as S;
    use wit::MemoryType as W;
    match t {
        S::Preference => W::Preference,
        S::Fact => W::Fact,
        S::Goal => W::Goal,
        S::Habit => W::Habit,
        S::Event => W::Event,
        S::Context => W::Context,
        S::Summary => W::Summary,
        S::Procedural => W::Procedural,
        S::Prospective => W::Prospective,
    }
}

fn visibility_from_wit(v: wit::Visibility) -> store::Visibility {
    match v {
        wit::Visibility::Private => store::Visibility::Private,
        wit::Visibility::Shared => store::Visibility::Shared,
        wit::Visibility::Public => store::Visibility::Public,
    }
}

fn visibility_to_wit(v: store::Visibility) -> wit::Visibility {
    match v {
        store::Visibility::Private => wit::Visibility::Private,
        store::Visibility::Shared => wit::Visibility::Shared,
        store::Visibility::Public => wit::Visibility::Public,
    }
}

fn memory_from_wit(m: wit::Memory) -> WitResult<store::Memory> {
    let metadata = if m.metadata.trim().is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_str::<serde_json::Value>(&m.metadata) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(wit::StoreError::Invalid(format!(
                    "memory {}: metadata must be a JSON object",
                    m.id
                )));
            }
        }
    };
    Ok(store::Memory {
        id: m.id,
        text: m.text,
        user_id: m.user_id,
        session_id: m.session_id,
        memory_type: memory_type_from_wit(m.memory_type),
        importance: m.importance,
        confidence: m.confidence,
        tags: m.tags,
        created_at: m.created_at,
        updated_at: m.updated_at,
        expires_at: m.expires_at,
        decayed_at: m.decayed_at,
        access_count: m.access_count,
        metadata,
        agent_id: m.agent_id,
        run_id: m.run_id,
        visibility: m.visibility.map(visibility_from_wit),
        is_archived: m.is_archived,
        promotion_count: m.promotion_count,
    })
}

fn memory_to_wit(m: store::Memory) -> wit::Memory {
    wit::Memory {
        id: m.id,
        text: m.text,
        user_id: m.user_id,
        session_id: m.session_id,
        memory_type: memory_type_to_wit(m.memory_type),
        importance: m.importance,
        confidence: m.confidence,
        tags: m.tags,
        created_at: m.created_at,
        updated_at: m.updated_at,
        expires_at: m.expires_at,
        decayed_at: m.decayed_at,
        access_count: m.access_count,
        metadata: serde_json::Value::Object(m.metadata).to_string(),
        agent_id: m.agent_id,
        run_id: m.run_id,
        visibility: m.visibility.map(visibility_to_wit),
        is_archived: m.is_archived,
        promotion_count: m.promotion_count,
    }
}

fn stored_from_wit(s: wit::Stored) -> WitResult<store::Stored> {
    Ok(store::Stored {
        memory: memory_from_wit(s.memory)?,
        vector: s.vector,
    })
}

fn stored_to_wit(s: store::Stored) -> wit::Stored {
    wit::Stored {
        memory: memory_to_wit(s.memory),
        vector: s.vector,
    }
}

fn filter_from_wit(f: wit::Filter) -> WitResult<store::Filter> {
    Ok(store::Filter {
        user_id: f.user_id,
        ids: f.ids,
        memory_types: f
            .memory_types
            .into_iter()
            .map(memory_type_from_wit)
            .collect(),
        tags_any: f.tags_any,
        min_importance: f.min_importance,
        max_importance: f.max_importance,
        created_after: f.created_after,
        created_before: f.created_before,
        updated_after: f.updated_after,
        updated_before: f.updated_before,
        expires_before: f.expires_before,
        session_id: f.session_id,
        include_archived: f.include_archived,
    })
}
