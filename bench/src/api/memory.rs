//! Whether `memory.create` can be measured: it needs the memory plugin
//! (`plugins/memory.wasm` and its manifest `plugins/memory.toml`, built by
//! `scripts/build-guests`), the models (`scripts/fetch-models`) and a host
//! that grants the plugin its services (embedder, memory store). The first
//! two are checked before anything runs; the last by one `memory.create`
//! through the broker once a stack is up, so what is missing is named by
//! the host itself.

use super::load::{Workload, broker_round_trip};
use super::stack::Stack;
use anyhow::Context;
use hippo::models::{ModelsConfig, default_models_dir};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Users the memories are spread over: `memory.create` looks for
/// duplicates among its user's memories only, as with real users.
const USERS: usize = 64;

const SUBJECTS: [&str; 16] = [
    "My sister",
    "The landlord",
    "Our team lead",
    "My dentist",
    "The neighbour's kid",
    "Grandpa",
    "My running coach",
    "The accountant",
    "A friend from Lisbon",
    "My manager",
    "The piano teacher",
    "Our daughter",
    "My cousin Ana",
    "The new intern",
    "Dad",
    "The vet",
];
const ACTIVITIES: [&str; 16] = [
    "started learning the cello",
    "moved the budget review",
    "recommended a gluten-free bakery",
    "is allergic to peanuts",
    "booked a flight to Tokyo",
    "prefers oat milk in coffee",
    "asked me to water the tomatoes",
    "reads crime novels",
    "switched to night shifts",
    "is training for a marathon",
    "lost the spare house keys",
    "wants a quiet birthday dinner",
    "collects vintage cameras",
    "renewed the car insurance",
    "hates video calls",
    "adopted a rescue greyhound",
];
const PLACES: [&str; 16] = [
    "at the community centre",
    "near the harbour",
    "in the old library",
    "at work",
    "in Berlin",
    "at the climbing gym",
    "downtown",
    "at the farmers market",
    "on the train",
    "at the lake house",
    "in the hospital cafeteria",
    "at school",
    "in the garden",
    "at the conference",
    "online",
    "at the stadium",
];
const TIMES: [&str; 16] = [
    "every Tuesday evening",
    "last spring",
    "since January",
    "before the holidays",
    "twice a month",
    "after the surgery",
    "this weekend",
    "in early mornings",
    "during the heatwave",
    "next Friday",
    "on rainy days",
    "since the move",
    "around midnight",
    "each summer",
    "after lunch",
    "for three years",
];
const DETAILS: [&str; 16] = [
    "and found it relaxing",
    "so remind me in advance",
    "which cost more than planned",
    "with an old college roommate",
    "and keeps a detailed journal",
    "despite a sore knee",
    "to save money",
    "because the doctor said so",
    "and shares photos of it",
    "without telling anyone",
    "with the whole family",
    "and asked for advice",
    "to practise Spanish",
    "for a charity",
    "and wants feedback",
    "after a long break",
];

/// A fast, fixed mix of `n` (splitmix64), to pick the words of memory `n`.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `memory.create` input of call `n`, the same on every run: a
/// sentence of five independently chosen parts, for one of [`USERS`], so
/// that most new memories are not near-duplicates of a stored one (the
/// benchmark reports how many were created).
pub fn new_memory(n: usize) -> Value {
    json!({
        "text": memory_text(n),
        "user_id": format!("bench-user-{}", n % USERS),
    })
}

/// The five parts of memory `n`'s sentence: subject, activity, place, time
/// and detail.
pub fn memory_parts(n: usize) -> [&'static str; 5] {
    let bits = mix(n as u64);
    let pick = |list: &[&'static str; 16], shift: u32| list[((bits >> shift) & 15) as usize];
    [
        pick(&SUBJECTS, 0),
        pick(&ACTIVITIES, 4),
        pick(&PLACES, 8),
        pick(&TIMES, 12),
        pick(&DETAILS, 16),
    ]
}

/// The text of memory `n`: its five parts as one sentence.
pub fn memory_text(n: usize) -> String {
    format!("{}.", memory_parts(n).join(" "))
}

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
    /// available (its plugin, with the manifest beside it that grants its
    /// services, is then copied into `plugins_dir`).
    pub fn workloads(&self, plugins_dir: &Path) -> anyhow::Result<Vec<Workload>> {
        let Memory::Available { plugin } = self else {
            return Ok(vec![Workload::Noop]);
        };
        let copy = |from: &Path, to: &str| {
            std::fs::copy(from, plugins_dir.join(to)).with_context(|| format!("{}", from.display()))
        };
        copy(plugin, "memory.wasm")?;
        let manifest = plugin.with_extension("toml");
        if manifest.is_file() {
            copy(&manifest, "memory.toml")?;
        }
        Ok(vec![Workload::Noop, Workload::MemoryCreate])
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
    broker_round_trip(&stack.broker, message).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn memories_are_fixed_and_mostly_distinct() {
        assert_eq!(new_memory(41), new_memory(41));
        let texts: HashSet<String> = (0..5_000)
            .map(|n| new_memory(n)["text"].as_str().unwrap().to_string())
            .collect();
        // 16^5 sentences: a few collisions among 5,000 at most.
        assert!(texts.len() > 4_980, "{} distinct", texts.len());
        let users: HashSet<String> = (0..5_000)
            .map(|n| new_memory(n)["user_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(users.len(), USERS);
    }
}
