//! The route: where the simulated truck is. A seeded path of straight road segments from a
//! depot, walked by the distance the drive covers, so the position moves exactly as fast as
//! the simulated speed and stands still while the truck stops.
//!
//! Owns the depot, the segments and the distance into the current one; it draws from its
//! own [`Stream`], and only when the truck reaches the end of a segment, so a route never
//! shifts another part of the model's numbers. Keeps it simple: roads are straight between
//! turns of at most 60 degrees, on a flat Earth around the truck (good to a few metres
//! over a segment of at most 3 km), and the route never needs a map.

use super::rng::{Rng, Stream};

/// Metres per degree of latitude (and of longitude at the equator).
const METRES_PER_DEGREE: f64 = 111_320.0;

/// The route of one truck.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    rng: Rng,
    /// The current segment's start, degrees.
    start: (f64, f64),
    /// Its heading, radians clockwise from north.
    heading: f64,
    length_m: f64,
    /// Distance covered since the simulation started, metres.
    odometer_m: f64,
    /// The odometer at the current segment's start.
    segment_from_m: f64,
}

impl Route {
    /// A depot somewhere between 47.5 and 52 N, 7 and 14 E (fuel terminals of central
    /// Europe), and the first segment out of it.
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed, Stream::Route);
        let start = (rng.range(47.5, 52.0), rng.range(7.0, 14.0));
        let heading = rng.range(0.0, std::f64::consts::TAU);
        let length_m = rng.range(300.0, 3000.0);
        Route {
            rng,
            start,
            heading,
            length_m,
            odometer_m: 0.0,
            segment_from_m: 0.0,
        }
    }

    /// Moves the truck to `odometer_m` metres from the depot (never backwards).
    pub(crate) fn drive_to(&mut self, odometer_m: f64) {
        self.odometer_m = self.odometer_m.max(odometer_m);
        while self.odometer_m - self.segment_from_m >= self.length_m {
            self.start = self.along(self.length_m);
            self.segment_from_m += self.length_m;
            self.heading = (self.heading + self.rng.range(-1.0, 1.0) * std::f64::consts::FRAC_PI_3)
                .rem_euclid(std::f64::consts::TAU);
            self.length_m = self.rng.range(300.0, 3000.0);
        }
    }

    /// Where the truck is: latitude and longitude, degrees.
    pub(crate) fn position(&self) -> (f64, f64) {
        self.along(self.odometer_m - self.segment_from_m)
    }

    /// The point `metres` along the current segment.
    fn along(&self, metres: f64) -> (f64, f64) {
        let (lat, lon) = self.start;
        let north = metres * self.heading.cos();
        let east = metres * self.heading.sin();
        (
            lat + north / METRES_PER_DEGREE,
            lon + east / (METRES_PER_DEGREE * lat.to_radians().cos()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metres between two points, on the same flat Earth.
    fn metres((a_lat, a_lon): (f64, f64), (b_lat, b_lon): (f64, f64)) -> f64 {
        let north = (b_lat - a_lat) * METRES_PER_DEGREE;
        let east = (b_lon - a_lon) * METRES_PER_DEGREE * a_lat.to_radians().cos();
        north.hypot(east)
    }

    #[test]
    fn a_route_moves_as_far_as_the_truck_drives_and_is_the_same_for_a_seed() {
        let mut route = Route::new(7);
        let depot = route.position();
        assert!((47.5..52.0).contains(&depot.0) && (7.0..14.0).contains(&depot.1));
        // Standing still: the same place.
        route.drive_to(0.0);
        assert_eq!(route.position(), depot);
        // Each step of 25 m (a second at 90 km/h) moves the truck 25 m, through turns.
        let mut last = depot;
        let mut far = 0.0f64;
        for k in 1..=4000 {
            route.drive_to(k as f64 * 25.0);
            let here = route.position();
            let step = metres(last, here);
            assert!(step <= 25.01 && step > 10.0, "step {k}: {step} m");
            far = far.max(metres(depot, here));
            last = here;
        }
        // 100 km of road, with turns: well away from the depot, and not in a straight line.
        assert!(far > 5_000.0 && far < 100_000.0, "{far} m");
        // The odometer never runs back.
        route.drive_to(10.0);
        assert_eq!(route.position(), last);
        // The same seed drives the same route; another seed another.
        let mut again = Route::new(7);
        again.drive_to(100_000.0);
        assert_eq!(again.position(), last);
        assert_ne!(Route::new(8).position(), depot);
    }
}
