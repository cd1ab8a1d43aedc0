//! Typed helpers for the memory tasks: queued (`/api/v1/tasks/memory/*`,
//! each returns a [`TaskHandle`], the reference's `delay()` flow) and inline
//! (`/api/v1/memories`, the answer now).
//!
//! ```no_run
//! use hippo_client::{Client, NewMemory, RecallRequest};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), hippo_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:8000", "my-key")?;
//! let task = client
//!     .create_memory(&NewMemory::new("alice", "I prefer dark chocolate").memory_type("preference"))
//!     .await?;
//! let created: hippo_client::Created = task.get_as(Duration::from_secs(10)).await?;
//! println!("stored {}", created.memory.id);
//!
//! let found = client.recall_now(&RecallRequest::new("alice", "what sweets does she like?")).await?;
//! for hit in &found.results {
//!     println!("{:.3} {}", hit.score, hit.memory.text);
//! }
//! # Ok(()) }
//! ```

mod answers;

pub use answers::{
    BatchCreated, CreateAction, Created, Memory, MemoryPage, RecallHit, Recalled, ScoreBreakdown,
    ScoreWeights, Updated,
};

use super::{Body, Client, ClientError, TaskHandle, json};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Map, Value};

/// A memory to create. Absent fields take the server's defaults (type
/// `fact`, importance scored from the text, duplicates checked).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewMemory {
    /// The memory's text.
    pub text: String,
    /// Its owner.
    pub user_id: String,
    /// `preference`, `fact`, `goal`, `habit`, `event`, `context`, `summary`,
    /// `procedural` or `prospective`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_type: Option<String>,
    /// 0 to 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub importance: Option<f32>,
    /// Tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// A JSON object kept with the memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The conversation it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Expire this many days from now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_days: Option<f64>,
    /// When it was said (RFC 3339, not in the future), for memories imported
    /// from an older conversation; when it is stored by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Look for duplicates first (the server's default: true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_duplicates: Option<bool>,
}

impl NewMemory {
    /// A memory of `user_id` with `text` and every other field at its default.
    pub fn new(user_id: impl Into<String>, text: impl Into<String>) -> Self {
        NewMemory {
            text: text.into(),
            user_id: user_id.into(),
            ..NewMemory::default()
        }
    }

    /// Sets the type.
    pub fn memory_type(mut self, memory_type: impl Into<String>) -> Self {
        self.memory_type = Some(memory_type.into());
        self
    }

    /// Sets the importance (0 to 10).
    pub fn importance(mut self, importance: f32) -> Self {
        self.importance = Some(importance);
        self
    }

    /// Sets the tags.
    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Expires the memory `days` from now.
    pub fn ttl_days(mut self, days: f64) -> Self {
        self.ttl_days = Some(days);
        self
    }

    /// Dates the memory when it was said (RFC 3339), not when it is stored.
    pub fn created_at(mut self, time: impl Into<String>) -> Self {
        self.created_at = Some(time.into());
        self
    }
}

/// A recall: the `k` memories of `user_id` that best answer `query`.
#[derive(Debug, Clone, Serialize)]
pub struct RecallRequest {
    /// What to look for.
    pub query: String,
    /// Whose memories.
    pub user_id: String,
    /// How many (the server's default: 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// Conditions (`memory_types`, `tags`, `min_importance`, `created_after`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Value>,
    /// `hybrid` (default), `vector` or `keyword`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl RecallRequest {
    /// A recall of `query` over `user_id`'s memories with the defaults.
    pub fn new(user_id: impl Into<String>, query: impl Into<String>) -> Self {
        RecallRequest {
            query: query.into(),
            user_id: user_id.into(),
            k: None,
            filters: None,
            mode: None,
        }
    }

    /// Sets how many memories to return.
    pub fn k(mut self, k: u32) -> Self {
        self.k = Some(k);
        self
    }
}

#[derive(Serialize)]
struct Batch<'a> {
    memories: &'a [NewMemory],
    check_duplicates: bool,
}

#[derive(Serialize)]
struct Owned<'a> {
    memory_id: &'a str,
    user_id: &'a str,
}

#[derive(Serialize)]
struct Update<'a> {
    memory_id: &'a str,
    user_id: &'a str,
    updates: &'a Value,
}

impl Client {
    async fn queue_memory_task(
        &self,
        route: &str,
        body: &impl Serialize,
    ) -> Result<TaskHandle, ClientError> {
        self.queue(&["api", "v1", "tasks", "memory", route], json(body)?)
            .await
    }

    /// Queues `memory.create`.
    pub async fn create_memory(&self, memory: &NewMemory) -> Result<TaskHandle, ClientError> {
        self.queue_memory_task("create", memory).await
    }

    /// Queues `memory.batch-create` (all memories of one user).
    pub async fn batch_create_memories(
        &self,
        memories: &[NewMemory],
        check_duplicates: bool,
    ) -> Result<TaskHandle, ClientError> {
        let batch = Batch {
            memories,
            check_duplicates,
        };
        self.queue_memory_task("batch-create", &batch).await
    }

    /// Queues `memory.recall`.
    pub async fn recall(&self, recall: &RecallRequest) -> Result<TaskHandle, ClientError> {
        self.queue_memory_task("recall", recall).await
    }

    /// Queues `memory.update` with `updates` (`text`, `importance`, `tags`,
    /// `metadata`, `expires_at`, `memory_type`).
    pub async fn update_memory(
        &self,
        user_id: &str,
        memory_id: &str,
        updates: &Value,
    ) -> Result<TaskHandle, ClientError> {
        let body = Update {
            memory_id,
            user_id,
            updates,
        };
        self.queue_memory_task("update", &body).await
    }

    /// Queues `memory.delete`.
    pub async fn delete_memory(
        &self,
        user_id: &str,
        memory_id: &str,
    ) -> Result<TaskHandle, ClientError> {
        self.queue_memory_task("delete", &Owned { memory_id, user_id })
            .await
    }

    /// Creates a memory now.
    pub async fn create_memory_now(&self, memory: &NewMemory) -> Result<Created, ClientError> {
        self.call(
            Method::POST,
            &["api", "v1", "memories"],
            &[],
            json(memory)?,
            self.timeout,
        )
        .await
    }

    /// Recalls now: the best memories with their score breakdown.
    pub async fn recall_now(&self, recall: &RecallRequest) -> Result<Recalled, ClientError> {
        self.call(
            Method::POST,
            &["api", "v1", "memories", "recall"],
            &[],
            json(recall)?,
            self.timeout,
        )
        .await
    }

    /// One memory (404 [`ClientError::Api`] when `user_id` has no such memory).
    pub async fn get_memory(&self, user_id: &str, memory_id: &str) -> Result<Memory, ClientError> {
        let found: answers::Found = self
            .call(
                Method::GET,
                &["api", "v1", "memories", memory_id],
                &[("user_id", user_id)],
                Body::None,
                self.timeout,
            )
            .await?;
        Ok(found.memory)
    }

    /// Changes a memory now.
    pub async fn update_memory_now(
        &self,
        user_id: &str,
        memory_id: &str,
        updates: &Value,
    ) -> Result<Updated, ClientError> {
        self.call(
            Method::PATCH,
            &["api", "v1", "memories", memory_id],
            &[("user_id", user_id)],
            json(updates)?,
            self.timeout,
        )
        .await
    }

    /// Deletes a memory now (404 [`ClientError::Api`] when `user_id` has no
    /// such memory).
    pub async fn delete_memory_now(
        &self,
        user_id: &str,
        memory_id: &str,
    ) -> Result<(), ClientError> {
        let _deleted: Value = self
            .call(
                Method::DELETE,
                &["api", "v1", "memories", memory_id],
                &[("user_id", user_id)],
                Body::None,
                self.timeout,
            )
            .await?;
        Ok(())
    }

    /// A page of `user_id`'s memories matching `filters`; pass the answer's
    /// `next` as `cursor` for the following page.
    pub async fn query_memories(
        &self,
        user_id: &str,
        filters: Option<&Value>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<MemoryPage, ClientError> {
        let mut body = serde_json::json!({ "user_id": user_id });
        if let Some(filters) = filters {
            body["filters"] = filters.clone();
        }
        if let Some(limit) = limit {
            body["limit"] = limit.into();
        }
        if let Some(cursor) = cursor {
            body["cursor"] = cursor.into();
        }
        self.call(
            Method::POST,
            &["api", "v1", "memories", "query"],
            &[],
            json(&body)?,
            self.timeout,
        )
        .await
    }
}
