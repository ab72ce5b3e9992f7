//! The signals Vigil knows, named by the COVESA Vehicle Signal Specification (VSS 5) with an
//! overlay branch for the cargo tank, and the J1939 layout each one is decoded from.
//!
//! The J1939 rows follow SAE J1939-71 (start byte counted from 0, little endian). This
//! built-in table is what the agent decodes with until a DBC file is configured; the same
//! rows are what the simulator encodes with, so a simulated frame decodes back exactly.

use crate::reading::Signal;

pub const COOLANT_TEMPERATURE: &str =
    "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature";
pub const OIL_TEMPERATURE: &str = "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature";
pub const FUEL_TEMPERATURE: &str = "Vehicle.Powertrain.FuelSystem.Temperature";
pub const AMBIENT_TEMPERATURE: &str = "Vehicle.Exterior.AirTemperature";
pub const SPEED: &str = "Vehicle.Speed";
pub const ENGINE_SPEED: &str = "Vehicle.Powertrain.CombustionEngine.Speed";
/// The truck's position, WGS 84 degrees (north and east positive). Never judged as a
/// temperature: detect only keeps the newest fix to tell each alert where the truck was.
pub const LATITUDE: &str = "Vehicle.CurrentLocation.Latitude";
pub const LONGITUDE: &str = "Vehicle.CurrentLocation.Longitude";

/// The VSS name of a cargo-tank compartment's temperature (compartments count from 1).
pub fn tank_temperature(compartment: u8) -> Signal {
    Signal::new(&format!(
        "Vehicle.Cargo.Tank.Compartment{compartment}.Temperature"
    ))
}

/// The compartment a cargo-tank temperature's VSS name is of, if it is one.
pub fn tank_compartment(name: &str) -> Option<u8> {
    name.strip_prefix("Vehicle.Cargo.Tank.Compartment")?
        .strip_suffix(".Temperature")?
        .parse()
        .ok()
}

/// J1939 parameter group numbers the agent decodes.
pub mod pgn {
    /// Electronic Engine Controller 1.
    pub const EEC1: u32 = 61444;
    /// Engine Temperature 1.
    pub const ET1: u32 = 65262;
    /// Cruise Control / Vehicle Speed 1.
    pub const CCVS1: u32 = 65265;
    /// Ambient Conditions.
    pub const AMB: u32 = 65269;
    /// Vehicle Position.
    pub const VP: u32 = 65267;
    /// Active Diagnostic Trouble Codes.
    pub const DM1: u32 = 65226;
}

/// Where one signal sits in a J1939 parameter group and how its raw bits scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct J1939Signal {
    pub vss: &'static str,
    pub pgn: u32,
    pub spn: u32,
    /// First byte of the value, counted from 0.
    pub start_byte: usize,
    /// Length in bytes (1, 2 or 4, little endian).
    pub len: usize,
    /// Physical units per bit.
    pub scale: f64,
    /// Physical value of raw 0.
    pub offset: f64,
    pub unit: &'static str,
}

impl J1939Signal {
    /// The largest raw value J1939 counts as valid data for this length
    /// (`0xFA` for one byte, `0xFAFF` for two, `0xFAFF_FFFF` for four); above it lie
    /// reserved, error and not-available.
    pub fn max_valid_raw(&self) -> u32 {
        match self.len {
            1 => 0xFA,
            2 => 0xFAFF,
            _ => 0xFAFF_FFFF,
        }
    }

    /// The physical range the signal can carry.
    pub fn range(&self) -> (f64, f64) {
        (
            self.offset,
            self.offset + self.scale * self.max_valid_raw() as f64,
        )
    }
}

/// Every J1939 signal the agent decodes by default.
pub const J1939_SIGNALS: &[J1939Signal] = &[
    J1939Signal {
        vss: COOLANT_TEMPERATURE,
        pgn: pgn::ET1,
        spn: 110,
        start_byte: 0,
        len: 1,
        scale: 1.0,
        offset: -40.0,
        unit: "degC",
    },
    J1939Signal {
        vss: FUEL_TEMPERATURE,
        pgn: pgn::ET1,
        spn: 174,
        start_byte: 1,
        len: 1,
        scale: 1.0,
        offset: -40.0,
        unit: "degC",
    },
    J1939Signal {
        vss: OIL_TEMPERATURE,
        pgn: pgn::ET1,
        spn: 175,
        start_byte: 2,
        len: 2,
        scale: 0.03125,
        offset: -273.0,
        unit: "degC",
    },
    J1939Signal {
        vss: AMBIENT_TEMPERATURE,
        pgn: pgn::AMB,
        spn: 171,
        start_byte: 3,
        len: 2,
        scale: 0.03125,
        offset: -273.0,
        unit: "degC",
    },
    J1939Signal {
        vss: SPEED,
        pgn: pgn::CCVS1,
        spn: 84,
        start_byte: 1,
        len: 2,
        scale: 1.0 / 256.0,
        offset: 0.0,
        unit: "km/h",
    },
    J1939Signal {
        vss: ENGINE_SPEED,
        pgn: pgn::EEC1,
        spn: 190,
        start_byte: 3,
        len: 2,
        scale: 0.125,
        offset: 0.0,
        unit: "rpm",
    },
    // SPN 584 and 585 (Vehicle Position, bytes 1-4 and 5-8): 1e-7 deg/bit, offset -210
    // for both, so the data range is -210 to +211.1081215 degrees.
    J1939Signal {
        vss: LATITUDE,
        pgn: pgn::VP,
        spn: 584,
        start_byte: 0,
        len: 4,
        scale: 1e-7,
        offset: -210.0,
        unit: "deg",
    },
    J1939Signal {
        vss: LONGITUDE,
        pgn: pgn::VP,
        spn: 585,
        start_byte: 4,
        len: 4,
        scale: 1e-7,
        offset: -210.0,
        unit: "deg",
    },
];

/// The table row for a VSS name, if the signal comes from J1939.
pub fn j1939_signal(vss: &str) -> Option<&'static J1939Signal> {
    J1939_SIGNALS.iter().find(|s| s.vss == vss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_j1939_71() {
        assert_eq!(
            j1939_signal(COOLANT_TEMPERATURE).unwrap().range(),
            (-40.0, 210.0)
        );
        let oil = j1939_signal(OIL_TEMPERATURE).unwrap().range();
        assert_eq!(oil.0, -273.0);
        assert!((oil.1 - 1734.96875).abs() < 1e-9);
    }

    #[test]
    fn position_spans_the_j1939_71_range() {
        let (min, max) = j1939_signal(LATITUDE).unwrap().range();
        assert_eq!(min, -210.0);
        assert!((max - 211.108_121_5).abs() < 1e-9, "{max}");
        assert_eq!(j1939_signal(LONGITUDE).unwrap().start_byte, 4);
    }

    #[test]
    fn tank_names_follow_the_overlay() {
        assert_eq!(
            tank_temperature(2).as_str(),
            "Vehicle.Cargo.Tank.Compartment2.Temperature"
        );
    }
}
