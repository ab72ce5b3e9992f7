//! The agent's [`ModelUpdater`]: what a model-update or rollback job does to the detect
//! stage's model. A job's model is verified first ([`Model::from_parts`]: SHA-256, shapes,
//! golden vectors through tract), then written to the [`ModelStore`] (when `[detect]
//! model_store` names one), and only then swapped in: a model that could not be stored is
//! refused, so the model that runs is always the one a restart runs. A rollback removes
//! the running entry from the store and runs what a start would choose from what is left.
//!
//! Without a store the swap and rollback work in memory alone, as the status says
//! (`from: "job"`): a restart runs the config's model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::model::{self, Model, ModelCard, ModelHandle, ModelUpdater};
use super::store::{Choice, ModelStore, Origin, Running};

/// What the pipeline needs to run model updates: the store, if any, the config's model to
/// fall back to, and which model start chose and why.
#[derive(Debug)]
pub struct ModelUpdates {
    pub store: Option<ModelStore>,
    /// `[detect] model`, loaded again when a rollback falls back to it.
    pub config: Option<PathBuf>,
    pub running: Running,
}

impl Default for ModelUpdates {
    /// The built-in model from the config, no store: what the pipeline's `Stages::builtin`
    /// runs.
    fn default() -> Self {
        ModelUpdates {
            store: None,
            config: Some(model::BUILTIN.into()),
            running: Running {
                version: None,
                from: Origin::Config,
                entry: None,
                refused: Vec::new(),
            },
        }
    }
}

impl ModelUpdates {
    /// The updater that swaps `handle`'s model (the detect stage's).
    pub fn updater(self, handle: ModelHandle) -> StoredModels {
        let mut running = self.running;
        running.version = handle.current().map(|m| m.card.version.clone());
        StoredModels {
            handle,
            store: self.store,
            config: self.config,
            state: Mutex::new(State {
                running,
                before: None,
            }),
        }
    }
}

/// The detect stage's model handle, with the store behind it.
#[derive(Debug)]
pub struct StoredModels {
    handle: ModelHandle,
    store: Option<ModelStore>,
    config: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    running: Running,
    /// Without a store: what ran before the last swap, for an in-memory rollback.
    before: Option<Running>,
}

impl StoredModels {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The config's model, loaded again (a rollback past every stored one); a refusal is
    /// added to `refused`.
    fn config_model(&self, refused: &mut Vec<String>) -> Option<Model> {
        let choice = self.config.as_deref()?;
        if choice == Path::new(model::NONE) {
            return None;
        }
        Model::from_config(choice)
            .map_err(|error| {
                tracing::error!(event = "model_rejected", %error, "running the rules without the model");
                refused.push(format!("the config's model: {error}"));
            })
            .ok()
    }

    fn run_choice(&self, choice: Choice) -> Running {
        let mut running = choice.running;
        running.version = choice.model.as_ref().map(|m| m.card.version.clone());
        match choice.model {
            Some(model) => {
                self.handle.install_shared(Arc::new(model));
            }
            None => self.handle.clear(),
        }
        running
    }
}

impl ModelUpdater for StoredModels {
    fn version(&self) -> Option<String> {
        self.handle.current().map(|m| m.card.version.clone())
    }

    fn running(&self) -> Option<Running> {
        Some(self.state().running.clone())
    }

    fn swap(&self, version: &str, onnx: &[u8], card: Option<&str>) -> Result<(), String> {
        let card =
            card.ok_or("the job carries no model card (model.card); the detect stage needs it")?;
        let path = Path::new("(job document)");
        let card: ModelCard = serde_json::from_str(card).map_err(|source| {
            model::ModelError::Card {
                path: path.to_owned(),
                source,
            }
            .to_string()
        })?;
        let model = Model::from_parts(card, onnx, path).map_err(|e| e.to_string())?;
        let mut state = self.state();
        let now = match &self.store {
            Some(store) => {
                let entry = store
                    .save(&model.card, onnx)
                    .map_err(|e| format!("the model verified but could not be stored: {e}"))?;
                // Kept: the new entry and the one it replaces, for a rollback.
                let keep: Vec<u64> = [Some(entry.number), state.running.entry]
                    .into_iter()
                    .flatten()
                    .collect();
                if let Err(error) = store.keep_only(&keep) {
                    // Older entries left behind are only disk space; the next swap tries again.
                    tracing::warn!(event = "model_store_prune_failed", %error);
                }
                Running {
                    version: Some(model.card.version.clone()),
                    from: Origin::Stored,
                    entry: Some(entry.number),
                    refused: Vec::new(),
                }
            }
            None => Running {
                version: Some(model.card.version.clone()),
                from: Origin::Job,
                entry: None,
                refused: Vec::new(),
            },
        };
        let swapped = self.handle.install_shared(Arc::new(model));
        tracing::info!(event = "model_job_swapped", version, now = %swapped.now, entry = ?now.entry);
        state.before = Some(std::mem::replace(&mut state.running, now));
        Ok(())
    }

    fn rollback(&self) -> Result<(), String> {
        let mut state = self.state();
        let Some(store) = &self.store else {
            let before = state
                .before
                .take()
                .ok_or("there is no previous model to roll back to")?;
            self.handle
                .rollback()
                .ok_or("there is no previous model to roll back to")?;
            state.before = Some(std::mem::replace(&mut state.running, before));
            return Ok(());
        };
        let Some(entry) = state.running.entry else {
            return Err(format!(
                "the running model is {}, not one a job sent: there is no stored model to roll \
                 back from",
                match state.running.from {
                    Origin::None => "none (the rules run alone)",
                    _ => "the config's",
                }
            ));
        };
        store
            .remove_from(entry)
            .map_err(|e| format!("the stored model could not be removed: {e}"))?;
        let mut refused = Vec::new();
        let choice = store.choose(|| self.config_model(&mut refused));
        let mut running = self.run_choice(choice);
        running.refused.extend(refused);
        tracing::info!(event = "model_rolled_back", from = entry, to = ?running.entry, version = ?running.version);
        state.running = running;
        state.before = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::store::tests::model_as;

    /// The agent as it starts: the store opened and chosen from, the built-in model as the
    /// config's, the detect stage's handle behind the updater.
    fn start(dir: &Path) -> StoredModels {
        let store = ModelStore::open(dir).unwrap();
        let choice = store.choose(|| Some(Model::builtin().unwrap()));
        let handle = ModelHandle::new(choice.model);
        ModelUpdates {
            store: Some(store),
            config: Some(model::BUILTIN.into()),
            running: choice.running,
        }
        .updater(handle)
    }

    fn swap(updater: &StoredModels, version: &str) -> Result<(), String> {
        let (card, onnx) = model_as(version);
        updater.swap(version, &onnx, Some(&serde_json::to_string(&card).unwrap()))
    }

    fn running(updater: &StoredModels) -> (Option<String>, Origin, Option<u64>) {
        let r = updater.running().unwrap();
        assert_eq!(
            r.version,
            updater.version(),
            "the report follows the handle"
        );
        (r.version, r.from, r.entry)
    }

    #[test]
    fn a_swapped_model_runs_again_after_a_restart_and_two_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let agent = start(dir.path());
        assert_eq!(
            running(&agent),
            (Some("2.3.0".into()), Origin::Config, None)
        );
        for version in ["1.0.1", "1.0.2", "1.0.3"] {
            swap(&agent, version).unwrap();
        }
        assert_eq!(
            running(&agent),
            (Some("1.0.3".into()), Origin::Stored, Some(3))
        );
        let kept: Vec<u64> = ModelStore::open(dir.path())
            .unwrap()
            .entries()
            .unwrap()
            .iter()
            .map(|e| e.number)
            .collect();
        assert_eq!(kept, [3, 2], "the running model and the one it replaced");
        drop(agent);
        let restarted = start(dir.path());
        assert_eq!(
            running(&restarted),
            (Some("1.0.3".into()), Origin::Stored, Some(3))
        );
    }

    #[test]
    fn a_rollback_is_kept_across_a_restart_down_to_the_config_model() {
        let dir = tempfile::tempdir().unwrap();
        let agent = start(dir.path());
        swap(&agent, "1.0.1").unwrap();
        swap(&agent, "1.0.2").unwrap();
        agent.rollback().unwrap();
        assert_eq!(
            running(&agent),
            (Some("1.0.1".into()), Origin::Stored, Some(1))
        );
        let agent = start(dir.path());
        assert_eq!(
            running(&agent),
            (Some("1.0.1".into()), Origin::Stored, Some(1))
        );
        agent.rollback().unwrap();
        assert_eq!(
            running(&agent),
            (Some("2.3.0".into()), Origin::Config, None)
        );
        let agent = start(dir.path());
        assert_eq!(
            running(&agent),
            (Some("2.3.0".into()), Origin::Config, None)
        );
        let error = agent.rollback().unwrap_err();
        assert!(
            error.contains("no stored model to roll back from"),
            "{error}"
        );
        assert_eq!(
            running(&agent),
            (Some("2.3.0".into()), Origin::Config, None)
        );
    }

    #[test]
    fn a_model_that_fails_its_card_or_cannot_be_stored_is_not_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let agent = start(dir.path());
        swap(&agent, "1.0.1").unwrap();
        let (card, mut onnx) = model_as("1.0.2");
        onnx[100] ^= 0x40;
        let error = agent
            .swap("1.0.2", &onnx, Some(&serde_json::to_string(&card).unwrap()))
            .unwrap_err();
        assert!(error.contains("SHA-256"), "{error}");
        // The store's folder replaced by a file: the model verifies but cannot be kept.
        std::fs::remove_dir_all(dir.path()).unwrap();
        std::fs::write(dir.path(), b"not a folder").unwrap();
        let error = swap(&agent, "1.0.3").unwrap_err();
        assert!(error.contains("could not be stored"), "{error}");
        assert_eq!(
            running(&agent),
            (Some("1.0.1".into()), Origin::Stored, Some(1))
        );
    }

    #[test]
    fn without_a_store_a_swap_is_held_in_memory_and_says_so() {
        let handle = ModelHandle::new(Some(Model::builtin().unwrap()));
        let agent = ModelUpdates::default().updater(handle);
        swap(&agent, "1.0.1").unwrap();
        assert_eq!(running(&agent), (Some("1.0.1".into()), Origin::Job, None));
        agent.rollback().unwrap();
        assert_eq!(
            running(&agent),
            (Some("2.3.0".into()), Origin::Config, None)
        );
        // In memory, as the handle keeps them: the two trade places again.
        agent.rollback().unwrap();
        assert_eq!(running(&agent), (Some("1.0.1".into()), Origin::Job, None));
        let fresh =
            ModelUpdates::default().updater(ModelHandle::new(Some(Model::builtin().unwrap())));
        assert!(fresh.rollback().is_err(), "nothing ran before");
    }
}
