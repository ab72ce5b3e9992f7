//! `vigil model job`: the model-update job document (`deploy/schemas/model-job.schema.json`)
//! from a model card and the ONNX file beside it, as AWS IoT Jobs will take it.
//!
//! The truck needs the model, its hash and what it checks the model against before it
//! runs it: the card's normalisation, thresholds, envelope and golden vectors. The card's
//! `evaluation` section is for people (19.4 KB of today's 55 KB card); it stays in the
//! repository, and the job carries the card without it. The trimmed card is verified here
//! exactly as the agent will verify it (SHA-256, shapes, golden vectors through tract), so
//! a job the truck would refuse is never written. The document is checked against its
//! schema and against AWS IoT Jobs' limit of 32 KB (32,768 bytes); one that does not fit is
//! not written, and the error says what takes the room and what to do.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use vigil_agent::detect::model::{Model, ModelCard, ModelError};

/// AWS IoT Jobs' largest job document, bytes.
pub const JOB_DOCUMENT_LIMIT: usize = 32_768;

/// The card sections the truck does not need, left out of the job.
pub const LEFT_OUT: &[&str] = &["evaluation"];

const SCHEMA: &str = include_str!("../../deploy/schemas/model-job.schema.json");

/// Why no job document was written.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model card {}: {source}; it must be the JSON models/train.py writes", path.display())]
    Card {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the card without its evaluation does not verify, so the truck would refuse it: {0}")]
    Model(#[from] ModelError),
    #[error(
        "the job document does not match deploy/schemas/model-job.schema.json ({0}); this is \
         a bug in vigil, please report it"
    )]
    Schema(String),
    #[error("{0}")]
    TooLarge(Sizes),
}

/// What takes the room in a job document, bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizes {
    pub document: usize,
    pub onnx: usize,
    pub onnx_base64: usize,
    /// The card as the job carries it (compact JSON, without [`LEFT_OUT`]).
    pub card: usize,
    /// The card's sections by size, largest first (compact JSON).
    pub card_sections: Vec<(String, usize)>,
    /// The sections left out, and their sizes (compact JSON).
    pub left_out: Vec<(String, usize)>,
}

impl std::fmt::Display for Sizes {
    /// What an operator reads when a model does not fit: the sizes, then what to do.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let largest: Vec<String> = self
            .card_sections
            .iter()
            .take(3)
            .map(|(name, bytes)| format!("{name} {}", thousands(*bytes)))
            .collect();
        write!(
            f,
            "the job document would be {} bytes, over AWS IoT Jobs' {} limit by {}: the model \
             is {} bytes ({} as base64) and its card, without its evaluation, {} (largest: {}). \
             The truck needs the model, its hash and the card's checks, nothing less. To fit: \
             train a smaller model (every model byte takes 4/3 in base64; with this card a \
             model of at most {} bytes fits), or write fewer golden vectors (the agent needs \
             one at least) or fewer watched signals into the card",
            thousands(self.document),
            thousands(JOB_DOCUMENT_LIMIT),
            thousands(self.document - JOB_DOCUMENT_LIMIT),
            thousands(self.onnx),
            thousands(self.onnx_base64),
            thousands(self.card),
            largest.join(", "),
            thousands(self.largest_model_that_fits()),
        )
    }
}

impl Sizes {
    /// The largest model that fits beside this card, bytes: the room its base64 may take,
    /// 3 bytes per 4 characters.
    pub fn largest_model_that_fits(&self) -> usize {
        let room = (JOB_DOCUMENT_LIMIT + self.onnx_base64).saturating_sub(self.document);
        room / 4 * 3
    }
}

/// A built job document, checked.
#[derive(Debug)]
pub struct Job {
    /// The document as written: compact JSON.
    pub bytes: Vec<u8>,
    pub version: String,
    pub sizes: Sizes,
}

/// Builds the job document for the card at `card_path`, verifies what the truck will
/// verify, and checks it against the schema and the 32 KB limit.
pub fn build(card_path: &Path) -> Result<Job, JobError> {
    let text = std::fs::read_to_string(card_path).map_err(|source| JobError::Read {
        path: card_path.to_owned(),
        source,
    })?;
    let mut card: Value = serde_json::from_str(&text).map_err(|source| JobError::Card {
        path: card_path.to_owned(),
        source,
    })?;
    let onnx_name = card["onnx"].as_str().unwrap_or_default().to_owned();
    let onnx_path = card_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&onnx_name);
    let onnx = std::fs::read(&onnx_path).map_err(|source| JobError::Read {
        path: onnx_path.clone(),
        source,
    })?;
    let left_out: Vec<(String, usize)> = LEFT_OUT
        .iter()
        .filter_map(|name| {
            let section = card.as_object_mut()?.remove(*name)?;
            Some(((*name).to_owned(), compact_len(&section)))
        })
        .collect();
    // Exactly what the agent does with the card it receives.
    let typed: ModelCard =
        serde_json::from_value(card.clone()).map_err(|source| JobError::Card {
            path: card_path.to_owned(),
            source,
        })?;
    let version = typed.version.clone();
    Model::from_parts(typed, &onnx, &onnx_path)?;

    let onnx_base64 = base64::engine::general_purpose::STANDARD.encode(&onnx);
    let mut card_sections: Vec<(String, usize)> = card
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), compact_len(v))).collect())
        .unwrap_or_default();
    card_sections.sort_by_key(|s| std::cmp::Reverse(s.1));
    let card_len = compact_len(&card);
    let document = json!({
        "operation": "model-update",
        "model": {
            "version": version,
            "sha256": hex(&Sha256::digest(&onnx)),
            "onnx_base64": onnx_base64,
            "card": card,
        }
    });
    let schema: Value = serde_json::from_str(SCHEMA).expect("the embedded schema is JSON");
    let no_other_schema = |name: &str| -> Value {
        panic!("model-job.schema.json refers to {name}; embed it beside it")
    };
    crate::schema::validate(&schema, &schema, &document, "$", &no_other_schema)
        .map_err(JobError::Schema)?;
    let bytes = serde_json::to_vec(&document).expect("a job document always serialises");
    let sizes = Sizes {
        document: bytes.len(),
        onnx: onnx.len(),
        onnx_base64: onnx_base64.len(),
        card: card_len,
        card_sections,
        left_out,
    };
    if bytes.len() > JOB_DOCUMENT_LIMIT {
        return Err(JobError::TooLarge(sizes));
    }
    Ok(Job {
        bytes,
        version,
        sizes,
    })
}

impl Job {
    /// One line for the operator: what was written and how much room it takes.
    pub fn summary(&self, out: &Path) -> String {
        let left_out: Vec<String> = self
            .sizes
            .left_out
            .iter()
            .map(|(name, bytes)| format!("{name} ({} bytes)", thousands(*bytes)))
            .collect();
        format!(
            "wrote {}: model {} as a job document of {} bytes of AWS IoT Jobs' {} (the model \
             {} bytes, {} as base64; the card {} bytes, left out: {})",
            out.display(),
            self.version,
            thousands(self.sizes.document),
            thousands(JOB_DOCUMENT_LIMIT),
            thousands(self.sizes.onnx),
            thousands(self.sizes.onnx_base64),
            thousands(self.sizes.card),
            if left_out.is_empty() {
                "nothing".to_owned()
            } else {
                left_out.join(", ")
            }
        )
    }
}

fn compact_len(value: &Value) -> usize {
    serde_json::to_vec(value)
        .expect("a JSON value always serialises")
        .len()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32768 as "32,768".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let first = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let (head, tail) = digits.split_at(first);
    let mut out = head.to_owned();
    for group in tail.as_bytes().chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).expect("ASCII digits"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_agent::detect::model::committed_card_path;

    #[test]
    fn the_committed_model_fits_without_its_evaluation_and_the_agent_accepts_it() {
        let job = build(&committed_card_path()).unwrap();
        assert!(job.sizes.document <= JOB_DOCUMENT_LIMIT, "{:?}", job.sizes);
        assert_eq!(job.sizes.document, job.bytes.len());
        assert_eq!(job.sizes.left_out[0].0, "evaluation");
        let document: Value = serde_json::from_slice(&job.bytes).unwrap();
        assert!(document["model"]["card"].get("evaluation").is_none());
        // The agent's own job handler takes it: hash, card, golden vectors.
        let handle = vigil_agent::detect::ModelHandle::new(None);
        let execution = vigil_agent::uplink::jobs::Execution {
            job_id: "j".into(),
            document,
        };
        let done = vigil_agent::uplink::jobs::finish(&execution, &handle);
        assert_eq!(done.status, "SUCCEEDED", "{done:?}");
        assert!(handle.current().is_some());
    }

    /// A card whose golden vectors are repeated until the document passes 32 KB.
    #[test]
    fn a_model_that_does_not_fit_is_not_written_and_the_error_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let committed = committed_card_path();
        let mut card: Value =
            serde_json::from_str(&std::fs::read_to_string(&committed).unwrap()).unwrap();
        let golden = card["golden"].as_array().unwrap().clone();
        card["golden"] = Value::Array(
            golden
                .iter()
                .cycle()
                .take(golden.len() * 4)
                .cloned()
                .collect(),
        );
        std::fs::write(dir.path().join("card.json"), card.to_string()).unwrap();
        std::fs::copy(
            committed.with_file_name("forecaster.onnx"),
            dir.path().join("forecaster.onnx"),
        )
        .unwrap();
        let error = build(&dir.path().join("card.json")).unwrap_err();
        let JobError::TooLarge(sizes) = &error else {
            panic!("{error}")
        };
        assert!(sizes.document > JOB_DOCUMENT_LIMIT);
        assert_eq!(sizes.card_sections[0].0, "golden");
        let message = error.to_string();
        for words in ["32,768", "golden", "train a smaller model"] {
            assert!(message.contains(words), "{message}");
        }
    }

    #[test]
    fn a_card_that_does_not_match_its_model_is_refused_before_any_job_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let committed = committed_card_path();
        std::fs::copy(&committed, dir.path().join("card.json")).unwrap();
        let mut onnx = std::fs::read(committed.with_file_name("forecaster.onnx")).unwrap();
        *onnx.last_mut().unwrap() ^= 1;
        std::fs::write(dir.path().join("forecaster.onnx"), onnx).unwrap();
        let error = build(&dir.path().join("card.json")).unwrap_err();
        assert!(matches!(error, JobError::Model(_)), "{error}");
        assert!(error.to_string().contains("SHA-256"), "{error}");
    }

    #[test]
    fn sizes_read_with_thousands_separators() {
        assert_eq!(thousands(32_768), "32,768");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
