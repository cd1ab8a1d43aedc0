//! Whether `memory.create` can be measured: it needs the memory plugin
//! (`plugins/memory.wasm`, built by `scripts/build-guests`), the models
//! (`scripts/fetch-models`) and a host that grants the plugin its services
//! (embedder, memory store). The first two are checked before anything
//! runs; the last by one `memory.create` through the broker once a stack is
//! up, so what is missing is named by the host itself.

use super::load::{Workload, broker_round_trip};
use super::stack::Stack;
use anyhow::Context;
use hippo::models::{ModelsConfig, default_models_dir};
use std::path::{Path, PathBuf};

/// What the memory part can do in this run.
#[derive(Debug)]
pub enum Memory {
    /// The plugin and the models are there.
    Available {
        /// The memory plugin's component.
        plugin: PathBuf,
    },
    /// Something it needs is missing: why.
    Unavailable(String),
}

impl Memory {
    /// Checks for the memory plugin at `plugin` and the models in the
    /// default models folder.
    pub fn check(plugin: &Path) -> Memory {
        if !plugin.is_file() {
            return Memory::Unavailable(format!(
                "no memory plugin at {} (scripts/build-guests builds it from plugins/memory)",
                plugin.display()
            ));
        }
        let models = default_models_dir();
        if let Err(error) = ModelsConfig::default_in(&models).check_files() {
            return Memory::Unavailable(format!("models in {}: {error}", models.display()));
        }
        Memory::Available {
            plugin: plugin.to_path_buf(),
        }
    }

    /// The workloads to run: the no-op task, and `memory.create` when
    /// available (its plugin is then copied into `plugins_dir`).
    pub fn workloads(&self, plugins_dir: &Path) -> anyhow::Result<Vec<Workload>> {
        match self {
            Memory::Available { plugin } => {
                std::fs::copy(plugin, plugins_dir.join("memory.wasm"))
                    .with_context(|| format!("{}", plugin.display()))?;
                Ok(vec![Workload::Noop, Workload::MemoryCreate])
            }
            Memory::Unavailable(_) => Ok(vec![Workload::Noop]),
        }
    }
}

/// Runs one `memory.create` through the broker of `stack`: an error says
/// what the host lacks (the plugin refused at load, a service not granted
/// or not configured).
pub async fn probe(stack: &Stack) -> anyhow::Result<()> {
    let task = Workload::MemoryCreate.task();
    if stack.registry.resolve(task).is_none() {
        let refused: Vec<String> = stack
            .registry
            .rejections()
            .iter()
            .map(|r| format!("{}: {}", r.path.display(), r.reason))
            .collect();
        anyhow::bail!("no loaded plugin offers {task}; refused: {refused:?}");
    }
    let message = stack.message(task, Workload::MemoryCreate.input(usize::MAX))?;
    broker_round_trip(&stack.broker, message).await
}
