//! `/api/v1/plugins`: list, deploy and remove plugins. Deploying needs the
//! `deploy` scope. An upload is validated (compiled, its imports checked
//! against its grants, `describe` called) and its names checked against
//! their owners (see `runtime::names`) before anything is written; it is
//! then written atomically into the plugins folder, and taken back if the
//! rescan still refuses it. So a refused upload leaves nothing behind and a
//! bad one never replaces a working plugin. A new plugin that needs grants
//! is deployed with its manifest in the same request (`multipart/form-data`):
//! a manifest alone is only accepted for a plugin file that exists. The
//! folder work runs on the blocking pool, never on the async threads.

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::{AppState, ValidPath};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use hippo_runtime::{DeployError, MAX_MANIFEST_BYTES, PluginRegistry};
use serde_json::Value;
use std::sync::Arc;

/// Largest component an upload may carry (the same cap as a file in the plugins folder).
pub use hippo_runtime::MAX_PLUGIN_BYTES;

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> Self {
        let message = error.to_string();
        match error {
            DeployError::InvalidName => ApiError::invalid("name", message),
            DeployError::NotFound(_) => ApiError::not_found(message),
            DeployError::Refused(_) | DeployError::InvalidManifest(_) => {
                ApiError::invalid("body", message)
            }
            DeployError::ManifestUnreadable { .. }
            | DeployError::ManifestInvalid { .. }
            | DeployError::Conflict(_) => ApiError::conflict(message),
            // The plugins folder failed, or a failure a later registry
            // names: the service, not the request, is at fault.
            DeployError::Io(_) | _ => ApiError::unavailable(message),
        }
    }
}

/// Runs `work` on the registry on the blocking pool: it reads and writes
/// the plugins folder and compiles components.
async fn on_registry<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&PluginRegistry) -> Result<T, DeployError> + Send + 'static,
) -> Result<T, ApiError> {
    let registry: Arc<PluginRegistry> = state.registry.clone();
    tokio::task::spawn_blocking(move || work(&registry))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(ApiError::from)
}

/// Registered plugins with versions, tasks, queues, limits and grants, and refused files.
#[utoipa::path(get, operation_id = "list_plugins", path = "/api/v1/plugins", tag = "plugins", responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(serde_json::json!({
        "plugins": state.registry.plugins(),
        "refused": state.registry.rejections(),
    })))
}

/// A WebAssembly component's bytes, as the OpenAPI document describes an
/// upload's body (the handler reads the body itself).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct WasmComponent(#[allow(dead_code)] Vec<u8>);

/// Deploys a component as `plugins/{name}.wasm`: the body is the component
/// (`application/wasm`), or `multipart/form-data` with a `wasm` part and a
/// `manifest` part (TOML), deployed together as `plugins/{name}.toml`.
#[utoipa::path(put, path = "/api/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path, pattern = r"^[a-z0-9_-][a-z0-9._-]{0,63}$", description = "The deployment: `plugins/{name}.wasm`")),
    request_body(content = WasmComponent, content_type = "application/wasm"),
    responses((status = 200, body = Object), (status = 400, body = super::error::ErrorBody),
        (status = 409, description = "a name it declares belongs to another plugin file", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(name): ValidPath<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Deploy)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let (wasm, manifest) = match multer::parse_boundary(content_type) {
        Ok(boundary) => plugin_parts(body, boundary).await?,
        Err(_) => (super::read_body(body, MAX_PLUGIN_BYTES).await?, None),
    };
    let deployed = on_registry(&state, move |registry| {
        registry.deploy(&name, &wasm, manifest.as_deref())
    })
    .await?;
    Ok(axum::Json(serde_json::json!({ "deployed": deployed })))
}

/// The `wasm` part and the optional `manifest` part of a multipart upload.
async fn plugin_parts(
    body: axum::body::Body,
    boundary: String,
) -> Result<(Bytes, Option<String>), ApiError> {
    // Room for both parts and their headers.
    let bytes = super::read_body(body, MAX_PLUGIN_BYTES + MAX_MANIFEST_BYTES + (64 << 10)).await?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let (mut wasm, mut manifest) = (None, None);
    let malformed =
        |e: multer::Error| ApiError::invalid("body", format!("malformed multipart body: {e}"));
    while let Some(part) = parts.next_field().await.map_err(malformed)? {
        let name = part.name().unwrap_or_default().to_string();
        let (slot, limit) = match name.as_str() {
            "wasm" => (&mut wasm, MAX_PLUGIN_BYTES),
            "manifest" => (&mut manifest, MAX_MANIFEST_BYTES),
            _ => {
                return Err(ApiError::invalid(
                    "body",
                    format!("unknown part {name:?}: the parts are `wasm` and `manifest`"),
                ));
            }
        };
        let content = part.bytes().await.map_err(malformed)?;
        if content.len() > limit {
            return Err(ApiError::invalid(
                "body",
                format!("the `{name}` part exceeds {limit} bytes"),
            ));
        }
        if slot.replace(content).is_some() {
            return Err(ApiError::invalid("body", format!("two `{name}` parts")));
        }
    }
    let wasm = wasm.ok_or_else(|| ApiError::invalid("body", "no `wasm` part"))?;
    let manifest = manifest
        .map(|text| String::from_utf8(text.to_vec()))
        .transpose()
        .map_err(|_| ApiError::invalid("body", "the manifest is not UTF-8"))?;
    Ok((wasm, manifest))
}

/// Sets `plugins/{name}.toml` (limits, queue, grants) of the deployed `plugins/{name}.wasm`, validated against it.
#[utoipa::path(put, path = "/api/v1/plugins/{name}/manifest", tag = "plugins", params(("name" = String, Path, pattern = r"^[a-z0-9_-][a-z0-9._-]{0,63}$", description = "The deployment: `plugins/{name}.wasm`")),
    request_body(content = String, content_type = "application/toml"),
    responses((status = 200, body = Object), (status = 400, body = super::error::ErrorBody),
        (status = 404, description = "no such plugin file", body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload_manifest(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(name): ValidPath<String>,
    body: axum::body::Body,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Deploy)?;
    let text = super::read_body(body, MAX_MANIFEST_BYTES).await?;
    let text = String::from_utf8(text.to_vec())
        .map_err(|_| ApiError::invalid("body", "the manifest is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid(
            "body",
            "the manifest is empty: send its TOML (limits, queue, grants)",
        ));
    }
    let (plugin, name) = on_registry(&state, move |registry| {
        registry
            .set_manifest(&name, &text)
            .map(|plugin| (plugin, name))
    })
    .await?;
    Ok(axum::Json(
        serde_json::json!({ "manifest": name, "plugin": plugin }),
    ))
}

/// Removes `plugins/{name}.wasm` (and its manifest); running tasks finish on it.
#[utoipa::path(delete, path = "/api/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path, pattern = r"^[a-z0-9_-][a-z0-9._-]{0,63}$", description = "The deployment: `plugins/{name}.wasm`")),
    responses((status = 200, body = Object), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(name): ValidPath<String>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Deploy)?;
    let name = on_registry(&state, move |registry| {
        registry.undeploy(&name).map(|()| name)
    })
    .await?;
    Ok(axum::Json(serde_json::json!({ "removed": name })))
}
