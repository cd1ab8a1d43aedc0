//! The plugin registry: every `*.wasm` in the plugins folder, loaded,
//! validated and indexed by task name, kept current by a file watcher.
//!
//! Replacing a file swaps its plugin atomically: tasks already running hold
//! an `Arc` of the old version and finish on it. A file that fails to load
//! is reported and leaves the previous version of that file (if any) in
//! service. Removing a file unregisters its plugin.
//!
//! A file is read only after its size (at most [`super::MAX_PLUGIN_BYTES`]) and its
//! 8-byte header pass, so a huge or foreign file costs nothing to refuse.

use super::Runtime;
use super::cache::ArtifactCache;
use super::manifest::Manifest;
use super::plugin::{
    LoadError, LoadedPlugin, MAX_MANIFEST_BYTES, TaskSpec, read_capped, read_component, sha256_hex,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// A file the registry refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The `.wasm` file.
    pub path: PathBuf,
    /// Why it was refused.
    pub reason: String,
}

/// What one scan changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Files (re)loaded into service.
    pub loaded: Vec<PathBuf>,
    /// Files gone from the folder, whose plugins were unregistered.
    pub removed: Vec<PathBuf>,
    /// Files refused in this scan.
    pub rejected: Vec<Rejection>,
}

/// A registered plugin, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginSummary {
    /// Name from `describe`.
    pub name: String,
    /// Version from `describe`.
    pub version: String,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// SHA-256 of the `.wasm`.
    pub wasm_sha256: String,
    /// Host capabilities granted.
    pub grants: Vec<String>,
    /// Tasks, with the queue each goes to by default.
    pub tasks: Vec<TaskSummary>,
}

/// One task of a registered plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskSummary {
    /// The task as `describe` states it.
    #[serde(flatten)]
    pub spec: TaskSpec,
    /// Queue after the manifest is applied.
    pub queue: String,
}

#[derive(Debug)]
struct FileEntry {
    /// Hash of the `.wasm` and its manifest text: a change of either reloads.
    fingerprint: String,
    /// The plugin in service for this file (possibly an older version than
    /// the file on disk, when the newer one was refused).
    plugin: Option<Arc<LoadedPlugin>>,
    rejection: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<PathBuf, FileEntry>,
    tasks: HashMap<String, Arc<LoadedPlugin>>,
}

/// The set of plugins in service.
#[derive(Debug)]
pub struct PluginRegistry {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    cache: Option<ArtifactCache>,
    state: RwLock<State>,
    /// One scan at a time: loads happen outside `state`'s lock.
    scanning: Mutex<()>,
}

impl PluginRegistry {
    /// A registry over the `*.wasm` files of `dir`, compiling through `cache` when given.
    pub fn new(
        runtime: Arc<Runtime>,
        dir: impl Into<PathBuf>,
        cache: Option<ArtifactCache>,
    ) -> Self {
        PluginRegistry {
            runtime,
            dir: dir.into(),
            cache,
            state: RwLock::default(),
            scanning: Mutex::new(()),
        }
    }

    /// The folder the registry serves.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The precompiled-component cache, if any.
    pub fn cache(&self) -> Option<&ArtifactCache> {
        self.cache.as_ref()
    }

    /// The runtime plugins are loaded into.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The plugin that offers `task`, if any.
    pub fn resolve(&self, task: &str) -> Option<Arc<LoadedPlugin>> {
        self.read().tasks.get(task).cloned()
    }

    /// Every registered plugin, by file name.
    pub fn plugins(&self) -> Vec<PluginSummary> {
        let state = self.read();
        state
            .files
            .iter()
            .filter_map(|(path, entry)| entry.plugin.as_ref().map(|p| summary(path, p)))
            .collect()
    }

    /// Files currently refused, with the reason.
    pub fn rejections(&self) -> Vec<Rejection> {
        let state = self.read();
        state
            .files
            .iter()
            .filter_map(|(path, entry)| {
                entry.rejection.as_ref().map(|reason| Rejection {
                    path: path.clone(),
                    reason: reason.clone(),
                })
            })
            .collect()
    }

    /// Brings the registry in line with the folder. Blocks while components compile.
    pub fn scan(&self) -> std::io::Result<ScanReport> {
        let _scanning = self.scanning.lock().unwrap_or_else(PoisonError::into_inner);
        let on_disk = wasm_files(&self.dir)?;
        // Compile outside the state lock: tasks keep resolving meanwhile.
        let changed: Vec<(PathBuf, String, Result<PluginFiles, String>)> = {
            let state = self.read();
            on_disk
                .iter()
                .filter_map(|path| match PluginFiles::read(path) {
                    Ok(files) => {
                        let fingerprint = files.fingerprint();
                        let unchanged = state
                            .files
                            .get(path)
                            .is_some_and(|e| e.fingerprint == fingerprint);
                        (!unchanged).then(|| (path.clone(), fingerprint, Ok(files)))
                    }
                    // Gone or unreadable since the listing: an empty
                    // fingerprint makes the next scan try again.
                    Err(error) => Some((path.clone(), String::new(), Err(error))),
                })
                .collect()
        };
        let outcomes: Vec<_> = changed
            .into_iter()
            .map(|(path, fingerprint, files)| {
                let outcome = files.and_then(|files| self.load_files(&path, &files));
                (path, fingerprint, outcome)
            })
            .collect();

        let mut report = ScanReport::default();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let removed: Vec<PathBuf> = state
            .files
            .keys()
            .filter(|p| !on_disk.contains(p))
            .cloned()
            .collect();
        for path in &removed {
            state.files.remove(path);
            tracing::info!(file = %path.display(), "plugin file removed; unregistered");
        }
        report.removed = removed;
        for (path, fingerprint, outcome) in outcomes {
            let entry = state.files.entry(path.clone()).or_insert(FileEntry {
                fingerprint: String::new(),
                plugin: None,
                rejection: None,
            });
            entry.fingerprint = fingerprint;
            match outcome {
                Ok(plugin) => {
                    tracing::info!(file = %path.display(), plugin = %plugin.name, version = %plugin.version, cached = plugin.from_cache, "plugin loaded");
                    entry.plugin = Some(plugin);
                    entry.rejection = None;
                    report.loaded.push(path);
                }
                Err(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "plugin refused");
                    entry.rejection = Some(reason.clone());
                    report.rejected.push(Rejection { path, reason });
                }
            }
        }
        for conflict in reindex(&mut state) {
            tracing::warn!(file = %conflict.path.display(), reason = %conflict.reason, "plugin refused");
            report.loaded.retain(|p| *p != conflict.path);
            report.rejected.push(conflict);
        }
        Ok(report)
    }

    /// Watches the folder and rescans after changes settle. Scans run on
    /// the watcher's own thread; the handle stops it when dropped. Reads
    /// (a scan's own, another process's) are not changes, so they never
    /// trigger a rescan.
    pub fn watch(self: &Arc<Self>) -> notify::Result<WatchHandle> {
        use notify::Watcher;
        let (events, changes) = channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(events)?;
        watcher.watch(&self.dir, notify::RecursiveMode::NonRecursive)?;
        let registry = Arc::downgrade(self);
        let thread = std::thread::Builder::new().name("hippo-plugin-watch".into()).spawn(move || {
            while let Ok(first) = changes.recv() {
                if !is_change(&first) {
                    continue;
                }
                if let Err(error) = first {
                    tracing::warn!(%error, "plugin folder watch error");
                }
                // Let a burst of changes (a copy, an editor's save) settle.
                let mut quiet_at = Instant::now() + SETTLE;
                loop {
                    match changes.recv_timeout(quiet_at.saturating_duration_since(Instant::now())) {
                        Ok(event) if is_change(&event) => quiet_at = Instant::now() + SETTLE,
                        Ok(_) => {}
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                let Some(registry) = registry.upgrade() else { return };
                if let Err(error) = registry.scan() {
                    tracing::warn!(dir = %registry.dir.display(), %error, "plugin folder scan failed");
                }
            }
        })?;
        Ok(WatchHandle {
            _watcher: watcher,
            _thread: thread,
        })
    }

    fn load_files(&self, path: &Path, files: &PluginFiles) -> Result<Arc<LoadedPlugin>, String> {
        files
            .load(&self.runtime, path, self.cache.as_ref())
            .map(Arc::new)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a watcher event may change what the folder serves: not a read
/// (the watch includes opens, so a scan's own reads would trigger the next
/// scan, forever).
fn is_change(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Err(_) => true,
        Ok(event) => !event.kind.is_access(),
    }
}

/// How long the folder must be quiet before a rescan.
const SETTLE: Duration = Duration::from_millis(200);

/// Keeps a folder watch alive; dropping it stops watching.
#[derive(Debug)]
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    _thread: std::thread::JoinHandle<()>,
}

struct PluginFiles {
    wasm: Vec<u8>,
    manifest: Option<String>,
}

impl PluginFiles {
    fn read(path: &Path) -> Result<PluginFiles, String> {
        let wasm = read_component(path).map_err(|e| e.to_string())?;
        let manifest = read_manifest(path).map_err(|e| format!("manifest: {e}"))?;
        Ok(PluginFiles { wasm, manifest })
    }

    fn load(
        &self,
        runtime: &Runtime,
        path: &Path,
        cache: Option<&ArtifactCache>,
    ) -> Result<LoadedPlugin, String> {
        let manifest = match &self.manifest {
            Some(text) => Manifest::from_toml(text)
                .map_err(|e| format!("manifest {}: {e}", manifest_path(path).display()))?,
            None => Manifest::default(),
        };
        runtime
            .load(&self.wasm, manifest, cache, Some(path))
            .map_err(|e| e.to_string())
    }

    fn fingerprint(&self) -> String {
        let manifest = self
            .manifest
            .as_deref()
            .map(|m| sha256_hex(m.as_bytes()))
            .unwrap_or_default();
        format!("{}:{manifest}", sha256_hex(&self.wasm))
    }
}

/// The manifest beside the plugin file `wasm`, if there is one, read only if
/// it is at most [`MAX_MANIFEST_BYTES`].
fn read_manifest(wasm: &Path) -> Result<Option<String>, LoadError> {
    match read_capped(&manifest_path(wasm), MAX_MANIFEST_BYTES, 0, |_| Ok(())) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| LoadError::Read(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Err(LoadError::Read(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Loads one plugin file with its manifest (`name.toml` beside `name.wasm`),
/// outside any registry: what `hippo run` uses.
pub fn load_plugin_file(
    runtime: &Runtime,
    path: &Path,
    cache: Option<&ArtifactCache>,
) -> Result<LoadedPlugin, String> {
    PluginFiles::read(path)?.load(runtime, path, cache)
}

/// `plugins/name.wasm` has its manifest at `plugins/name.toml`.
pub(crate) fn manifest_path(wasm: &Path) -> PathBuf {
    wasm.with_extension("toml")
}

fn wasm_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Rebuilds the task index. A plugin whose name or task another file
/// already provides is refused; files that served the name before keep it,
/// so dropping in a clashing file never displaces a working plugin.
fn reindex(state: &mut State) -> Vec<Rejection> {
    let previous_owner: HashMap<String, PathBuf> = state
        .tasks
        .values()
        .filter_map(|p| p.source.clone().map(|source| (p.name.clone(), source)))
        .collect();
    let mut order: Vec<PathBuf> = state.files.keys().cloned().collect();
    order.sort_by_key(|path| !previous_owner.values().any(|owner| owner == path));

    let mut tasks: HashMap<String, Arc<LoadedPlugin>> = HashMap::new();
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    let mut conflicts = Vec::new();
    for path in order {
        let Some(entry) = state.files.get_mut(&path) else {
            continue;
        };
        let Some(plugin) = entry.plugin.clone() else {
            continue;
        };
        let clash = match names.get(&plugin.name) {
            Some(owner) => Some(format!(
                "plugin `{}` is already provided by {}",
                plugin.name,
                owner.display()
            )),
            None => plugin.tasks.iter().find_map(|t| {
                tasks.get(&t.name).map(|owner| {
                    format!(
                        "task `{}` is already provided by plugin `{}`",
                        t.name, owner.name
                    )
                })
            }),
        };
        if let Some(reason) = clash {
            entry.plugin = None;
            entry.rejection = Some(reason.clone());
            conflicts.push(Rejection { path, reason });
            continue;
        }
        names.insert(plugin.name.clone(), path);
        for task in &plugin.tasks {
            tasks.insert(task.name.clone(), plugin.clone());
        }
    }
    state.tasks = tasks;
    conflicts
}

fn summary(path: &Path, plugin: &LoadedPlugin) -> PluginSummary {
    PluginSummary {
        name: plugin.name.clone(),
        version: plugin.version.clone(),
        file: path.to_path_buf(),
        wasm_sha256: plugin.wasm_sha256.clone(),
        grants: plugin
            .manifest
            .grants
            .iter()
            .map(|c| c.to_string())
            .collect(),
        tasks: plugin
            .tasks
            .iter()
            .map(|spec| TaskSummary {
                spec: spec.clone(),
                queue: plugin.queue_for(spec).to_string(),
            })
            .collect(),
    }
}
