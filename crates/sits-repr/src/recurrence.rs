//! Recurrence plots of pixel time series, with the semantics of pyts'
//! `RecurrencePlot` (0.14).
//!
//! For a series `x` of length `T`, the trajectories are
//! `x⃗_i = (x_i, x_{i+τ}, …, x_{i+(d-1)τ})` for `i < m = T - (d-1)τ`, and the plot is
//! the `m × m` matrix of distances `‖x⃗_i − x⃗_j‖` (absolute difference when `d = 1`,
//! Euclidean otherwise). A [`Threshold`] turns it into a binary plot with a strict
//! comparison `D < ε`.
//!
//! Distances are computed in `f64` wherever a threshold is compared, so binary plots
//! equal pyts' bit for bit; unthresholded plots are written as `f32` (the difference of
//! two `f32` values rounded once, the same number pyts' `f64` result rounds to).
//!
//! ```
//! use ndarray::array;
//! use sits_repr::recurrence::{RecurrencePlot, Threshold};
//! let x = array![[0.1f32, 0.4, 0.35, 0.8, 0.75, 0.2]];
//! let d = RecurrencePlot::default().transform(x.view()).unwrap();
//! assert!((d[[0, 0, 3]] - 0.7).abs() < 1e-6);
//! let rp = RecurrencePlot { threshold: Threshold::Point(20.0), ..Default::default() };
//! let r = rp.transform(x.view()).unwrap();
//! assert_eq!(r[[0, 0, 0]], 1.0); // the 20th percentile keeps only the diagonal
//! assert_eq!(r[[0, 0, 5]], 0.0);
//! ```

use ndarray::{Array3, Array4, ArrayView2, ArrayView3};
use rayon::prelude::*;

use crate::error::{param, ReprError, Result};
use crate::numeric::{percentile_by_rank, Size};

/// How distances become a binary recurrence plot.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Threshold {
    /// Keep the distances (the pyts default, and the PIMC convention).
    #[default]
    None,
    /// ε is this percentile (0..=100) of all `m²` distances of the series, diagonal
    /// zeros included, with NumPy's linear interpolation.
    Point(f64),
    /// ε is this percentage (0..=100) of the largest distance of the series.
    Distance(f64),
    /// A fixed ε (> 0).
    Value(f64),
}

/// Recurrence-plot parameters. `Default` is pyts' default: `dimension = 1`,
/// `time_delay = 1`, no threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecurrencePlot {
    /// Embedding dimension `d` of the trajectories.
    pub dimension: Size,
    /// Time delay `τ` between the coordinates of a trajectory.
    pub time_delay: Size,
    /// Binarisation.
    pub threshold: Threshold,
}

impl Default for RecurrencePlot {
    fn default() -> Self {
        Self {
            dimension: Size::Count(1),
            time_delay: Size::Count(1),
            threshold: Threshold::None,
        }
    }
}

#[derive(Clone, Copy)]
struct Resolved {
    t: usize,
    m: usize,
    dim: usize,
    delay: usize,
    threshold: Threshold,
}

impl RecurrencePlot {
    /// Side `m = T - (d-1)τ` of the plot of a series of `t` values.
    pub fn image_size(&self, t: usize) -> Result<usize> {
        Ok(self.resolve(t)?.m)
    }

    fn resolve(&self, t: usize) -> Result<Resolved> {
        if t == 0 {
            return Err(param("series length", "the series are empty"));
        }
        let dim = self.dimension.resolve(t, "dimension")?;
        let delay = self.time_delay.resolve(t, "time_delay")?;
        let span = (dim - 1) * delay;
        if span >= t {
            return Err(param(
                "dimension",
                format!("dimension {dim} with time_delay {delay} needs more than {t} values"),
            ));
        }
        match self.threshold {
            Threshold::Point(p) | Threshold::Distance(p) if !(0.0..=100.0).contains(&p) => {
                return Err(param(
                    "threshold",
                    format!("percentage {p} is not in [0, 100]"),
                ))
            }
            Threshold::Value(v) if !(v > 0.0 && v.is_finite()) => {
                return Err(param(
                    "threshold",
                    format!("fixed threshold {v} must be > 0"),
                ))
            }
            _ => {}
        }
        Ok(Resolved {
            t,
            m: t - span,
            dim,
            delay,
            threshold: self.threshold,
        })
    }

    /// Plots of `n` series `(N, T)` into `out`, a caller-owned buffer of `N·m·m`
    /// values laid out as `(N, m, m)`. Series are processed in parallel on the rayon
    /// pool. Binary plots hold 1.0 for a recurrence and 0.0 elsewhere.
    ///
    /// Fails on NaN or infinite input (naming the series and date) and on a buffer
    /// of the wrong size; `out` is left untouched then.
    pub fn transform_into(&self, x: ArrayView2<'_, f32>, out: &mut [f32]) -> Result<()> {
        let (n, t) = x.dim();
        let r = self.resolve(t)?;
        let mm = r.m * r.m;
        if out.len() != n * mm {
            return Err(ReprError::Shape {
                what: "recurrence plot output buffer".into(),
                expected: format!("{n} x {m} x {m} = {} values", n * mm, m = r.m),
                got: vec![out.len()],
            });
        }
        let x = x.as_standard_layout();
        let xs = x.as_slice().ok_or_else(|| param("x", "not contiguous"))?;
        check_finite(xs, t, "recurrence plot input")?;
        if n == 0 {
            return Ok(());
        }
        match (r.threshold, r.dim) {
            (Threshold::None, 1) => out
                .par_chunks_mut(mm)
                .zip(xs.par_chunks(t))
                .with_min_len(64)
                .for_each(|(o, s)| distances_dim1_f32(s, o)),
            (_, 1) => out
                .par_chunks_mut(mm)
                .zip(xs.par_chunks(t))
                .with_min_len(16)
                .for_each_init(
                    || (Vec::new(), Vec::new()),
                    |(xd, pairs), (o, s)| binary_dim1(&r, s, o, xd, pairs),
                ),
            _ => out
                .par_chunks_mut(mm)
                .zip(xs.par_chunks(t))
                .with_min_len(16)
                .for_each_init(
                    || (Vec::new(), Vec::new()),
                    |(d, pairs), (o, s)| plot_general(&r, s, o, d, pairs),
                ),
        }
        Ok(())
    }

    /// Plots of `N` series `(N, T)` as a new `(N, m, m)` array.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array3<f32>> {
        let (n, t) = x.dim();
        let m = self.image_size(t)?;
        let mut out = vec![0f32; n * m * m];
        self.transform_into(x, &mut out)?;
        Ok(Array3::from_shape_vec((n, m, m), out).expect("length checked above"))
    }

    /// One plot per channel: `(N, C, T)` series (for instance NDVI, EVI and SAVI of
    /// each pixel) to `(N, C, m, m)` images, the multi-index input of PIMC.
    pub fn transform_channels(&self, x: ArrayView3<'_, f32>) -> Result<Array4<f32>> {
        let (n, c, t) = x.dim();
        let x = x.as_standard_layout();
        let flat = x
            .view()
            .into_shape_with_order((n * c, t))
            .map_err(|e| param("x", e.to_string()))?;
        let m = self.image_size(t)?;
        let mut out = vec![0f32; n * c * m * m];
        self.transform_into(flat, &mut out)?;
        Ok(Array4::from_shape_vec((n, c, m, m), out).expect("length checked above"))
    }
}

/// Errors on the first NaN or infinite value of rows of length `t`.
pub(crate) fn check_finite(xs: &[f32], t: usize, what: &str) -> Result<()> {
    if let Some(pos) = xs.iter().position(|v| !v.is_finite()) {
        return Err(ReprError::NonFinite {
            what: what.into(),
            location: format!("series {}, date {}", pos / t.max(1), pos % t.max(1)),
        });
    }
    Ok(())
}

/// `|x_i - x_j|` in f32: memory-bound, vectorised row by row.
fn distances_dim1_f32(x: &[f32], out: &mut [f32]) {
    let m = x.len();
    for (row, &xi) in out.chunks_exact_mut(m).zip(x) {
        for (o, &xj) in row.iter_mut().zip(x) {
            *o = (xi - xj).abs();
        }
    }
}

/// The `((n - m) / 2)`-style order statistic of the m² entries of a symmetric
/// distance matrix with a zero diagonal, for NumPy's linear percentile. `pairs`
/// holds the off-diagonal distances of `i < j` as the bits of non-negative f64
/// values (whose order is the order of the bits) and is reordered.
fn point_threshold(m: usize, p: f64, pairs: &mut [u64]) -> f64 {
    // The m² entries are m diagonal zeros plus every off-diagonal distance twice,
    // so the k-th smallest entry is 0 for k < m and otherwise the
    // ((k - m) / 2)-th smallest pairwise distance.
    let mut selected: Option<usize> = None;
    percentile_by_rank(m * m, p, |k| {
        if k < m {
            return 0.0;
        }
        let idx = (k - m) / 2;
        let bits = match selected {
            Some(s) if s == idx => pairs[s],
            Some(s) if idx == s + 1 => pairs[s + 1..].iter().copied().min().unwrap_or(u64::MAX),
            _ => {
                pairs.select_nth_unstable(idx);
                selected = Some(idx);
                pairs[idx]
            }
        };
        f64::from_bits(bits)
    })
}

/// Binary plot of one series for `dimension = 1`: the threshold from the pairwise
/// differences (exact in f64), then one vectorisable comparison pass.
fn binary_dim1(r: &Resolved, x: &[f32], out: &mut [f32], xd: &mut Vec<f64>, pairs: &mut Vec<u64>) {
    let m = r.m;
    xd.clear();
    xd.extend(x.iter().map(|&v| v as f64));
    let eps = match r.threshold {
        Threshold::Value(v) => v,
        // max |x_i - x_j| is max - min, rounded the same way.
        Threshold::Distance(p) => {
            let (lo, hi) = xd
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            p / 100.0 * (hi - lo)
        }
        Threshold::Point(p) => {
            pairs.clear();
            for i in 0..m {
                let xi = xd[i];
                pairs.extend(xd[i + 1..].iter().map(|&xj| (xi - xj).abs().to_bits()));
            }
            point_threshold(m, p, pairs)
        }
        Threshold::None => unreachable!("unthresholded plots take the f32 path"),
    };
    for (row, &xi) in out.chunks_exact_mut(m).zip(xd.iter()) {
        for (o, &xj) in row.iter_mut().zip(xd.iter()) {
            *o = if (xi - xj).abs() < eps { 1.0 } else { 0.0 };
        }
    }
}

/// Distances in f64 (the trajectory form), then thresholding, for one series.
fn plot_general(r: &Resolved, x: &[f32], out: &mut [f32], d: &mut Vec<f64>, pairs: &mut Vec<u64>) {
    let m = r.m;
    debug_assert_eq!(x.len(), r.t);
    d.clear();
    d.resize(m * m, 0.0);
    for i in 0..m {
        for j in 0..m {
            d[i * m + j] = if r.dim == 1 {
                (x[i] as f64 - x[j] as f64).abs()
            } else {
                let mut total = 0.0f64;
                for k in 0..r.dim {
                    let diff = x[i + k * r.delay] as f64 - x[j + k * r.delay] as f64;
                    total += diff * diff;
                }
                total.sqrt()
            };
        }
    }
    let eps = match r.threshold {
        Threshold::None => {
            for (o, v) in out.iter_mut().zip(d.iter()) {
                *o = *v as f32;
            }
            return;
        }
        Threshold::Value(v) => v,
        Threshold::Distance(p) => p / 100.0 * d.iter().copied().fold(0.0, f64::max),
        Threshold::Point(p) => {
            pairs.clear();
            for i in 0..m {
                pairs.extend(d[i * m + i + 1..(i + 1) * m].iter().map(|v| v.to_bits()));
            }
            point_threshold(m, p, pairs)
        }
    };
    for (o, v) in out.iter_mut().zip(d.iter()) {
        *o = if *v < eps { 1.0 } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn golden() -> ndarray::Array2<f32> {
        array![[0.1f32, 0.4, 0.35, 0.8, 0.75, 0.2]]
    }

    fn ones(r: &Array3<f32>) -> Vec<(usize, usize)> {
        let m = r.dim().1;
        let mut v = Vec::new();
        for i in 0..m {
            for j in 0..m {
                if r[[0, i, j]] == 1.0 {
                    v.push((i, j));
                }
            }
        }
        v
    }

    // Values of pyts 0.14.1 `RecurrencePlot` (johannfaouzi/pyts) on float64 input.
    #[test]
    fn pyts_distance_rows() {
        let d = RecurrencePlot::default()
            .transform(golden().view())
            .unwrap();
        let row0 = [0.0, 0.3, 0.25, 0.7, 0.65, 0.1];
        let row1 = [0.3, 0.0, 0.05, 0.4, 0.35, 0.2];
        for j in 0..6 {
            assert!((d[[0, 0, j]] - row0[j]).abs() < 1e-6);
            assert!((d[[0, 1, j]] - row1[j]).abs() < 1e-6);
        }
    }

    #[test]
    fn anchors_point_thresholds() {
        let rp = |p| RecurrencePlot {
            threshold: Threshold::Point(p),
            ..Default::default()
        };
        let r10 = rp(10.0).transform(golden().view()).unwrap();
        assert!(
            r10.iter().all(|&v| v == 0.0),
            "10th percentile is 0 and 0 < 0 is false"
        );
        let r20 = rp(20.0).transform(golden().view()).unwrap();
        assert_eq!(ones(&r20), (0..6).map(|i| (i, i)).collect::<Vec<_>>());
    }

    #[test]
    fn anchors_distance_threshold() {
        let rp = RecurrencePlot {
            threshold: Threshold::Distance(20.0),
            ..Default::default()
        };
        let r = rp.transform(golden().view()).unwrap();
        let mut want = vec![
            (0, 0),
            (0, 5),
            (1, 1),
            (1, 2),
            (2, 2),
            (3, 3),
            (3, 4),
            (4, 4),
            (5, 5),
        ];
        let sym: Vec<_> = want.iter().map(|&(i, j)| (j, i)).collect();
        want.extend(sym);
        want.sort();
        want.dedup();
        assert_eq!(ones(&r), want);
    }

    #[test]
    fn anchors_fixed_threshold_is_strict() {
        // The anchor is computed on float64 input: |0.1 - 0.2| is not < 0.1 there.
        let rp = RecurrencePlot {
            threshold: Threshold::Value(0.1),
            ..Default::default()
        };
        let x64 = [0.1f64, 0.4, 0.35, 0.8, 0.75, 0.2];
        assert!((x64[0] - x64[5]).abs() >= 0.1);
        let r = rp.transform(golden().view()).unwrap();
        // In f32 the same pair is 0.1f32 and 0.2f32, whose f64 difference is also >= 0.1.
        assert_eq!(r[[0, 0, 5]], 0.0);
        assert_eq!(r[[0, 1, 2]], 1.0);
    }

    #[test]
    fn anchors_embedding() {
        let rp = RecurrencePlot {
            dimension: Size::Count(2),
            time_delay: Size::Count(2),
            ..Default::default()
        };
        let d = rp.transform(golden().view()).unwrap();
        assert_eq!(d.dim(), (1, 4, 4));
        assert!((d[[0, 0, 1]] - 0.541).abs() < 1e-3);
    }

    #[test]
    fn rejects_bad_input() {
        let x = array![[0.1f32, f32::NAN, 0.3]];
        let e = RecurrencePlot::default().transform(x.view()).unwrap_err();
        assert!(e.to_string().contains("series 0, date 1"), "{e}");
        let rp = RecurrencePlot {
            dimension: Size::Count(4),
            time_delay: Size::Count(2),
            ..Default::default()
        };
        assert!(
            rp.transform(golden().view()).is_err(),
            "span 6 leaves no trajectory"
        );
        let mut small = vec![0f32; 3];
        assert!(RecurrencePlot::default()
            .transform_into(golden().view(), &mut small)
            .is_err());
    }
}
