//! Gramian angular fields and Markov transition fields, with the semantics of pyts
//! 0.14 (`GramianAngularField`, `MarkovTransitionField`).
//!
//! Both reduce a series to `image_size` values first when asked (piecewise aggregate
//! approximation, PAA, with pyts' window bounds), compute in `f64` and return `f32`.
//!
//! ```
//! use ndarray::array;
//! use sits_repr::fields::GramianAngularField;
//! let x = array![[0.1f32, 0.4, 0.35, 0.8, 0.75, 0.2]];
//! let g = GramianAngularField::default().transform(x.view()).unwrap();
//! assert!((g[[0, 0, 1]] - 0.143).abs() < 1e-3); // pyts 0.14.1 gives 0.143 here
//! ```

use ndarray::{Array3, ArrayView2};
use rayon::prelude::*;

use crate::error::{param, Result};
use crate::numeric::{linspace, paa_bounds, percentile, Size};
use crate::recurrence::check_finite;

/// Which Gramian field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GafMethod {
    /// `cos(φ_i + φ_j)` (GASF).
    #[default]
    Summation,
    /// `sin(φ_i − φ_j)` (GADF).
    Difference,
}

/// Gramian angular field parameters; `Default` is pyts' default (full size, scaling
/// to `[-1, 1]`, summation, non-overlapping PAA windows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GramianAngularField {
    /// Side of the output image (PAA to this many values first).
    pub image_size: Size,
    /// Per-series min-max scaling range, within `[-1, 1]`; `None` takes the values
    /// as cosines, which must then all lie in `[-1, 1]`.
    pub sample_range: Option<(f64, f64)>,
    /// Summation or difference field.
    pub method: GafMethod,
    /// Overlapping PAA windows.
    pub overlapping: bool,
}

impl Default for GramianAngularField {
    fn default() -> Self {
        Self {
            image_size: Size::Fraction(1.0),
            sample_range: Some((-1.0, 1.0)),
            method: GafMethod::Summation,
            overlapping: false,
        }
    }
}

/// PAA of one series in f64 (mean of each window, summed in order).
fn paa(x: &[f32], bounds: &Option<(Vec<usize>, Vec<usize>)>) -> Vec<f64> {
    match bounds {
        None => x.iter().map(|&v| v as f64).collect(),
        Some((start, end)) => start
            .iter()
            .zip(end)
            .map(|(&a, &b)| {
                let s: f64 = x[a..b].iter().map(|&v| v as f64).sum();
                s / (b - a) as f64
            })
            .collect(),
    }
}

impl GramianAngularField {
    /// Fields of `N` series `(N, T)`: `(N, s, s)` with `s` the image size.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array3<f32>> {
        let (n, t) = x.dim();
        if t == 0 {
            return Err(param("series length", "the series are empty"));
        }
        let s = self.image_size.resolve(t, "image_size")?;
        if let Some((lo, hi)) = self.sample_range {
            if !(-1.0 <= lo && lo < hi && hi <= 1.0) {
                return Err(param(
                    "sample_range",
                    format!("({lo}, {hi}) must satisfy -1 <= min < max <= 1"),
                ));
            }
        }
        let x = x.as_standard_layout();
        let xs = x.as_slice().ok_or_else(|| param("x", "not contiguous"))?;
        check_finite(xs, t, "Gramian angular field input")?;
        let bounds = paa_bounds(t, s, self.overlapping);
        let reduced: Vec<Vec<f64>> = xs.par_chunks(t).map(|r| paa(r, &bounds)).collect();
        if self.sample_range.is_none() {
            if let Some(v) = reduced
                .iter()
                .flatten()
                .find(|v| !(-1.0..=1.0).contains(*v))
            {
                return Err(param(
                    "sample_range",
                    format!("is None, so every value must lie in [-1, 1]; found {v}"),
                ));
            }
        }
        let mut out = vec![0f32; n * s * s];
        out.par_chunks_mut((s * s).max(1))
            .zip(reduced.par_iter())
            .for_each(|(o, r)| {
                let cos = match self.sample_range {
                    Some((lo, hi)) => min_max_scale(r, lo, hi),
                    None => r.clone(),
                };
                let sin: Vec<f64> = cos
                    .iter()
                    .map(|c| (1.0 - c * c).clamp(0.0, 1.0).sqrt())
                    .collect();
                for i in 0..s {
                    for j in 0..s {
                        o[i * s + j] = match self.method {
                            GafMethod::Summation => cos[i] * cos[j] - sin[i] * sin[j],
                            GafMethod::Difference => sin[i] * cos[j] - cos[i] * sin[j],
                        } as f32;
                    }
                }
            });
        Ok(Array3::from_shape_vec((n, s, s), out).expect("length computed above"))
    }
}

/// scikit-learn's `MinMaxScaler` on one sample (a constant series maps to `lo`).
fn min_max_scale(r: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let min = r.iter().copied().fold(f64::INFINITY, f64::min);
    let max = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut range = max - min;
    if range < 10.0 * f64::EPSILON {
        range = 1.0;
    }
    let scale = (hi - lo) / range;
    let offset = lo - min * scale;
    r.iter().map(|v| v * scale + offset).collect()
}

/// How the Markov transition field bins the values of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinStrategy {
    /// Bins holding the same number of values (per-series percentiles).
    #[default]
    Quantile,
    /// Bins of equal width between the series' min and max.
    Uniform,
}

/// Markov transition field parameters; `Default` is pyts' code default: full size,
/// **8** bins (the pyts docstring says 5), quantile strategy, non-overlapping windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarkovTransitionField {
    /// Side of the output image (the field is averaged over windows to this size).
    pub image_size: Size,
    /// Number of bins, at least 2.
    pub n_bins: usize,
    /// Binning strategy.
    pub strategy: BinStrategy,
    /// Overlapping aggregation windows.
    pub overlapping: bool,
}

impl Default for MarkovTransitionField {
    fn default() -> Self {
        Self {
            image_size: Size::Fraction(1.0),
            n_bins: 8,
            strategy: BinStrategy::Quantile,
            overlapping: false,
        }
    }
}

impl MarkovTransitionField {
    /// Fields of `N` series `(N, T)`: `(N, s, s)` with `s` the image size.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array3<f32>> {
        let (n, t) = x.dim();
        if t == 0 {
            return Err(param("series length", "the series are empty"));
        }
        if self.n_bins < 2 {
            return Err(param("n_bins", format!("{} is below 2", self.n_bins)));
        }
        let s = self.image_size.resolve(t, "image_size")?;
        let x = x.as_standard_layout();
        let xs = x.as_slice().ok_or_else(|| param("x", "not contiguous"))?;
        check_finite(xs, t, "Markov transition field input")?;
        let (start, end): (Vec<usize>, Vec<usize>) = if t % s == 0 {
            let w = t / s;
            (
                (0..s).map(|k| k * w).collect(),
                (0..s).map(|k| (k + 1) * w).collect(),
            )
        } else {
            paa_bounds(t, s, self.overlapping).expect("t % s != 0 implies windows > 1")
        };
        let nb = self.n_bins;
        let mut out = vec![0f32; n * s * s];
        out.par_chunks_mut((s * s).max(1))
            .zip(xs.par_chunks(t))
            .for_each(|(o, row)| {
                let bins = self.digitize(row);
                let mut mtm = vec![0f64; nb * nb];
                for w in bins.windows(2) {
                    mtm[w[0] * nb + w[1]] += 1.0;
                }
                for r in mtm.chunks_mut(nb) {
                    let sum: f64 = r.iter().sum();
                    let sum = if sum == 0.0 { 1.0 } else { sum };
                    r.iter_mut().for_each(|v| *v /= sum);
                }
                for j in 0..s {
                    for k in 0..s {
                        let mut total = 0.0f64;
                        let mut count = 0usize;
                        for &br in &bins[start[j]..end[j]] {
                            for &bc in &bins[start[k]..end[k]] {
                                total += mtm[br * nb + bc];
                                count += 1;
                            }
                        }
                        o[j * s + k] = (total / count as f64) as f32;
                    }
                }
            });
        Ok(Array3::from_shape_vec((n, s, s), out).expect("length computed above"))
    }

    /// Bin index of each value: the number of bin edges strictly below it (NumPy's
    /// `searchsorted(side='left')`).
    fn digitize(&self, row: &[f32]) -> Vec<usize> {
        let nb = self.n_bins;
        let v: Vec<f64> = row.iter().map(|&x| x as f64).collect();
        let edges: Vec<f64> = match self.strategy {
            BinStrategy::Quantile => {
                let qs = linspace(0.0, 100.0, nb + 1);
                let mut scratch = v.clone();
                qs[1..nb]
                    .iter()
                    .map(|&q| percentile(&mut scratch, q))
                    .collect()
            }
            BinStrategy::Uniform => {
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                linspace(min, max, nb + 1)[1..nb].to_vec()
            }
        };
        // pyts drops (near-)equal quantile edges; that only renames bins and leaves
        // the partition, hence the field, unchanged, so the edges are used as they are.
        v.iter()
            .map(|&x| edges.partition_point(|&e| e < x))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn anchors_gasf_row() {
        let x = array![[0.1f32, 0.4, 0.35, 0.8, 0.75, 0.2]];
        let g = GramianAngularField::default().transform(x.view()).unwrap();
        let want = [1.0, 0.143, 0.286, -1.0, -0.857, 0.714];
        for (j, w) in want.iter().enumerate() {
            assert!((g[[0, 0, j]] - w).abs() < 1e-3, "{j}: {}", g[[0, 0, j]]);
        }
    }

    #[test]
    fn mtf_rows_are_transition_probabilities() {
        let x = array![[0.0f32, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0]];
        let m = MarkovTransitionField {
            n_bins: 4,
            ..Default::default()
        };
        let f = m.transform(x.view()).unwrap();
        // bins 0,1,2,3,0,1,2,3: 0->1, 1->2, 2->3 always, 3->0 always.
        assert_eq!(f[[0, 0, 1]], 1.0);
        assert_eq!(f[[0, 3, 4]], 1.0);
        assert_eq!(f[[0, 0, 2]], 0.0);
    }

    #[test]
    fn rejects_bad_parameters() {
        let x = array![[0.1f32, 0.4, 0.35]];
        let g = GramianAngularField {
            sample_range: Some((0.5, 0.2)),
            ..Default::default()
        };
        assert!(g.transform(x.view()).is_err());
        let g = GramianAngularField {
            sample_range: None,
            ..Default::default()
        };
        assert!(g.transform(array![[2.0f32, 0.0]].view()).is_err());
        let m = MarkovTransitionField {
            n_bins: 1,
            ..Default::default()
        };
        assert!(m.transform(x.view()).is_err());
    }
}
