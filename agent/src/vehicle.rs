//! The `[vehicle]` section: which truck this is and what it carries. Every stage that needs
//! it (detect for the tank limits and compartments, the uplink for its thing name, the
//! spool for its folder) takes this, never the whole file.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VehicleConfig {
    /// Thing name on AWS IoT Core and MQTT client id.
    pub id: String,
    pub cargo: CargoClass,
    /// Cargo-tank compartments with a probe, 1-8.
    pub compartments: u8,
}

impl Default for VehicleConfig {
    fn default() -> Self {
        VehicleConfig {
            id: "vigil-demo-truck".into(),
            cargo: CargoClass::Gasoline,
            compartments: 3,
        }
    }
}

impl VehicleConfig {
    /// Checks the values; returns the key and what is wrong. No I/O.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let id = &self.id;
        let id_ok = (1..=128).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'));
        if !id_ok {
            return Err((
                "vehicle.id",
                format!(
                    "expected 1-128 letters, digits, ':', '_' or '-' (an AWS IoT thing name), found {id:?}"
                ),
            ));
        }
        if !(1..=8).contains(&self.compartments) {
            return Err((
                "vehicle.compartments",
                format!("expected 1 to 8, found {}", self.compartments),
            ));
        }
        Ok(())
    }
}

/// What the cargo tank carries; it selects the tank limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CargoClass {
    Gasoline,
    Lpg,
    Naphtha,
    Empty,
}

impl fmt::Display for CargoClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CargoClass::Gasoline => "gasoline",
            CargoClass::Lpg => "lpg",
            CargoClass::Naphtha => "naphtha",
            CargoClass::Empty => "empty",
        })
    }
}
