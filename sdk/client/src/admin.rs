//! Inspection and control, the routes Flower's API offers: workers, queues,
//! scheduled tasks, purges, dead letters, plugins and health.

use super::{Body, Client, ClientError, DEPLOY_TIMEOUT, TaskHandle, decode};
use crate::types::{ActiveTasks, Health, PluginInfo, Plugins, QueueStats, TaskStatus, WorkerInfo};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// `{"purged": n}`.
#[derive(serde::Deserialize)]
struct Purged {
    purged: u64,
}

impl Client {
    /// Workers with their latest heartbeat: queues, concurrency, active
    /// tasks, counts, CPU, memory.
    pub async fn inspect_stats(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            workers: Vec<WorkerInfo>,
        }
        let answer: Answer = self
            .get_json(&["api", "v1", "tasks", "inspect", "stats"])
            .await?;
        Ok(answer.workers)
    }

    /// Ready, reserved and scheduled counts per queue.
    pub async fn inspect_queues(&self) -> Result<Vec<QueueStats>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            queues: Vec<QueueStats>,
        }
        let answer: Answer = self
            .get_json(&["api", "v1", "tasks", "inspect", "queues"])
            .await?;
        Ok(answer.queues)
    }

    /// Tasks held by workers: running, and reserved for a free slot.
    pub async fn inspect_active(&self) -> Result<ActiveTasks, ClientError> {
        self.get_json(&["api", "v1", "tasks", "inspect", "active"])
            .await
    }

    /// Tasks waiting for their ETA, countdown or retry time, soonest first.
    pub async fn inspect_scheduled(&self) -> Result<Vec<TaskStatus>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            scheduled: Vec<TaskStatus>,
        }
        let answer: Answer = self
            .get_json(&["api", "v1", "tasks", "inspect", "scheduled"])
            .await?;
        Ok(answer.scheduled)
    }

    // ---- administration ----

    /// Drops every waiting task of `queue` (they become `REVOKED`); returns
    /// how many. Needs the `admin` scope.
    pub async fn purge_queue(&self, queue: &str) -> Result<u64, ClientError> {
        let answer: Purged = self
            .call(
                Method::DELETE,
                &["api", "v1", "tasks", "queues", queue],
                &[("confirm", "true")],
                Body::None,
                self.timeout,
            )
            .await?;
        Ok(answer.purged)
    }

    /// Tasks that failed for good, newest first.
    pub async fn dead_letters(&self) -> Result<Vec<TaskStatus>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            dead_letters: Vec<TaskStatus>,
        }
        let answer: Answer = self
            .get_json(&["api", "v1", "tasks", "deadletters"])
            .await?;
        Ok(answer.dead_letters)
    }

    /// Submits a dead letter again as a first attempt; returns the new task.
    /// Needs the `admin` scope.
    pub async fn replay_dead_letter(&self, id: &str) -> Result<TaskHandle, ClientError> {
        self.queue(
            &["api", "v1", "tasks", "deadletters", id, "replay"],
            Body::None,
        )
        .await
    }

    /// Forgets every dead letter; returns how many. Needs the `admin` scope.
    pub async fn purge_dead_letters(&self) -> Result<u64, ClientError> {
        let answer: Purged = self
            .call(
                Method::DELETE,
                &["api", "v1", "tasks", "deadletters"],
                &[("confirm", "true")],
                Body::None,
                self.timeout,
            )
            .await?;
        Ok(answer.purged)
    }

    // ---- plugins ----

    /// The plugins in service, and the files the server refused.
    pub async fn plugins(&self) -> Result<Plugins, ClientError> {
        self.get_json(&["api", "v1", "plugins"]).await
    }

    /// Deploys a component as `plugins/{name}.wasm`. The server validates it
    /// (compiles it, checks its imports against its manifest's grants, calls
    /// `describe`) before it replaces anything, so a refused upload leaves
    /// the previous version serving. Needs the `deploy` scope.
    pub async fn deploy(
        &self,
        name: &str,
        wasm: impl Into<Vec<u8>>,
    ) -> Result<PluginInfo, ClientError> {
        let body = Body::Raw(wasm.into(), "application/wasm".into());
        self.put_plugin(name, body).await
    }

    /// Deploys a component as `plugins/{name}.wasm` together with its
    /// manifest (limits, queue, grants) as `plugins/{name}.toml`, in one
    /// request: validated with that manifest before either replaces anything.
    /// This is how a new plugin that needs grants is deployed. Needs the
    /// `deploy` scope.
    pub async fn deploy_with_manifest(
        &self,
        name: &str,
        wasm: impl Into<Vec<u8>>,
        toml: impl Into<String>,
    ) -> Result<PluginInfo, ClientError> {
        let body = multipart(&[
            ("manifest", "application/toml", &toml.into().into_bytes()),
            ("wasm", "application/wasm", &wasm.into()),
        ]);
        self.put_plugin(name, body).await
    }

    /// `PUT /api/v1/plugins/{name}` with `body`: what was deployed.
    async fn put_plugin(&self, name: &str, body: Body) -> Result<PluginInfo, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            deployed: PluginInfo,
        }
        let answer: Answer = self
            .call(
                Method::PUT,
                &["api", "v1", "plugins", name],
                &[],
                body,
                self.timeout.max(DEPLOY_TIMEOUT),
            )
            .await?;
        Ok(answer.deployed)
    }

    /// Sets `plugins/{name}.toml` (limits, queue, grants) of the deployed
    /// `plugins/{name}.wasm`, validated against it; returns that plugin as it
    /// now serves. A plugin that is not deployed is a `not_found` error: see
    /// [`deploy_with_manifest`](Client::deploy_with_manifest). Needs the
    /// `deploy` scope.
    pub async fn deploy_manifest(
        &self,
        name: &str,
        toml: impl Into<String>,
    ) -> Result<Option<PluginInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            plugin: Option<PluginInfo>,
        }
        let body = Body::Raw(toml.into().into_bytes(), "application/toml".into());
        let answer: Answer = self
            .call(
                Method::PUT,
                &["api", "v1", "plugins", name, "manifest"],
                &[],
                body,
                self.timeout.max(DEPLOY_TIMEOUT),
            )
            .await?;
        Ok(answer.plugin)
    }

    /// Removes `plugins/{name}.wasm` and its manifest; running tasks finish
    /// on it. Needs the `deploy` scope.
    pub async fn remove_plugin(&self, name: &str) -> Result<(), ClientError> {
        let _: Value = self
            .call(
                Method::DELETE,
                &["api", "v1", "plugins", name],
                &[],
                Body::None,
                self.timeout,
            )
            .await?;
        Ok(())
    }

    // ---- health ----

    /// `/healthz`: the process is up. Needs no key.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get_json(&["healthz"]).await
    }

    /// `/readyz`: the broker answers and the plugins are loaded. A server
    /// that is up but not ready answers 503 with the same body: that is an
    /// `Ok` whose [`Health::is_ok`] is false. Needs no key.
    pub async fn ready(&self) -> Result<Health, ClientError> {
        let (status, bytes) = self
            .send(Method::GET, &["readyz"], &[], Body::None, self.timeout)
            .await?;
        if status == StatusCode::SERVICE_UNAVAILABLE
            && let Ok(health) = serde_json::from_slice::<Health>(&bytes)
        {
            return Ok(health);
        }
        decode(status, &bytes)
    }
}

/// A `multipart/form-data` body of `(name, content type, content)` parts,
/// with a boundary found in none of the contents.
fn multipart(parts: &[(&str, &str, &[u8])]) -> Body {
    let boundary = (0u64..)
        .map(|n| format!("hippo-plugin-upload-{n}"))
        .find(|boundary| {
            parts.iter().all(|(_, _, content)| {
                !content
                    .windows(boundary.len())
                    .any(|window| window == boundary.as_bytes())
            })
        })
        .unwrap_or_default();
    let mut body = Vec::with_capacity(parts.iter().map(|(_, _, c)| c.len() + 200).sum());
    for (name, content_type, content) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Body::Raw(body, format!("multipart/form-data; boundary={boundary}"))
}
