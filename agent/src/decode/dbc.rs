//! DBC files (the industry's CAN database format) into the decoder's [`SignalTable`], and the
//! config that names the file and maps its signal names to VSS names.
//!
//! Parsing is `can-dbc`'s; this module only checks that each signal the mapping names is
//! one the J1939 decoder can carry (a 29-bit id, little endian, not multiplexed) and turns
//! it into a [`Layout`]. The DBC's `SPN` signal attribute, when present, is kept.
//!
//! A mapping that names a signal the DBC does not have is an error at start, not a signal
//! that silently never arrives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use can_dbc::{
    AttributeValue, ByteOrder, Dbc, MessageId, MultiplexIndicator, NumericValue, ValueType,
};
use serde::{Deserialize, Serialize};

use super::j1939::J1939Id;
use super::table::{Layout, SignalTable};
use crate::reading::Signal;
use crate::signals;

/// The project's own J1939 DBC (`deploy/dbc/vigil-j1939.dbc`), built into the binary so an
/// agent without a configured file still decodes by DBC.
pub const BUILTIN_DBC: &str = include_str!("../../../deploy/dbc/vigil-j1939.dbc");

/// Which DBC to decode with and what to call its signals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbcConfig {
    /// The DBC file. Absent: the DBC built into the agent (`deploy/dbc/vigil-j1939.dbc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// DBC signal name -> VSS signal name. Only the signals named here are decoded. Giving
    /// this table replaces the default one as a whole.
    #[serde(default = "default_signal_names")]
    pub signals: BTreeMap<String, String>,
}

impl Default for DbcConfig {
    fn default() -> Self {
        DbcConfig {
            path: None,
            signals: default_signal_names(),
        }
    }
}

impl DbcConfig {
    /// Reads and checks the DBC and builds the decoder's table from the mapped signals.
    pub fn load(&self) -> Result<SignalTable, DbcError> {
        let (origin, text) = match &self.path {
            Some(path) => (path.display().to_string(), read_dbc(path)?),
            None => ("built-in DBC".to_owned(), BUILTIN_DBC.to_owned()),
        };
        table_from_dbc(&text, &origin, &SignalNames::Mapped(&self.signals))
    }
}

/// The mapping from the names in `deploy/dbc/vigil-j1939.dbc` to VSS.
pub fn default_signal_names() -> BTreeMap<String, String> {
    [
        ("EngCoolantTemp", signals::COOLANT_TEMPERATURE),
        ("EngFuelTemp1", signals::FUEL_TEMPERATURE),
        ("EngOilTemp1", signals::OIL_TEMPERATURE),
        ("AmbientAirTemp", signals::AMBIENT_TEMPERATURE),
        ("WheelBasedVehicleSpeed", signals::SPEED),
        ("EngSpeed", signals::ENGINE_SPEED),
        ("Latitude", signals::LATITUDE),
        ("Longitude", signals::LONGITUDE),
    ]
    .into_iter()
    .map(|(dbc, vss)| (dbc.to_owned(), vss.to_owned()))
    .collect()
}

/// Which DBC signals become layouts, and under which names.
#[derive(Clone, Copy, Debug)]
pub enum SignalNames<'a> {
    /// Only the signals in the map, named by it (the agent).
    Mapped(&'a BTreeMap<String, String>),
    /// Every signal the decoder can carry: the mapped ones by their VSS name, the others by
    /// their DBC name (the `vigil decode` tool, which checks a DBC against a log).
    All(&'a BTreeMap<String, String>),
}

/// Why a DBC cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbcError {
    #[error(
        "cannot read DBC file {path}: {source}; check `path` under the DBC settings, or remove it to use the built-in DBC"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not a valid DBC file: {message}")]
    Parse { origin: String, message: String },
    #[error(
        "{origin}: the mapping names DBC signal {signal:?}, which the file does not define; fix the name or remove it from the mapping"
    )]
    UnknownSignal { origin: String, signal: String },
    #[error("{origin}: signal {message}.{signal} cannot be decoded as J1939: {reason}")]
    Unsupported {
        origin: String,
        message: String,
        signal: String,
        reason: &'static str,
    },
}

/// Reads a DBC file. DBC files are often Windows-1252, not UTF-8: bytes that are not UTF-8
/// are taken as Latin-1, which only ever touches comments and units.
pub fn read_dbc(path: &Path) -> Result<String, DbcError> {
    let bytes = std::fs::read(path).map_err(|source| DbcError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    })
}

/// Parses DBC text (`origin` names it in errors) into a signal table.
pub fn table_from_dbc(
    text: &str,
    origin: &str,
    names: &SignalNames,
) -> Result<SignalTable, DbcError> {
    let dbc = Dbc::try_from(text).map_err(|e| DbcError::Parse {
        origin: origin.to_owned(),
        message: e.to_string(),
    })?;
    let mapping = match names {
        SignalNames::Mapped(m) | SignalNames::All(m) => *m,
    };
    let mut layouts = Vec::new();
    let mut found = std::collections::BTreeSet::new();
    for message in &dbc.messages {
        for signal in &message.signals {
            let vss = mapping.get(&signal.name);
            if vss.is_none() && matches!(names, SignalNames::Mapped(_)) {
                continue;
            }
            let unsupported = |reason| DbcError::Unsupported {
                origin: origin.to_owned(),
                message: message.name.clone(),
                signal: signal.name.clone(),
                reason,
            };
            let checked = check_signal(message.id, signal);
            let id = match (checked, vss) {
                (Ok(id), _) => id,
                (Err(reason), Some(_)) => return Err(unsupported(reason)),
                // An unmapped signal the tool cannot carry is left out, not an error.
                (Err(_), None) => continue,
            };
            found.insert(signal.name.as_str());
            let range = match (numeric(signal.min), numeric(signal.max)) {
                (min, max) if min < max => Some((min, max)),
                // `[0|0]` is the DBC way of giving no range.
                _ => None,
            };
            layouts.push(Layout {
                signal: Signal::new(vss.unwrap_or(&signal.name)),
                pgn: J1939Id::from_can_id(id).pgn,
                spn: spn_attribute(&dbc, message.id, &signal.name),
                start_bit: signal.start_bit as u16,
                bits: signal.size as u8,
                signed: signal.value_type == ValueType::Signed,
                scale: signal.factor,
                offset: signal.offset,
                range,
                unit: Arc::from(signal.unit.as_str()),
            });
        }
    }
    if let Some(missing) = mapping.keys().find(|name| !found.contains(name.as_str())) {
        return Err(DbcError::UnknownSignal {
            origin: origin.to_owned(),
            signal: missing.clone(),
        });
    }
    Ok(SignalTable::new(layouts))
}

/// The 29-bit id of a signal J1939 can carry, or why it cannot.
fn check_signal(id: MessageId, signal: &can_dbc::Signal) -> Result<u32, &'static str> {
    let MessageId::Extended(id) = id else {
        return Err("J1939 uses 29-bit ids; give the id with the extended flag 0x80000000");
    };
    if signal.byte_order != ByteOrder::LittleEndian {
        return Err("J1939 is little endian (@1); big-endian (@0) signals are not supported");
    }
    if signal.multiplexer_indicator != MultiplexIndicator::Plain {
        return Err("multiplexed signals are not supported");
    }
    if !(1..=64).contains(&signal.size) || signal.start_bit + signal.size > 1785 * 8 {
        return Err("a signal must be 1 to 64 bits inside a J1939 message (1785 bytes)");
    }
    Ok(id)
}

fn numeric(value: NumericValue) -> f64 {
    match value {
        NumericValue::Uint(v) => v as f64,
        NumericValue::Int(v) => v as f64,
        NumericValue::Double(v) => v,
    }
}

fn spn_attribute(dbc: &Dbc, message: MessageId, signal: &str) -> Option<u32> {
    dbc.attribute_values_signal
        .iter()
        .find(|a| a.name == "SPN" && a.message_id == message && a.signal_name == signal)
        .and_then(|a| match a.value {
            AttributeValue::Uint(v) => u32::try_from(v).ok(),
            AttributeValue::Int(v) => u32::try_from(v).ok(),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::J1939_SIGNALS;

    #[test]
    fn the_built_in_dbc_matches_the_built_in_table_row_for_row() {
        let table = DbcConfig::default().load().unwrap();
        assert_eq!(table.layouts().len(), J1939_SIGNALS.len());
        for row in J1939_SIGNALS {
            let layout = table
                .layouts()
                .iter()
                .find(|l| l.signal.as_str() == row.vss)
                .unwrap_or_else(|| panic!("{} missing", row.vss));
            assert_eq!(*layout, Layout::from_j1939(row), "{}", row.vss);
        }
    }

    #[test]
    fn config_rejects_unknown_keys_and_defaults_the_mapping() {
        let cfg: DbcConfig = toml::from_str(r#"path = "/etc/vigil/truck.dbc""#).unwrap();
        assert_eq!(cfg.signals, default_signal_names());
        let err = toml::from_str::<DbcConfig>("file = \"x.dbc\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `file`"), "{err}");
    }

    #[test]
    fn a_mapping_naming_a_missing_signal_fails_with_its_name() {
        let mut signals = default_signal_names();
        signals.insert("EngCoolantTmp".into(), "Vehicle.X".into());
        let err = DbcConfig {
            path: None,
            signals,
        }
        .load()
        .unwrap_err();
        assert!(
            matches!(&err, DbcError::UnknownSignal { signal, .. } if signal == "EngCoolantTmp"),
            "{err}"
        );
    }

    #[test]
    fn mapped_signals_j1939_cannot_carry_are_refused_and_unmapped_ones_skipped() {
        let dbc = BUILTIN_DBC.replace("EngSpeed : 24|16@1+", "EngSpeed : 24|16@0+");
        let err = table_from_dbc(&dbc, "test", &SignalNames::Mapped(&default_signal_names()))
            .unwrap_err();
        assert!(
            matches!(&err, DbcError::Unsupported { signal, .. } if signal == "EngSpeed"),
            "{err}"
        );
        let mut names = default_signal_names();
        names.remove("EngSpeed");
        let table = table_from_dbc(&dbc, "test", &SignalNames::All(&names)).unwrap();
        assert_eq!(table.layouts().len(), 10);
    }

    #[test]
    fn the_tool_names_unmapped_signals_by_their_dbc_name() {
        let table =
            table_from_dbc(BUILTIN_DBC, "test", &SignalNames::All(&BTreeMap::new())).unwrap();
        let names: Vec<_> = table
            .group(65262)
            .iter()
            .map(|l| l.signal.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "EngCoolantTemp",
                "EngFuelTemp1",
                "EngOilTemp1",
                "EngTurboOilTemp",
                "EngIntercoolerTemp"
            ]
        );
    }

    #[test]
    fn garbage_is_a_parse_error_naming_the_file() {
        let err = table_from_dbc(
            "BO_ nonsense",
            "truck.dbc",
            &SignalNames::All(&BTreeMap::new()),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("truck.dbc: not a valid DBC file"),
            "{err}"
        );
    }
}
