//! The precompiled-component cache: compiling a component with Cranelift
//! takes from tens of milliseconds to seconds, so each one is compiled once
//! and its native artifact kept in a host-private directory, keyed by the
//! SHA-256 of the `.wasm` and the engine's compatibility hash (a new
//! wasmtime or other engine settings never load a stale artifact).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How the cache has served loads since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Components loaded from a precompiled artifact.
    pub hits: u64,
    /// Components compiled (and then stored).
    pub compiled: u64,
}

/// A directory of precompiled components.
#[derive(Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
    hits: AtomicU64,
    compiled: AtomicU64,
}

impl ArtifactCache {
    /// Opens (creating it if needed, readable only by this user) a cache directory for `engine`.
    pub fn open(dir: impl Into<PathBuf>, engine: &Engine) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        restrict_to_owner(&dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
            hits: AtomicU64::new(0),
            compiled: AtomicU64::new(0),
        })
    }

    /// The directory artifacts live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads and counts.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            compiled: self.compiled.load(Ordering::Relaxed),
        }
    }

    fn artifact_path(&self, wasm_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{}.cwasm", self.engine_key))
    }

    /// The component for `wasm` (whose SHA-256 is `wasm_sha256`): from its
    /// artifact when there is one, else compiled and stored. Returns whether
    /// it came from the cache.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.artifact_path(wasm_sha256);
        if path.is_file() {
            // SAFETY: `Component::deserialize_file` trusts the file to be an
            // artifact this wasmtime produced. It is: the cache directory is
            // private to this user (mode 0700, set in `open`), artifacts are
            // written only by `store` below through a rename from a temporary
            // file (never seen half-written), and the name carries the hash
            // of the exact wasm and the engine's compatibility hash. A file
            // that fails wasmtime's own header checks is recompiled.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok((component, true));
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "discarding unusable cached artifact")
                }
            }
        }
        let artifact = engine.precompile_component(wasm)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.store(&path, &artifact) {
            tracing::warn!(path = %path.display(), %error, "could not cache compiled component");
        }
        // SAFETY: `artifact` was produced just above by this engine's
        // `precompile_component`, which is exactly what deserialize expects.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, false))
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        let mut temporary = tempfile_in(&self.dir)?;
        temporary.1.write_all(artifact)?;
        temporary.1.sync_all()?;
        std::fs::rename(&temporary.0, path)
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

#[cfg(unix)]
fn restrict_to_owner(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict_to_owner(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
