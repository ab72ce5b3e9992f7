//! Platinum RTD resistance <-> temperature, by the Callendar-Van Dusen equation with the
//! IEC 60751 coefficients (alpha = 0.00385), for any nominal resistance (PT100, PT1000).
//!
//! ```text
//! R(T) = R0 (1 + A T + B T^2)                     0 <= T <= 850 degC
//! R(T) = R0 (1 + A T + B T^2 + C (T - 100) T^3)   -200 <= T < 0 degC
//! ```
//!
//! # Inverse
//!
//! - At or above `R0` (T >= 0 degC) the equation is quadratic and inverted exactly, in the
//!   form `T = 2x / (A + sqrt(A^2 + 4Bx))` with `x = R/R0 - 1`, which is the textbook root
//!   rearranged so it does not subtract two nearly equal numbers near 0 degC.
//! - Below `R0` the quartic term has no convenient closed inverse. The approximation used
//!   here starts from the same quadratic root (which alone is 2.3 degC too warm at
//!   -200 degC) and takes [`NEWTON_STEPS`] Newton steps on the full equation. Each step
//!   roughly squares the error; after three the result is within 0.001 degC of the exact
//!   root from -200 to 0 degC (`tests/pt100.rs` checks every 0.25 degC), far below the
//!   converter's own resolution of about 0.03 degC with a 430 ohm reference.
//!
//! Outside -200..850 degC the equation is only extrapolated; the MAX31865's fault
//! thresholds are the place to reject such readings.

/// IEC 60751 coefficient A, per degC.
pub const A: f32 = 3.9083e-3;
/// IEC 60751 coefficient B, per degC squared.
pub const B: f32 = -5.775e-7;
/// IEC 60751 coefficient C (below 0 degC only), per degC to the fourth.
pub const C: f32 = -4.183e-12;

/// Newton steps taken below 0 degC (see the module documentation).
pub const NEWTON_STEPS: usize = 3;

/// The resistance of a platinum RTD with `nominal_ohms` at 0 degC, at `celsius`.
pub fn resistance(celsius: f32, nominal_ohms: f32) -> f32 {
    nominal_ohms * ratio(celsius)
}

/// The temperature in degC of a platinum RTD with `nominal_ohms` at 0 degC that measures
/// `ohms`.
pub fn temperature(ohms: f32, nominal_ohms: f32) -> f32 {
    let target = ohms / nominal_ohms;
    let x = target - 1.0;
    // The discriminant only goes negative above R/R0 = 7.6 (far beyond 850 degC, and beyond
    // what the converter can report with any sane reference resistor); clamp, not NaN.
    let discriminant = libm::fmaf(4.0 * B, x, A * A).max(0.0);
    let mut t = 2.0 * x / (A + libm::sqrtf(discriminant));
    if x < 0.0 {
        for _ in 0..NEWTON_STEPS {
            let slope = A + 2.0 * B * t + C * (4.0 * t - 300.0) * t * t;
            t -= (ratio(t) - target) / slope;
        }
    }
    t
}

/// `R(T) / R0`.
fn ratio(t: f32) -> f32 {
    let quadratic = 1.0 + A * t + B * t * t;
    if t < 0.0 {
        quadratic + C * (t - 100.0) * t * t * t
    } else {
        quadratic
    }
}
