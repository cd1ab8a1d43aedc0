//! `/api/v1/plugins`: list, deploy and remove plugins. Deploying needs the
//! `deploy` scope; an upload is validated (compiled, its imports checked
//! against its grants, `describe` called) before it is written atomically
//! into the plugins folder, so a bad upload never replaces a working plugin.

use super::auth::{Caller, Scope};
use super::error::ApiError;
use super::{AppState, ValidPath};
use crate::runtime::{MAX_MANIFEST_BYTES, Manifest, PluginSummary};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::Value;
use std::path::PathBuf;

/// Largest component an upload may carry (the same cap as a file in the plugins folder).
pub use crate::runtime::MAX_PLUGIN_BYTES;

fn plugin_file(state: &AppState, name: &str, extension: &str) -> Result<PathBuf, ApiError> {
    let valid = (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
        && !name.starts_with('.');
    if !valid {
        return Err(ApiError::invalid(
            "name",
            "plugin file names are 1-64 characters of a-z, 0-9, '-', '_', '.'",
        ));
    }
    Ok(state.registry.dir().join(format!("{name}.{extension}")))
}

/// Writes through a temporary file and a rename, so the watcher never sees half a file.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("upload-{}", uuid::Uuid::new_v4()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// Loads `wasm` with `manifest` exactly as the registry would, without registering it.
async fn validate(state: &AppState, wasm: Bytes, manifest: Manifest) -> Result<(), ApiError> {
    let runtime = state.registry.runtime().clone();
    tokio::task::spawn_blocking(move || runtime.load(&wasm, manifest, None, None).map(|_| ()))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::invalid("body", format!("plugin refused: {e}")))
}

async fn rescan(state: &AppState) -> Result<(), ApiError> {
    let registry = state.registry.clone();
    tokio::task::spawn_blocking(move || registry.scan())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(())
}

fn summary_of(state: &AppState, path: &std::path::Path) -> Option<PluginSummary> {
    state
        .registry
        .plugins()
        .into_iter()
        .find(|p| p.file == path)
}

/// Registered plugins with versions, tasks, queues, limits and grants, and refused files.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", responses((status = 200, body = Object)), security(("bearer" = [])))]
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

/// Deploys a component (`application/wasm` body) as `plugins/{name}.wasm`.
#[utoipa::path(put, path = "/api/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 200, body = Object), (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(name): ValidPath<String>,
    body: axum::body::Body,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Deploy)?;
    let path = plugin_file(&state, &name, "wasm")?;
    let wasm = super::read_body(body, MAX_PLUGIN_BYTES).await?;
    let manifest = match std::fs::read_to_string(path.with_extension("toml")) {
        Ok(text) => Manifest::from_toml(&text)
            .map_err(|e| ApiError::conflict(format!("the plugin's manifest is invalid: {e}")))?,
        Err(_) => Manifest::default(),
    };
    validate(&state, wasm.clone(), manifest).await?;
    write_atomically(&path, &wasm).map_err(|e| ApiError::unavailable(e.to_string()))?;
    rescan(&state).await?;
    let summary = summary_of(&state, &path).ok_or_else(|| {
        let reason = state
            .registry
            .rejections()
            .into_iter()
            .find(|r| r.path == path)
            .map(|r| r.reason);
        ApiError::conflict(reason.unwrap_or_else(|| "the plugin was not registered".into()))
    })?;
    Ok(axum::Json(serde_json::json!({ "deployed": summary })))
}

/// Sets `plugins/{name}.toml` (limits, queue, grants), validated against the deployed component.
#[utoipa::path(put, path = "/api/v1/plugins/{name}/manifest", tag = "plugins", params(("name" = String, Path)),
    request_body(content = String, content_type = "application/toml"),
    responses((status = 200, body = Object), (status = 400, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn upload_manifest(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(name): ValidPath<String>,
    body: axum::body::Body,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Deploy)?;
    let wasm_path = plugin_file(&state, &name, "wasm")?;
    let text = super::read_body(body, MAX_MANIFEST_BYTES).await?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| ApiError::invalid("body", "the manifest is not UTF-8"))?;
    let manifest = Manifest::from_toml(text)
        .map_err(|e| ApiError::invalid("body", format!("invalid manifest: {e}")))?;
    if let Ok(wasm) = std::fs::read(&wasm_path) {
        validate(&state, Bytes::from(wasm), manifest).await?;
    }
    write_atomically(&wasm_path.with_extension("toml"), text.as_bytes())
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    rescan(&state).await?;
    Ok(axum::Json(
        serde_json::json!({ "manifest": name, "plugin": summary_of(&state, &wasm_path) }),
    ))
}

/// Removes `plugins/{name}.wasm` (and its manifest); running tasks finish on it.
#[utoipa::path(delete, path = "/api/v1/plugins/{name}", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::error::ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ValidPath(name): ValidPath<String>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Deploy)?;
    let path = plugin_file(&state, &name, "wasm")?;
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!("no plugin file {name}.wasm")));
        }
        Err(e) => return Err(ApiError::unavailable(e.to_string())),
    }
    let _ = std::fs::remove_file(path.with_extension("toml"));
    rescan(&state).await?;
    Ok(axum::Json(serde_json::json!({ "removed": name })))
}
