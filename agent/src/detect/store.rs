//! The model store: the models accepted from jobs, kept on disk so that a restart runs the
//! one the fleet sent, and the one before it kept for a rollback.
//!
//! On disk (`[detect] model_store`, `/var/lib/vigil/models` on a gateway):
//!
//! ```text
//! <dir>/00000007/card.json     an entry: the card as the job carried it (its `onnx` names
//! <dir>/00000007/model.onnx    the file beside it), complete once it has this name
//! <dir>/00000008.staging/      an entry being written; removed when the store opens
//! <dir>/00000006.removed/      an entry rolled back or pruned; removed when the store opens
//! ```
//!
//! Invariants:
//! - **An entry appears whole or not at all.** Both files are written and fsynced in a
//!   staging folder, the folder is fsynced, renamed to its number, and the store's folder
//!   fsynced: a crash at any point leaves either no entry or a complete one. Removal is a
//!   rename too, so a half-deleted entry is never read as one.
//! - **Nothing runs unverified.** An entry is only a candidate: [`ModelStore::choose`] loads
//!   each through [`Model::load`] (SHA-256, shapes, golden vectors through tract), newest
//!   first, and a refusal (a torn or tampered entry, a disk error) is kept in words and
//!   the next one tried; after the stored ones, the config's model.
//! - **At most two entries are kept**: the one that runs and the one it replaced. A rollback
//!   removes the running entry (and any newer that failed to verify), so the next start
//!   chooses what the rollback chose.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{Model, ModelCard, ModelError};

/// The card's name inside an entry.
const CARD: &str = "card.json";
/// The ONNX file's name inside an entry; a stored card always names it, whatever the job's
/// card said, so a card can never point outside its entry.
const ONNX: &str = "model.onnx";
const STAGING: &str = ".staging";
const REMOVED: &str = ".removed";

/// The `[model_store]` section: where models accepted from jobs are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelStoreConfig {
    /// The store's folder, created at start if needed; `None`: a job's model is held in
    /// memory only, and a restart runs `[detect] model` again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl ModelStoreConfig {
    /// Checks the value; returns the key and what is wrong. No I/O.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match &self.path {
            Some(path) if !path.is_absolute() => Err((
                "model_store.path",
                format!(
                    "expected an absolute folder path (the agent may run from any folder), \
                     found {:?}",
                    path.display().to_string()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "model store {}: {source}; check that the folder exists or can be created and that \
         the agent's user may write it ([detect] model_store)",
        path.display()
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One complete entry of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's number; a newer entry has a larger one.
    pub number: u64,
    folder: PathBuf,
}

impl Entry {
    pub fn card(&self) -> PathBuf {
        self.folder.join(CARD)
    }
}

/// Where a running model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An entry of the store: a model a job sent.
    Stored,
    /// A model a job sent, held in memory only: no `[detect] model_store` is configured,
    /// so a restart runs the config's model.
    Job,
    /// `[detect] model` (the built-in one by default).
    Config,
    /// No model: `[detect] model = "none"`, or none could be used.
    None,
}

/// Which model runs and why: what the status and the shadow report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Running {
    /// The running model's version (its card's); `None` when no model runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub from: Origin,
    /// The store's entry, when `from` is `stored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
    /// Why a newer choice was passed over when this one was chosen (at start or by a
    /// rollback), newest first; empty when the first choice ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

impl Running {
    /// The config's model (or none), chosen first.
    pub fn config(model: Option<&Model>) -> Running {
        Running {
            version: model.map(|m| m.card.version.clone()),
            from: if model.is_some() {
                Origin::Config
            } else {
                Origin::None
            },
            entry: None,
            refused: Vec::new(),
        }
    }
}

/// What [`ModelStore::choose`] chose.
#[derive(Debug)]
pub struct Choice {
    /// The model to run; `None` runs the rules alone.
    pub model: Option<Model>,
    pub running: Running,
}

/// A store's folder, opened.
#[derive(Debug)]
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    /// Opens the store at `dir`, creating it if needed, and removes what a crash or a
    /// rollback left: staging folders and removed entries.
    pub fn open(dir: &Path) -> Result<ModelStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let store = ModelStore {
            dir: dir.to_owned(),
        };
        for name in store.names()? {
            if name.ends_with(STAGING) || name.ends_with(REMOVED) {
                let path = dir.join(&name);
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
        sync_dir(dir)?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn names(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for item in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let item = item.map_err(io(&self.dir))?;
            if let Some(name) = item.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    /// The complete entries, newest first.
    pub fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut entries: Vec<Entry> = self
            .names()?
            .into_iter()
            .filter_map(|name| {
                let number = name.parse::<u64>().ok()?;
                Some(Entry {
                    number,
                    folder: self.dir.join(name),
                })
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.number));
        Ok(entries)
    }

    /// Writes a verified model as the newest entry; returns it. The caller verified it
    /// ([`Model::from_parts`]); the entry is verified again whenever it is chosen.
    pub fn save(&self, card: &ModelCard, onnx: &[u8]) -> Result<Entry, StoreError> {
        self.save_steps(card, onnx, usize::MAX)
    }

    /// [`ModelStore::save`] stopped after its first `steps` steps, as a crash stops it.
    fn save_steps(&self, card: &ModelCard, onnx: &[u8], steps: usize) -> Result<Entry, StoreError> {
        let number = self.entries()?.first().map_or(1, |e| e.number + 1);
        let name = format!("{number:08}");
        let staging = self.dir.join(format!("{name}{STAGING}"));
        let entry = Entry {
            number,
            folder: self.dir.join(&name),
        };
        let card = ModelCard {
            onnx: ONNX.to_owned(),
            ..card.clone()
        };
        let card_json = serde_json::to_vec_pretty(&card).expect("a model card always serialises");
        let all: [&dyn Fn() -> Result<(), StoreError>; 6] = [
            &|| std::fs::create_dir(&staging).map_err(io(&staging)),
            &|| write_synced(&staging.join(ONNX), onnx),
            &|| write_synced(&staging.join(CARD), &card_json),
            &|| sync_dir(&staging),
            &|| std::fs::rename(&staging, &entry.folder).map_err(io(&entry.folder)),
            &|| sync_dir(&self.dir),
        ];
        for step in all.iter().take(steps) {
            step()?;
        }
        Ok(entry)
    }

    /// Removes an entry: renamed aside first (one atomic step), then deleted.
    fn remove(&self, entry: &Entry) -> Result<(), StoreError> {
        let aside = self.dir.join(format!("{:08}{REMOVED}", entry.number));
        std::fs::rename(&entry.folder, &aside).map_err(io(&entry.folder))?;
        sync_dir(&self.dir)?;
        // What is left here is removed when the store next opens.
        let _ = std::fs::remove_dir_all(&aside);
        Ok(())
    }

    /// Removes every entry but those numbered in `keep`.
    pub fn keep_only(&self, keep: &[u64]) -> Result<(), StoreError> {
        for entry in self.entries()? {
            if !keep.contains(&entry.number) {
                self.remove(&entry)?;
            }
        }
        Ok(())
    }

    /// Removes the entry numbered `number` and every newer one: what a rollback from it
    /// leaves is what the next start chooses from.
    pub fn remove_from(&self, number: u64) -> Result<(), StoreError> {
        for entry in self.entries()? {
            if entry.number >= number {
                self.remove(&entry)?;
            }
        }
        Ok(())
    }

    /// Chooses the model to run: the newest entry that verifies against its card, else
    /// the next, else `config` (the config's model, or none). Every refusal is kept in
    /// words, newest first, and logged.
    pub fn choose(&self, config: impl FnOnce() -> Option<Model>) -> Choice {
        let mut refused = Vec::new();
        match self.entries() {
            Ok(entries) => {
                for entry in entries {
                    match Model::load(&entry.card()) {
                        Ok(model) => {
                            return Choice {
                                running: Running {
                                    version: Some(model.card.version.clone()),
                                    from: Origin::Stored,
                                    entry: Some(entry.number),
                                    refused,
                                },
                                model: Some(model),
                            };
                        }
                        Err(error) => refused.push(refusal(entry.number, &error)),
                    }
                }
            }
            Err(error) => {
                tracing::error!(event = "model_store_unreadable", %error);
                refused.push(error.to_string());
            }
        }
        let model = config();
        Choice {
            running: Running {
                refused,
                ..Running::config(model.as_ref())
            },
            model,
        }
    }
}

/// A refused entry in words, logged once here.
fn refusal(number: u64, error: &ModelError) -> String {
    let words = format!("stored model {number:08}: {error}");
    tracing::error!(event = "model_store_refused", entry = number, %error, "not running a stored model that does not verify");
    words
}

/// Writes `bytes` to a new file at `path` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write as _;
    let mut file = std::fs::File::create_new(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Makes a folder's entries (created, renamed, removed) durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::detect::model::committed_card_path;

    /// The committed model with its card renamed to `version`: a model a job could send.
    pub(crate) fn model_as(version: &str) -> (ModelCard, Vec<u8>) {
        let path = committed_card_path();
        let mut card: ModelCard =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        card.version = version.to_owned();
        let onnx = std::fs::read(path.with_file_name(&card.onnx)).unwrap();
        (card, onnx)
    }

    fn builtin() -> Option<Model> {
        Some(Model::builtin().unwrap())
    }

    fn stored(dir: &Path, versions: &[&str]) -> ModelStore {
        let store = ModelStore::open(dir).unwrap();
        for version in versions {
            let (card, onnx) = model_as(version);
            store.save(&card, &onnx).unwrap();
        }
        store
    }

    fn chosen(choice: &Choice) -> (Option<&str>, Origin, Option<u64>) {
        (
            choice.model.as_ref().map(|m| m.card.version.as_str()),
            choice.running.from,
            choice.running.entry,
        )
    }

    #[test]
    fn the_newest_entry_that_verifies_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = stored(dir.path(), &["1.0.1", "1.0.2"]);
        let choice = store.choose(builtin);
        assert_eq!(chosen(&choice), (Some("1.0.2"), Origin::Stored, Some(2)));
        assert!(choice.running.refused.is_empty());
        assert_eq!(choice.running.version.as_deref(), Some("1.0.2"));
        // The stored card names the file beside it, whatever the job's card said.
        let card = std::fs::read_to_string(dir.path().join("00000002/card.json")).unwrap();
        assert!(card.contains(r#""onnx": "model.onnx""#), "{card}");
    }

    #[test]
    fn a_corrupted_newest_entry_falls_back_to_the_one_before_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = stored(dir.path(), &["1.0.1", "1.0.2"]);
        let onnx = dir.path().join("00000002/model.onnx");
        let mut bytes = std::fs::read(&onnx).unwrap();
        bytes[100] ^= 0x40;
        std::fs::write(&onnx, bytes).unwrap();
        let choice = ModelStore::open(dir.path()).unwrap().choose(builtin);
        assert_eq!(chosen(&choice), (Some("1.0.1"), Origin::Stored, Some(1)));
        let [refused] = &choice.running.refused[..] else {
            panic!("{:?}", choice.running.refused)
        };
        assert!(
            refused.contains("stored model 00000002") && refused.contains("SHA-256"),
            "{refused}"
        );
        drop(store);
    }

    #[test]
    fn with_no_stored_model_that_verifies_the_config_model_runs() {
        let dir = tempfile::tempdir().unwrap();
        let empty = ModelStore::open(dir.path()).unwrap().choose(builtin);
        assert_eq!(chosen(&empty), (Some("2.3.0"), Origin::Config, None));
        assert!(empty.running.refused.is_empty());

        let store = stored(dir.path(), &["1.0.1", "1.0.2"]);
        std::fs::write(dir.path().join("00000001/card.json"), "{ torn").unwrap();
        std::fs::remove_file(dir.path().join("00000002/model.onnx")).unwrap();
        let choice = store.choose(builtin);
        assert_eq!(chosen(&choice), (Some("2.3.0"), Origin::Config, None));
        assert_eq!(choice.running.refused.len(), 2, "{:?}", choice.running);
        assert!(choice.running.refused[0].contains("00000002"));
        assert!(choice.running.refused[1].contains("00000001"));
        // With `model = "none"` the rules run alone, and the status says so.
        let none = store.choose(|| None);
        assert_eq!(chosen(&none), (None, Origin::None, None));
    }

    #[test]
    fn a_crash_at_any_step_of_a_save_leaves_the_old_model_or_the_new_one() {
        for steps in 0..=6 {
            let dir = tempfile::tempdir().unwrap();
            let store = stored(dir.path(), &["1.0.1"]);
            let (card, onnx) = model_as("1.0.2");
            store.save_steps(&card, &onnx, steps).unwrap();
            drop(store);
            // The next start: what the crash left is cleaned up, and a whole model runs.
            let store = ModelStore::open(dir.path()).unwrap();
            let choice = store.choose(builtin);
            let expected = if steps >= 5 { "1.0.2" } else { "1.0.1" };
            assert_eq!(
                choice.model.as_ref().map(|m| m.card.version.as_str()),
                Some(expected),
                "crash after {steps} steps"
            );
            assert!(choice.running.refused.is_empty(), "{:?}", choice.running);
            let left: Vec<String> = store.names().unwrap();
            assert!(
                left.iter().all(|n| n.parse::<u64>().is_ok()),
                "crash after {steps} steps left {left:?}"
            );
        }
    }

    #[test]
    fn removal_keeps_what_it_is_told_and_rolls_back_from_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = stored(dir.path(), &["1.0.1", "1.0.2", "1.0.3"]);
        store.keep_only(&[3, 2]).unwrap();
        let numbers = |s: &ModelStore| -> Vec<u64> {
            s.entries().unwrap().iter().map(|e| e.number).collect()
        };
        assert_eq!(numbers(&store), [3, 2]);
        store.remove_from(3).unwrap();
        assert_eq!(numbers(&store), [2]);
        assert_eq!(
            store.names().unwrap(),
            ["00000002"],
            "nothing set aside is left"
        );
    }

    #[test]
    fn a_relative_store_path_is_refused_by_the_pure_check() {
        let relative = ModelStoreConfig {
            path: Some("models".into()),
        };
        let (key, message) = relative.check().unwrap_err();
        assert_eq!(key, "model_store.path");
        assert!(message.contains("absolute"), "{message}");
        ModelStoreConfig::default().check().unwrap();
        ModelStoreConfig {
            path: Some("/var/lib/vigil/models".into()),
        }
        .check()
        .unwrap();
    }
}
