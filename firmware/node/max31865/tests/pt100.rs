//! The Callendar-Van Dusen conversion against the IEC 60751 PT100 table.

use max31865::rtd::{resistance, temperature};

/// (degC, ohm) from the IEC 60751 PT100 table, three decimals.
const TABLE: [(f32, f32); 13] = [
    (-200.0, 18.520),
    (-100.0, 60.256),
    (-50.0, 80.306),
    (-20.0, 92.160),
    (0.0, 100.000),
    (25.0, 109.735),
    (50.0, 119.397),
    (100.0, 138.506),
    (200.0, 175.856),
    (300.0, 212.052),
    (400.0, 247.092),
    (500.0, 280.978),
    (850.0, 390.481),
];

/// Half a table digit (0.0005 ohm) is at most 0.0015 degC anywhere in the range; f32
/// arithmetic adds well under 0.001 degC.
const TEMPERATURE_TOLERANCE_C: f32 = 0.003;
const RESISTANCE_TOLERANCE_OHM: f32 = 0.0006;

#[test]
fn table_resistances_convert_to_their_temperatures() {
    for (celsius, ohms) in TABLE {
        let got = temperature(ohms, 100.0);
        assert!(
            (got - celsius).abs() <= TEMPERATURE_TOLERANCE_C,
            "{ohms} ohm: got {got} degC, table says {celsius}"
        );
    }
}

#[test]
fn table_temperatures_convert_to_their_resistances() {
    for (celsius, ohms) in TABLE {
        let got = resistance(celsius, 100.0);
        assert!(
            (got - ohms).abs() <= RESISTANCE_TOLERANCE_OHM,
            "{celsius} degC: got {got} ohm, table says {ohms}"
        );
    }
}

#[test]
fn inverse_matches_the_full_equation_over_the_whole_range() {
    // Every 0.25 degC from -200 to 850: the Newton steps below 0 degC and the quadratic
    // root above it both land within 0.001 degC of the temperature that made the value.
    let mut worst = 0.0f32;
    for step in 0..=4200 {
        let celsius = -200.0 + step as f32 * 0.25;
        let error = (temperature(resistance(celsius, 100.0), 100.0) - celsius).abs();
        worst = worst.max(error);
    }
    assert!(worst < 0.001, "worst round-trip error {worst} degC");
}

#[test]
fn the_quadratic_alone_would_be_wrong_below_zero() {
    // Guards the Newton steps: dropping them shows here as a 2.3 degC error at -200 degC.
    let a = max31865::rtd::A;
    let b = max31865::rtd::B;
    let x = 18.520f32 / 100.0 - 1.0;
    let quadratic_only = 2.0 * x / (a + (a * a + 4.0 * b * x).sqrt());
    assert!((quadratic_only - -200.0).abs() > 2.0);
    assert!((temperature(18.520, 100.0) - -200.0).abs() <= TEMPERATURE_TOLERANCE_C);
}

#[test]
fn pt1000_scales_with_its_nominal_resistance() {
    assert!((temperature(1385.06, 1000.0) - 100.0).abs() <= TEMPERATURE_TOLERANCE_C);
    assert!((temperature(185.20, 1000.0) - -200.0).abs() <= TEMPERATURE_TOLERANCE_C);
}
