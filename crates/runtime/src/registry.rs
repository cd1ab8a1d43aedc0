//! The plugin registry: every `*.wasm` in the plugins folder, loaded,
//! validated and indexed by task name, kept current by a file watcher.
//!
//! Replacing a file swaps its plugin atomically: tasks already running hold
//! an `Arc` of the old version and finish on it. A file that fails to load
//! is reported and leaves the previous version of that file (if any) in
//! service. Removing a file unregisters its plugin.
//!
//! A file is read only after its size (at most [`MAX_PLUGIN_BYTES`]) and its
//! 8-byte header pass, so a huge or foreign file costs nothing to refuse.
//! Which file may have which plugin and task names is decided by
//! [`names`](super::names) on every scan, over every file present, with the
//! ownership ledger kept in the folder: never by file path order. A loaded
//! plugin refused for its names stays loaded (not in service), so it is
//! admitted by a later scan once the names it wants are free.
//!
//! Deploys through [`PluginRegistry::deploy`] and
//! [`PluginRegistry::set_manifest`] check the names before writing anything,
//! and put the previous file back if the rescan still refuses the new one.

use super::Runtime;
use super::cache::ArtifactCache;
use super::manifest::Manifest;
use super::names::{self, Claimant, Kind, Ledger};
use super::plugin::{
    LoadError, LoadedPlugin, MAX_MANIFEST_BYTES, MAX_PLUGIN_BYTES, TaskSpec, deployment_of,
    read_capped, read_component, sha256_hex,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
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
    /// Its identity: the stem of its file, chosen by whoever deployed it.
    pub deployment: String,
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

#[derive(Debug, Default)]
struct FileEntry {
    /// Hash of the `.wasm` and its manifest text: a change of either reloads.
    fingerprint: String,
    /// The newest version of the file that loaded (the previous one, when
    /// the newest did not load): what the file declares.
    plugin: Option<Arc<LoadedPlugin>>,
    /// Whether `plugin` is in service, owning every name it declares.
    admitted: bool,
    /// Why the newest version of the file did not load.
    load_error: Option<String>,
    /// Why `plugin` is not in service: a name it may not have.
    refusal: Option<String>,
}

impl FileEntry {
    /// Why the file is (partly) refused, if it is.
    fn reason(&self) -> Option<String> {
        match (&self.load_error, &self.refusal) {
            (Some(error), Some(refusal)) => Some(format!("{error}; {refusal}")),
            (Some(reason), None) | (None, Some(reason)) => Some(reason.clone()),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<PathBuf, FileEntry>,
    tasks: HashMap<String, Arc<LoadedPlugin>>,
    /// The ownership ledger as last settled: what this process goes by when
    /// the one on disk is missing or unreadable.
    ledger: Ledger,
}

/// Why a deploy, a manifest change or a removal was refused. Nothing in the
/// plugins folder changed when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The deployment name cannot be a plugin file's name.
    #[error(
        "plugin file names are 1-64 characters of a-z, 0-9, '-', '_', '.', not starting with '.'"
    )]
    InvalidName,
    /// No such plugin file.
    #[error("no plugin file {0}.wasm")]
    NotFound(String),
    /// The component does not load.
    #[error("plugin refused: {0}")]
    Refused(#[source] LoadError),
    /// The manifest given does not parse.
    #[error("invalid manifest: {0}")]
    InvalidManifest(#[source] toml::de::Error),
    /// The manifest beside the plugin file cannot be read.
    #[error("the plugin's manifest {}: {source}", path.display())]
    ManifestUnreadable {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// The manifest beside the plugin file does not parse.
    #[error("the plugin's manifest {} is invalid: {source}", path.display())]
    ManifestInvalid {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// The plugin may not have a name it declares, or the registry refused
    /// it on the rescan after it was written (and it was taken back).
    #[error("{0}")]
    Conflict(String),
    /// The plugins folder could not be written or listed.
    #[error("the plugins folder: {0}")]
    Io(#[from] std::io::Error),
}

/// The set of plugins in service.
#[derive(Debug)]
pub struct PluginRegistry {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    cache: Option<ArtifactCache>,
    state: RwLock<State>,
    /// One scan or deploy at a time: loads happen outside `state`'s lock.
    scanning: Mutex<()>,
    /// Whether scans write the ownership ledger (listings do not).
    records_names: bool,
}

impl PluginRegistry {
    /// A registry over the `*.wasm` files of `dir`, compiling through `cache`
    /// when given, and keeping the names' ownership ledger in `dir`.
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
            records_names: true,
        }
    }

    /// The same registry, reading the ownership ledger but never writing it:
    /// for listings that must not change the folder they look at.
    pub fn without_recording_names(mut self) -> Self {
        self.records_names = false;
        self
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

    /// Every plugin in service, by file name.
    pub fn plugins(&self) -> Vec<PluginSummary> {
        let state = self.read();
        state
            .files
            .iter()
            .filter(|(_, entry)| entry.admitted)
            .filter_map(|(path, entry)| entry.plugin.as_ref().map(|p| summary(path, p)))
            .collect()
    }

    /// Files currently refused (or whose newest version was), with the reason.
    pub fn rejections(&self) -> Vec<Rejection> {
        let state = self.read();
        state
            .files
            .iter()
            .filter_map(|(path, entry)| {
                entry.reason().map(|reason| Rejection {
                    path: path.clone(),
                    reason,
                })
            })
            .collect()
    }

    /// Brings the registry in line with the folder. Blocks while components compile.
    pub fn scan(&self) -> std::io::Result<ScanReport> {
        let _scanning = self.lock_scanning();
        self.scan_locked()
    }

    /// Deploys `wasm` as `plugins/{name}.wasm`, with `manifest` as
    /// `plugins/{name}.toml` when given (else with the manifest already
    /// there, if any): loaded and checked against the names' owners before
    /// anything is written, then written atomically and put in service. When
    /// the rescan still refuses it (a file dropped meanwhile, a `describe`
    /// that changed its answer), the previous files are put back. Blocks.
    pub fn deploy(
        &self,
        name: &str,
        wasm: &[u8],
        manifest: Option<&str>,
    ) -> Result<PluginSummary, DeployError> {
        let path = self.file_for(name)?;
        if wasm.len() > MAX_PLUGIN_BYTES {
            return Err(DeployError::Refused(LoadError::TooLarge {
                size: wasm.len() as u64,
                max: MAX_PLUGIN_BYTES,
            }));
        }
        let manifest_file = manifest_path(&path);
        let given = manifest
            .map(|text| Manifest::from_toml(text).map_err(DeployError::InvalidManifest))
            .transpose()?;
        let _scanning = self.lock_scanning();
        let (text, parsed) = match (manifest, given) {
            (Some(text), Some(parsed)) => (Some(text.to_string()), parsed),
            _ => {
                let text =
                    read_manifest(&path).map_err(|source| DeployError::ManifestUnreadable {
                        path: manifest_file.clone(),
                        source,
                    })?;
                let parsed = text
                    .as_deref()
                    .map(Manifest::from_toml)
                    .transpose()
                    .map_err(|source| DeployError::ManifestInvalid {
                        path: manifest_file.clone(),
                        source,
                    })?
                    .unwrap_or_default();
                (text, parsed)
            }
        };
        let candidate = self.admissible(wasm, parsed, &path)?;
        let expected = fingerprint(&candidate.wasm_sha256, text.as_deref());
        let mut writes = vec![(path.as_path(), wasm)];
        if let Some(text) = manifest {
            writes.insert(0, (manifest_file.as_path(), text.as_bytes()));
        }
        self.replace_and_verify(&writes, &path, &expected)
    }

    /// Sets `plugins/{name}.toml` for the plugin file `plugins/{name}.wasm`:
    /// the plugin is loaded with it and checked like a deploy before the
    /// manifest is written, and the previous manifest is put back if the
    /// rescan refuses it. Blocks.
    pub fn set_manifest(&self, name: &str, text: &str) -> Result<PluginSummary, DeployError> {
        let path = self.file_for(name)?;
        let manifest = Manifest::from_toml(text).map_err(DeployError::InvalidManifest)?;
        let _scanning = self.lock_scanning();
        let wasm = match read_component(&path) {
            Ok(wasm) => wasm,
            Err(LoadError::Read(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DeployError::NotFound(name.to_string()));
            }
            Err(error) => return Err(DeployError::Refused(error)),
        };
        let candidate = self.admissible(&wasm, manifest, &path)?;
        let expected = fingerprint(&candidate.wasm_sha256, Some(text));
        let manifest_file = manifest_path(&path);
        self.replace_and_verify(&[(&manifest_file, text.as_bytes())], &path, &expected)
    }

    /// Removes `plugins/{name}.wasm` and its manifest (also a manifest left
    /// without its plugin); the names it owned are released. Running tasks
    /// finish on it. Blocks.
    pub fn undeploy(&self, name: &str) -> Result<(), DeployError> {
        let path = self.file_for(name)?;
        let _scanning = self.lock_scanning();
        let remove = |file: &Path| match std::fs::remove_file(file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        };
        let plugin = remove(&path)?;
        let manifest = remove(&manifest_path(&path))?;
        if !plugin && !manifest {
            return Err(DeployError::NotFound(name.to_string()));
        }
        self.scan_locked()?;
        Ok(())
    }

    /// `plugins/{name}.wasm`, when `name` may name a deployment.
    fn file_for(&self, name: &str) -> Result<PathBuf, DeployError> {
        let valid = (1..=64).contains(&name.len())
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            })
            && !name.starts_with('.');
        if !valid {
            return Err(DeployError::InvalidName);
        }
        Ok(self.dir.join(format!("{name}.wasm")))
    }

    /// Loads `wasm` as the registry would from `path` (without touching the
    /// cache: a refused upload leaves nothing behind there either), and checks
    /// that it may have every name it declares beside the files present.
    fn admissible(
        &self,
        wasm: &[u8],
        manifest: Manifest,
        path: &Path,
    ) -> Result<LoadedPlugin, DeployError> {
        let candidate = self
            .runtime
            .load(wasm, manifest, None, Some(path))
            .map_err(DeployError::Refused)?;
        let state = self.read();
        let mut ledger = self.ledger_now(&state.ledger).0;
        let mut claimants: Vec<Claimant<'_>> = state
            .files
            .iter()
            .filter(|(other, _)| deployment_of(other) != Some(candidate.deployment.as_str()))
            .map(|(other, entry)| claimant(other, entry))
            .collect();
        claimants.push(Claimant {
            deployment: &candidate.deployment,
            declares: Some(declared(&candidate)),
        });
        match names::settle(&mut ledger, &claimants).pop() {
            Some(Err(reason)) => Err(DeployError::Conflict(reason)),
            _ => Ok(candidate),
        }
    }

    /// Writes each file, rescans, and keeps the writes only if the plugin at
    /// `plugin` is then in service with the `expected` fingerprint; otherwise
    /// puts the previous files back and says why.
    fn replace_and_verify(
        &self,
        writes: &[(&Path, &[u8])],
        plugin: &Path,
        expected: &str,
    ) -> Result<PluginSummary, DeployError> {
        let mut replacements = Vec::with_capacity(writes.len());
        for (file, bytes) in writes {
            match Replacement::write(file, bytes) {
                Ok(replacement) => replacements.push(replacement),
                Err(error) => {
                    roll_back(replacements);
                    return Err(error.into());
                }
            }
        }
        let scanned = self.scan_locked();
        let serving = scanned.as_ref().ok().and_then(|_| {
            let state = self.read();
            let entry = state.files.get(plugin)?;
            let current =
                entry.admitted && entry.load_error.is_none() && entry.fingerprint == expected;
            current.then(|| entry.plugin.as_ref().map(|p| summary(plugin, p)))?
        });
        if let Some(summary) = serving {
            replacements.into_iter().for_each(Replacement::commit);
            return Ok(summary);
        }
        let reason = self
            .read()
            .files
            .get(plugin)
            .and_then(FileEntry::reason)
            .unwrap_or_else(|| "the plugin was not registered".into());
        roll_back(replacements);
        self.scan_locked()?;
        scanned?;
        Err(DeployError::Conflict(reason))
    }

    fn scan_locked(&self) -> std::io::Result<ScanReport> {
        let on_disk = wasm_files(&self.dir)?;
        // Compile outside the state lock: tasks keep resolving meanwhile.
        let changed: Vec<(PathBuf, String, Result<PluginFiles, String>)> = {
            let state = self.read();
            on_disk
                .iter()
                .filter_map(|path| {
                    let files = match deployment_of(path) {
                        Some(_) => PluginFiles::read(path),
                        None => Err("the file name is not UTF-8".into()),
                    };
                    match files {
                        Ok(files) => {
                            let fingerprint = files.fingerprint();
                            let unchanged = state
                                .files
                                .get(path)
                                .is_some_and(|e| e.fingerprint == fingerprint);
                            (!unchanged).then(|| (path.clone(), fingerprint, Ok(files)))
                        }
                        // Gone, unreadable or refused unread: an empty
                        // fingerprint makes the next scan try again.
                        Err(error) => Some((path.clone(), String::new(), Err(error))),
                    }
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
        // The folder lock orders the ledger's read, decision and write
        // against other processes serving the same folder.
        let _folder = self.lock_folder();
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
        let mut reloaded = Vec::new();
        for (path, fingerprint, outcome) in outcomes {
            let entry = state.files.entry(path.clone()).or_default();
            entry.fingerprint = fingerprint;
            match outcome {
                Ok(plugin) => {
                    tracing::info!(file = %path.display(), plugin = %plugin.name, version = %plugin.version, cached = plugin.from_cache, "plugin loaded");
                    entry.plugin = Some(plugin);
                    entry.load_error = None;
                    reloaded.push(path);
                }
                Err(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "plugin refused");
                    entry.load_error = Some(reason.clone());
                    report.rejected.push(Rejection { path, reason });
                }
            }
        }
        let changed_owners = self.settle_names(&mut state, &reloaded, &mut report);
        // Tasks resolve again while the ledger is written (and synced).
        drop(state);
        if let Some(ledger) = changed_owners
            && let Err(error) = ledger.write(&self.dir)
        {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot record the plugin names' owners; they hold in this process only");
        }
        Ok(report)
    }

    /// Decides which loaded plugins are in service (see [`names`]) and
    /// rebuilds the task index; returns the ledger to record when it differs
    /// from the one on disk (and this registry records names).
    fn settle_names(
        &self,
        state: &mut State,
        reloaded: &[PathBuf],
        report: &mut ScanReport,
    ) -> Option<Ledger> {
        let (mut ledger, on_disk) = self.ledger_now(&state.ledger);
        let verdicts = {
            let claimants: Vec<Claimant<'_>> = state
                .files
                .iter()
                .map(|(path, entry)| claimant(path, entry))
                .collect();
            names::settle(&mut ledger, &claimants)
        };
        let mut tasks = HashMap::new();
        for ((path, entry), verdict) in state.files.iter_mut().zip(verdicts) {
            let Some(plugin) = entry.plugin.clone() else {
                (entry.admitted, entry.refusal) = (false, None);
                continue;
            };
            let refusal = verdict.err();
            let fresh = reloaded.contains(path);
            if let Some(reason) = &refusal
                && (fresh || entry.refusal.as_ref() != Some(reason))
            {
                tracing::warn!(file = %path.display(), %reason, "plugin refused");
                report.rejected.push(Rejection {
                    path: path.clone(),
                    reason: reason.clone(),
                });
            }
            let admitted = refusal.is_none();
            if admitted && (fresh || !entry.admitted) {
                report.loaded.push(path.clone());
            }
            if admitted {
                for task in &plugin.tasks {
                    tasks.insert(task.name.clone(), plugin.clone());
                }
            }
            (entry.admitted, entry.refusal) = (admitted, refusal);
        }
        state.tasks = tasks;
        state.ledger = ledger;
        (self.records_names && on_disk.as_ref() != Some(&state.ledger))
            .then(|| state.ledger.clone())
    }

    /// The ledger to decide by: the one on disk when it reads, else
    /// `fallback` (this process's last); and the one on disk, if any.
    fn ledger_now(&self, fallback: &Ledger) -> (Ledger, Option<Ledger>) {
        match Ledger::read(&self.dir) {
            Ok(Some(ledger)) => (ledger.clone(), Some(ledger)),
            Ok(None) => (fallback.clone(), None),
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "plugin names' ledger ignored");
                (fallback.clone(), None)
            }
        }
    }

    /// An exclusive lock on the folder, held while the ledger is settled;
    /// `None` for registries that do not record names, or where the folder
    /// cannot be locked (then this process's scans still run one at a time).
    fn lock_folder(&self) -> Option<std::fs::File> {
        if !self.records_names {
            return None;
        }
        match std::fs::File::open(&self.dir).and_then(|folder| folder.lock().map(|()| folder)) {
            Ok(folder) => Some(folder),
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot lock the plugins folder");
                None
            }
        }
    }

    fn lock_scanning(&self) -> MutexGuard<'_, ()> {
        self.scanning.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches the folder and rescans after changes settle. Scans run on
    /// the watcher's own thread; the handle stops it when dropped. Reads
    /// (a scan's own, another process's) and the ledger's writes are not
    /// changes, so they never trigger a rescan.
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
/// scan, forever), not the ledger's own write.
fn is_change(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Err(_) => true,
        Ok(event) => {
            !event.kind.is_access()
                && (event.paths.is_empty() || !event.paths.iter().all(|p| names::is_ledger_file(p)))
        }
    }
}

/// A file's part in the names' decision.
fn claimant<'a>(path: &'a Path, entry: &'a FileEntry) -> Claimant<'a> {
    Claimant {
        deployment: deployment_of(path).unwrap_or_default(),
        declares: entry.plugin.as_deref().map(declared),
    }
}

/// The names `plugin` declares.
fn declared(plugin: &LoadedPlugin) -> Vec<(Kind, &str)> {
    std::iter::once((Kind::Plugin, plugin.name.as_str()))
        .chain(plugin.tasks.iter().map(|t| (Kind::Task, t.name.as_str())))
        .collect()
}

/// A file replaced through a temporary file and a rename (so the watcher
/// never sees half a file), its previous version kept aside as a hard link
/// until the registry has accepted the new one. Neither side file ends in
/// `.wasm` or `.toml`, so scans never take them for plugins or manifests.
struct Replacement {
    path: PathBuf,
    previous: Option<PathBuf>,
}

impl Replacement {
    fn write(path: &Path, bytes: &[u8]) -> std::io::Result<Replacement> {
        let beside =
            |what: &str| path.with_extension(format!("{what}-{}", uuid::Uuid::new_v4().simple()));
        let kept = beside("previous");
        let previous = match std::fs::hard_link(path, &kept) {
            Ok(()) => Some(kept),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            // A filesystem without hard links: a copy does the same.
            Err(_) => std::fs::copy(path, &kept).map(|_| Some(kept))?,
        };
        let temporary = beside("upload");
        let written =
            std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            if let Some(previous) = previous {
                let _ = std::fs::remove_file(previous);
            }
            return Err(error);
        }
        Ok(Replacement {
            path: path.to_path_buf(),
            previous,
        })
    }

    /// Keeps the new file.
    fn commit(self) {
        if let Some(previous) = self.previous {
            let _ = std::fs::remove_file(previous);
        }
    }

    /// Puts the previous file back, or removes the new one if there was none.
    fn roll_back(self) -> std::io::Result<()> {
        match self.previous {
            Some(previous) => std::fs::rename(previous, &self.path),
            None => std::fs::remove_file(&self.path),
        }
    }
}

/// Rolls back `replacements`, the last first; a file that cannot be put back
/// is logged (the rescan that follows reports what the folder then holds).
fn roll_back(replacements: Vec<Replacement>) {
    for replacement in replacements.into_iter().rev() {
        let path = replacement.path.clone();
        if let Err(error) = replacement.roll_back() {
            tracing::error!(file = %path.display(), %error, "a refused deploy could not be taken back");
        }
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
        fingerprint(&sha256_hex(&self.wasm), self.manifest.as_deref())
    }
}

/// Identifies a plugin file's contents with its manifest's.
fn fingerprint(wasm_sha256: &str, manifest: Option<&str>) -> String {
    let manifest = manifest
        .map(|m| sha256_hex(m.as_bytes()))
        .unwrap_or_default();
    format!("{wasm_sha256}:{manifest}")
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

fn summary(path: &Path, plugin: &LoadedPlugin) -> PluginSummary {
    PluginSummary {
        deployment: plugin.deployment.clone(),
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
