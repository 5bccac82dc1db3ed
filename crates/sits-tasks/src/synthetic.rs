//! A small synthetic cube with known answers, for tests and for trying the jobs
//! without data: two bands (`red`, `nir`), calendar years of irregular dates, three
//! vegetation types in vertical stripes, a block of pixels that changes type in the
//! last year, and clouds (NaN) on some pixel-dates.

use chrono::{Duration, NaiveDate};
use ndarray::Array4;
use sits_core::dates::Timestamps;
use sits_data::Datacube;

/// Settings of [`cube`].
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticCube {
    /// First calendar year.
    pub first_year: i32,
    /// Number of years.
    pub years: usize,
    /// Dates per year.
    pub dates_per_year: usize,
    /// Height and width.
    pub size: (usize, usize),
    /// Band names (2 or more: the first two get red-like and nir-like values, the
    /// others a mix of both).
    pub bands: Vec<String>,
    /// Fraction of pixel-dates hidden by clouds.
    pub cloud_fraction: f64,
    /// Seed of the noise and the clouds.
    pub seed: u64,
}

impl Default for SyntheticCube {
    fn default() -> Self {
        Self {
            first_year: 2019,
            years: 3,
            dates_per_year: 15,
            size: (12, 10),
            bands: vec!["red".into(), "nir".into()],
            cloud_fraction: 0.1,
            seed: 0,
        }
    }
}

impl SyntheticCube {
    /// The vegetation type of pixel `(row, col)` in year `y` (0-based): stripes of
    /// columns, except the top-left block, which switches type in the last year.
    pub fn kind(&self, row: usize, col: usize, y: usize) -> usize {
        let base = (3 * col / self.size.1.max(1)).min(2);
        if self.changed(row, col) && y + 1 == self.years {
            (base + 1) % 3
        } else {
            base
        }
    }

    /// Whether pixel `(row, col)` changes type in the last year.
    pub fn changed(&self, row: usize, col: usize) -> bool {
        let (h, w) = self.size;
        row < h / 2 && col < w / 3
    }
}

fn hash(mut x: u64) -> f64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Builds the cube described by `s`.
pub fn cube(s: &SyntheticCube) -> sits_data::Result<Datacube> {
    let (h, w) = s.size;
    let nd = s.dates_per_year;
    let t = s.years * nd;
    let mut dates = Vec::with_capacity(t);
    for y in 0..s.years {
        let jan1 = NaiveDate::from_ymd_opt(s.first_year + y as i32, 1, 1)
            .ok_or_else(|| sits_data::DataError::Argument("first_year out of range".into()))?;
        for d in 0..nd {
            // spread over the year with a small irregular offset
            let day =
                (d * 360 / nd.max(1)) as i64 + (hash(s.seed ^ (y * 1000 + d) as u64) * 5.0) as i64;
            dates.push(jan1 + Duration::days(day));
        }
    }
    let times = Timestamps::from_dates(&dates, "synthetic dates")?;
    let c = s.bands.len();
    let mut v = Array4::<f32>::zeros((t, c, h, w));
    for (ti, date) in dates.iter().enumerate() {
        let y = ti / nd.max(1);
        let doy = chrono::Datelike::ordinal(date) as f64 / 365.0;
        for r in 0..h {
            for col in 0..w {
                let k = s.kind(r, col, y);
                // green-up peak at a type-specific time of year, of type-specific height
                let peak = [0.3, 0.55, 0.8][k];
                let amp = [0.6, 0.35, 0.5][k];
                let g = amp * (-((doy - peak) / 0.12).powi(2)).exp();
                let key = s.seed ^ ((ti * h + r) * w + col) as u64;
                let noise = 0.02 * (hash(key.wrapping_mul(3)) - 0.5);
                let red = 0.12 - 0.08 * g + noise;
                let nir = 0.25 + 0.4 * g + noise;
                let cloudy = hash(key.wrapping_mul(7)) < s.cloud_fraction;
                for b in 0..c {
                    v[[ti, b, r, col]] = if cloudy {
                        f32::NAN
                    } else {
                        match b {
                            0 => red as f32,
                            1 => nir as f32,
                            _ => (0.5 * red + 0.3 * nir + 0.05 * b as f64) as f32,
                        }
                    };
                }
            }
        }
    }
    Datacube::new(v, times, s.bands.clone())
}
