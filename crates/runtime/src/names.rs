//! Who owns which plugin and task names: decided by deployment, never by
//! what a plugin declares about itself, and never by file path order.
//!
//! A plugin's identity is its *deployment name*, the stem of its file in the
//! plugins folder (`plugins/<deployment>.wasm`): the operator chooses it (the
//! `{name}` of `PUT /api/v1/plugins/{name}`), the plugin cannot claim it. The
//! names a plugin declares in `describe` (its plugin name and task names) are
//! claims, admitted under these rules:
//!
//! - The built-in plugins' names are reserved for their deployments: only
//!   `memory.wasm` may declare the plugin name `memory` or a name in `memory.*`,
//!   only `maintenance.wasm` the `maintenance` ones, whether or not those files
//!   are present. Replacing the built-in file is the one way to displace it.
//! - A name recorded in the ledger belongs to its deployment: first deployed
//!   wins, and keeps it across restarts whatever the file names.
//! - A name nobody owns, declared by several files at once (a cold start with
//!   no ledger, or two files dropped together), goes to none of them: every
//!   party to the clash is refused until only one declares it.
//! - A plugin is admitted only when it may have every name it declares; an
//!   admitted plugin's names are then recorded as its own.
//! - A name is released when its owner's file is gone, or when the owner's
//!   loaded version no longer declares it. A file that fails to load keeps
//!   the names its last loaded version had (or all its recorded names, when no
//!   version of it loaded): a broken upgrade never frees a name for an impostor.
//!
//! The ledger is persisted as `.hippo-names.json` in the plugins folder
//! itself: it is a property of that folder's files, so it travels with the
//! folder (a volume shared by the API and every worker, while each of those
//! may have a data directory of its own), and whoever can write the folder can
//! already replace any plugin, so keeping it there grants nobody anything new.
//! The REST routes write only `<name>.wasm` and `<name>.toml` with names that
//! cannot start with a dot, so they cannot reach it.

use super::plugin::{LoadError, read_capped};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The ledger's file name in the plugins folder.
pub(crate) const LEDGER_FILE: &str = ".hippo-names.json";

/// Largest ledger read: far more than any real folder's names.
const MAX_LEDGER_BYTES: usize = 16 << 20;

/// The built-in plugins: each one's deployment name is also its plugin name
/// and its task namespace (`memory` declares `memory.create`, ...).
pub(crate) const BUILT_IN: [&str; 2] = ["memory", "maintenance"];

/// The two kinds of names a plugin declares; each has its own owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// The plugin name from `describe`.
    Plugin,
    /// A task name from `describe`.
    Task,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Plugin => "plugin name",
            Kind::Task => "task",
        })
    }
}

/// Owners of names, by deployment name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ledger {
    /// Plugin name -> deployment.
    #[serde(default)]
    plugins: BTreeMap<String, String>,
    /// Task name -> deployment.
    #[serde(default)]
    tasks: BTreeMap<String, String>,
}

/// One file's part in the decision.
#[derive(Debug)]
pub(crate) struct Claimant<'a> {
    /// Its deployment name.
    pub(crate) deployment: &'a str,
    /// The names its loaded version declares; `None` when no version of it
    /// has loaded (it then keeps what it owns and claims nothing).
    pub(crate) declares: Option<Vec<(Kind, &'a str)>>,
}

/// The built-in deployment that `name` is reserved for, if any.
fn reserved_for(name: &str) -> Option<&'static str> {
    BUILT_IN.into_iter().find(|builtin| {
        name.strip_prefix(builtin)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

impl Ledger {
    fn owners(&self, kind: Kind) -> &BTreeMap<String, String> {
        match kind {
            Kind::Plugin => &self.plugins,
            Kind::Task => &self.tasks,
        }
    }

    fn owners_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, String> {
        match kind {
            Kind::Plugin => &mut self.plugins,
            Kind::Task => &mut self.tasks,
        }
    }

    /// The deployment that owns `name`, if any.
    pub(crate) fn owner(&self, kind: Kind, name: &str) -> Option<&str> {
        self.owners(kind).get(name).map(String::as_str)
    }

    /// Why `deployment` may not have `name`, if it may not: a built-in's
    /// reservation, or another deployment's ownership.
    fn refusal(&self, kind: Kind, name: &str, deployment: &str) -> Option<String> {
        if let Some(builtin) = reserved_for(name)
            && builtin != deployment
        {
            return Some(format!(
                "{kind} `{name}` is reserved for the built-in plugin deployed as `{builtin}.wasm`"
            ));
        }
        match self.owner(kind, name) {
            Some(owner) if owner != deployment => Some(format!(
                "{kind} `{name}` is already provided by `{owner}.wasm`, which declared it first"
            )),
            _ => None,
        }
    }

    /// Drops every name whose owner is not among `claimants`, or whose owner's
    /// loaded version no longer declares it.
    fn release(&mut self, claimants: &[Claimant<'_>]) {
        for kind in [Kind::Plugin, Kind::Task] {
            self.owners_mut(kind).retain(|name, owner| {
                claimants
                    .iter()
                    .find(|c| c.deployment == owner)
                    .is_some_and(|c| {
                        c.declares
                            .as_ref()
                            .is_none_or(|names| names.contains(&(kind, name.as_str())))
                    })
            });
        }
    }

    /// Reads the ledger in `dir`: `None` when there is none yet.
    pub(crate) fn read(dir: &Path) -> Result<Option<Ledger>, LedgerError> {
        let path = dir.join(LEDGER_FILE);
        let bytes = match read_capped(&path, MAX_LEDGER_BYTES, 0, |_| Ok(())) {
            Ok(bytes) => bytes,
            Err(LoadError::Read(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(source) => return Err(LedgerError::Read(source)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(LedgerError::Parse)
    }

    /// Writes the ledger into `dir` atomically (a synced temporary file, then
    /// a rename), so a crash leaves the old ledger or the new one.
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let path = dir.join(LEDGER_FILE);
        let temporary = dir.join(format!("{LEDGER_FILE}.{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&serde_json::to_vec_pretty(self)?)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            // The rename itself is durable once the folder is synced.
            std::fs::File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }
}

/// Whether `path` is the ledger or one of its temporary files: the folder
/// watcher ignores them, so writing the ledger never triggers a rescan.
pub(crate) fn is_ledger_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(LEDGER_FILE))
}

/// Why the ledger could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LedgerError {
    /// The file is unreadable or too large.
    #[error("cannot read {LEDGER_FILE}: {0}")]
    Read(#[source] LoadError),
    /// The file is not a ledger.
    #[error("{LEDGER_FILE} is not a valid ledger: {0}")]
    Parse(#[source] serde_json::Error),
}

/// Decides which claimants may have all the names they declare, releases and
/// records names in `ledger` accordingly, and returns each claimant's verdict
/// (`Ok` for those that declare nothing, which are never in service anyway).
/// The verdicts depend on the ledger and the set of claimants, never on their
/// order.
pub(crate) fn settle(ledger: &mut Ledger, claimants: &[Claimant<'_>]) -> Vec<Result<(), String>> {
    ledger.release(claimants);
    // Reservations and recorded owners: each claimant on its own.
    let mut verdicts: Vec<Result<(), String>> = claimants
        .iter()
        .map(|c| {
            let names = c.declares.as_deref().unwrap_or_default();
            names
                .iter()
                .find_map(|&(kind, name)| ledger.refusal(kind, name, c.deployment))
                .map_or(Ok(()), Err)
        })
        .collect();
    // Unowned names declared by several of the claimants still standing:
    // nobody gets them, and each party hears who else declares them.
    let mut unowned: BTreeMap<(Kind, &str), Vec<usize>> = BTreeMap::new();
    for (index, claimant) in claimants.iter().enumerate() {
        if verdicts[index].is_err() {
            continue;
        }
        for &(kind, name) in claimant.declares.as_deref().unwrap_or_default() {
            if ledger.owner(kind, name).is_none() {
                unowned.entry((kind, name)).or_default().push(index);
            }
        }
    }
    let mut clashes: BTreeMap<usize, String> = BTreeMap::new();
    for ((kind, name), parties) in &unowned {
        if parties.len() < 2 {
            continue;
        }
        for &party in parties {
            let others: Vec<String> = parties
                .iter()
                .filter(|&&other| other != party)
                .map(|&other| format!("`{}.wasm`", claimants[other].deployment))
                .collect();
            clashes.entry(party).or_insert_with(|| {
                format!(
                    "{kind} `{name}` is also declared by {}, and no file owns it yet: \
                     every file declaring it is refused until only one does",
                    others.join(", ")
                )
            });
        }
    }
    for (party, reason) in clashes {
        verdicts[party] = Err(reason);
    }
    for (claimant, verdict) in claimants.iter().zip(&verdicts) {
        if verdict.is_ok() {
            for &(kind, name) in claimant.declares.as_deref().unwrap_or_default() {
                ledger
                    .owners_mut(kind)
                    .insert(name.to_string(), claimant.deployment.to_string());
            }
        }
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimant<'a>(deployment: &'a str, plugin: &'a str, tasks: &[&'a str]) -> Claimant<'a> {
        let mut declares = vec![(Kind::Plugin, plugin)];
        declares.extend(tasks.iter().map(|&t| (Kind::Task, t)));
        Claimant {
            deployment,
            declares: Some(declares),
        }
    }

    #[test]
    fn built_in_names_are_reserved_even_without_a_ledger() {
        let mut ledger = Ledger::default();
        let verdicts = settle(
            &mut ledger,
            &[
                claimant("aaa-hijack", "hijack", &["memory.create", "memory.recall"]),
                claimant("memory", "memory", &["memory.create", "memory.recall"]),
                claimant("evil", "maintenance", &["evil.x"]),
                claimant("evil2", "maintenance.extra", &["evil2.x"]),
                claimant("fine", "memoryless", &["memoryless.x"]),
            ],
        );
        assert!(verdicts[0].as_ref().unwrap_err().contains("reserved"));
        assert_eq!(verdicts[1], Ok(()));
        assert!(
            verdicts[2]
                .as_ref()
                .unwrap_err()
                .contains("maintenance.wasm")
        );
        assert!(verdicts[3].is_err());
        assert_eq!(verdicts[4], Ok(()));
        assert_eq!(ledger.owner(Kind::Task, "memory.create"), Some("memory"));
        // Even with the built-in absent, nobody else gets its names.
        let mut ledger = Ledger::default();
        let verdicts = settle(
            &mut ledger,
            &[claimant("aaa-hijack", "hijack", &["memory.create"])],
        );
        assert!(verdicts[0].is_err());
        assert_eq!(ledger, Ledger::default());
    }

    #[test]
    fn an_unowned_clash_refuses_every_party_whatever_the_order() {
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
            let all = [
                claimant("a", "a", &["shared.x", "a.only"]),
                claimant("b", "b", &["shared.x"]),
                claimant("c", "c", &["c.only"]),
            ];
            let claimants: Vec<_> = order
                .iter()
                .map(|&i| Claimant {
                    deployment: all[i].deployment,
                    declares: all[i].declares.clone(),
                })
                .collect();
            let mut ledger = Ledger::default();
            let verdicts = settle(&mut ledger, &claimants);
            for (position, &i) in order.iter().enumerate() {
                assert_eq!(verdicts[position].is_ok(), i == 2, "{verdicts:?}");
            }
            assert!(ledger.owner(Kind::Task, "shared.x").is_none());
            assert!(ledger.owner(Kind::Task, "a.only").is_none());
            assert_eq!(ledger.owner(Kind::Task, "c.only"), Some("c"));
        }
    }

    #[test]
    fn the_first_deployed_keeps_its_names_until_it_lets_them_go() {
        let mut ledger = Ledger::default();
        settle(&mut ledger, &[claimant("zzz-first", "p", &["p.x", "p.y"])]);
        // A newcomer sorting first declares the same names: refused.
        let verdicts = settle(
            &mut ledger,
            &[
                claimant("aaa-late", "p", &["p.x"]),
                claimant("zzz-first", "p", &["p.x", "p.y"]),
            ],
        );
        assert!(
            verdicts[0]
                .as_ref()
                .unwrap_err()
                .contains("already provided by `zzz-first.wasm`")
        );
        assert_eq!(verdicts[1], Ok(()));
        // The owner fails to load: it keeps its names.
        let broken = Claimant {
            deployment: "zzz-first",
            declares: None,
        };
        let verdicts = settle(&mut ledger, &[claimant("aaa-late", "p", &["p.x"]), broken]);
        assert!(verdicts[0].is_err());
        // A new version of the owner stops declaring p.y: released, and taken.
        let verdicts = settle(
            &mut ledger,
            &[
                claimant("aaa-late", "q", &["p.y"]),
                claimant("zzz-first", "p", &["p.x"]),
            ],
        );
        assert_eq!(verdicts, [Ok(()), Ok(())]);
        assert_eq!(ledger.owner(Kind::Task, "p.y"), Some("aaa-late"));
        // The owner's file is gone: everything it had is released.
        let verdicts = settle(&mut ledger, &[claimant("aaa-late", "p", &["p.x", "p.y"])]);
        assert_eq!(verdicts, [Ok(())]);
        assert_eq!(ledger.owner(Kind::Plugin, "p"), Some("aaa-late"));
    }

    #[test]
    fn the_ledger_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Ledger::read(dir.path()).unwrap(), None);
        let mut ledger = Ledger::default();
        settle(
            &mut ledger,
            &[claimant("fib", "example-fib", &["example.fib"])],
        );
        ledger.write(dir.path()).unwrap();
        assert_eq!(Ledger::read(dir.path()).unwrap(), Some(ledger));
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [LEDGER_FILE], "no temporary file is left");
        std::fs::write(dir.path().join(LEDGER_FILE), b"{\"plugins\": 3}").unwrap();
        assert!(matches!(
            Ledger::read(dir.path()),
            Err(LedgerError::Parse(_))
        ));
    }
}
