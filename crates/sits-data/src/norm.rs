//! Per-band normalisation statistics from one streaming pass, mergeable across threads.
//!
//! Mean and variance use Welford's update and Chan et al.'s pairwise merge, so the
//! result does not depend on how the data was split between threads (up to float
//! rounding). Percentiles come from a sparse histogram of fixed bin width
//! `resolution` (merged by adding counts), so they are exact to within one bin
//! width, whatever the data size. Invalid observations (mask, NaN, nodata) are skipped.
//!
//! ```
//! use sits_data::norm::BandStats;
//! let mut a = BandStats::new(1e-3);
//! let mut b = BandStats::new(1e-3);
//! for x in [1.0, 2.0] { a.push(x) }
//! for x in [3.0, 4.0] { b.push(x) }
//! a.merge(&b);
//! assert_eq!(a.mean(), 2.5);
//! assert!((a.percentile(50.0) - 2.5).abs() <= 1e-3);
//! ```

use std::collections::BTreeMap;

use ndarray::{Axis, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cube::Datacube;
use crate::error::{DataError, Result};
use crate::samples::SampleSet;

/// Streaming statistics of one band.
#[derive(Debug, Clone, PartialEq)]
pub struct BandStats {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    resolution: f64,
    hist: BTreeMap<i64, u64>,
}

impl BandStats {
    /// Empty statistics with histogram bins of width `resolution` (> 0).
    pub fn new(resolution: f64) -> Self {
        Self {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            resolution: if resolution > 0.0 { resolution } else { 1e-4 },
            hist: BTreeMap::new(),
        }
    }

    /// Adds one value (NaN and infinities are ignored).
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        *self
            .hist
            .entry((x / self.resolution).floor() as i64)
            .or_insert(0) += 1;
    }

    /// Adds everything `other` has seen.
    pub fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let d = other.mean - self.mean;
        self.mean += d * nb / n;
        self.m2 += other.m2 + d * d * na * nb / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        for (k, v) in &other.hist {
            *self.hist.entry(*k).or_insert(0) += v;
        }
    }

    /// Number of values seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean (NaN if empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.mean
        }
    }

    /// Sample standard deviation (divides by `n - 1`, like `torch.std` used for the
    /// PASTIS statistics); NaN with fewer than two values.
    pub fn std(&self) -> f64 {
        if self.count < 2 {
            f64::NAN
        } else {
            (self.m2 / (self.count - 1) as f64).sqrt()
        }
    }

    /// Smallest value.
    pub fn min(&self) -> f64 {
        self.min
    }

    /// Largest value.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// Percentile `q` in `[0, 100]` (numpy's default "linear" definition of the rank),
    /// exact to within one bin width; NaN if empty.
    pub fn percentile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = (q.clamp(0.0, 100.0) / 100.0) * (self.count - 1) as f64;
        let lo = rank.floor() as u64;
        let hi = rank.ceil() as u64;
        let (a, b) = (self.value_at_rank(lo), self.value_at_rank(hi));
        a + (b - a) * (rank - lo as f64)
    }

    /// Estimate of the `k`-th smallest value (0-based): the centre of its bin, clamped
    /// to the observed range (so within half a bin width of the true value).
    fn value_at_rank(&self, k: u64) -> f64 {
        let mut seen = 0u64;
        for (&bin, &n) in &self.hist {
            seen += n;
            if seen > k {
                return ((bin as f64 + 0.5) * self.resolution).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// Normalisation statistics of every band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    /// Band names.
    pub bands: Vec<String>,
    /// Mean per band.
    pub mean: Vec<f32>,
    /// Sample standard deviation per band.
    pub std: Vec<f32>,
    /// 2nd percentile per band.
    pub p02: Vec<f32>,
    /// 98th percentile per band.
    pub p98: Vec<f32>,
    /// Number of valid values per band.
    pub count: Vec<u64>,
}

impl NormStats {
    /// Summarises per-band accumulators.
    ///
    /// A constant band (standard deviation 0) gets a standard deviation of 1, so that
    /// standardising centres it to zeros instead of dividing by zero (which would turn
    /// every value into NaN, that is, into missing observations).
    pub fn from_bands(bands: Vec<String>, stats: &[BandStats]) -> Result<Self> {
        if let Some(i) = stats.iter().position(|s| s.count() < 2) {
            return Err(DataError::Empty(format!(
                "valid values of band `{}` (fewer than 2, no statistics)",
                bands.get(i).map_or("?", String::as_str)
            )));
        }
        Ok(Self {
            mean: stats.iter().map(|s| s.mean() as f32).collect(),
            std: stats
                .iter()
                .map(|s| {
                    let sd = s.std() as f32;
                    if sd > 0.0 && sd.is_finite() {
                        sd
                    } else {
                        1.0
                    }
                })
                .collect(),
            p02: stats.iter().map(|s| s.percentile(2.0) as f32).collect(),
            p98: stats.iter().map(|s| s.percentile(98.0) as f32).collect(),
            count: stats.iter().map(BandStats::count).collect(),
            bands,
        })
    }

    /// Statistics of the valid physical values of a cube (parallel over dates).
    pub fn of_cube(cube: &Datacube, resolution: f64) -> Result<Self> {
        let valid = cube.validity();
        let phys = cube.physical();
        let c = cube.bands().len();
        let stats = (0..phys.len_of(Axis(0)))
            .into_par_iter()
            .fold(
                || vec![BandStats::new(resolution); c],
                |mut acc, ti| {
                    let (frame, v) = (phys.index_axis(Axis(0), ti), valid.index_axis(Axis(0), ti));
                    for (ci, band) in frame.axis_iter(Axis(0)).enumerate() {
                        Zip::from(&band).and(&v).for_each(|&x, &ok| {
                            if ok {
                                acc[ci].push(x as f64)
                            }
                        });
                    }
                    acc
                },
            )
            .reduce(|| vec![BandStats::new(resolution); c], merge_all);
        Self::from_bands(cube.bands().to_vec(), &stats)
    }

    /// Statistics of the valid values of a sample set (parallel over samples).
    pub fn of_samples(set: &SampleSet, resolution: f64) -> Result<Self> {
        let c = set.bands().len();
        let stats = set
            .series()
            .par_iter()
            .fold(
                || vec![BandStats::new(resolution); c],
                |mut acc, s| {
                    let valid = s.validity();
                    for (t, row) in s.values.axis_iter(Axis(0)).enumerate() {
                        if valid[t] {
                            for (ci, &x) in row.iter().enumerate() {
                                acc[ci].push(x as f64);
                            }
                        }
                    }
                    acc
                },
            )
            .reduce(|| vec![BandStats::new(resolution); c], merge_all);
        Self::from_bands(set.bands().to_vec(), &stats)
    }

    fn check_bands(&self, bands: &[String]) -> Result<()> {
        if bands != self.bands.as_slice() {
            return Err(DataError::Argument(format!(
                "normalisation statistics are for bands {:?}, data has {bands:?}",
                self.bands
            )));
        }
        Ok(())
    }

    /// Standardises a cube's stored values in place: `(x - mean) / std`.
    /// The statistics must be of the stored values (identity radiometry).
    pub fn apply_cube(&self, cube: &mut Datacube) -> Result<()> {
        self.check_bands(cube.bands())?;
        for (ci, mut band) in cube.values_mut().axis_iter_mut(Axis(1)).enumerate() {
            let (m, s) = (self.mean[ci], self.std[ci]);
            band.mapv_inplace(|x| (x - m) / s);
        }
        Ok(())
    }

    /// Undoes [`Self::apply_cube`].
    pub fn invert_cube(&self, cube: &mut Datacube) -> Result<()> {
        self.check_bands(cube.bands())?;
        for (ci, mut band) in cube.values_mut().axis_iter_mut(Axis(1)).enumerate() {
            let (m, s) = (self.mean[ci], self.std[ci]);
            band.mapv_inplace(|x| x * s + m);
        }
        Ok(())
    }

    /// Standardises every series of a set in place.
    pub fn apply_samples(&self, set: &mut SampleSet) -> Result<()> {
        self.check_bands(set.bands())?;
        set.series_mut().par_iter_mut().for_each(|s| {
            for mut row in s.values.axis_iter_mut(Axis(0)) {
                for (ci, x) in row.iter_mut().enumerate() {
                    *x = (*x - self.mean[ci]) / self.std[ci];
                }
            }
        });
        Ok(())
    }

    /// Undoes [`Self::apply_samples`].
    pub fn invert_samples(&self, set: &mut SampleSet) -> Result<()> {
        self.check_bands(set.bands())?;
        set.series_mut().par_iter_mut().for_each(|s| {
            for mut row in s.values.axis_iter_mut(Axis(0)) {
                for (ci, x) in row.iter_mut().enumerate() {
                    *x = *x * self.std[ci] + self.mean[ci];
                }
            }
        });
        Ok(())
    }
}

fn merge_all(mut a: Vec<BandStats>, b: Vec<BandStats>) -> Vec<BandStats> {
    for (x, y) in a.iter_mut().zip(&b) {
        x.merge(y);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_equals_single_pass_and_percentiles_are_close() {
        let xs: Vec<f64> = (0..10_000)
            .map(|i| ((i * 7919) % 10_007) as f64 / 10_007.0)
            .collect();
        let mut whole = BandStats::new(1e-3);
        xs.iter().for_each(|&x| whole.push(x));
        let mut parts: Vec<BandStats> = xs
            .chunks(777)
            .map(|c| {
                let mut s = BandStats::new(1e-3);
                c.iter().for_each(|&x| s.push(x));
                s
            })
            .collect();
        let first = parts.remove(0);
        let merged = parts.iter().fold(first, |mut a, b| {
            a.merge(b);
            a
        });
        assert_eq!(merged.count(), whole.count());
        assert!((merged.mean() - whole.mean()).abs() < 1e-12);
        assert!((merged.std() - whole.std()).abs() < 1e-12);
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 2.0, 50.0, 98.0, 100.0] {
            let rank = q / 100.0 * (sorted.len() - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            let exact = sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64);
            assert!(
                (merged.percentile(q) - exact).abs() <= 1e-3,
                "q {q}: {} vs {exact}",
                merged.percentile(q)
            );
        }
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        assert!((whole.std() - var.sqrt()).abs() < 1e-9);
    }
}
