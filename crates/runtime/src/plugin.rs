//! A plugin component, validated, compiled and described: ready to run tasks.

use super::cache::ArtifactCache;
use super::host_api::{GuestState, TaskHostPre};
use super::manifest::{Capability, Manifest};
use hippo_task::LimitOverrides;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// Why a file could not be loaded as a plugin. Loading never panics and
/// never affects plugins already loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// The file is larger than a plugin may be; nothing of it was read.
    #[error("{size} bytes, over the limit of {max}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (bad magic number)")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "a core WebAssembly module, not a component: build plugins with `--target wasm32-wasip2`"
    )]
    CoreModule,
    /// Wasmtime refused to validate or compile the component.
    #[error("invalid component: {0}")]
    Compile(#[source] EngineError),
    /// The component imports a host capability its manifest does not grant.
    #[error("imports `{import}`, which its manifest does not grant (granted: {granted})")]
    NotGranted {
        /// The full import name.
        import: String,
        /// What the manifest grants, comma-separated.
        granted: String,
    },
    /// The component imports an interface the host does not provide.
    #[error("imports `{import}`, which the host does not provide")]
    UnknownImport {
        /// The full import name.
        import: String,
    },
    /// The component's imports or exports do not match the `hippo:tasks` world.
    #[error("does not fit the hippo:tasks world: {0}")]
    Link(#[source] EngineError),
    /// `describe` trapped, timed out or ran out of fuel.
    #[error("describe failed: {0}")]
    Describe(String),
    /// `describe` returned something unusable.
    #[error("invalid describe: {0}")]
    InvalidDescribe(String),
}

/// Wasmtime's error: the text of its whole chain, and the error itself as
/// the source.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct EngineError {
    text: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl From<wasmtime::Error> for EngineError {
    fn from(error: wasmtime::Error) -> Self {
        EngineError {
            text: format!("{error:#}"),
            source: error.into(),
        }
    }
}

/// One task a plugin offers, as its `describe` states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskSpec {
    /// Namespaced task name.
    pub name: String,
    /// What the task does.
    pub description: String,
    /// Queue from `describe`.
    pub default_queue: String,
    /// Limits from `describe`.
    pub limits: LimitOverrides,
}

/// A loaded plugin. Shared (`Arc`) by every task that runs on it, so a
/// running task keeps its version alive after the file is replaced.
pub struct LoadedPlugin {
    /// Its identity: the stem of the file it came from (`plugins/<deployment>.wasm`),
    /// which the operator chose and the plugin cannot claim. Per-plugin state
    /// (the key-value namespace, the manifest) and name ownership are keyed on
    /// it. A plugin loaded from bytes with no file is vouched for by its caller,
    /// and its declared name stands in.
    pub deployment: String,
    /// Name from `describe`: a claim, owned only if the registry admits it.
    pub name: String,
    /// Version from `describe`.
    pub version: String,
    /// Tasks from `describe`.
    pub tasks: Vec<TaskSpec>,
    /// The manifest it was loaded with (the default one when there was no file).
    pub manifest: Manifest,
    /// SHA-256 of the `.wasm`, hex.
    pub wasm_sha256: String,
    /// The file it came from, when it came from one.
    pub source: Option<PathBuf>,
    /// Whether the compiled code came from the precompiled cache.
    pub from_cache: bool,
    pub(crate) pre: TaskHostPre<GuestState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("deployment", &self.deployment)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("tasks", &self.tasks)
            .field("wasm_sha256", &self.wasm_sha256)
            .field("source", &self.source)
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// The task called `name`, if this plugin offers it.
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// The queue `task` goes to by default: the manifest's, else `describe`'s.
    pub fn queue_for<'a>(&'a self, task: &'a TaskSpec) -> &'a str {
        self.manifest
            .queue_for(&task.name)
            .unwrap_or(&task.default_queue)
    }
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Largest component a plugin file or an upload may be.
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;

/// Largest manifest (`<name>.toml`) a plugin file or an upload may have.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;

/// The deployment name of the plugin file at `path`: its stem.
pub(crate) fn deployment_of(path: &Path) -> Option<&str> {
    path.file_stem()?.to_str()
}

/// Reads a component file: its size (from its metadata) and its 8-byte
/// header are checked before the rest is read, so a huge or foreign file is
/// refused for the cost of a `stat` and an 8-byte read.
pub(crate) fn read_component(path: &Path) -> Result<Vec<u8>, LoadError> {
    read_capped(path, MAX_PLUGIN_BYTES, 8, check_header)
}

/// Reads `path` if it holds at most `max` bytes: its size is checked before
/// anything is read, `check` sees its first `head` bytes (fewer when it is
/// shorter) before the rest is read, and the read stops at `max` even if the
/// file grows meanwhile.
pub(crate) fn read_capped(
    path: &Path,
    max: usize,
    head: usize,
    check: impl FnOnce(&[u8]) -> Result<(), LoadError>,
) -> Result<Vec<u8>, LoadError> {
    let file = std::fs::File::open(path).map_err(LoadError::Read)?;
    let size = file.metadata().map_err(LoadError::Read)?.len();
    if size > max as u64 {
        return Err(LoadError::TooLarge { size, max });
    }
    let mut bounded = file.take(max as u64 + 1);
    let mut bytes = Vec::with_capacity(size as usize);
    (&mut bounded)
        .take(head as u64)
        .read_to_end(&mut bytes)
        .map_err(LoadError::Read)?;
    check(&bytes)?;
    bounded.read_to_end(&mut bytes).map_err(LoadError::Read)?;
    if bytes.len() > max {
        return Err(LoadError::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// Checks the 8-byte header: a component, a core module, or neither.
pub(crate) fn check_header(wasm: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_LAYER: [u8; 2] = [1, 0];
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    if wasm[6..8] == COMPONENT_LAYER {
        Ok(())
    } else {
        Err(LoadError::CoreModule)
    }
}

/// Compiles (or loads from `cache`) and links a component, refusing imports
/// that its manifest does not grant. `describe` is not called here.
pub(crate) fn prepare(
    engine: &Engine,
    mut linker: Linker<GuestState>,
    provided: &BTreeSet<Capability>,
    wasm: &[u8],
    wasm_sha256: &str,
    manifest: &Manifest,
    cache: Option<&ArtifactCache>,
) -> Result<(TaskHostPre<GuestState>, bool), LoadError> {
    check_header(wasm)?;
    let (component, from_cache) = match cache {
        Some(cache) => cache.load(engine, wasm, wasm_sha256),
        None => Component::new(engine, wasm).map(|c| (c, false)),
    }
    .map_err(|e| LoadError::Compile(e.into()))?;
    check_imports(engine, &component, &manifest.grants)?;
    trap_unprovided(engine, &mut linker, &component, provided)
        .map_err(|e| LoadError::Link(e.into()))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Link(e.into()))?;
    let pre = TaskHostPre::new(pre).map_err(|e| LoadError::Link(e.into()))?;
    Ok((pre, from_cache))
}

/// The package whose interfaces are host capabilities.
const HOST_PACKAGE: &str = "hippo:tasks";
/// WASI interfaces every plugin may import: the host links them with no
/// preopened directory, no environment, no network and captured stdio, so
/// they reach nothing outside the task.
const WASI_PACKAGES: [&str; 6] = [
    "wasi:cli",
    "wasi:clocks",
    "wasi:filesystem",
    "wasi:io",
    "wasi:random",
    "wasi:sockets",
];

fn check_imports(
    engine: &Engine,
    component: &Component,
    grants: &BTreeSet<Capability>,
) -> Result<(), LoadError> {
    for (import, _) in component.component_type().imports(engine) {
        let unversioned = import.split('@').next().unwrap_or(import);
        let (package, interface) = unversioned.split_once('/').unwrap_or((unversioned, ""));
        if package == HOST_PACKAGE {
            match Capability::from_interface(interface) {
                Some(capability) if grants.contains(&capability) => continue,
                Some(_) => {
                    let granted = grants
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(LoadError::NotGranted {
                        import: import.to_string(),
                        granted,
                    });
                }
                // `types` holds only type definitions, nothing callable.
                None if interface == "types" => continue,
                None => {
                    return Err(LoadError::UnknownImport {
                        import: import.to_string(),
                    });
                }
            }
        }
        if !WASI_PACKAGES.contains(&package) {
            return Err(LoadError::UnknownImport {
                import: import.to_string(),
            });
        }
    }
    Ok(())
}

/// Defines the functions of the host interfaces `component` imports and
/// is granted but that nothing on this host provides (`hippo run` has no
/// models) as functions that trap, naming the import: such a plugin still
/// loads, and fails only if it calls them.
fn trap_unprovided(
    engine: &Engine,
    linker: &mut Linker<GuestState>,
    component: &Component,
    provided: &BTreeSet<Capability>,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    for (import, item) in component.component_type().imports(engine) {
        let unversioned = import.split('@').next().unwrap_or(import);
        let Some((HOST_PACKAGE, interface)) = unversioned.split_once('/') else {
            continue;
        };
        let (Some(capability), ComponentItem::ComponentInstance(instance)) =
            (Capability::from_interface(interface), item.ty)
        else {
            continue;
        };
        if provided.contains(&capability) {
            continue;
        }
        let mut stubs = linker.instance(import)?;
        for (function, item) in instance.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let message = format!(
                    "`{import}#{function}` is granted, but this host does not provide \
                     `{capability}` (no such service is configured)"
                );
                stubs.func_new(function, move |_, _, _, _| {
                    Err(wasmtime::Error::msg(message.clone()))
                })?;
            }
        }
    }
    Ok(())
}

pub(crate) fn tasks_from_describe(
    info: super::host_api::wit::PluginInfo,
) -> Result<(String, String, Vec<TaskSpec>), LoadError> {
    let invalid = |why: String| Err(LoadError::InvalidDescribe(why));
    if !valid_name(&info.name) {
        return invalid(format!(
            "plugin name {:?} must be 1-128 characters of a-z, 0-9, '.', '-', '_'",
            info.name
        ));
    }
    if info.version.is_empty() || info.version.len() > 64 {
        return invalid(format!(
            "plugin version {:?} must be 1-64 characters",
            info.version
        ));
    }
    if info.tasks.is_empty() {
        return invalid("the plugin offers no task".into());
    }
    let mut seen = BTreeSet::new();
    let mut tasks = Vec::with_capacity(info.tasks.len());
    for task in info.tasks {
        if !valid_name(&task.name) {
            return invalid(format!(
                "task name {:?} must be 1-128 characters of a-z, 0-9, '.', '-', '_'",
                task.name
            ));
        }
        if !seen.insert(task.name.clone()) {
            return invalid(format!("task {:?} is described twice", task.name));
        }
        let l = task.default_limits;
        tasks.push(TaskSpec {
            name: task.name,
            description: task.description,
            default_queue: if task.default_queue.is_empty() {
                "default".into()
            } else {
                task.default_queue
            },
            limits: LimitOverrides {
                soft_time_limit_ms: l.soft_time_limit_ms,
                hard_time_limit_ms: l.hard_time_limit_ms,
                fuel: l.fuel,
                memory_bytes: l.memory_bytes,
                table_elements: l.table_elements,
                output_bytes: l.output_bytes,
                log_bytes: l.log_bytes,
            },
        });
    }
    Ok((info.name, info.version, tasks))
}

fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tells_components_from_modules_and_garbage() {
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(matches!(check_header(b"\0asm\x0d\0\x01\0"), Ok(())));
        assert!(matches!(
            check_header(b"hello world"),
            Err(LoadError::NotWasm)
        ));
        assert!(matches!(check_header(b""), Err(LoadError::NotWasm)));
    }

    #[test]
    fn names_are_restricted() {
        assert!(valid_name("memory.create"));
        assert!(valid_name("maintenance.dedup_all-2"));
        assert!(!valid_name(""));
        assert!(!valid_name("Memory.Create"));
        assert!(!valid_name("a/b"));
    }
}
