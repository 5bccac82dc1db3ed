//! Random draws shared by the crates, portable across platforms for a given
//! generator (the same seed gives the same numbers everywhere).

use rand::{Rng, RngCore};

/// A standard normal draw (Box–Muller, one value per call).
pub fn standard_normal(rng: &mut dyn RngCore) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
