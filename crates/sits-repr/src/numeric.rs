//! Small numeric helpers that reproduce NumPy's and pyts' conventions exactly, so
//! that thresholds and bin edges agree bit for bit with the reference library.

use crate::error::{param, Result};

/// A length given either as a count or as a fraction of the series length.
///
/// A fraction `f` in `(0, 1]` resolves to `ceil(f * n)`, as pyts does for
/// `dimension`, `time_delay` and `image_size`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    /// An absolute count, at least 1 and at most the series length.
    Count(usize),
    /// A fraction of the series length in `(0, 1]`.
    Fraction(f64),
}

impl Size {
    /// Resolves the size for a series of `n` values.
    pub fn resolve(self, n: usize, name: &'static str) -> Result<usize> {
        match self {
            Size::Count(k) if (1..=n).contains(&k) => Ok(k),
            Size::Count(k) => Err(param(
                name,
                format!("{k} is not in 1..={n} (the series length)"),
            )),
            Size::Fraction(f) if f > 0.0 && f <= 1.0 => Ok(((f * n as f64).ceil() as usize).max(1)),
            Size::Fraction(f) => Err(param(name, format!("fraction {f} is not in (0, 1]"))),
        }
    }
}

/// NumPy's `_lerp`: `a + (b - a) * t`, computed from the `b` side when `t >= 0.5`.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// Virtual index, floor index and weight of NumPy's default (`linear`) percentile of
/// `n` sorted values.
pub(crate) fn percentile_position(n: usize, percentage: f64) -> (usize, usize, f64) {
    let q = percentage / 100.0;
    let v = (n as f64 - 1.0) * q;
    if v >= n as f64 - 1.0 {
        return (n - 1, n - 1, 0.0);
    }
    if v < 0.0 {
        return (0, 0, 0.0);
    }
    let lo = v.floor();
    (lo as usize, lo as usize + 1, v - lo)
}

/// `np.percentile(values, percentage)` with the default linear method, given a
/// function returning the `k`-th smallest value.
pub(crate) fn percentile_by_rank(
    n: usize,
    percentage: f64,
    mut kth: impl FnMut(usize) -> f64,
) -> f64 {
    let (lo, hi, t) = percentile_position(n, percentage);
    let a = kth(lo);
    let b = if hi == lo { a } else { kth(hi) };
    lerp(a, b, t)
}

/// `np.percentile(values, percentage)` (linear method) of an unsorted slice, which
/// is reordered in place.
pub(crate) fn percentile(values: &mut [f64], percentage: f64) -> f64 {
    let n = values.len();
    let (lo, hi, t) = percentile_position(n, percentage);
    let (_, a, rest) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let a = *a;
    let b = if hi == lo {
        a
    } else {
        rest.iter().copied().fold(f64::INFINITY, f64::min)
    };
    lerp(a, b, t)
}

/// `np.linspace(start, stop, num)` evaluated the way NumPy does (`k * step + start`,
/// the last value set to `stop`).
pub(crate) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut out: Vec<f64> = (0..num).map(|k| k as f64 * step + start).collect();
    out[num - 1] = stop;
    out
}

/// Window bounds of piecewise aggregate approximation, as `pyts.utils.segmentation`
/// with `n_segments` given.
pub(crate) fn segmentation(
    n: usize,
    window: usize,
    overlapping: bool,
    segments: usize,
) -> (Vec<usize>, Vec<usize>) {
    if !overlapping {
        let bounds: Vec<usize> = linspace(0.0, n as f64, segments + 1)
            .into_iter()
            .map(|b| b as usize)
            .collect();
        (bounds[..segments].to_vec(), bounds[1..].to_vec())
    } else {
        let n_overlapping = (segments * window).saturating_sub(n);
        let overlaps: Vec<usize> = linspace(0.0, n_overlapping as f64, segments)
            .into_iter()
            .map(|b| b as usize)
            .collect();
        let start = (0..segments).map(|k| k * window - overlaps[k]).collect();
        let end = (0..segments)
            .map(|k| (k + 1) * window - overlaps[k])
            .collect();
        (start, end)
    }
}

/// Window bounds that reduce a series of `n` values to `size` values (pyts' PAA with
/// `output_size = size`); `None` when no reduction is needed.
pub(crate) fn paa_bounds(
    n: usize,
    size: usize,
    overlapping: bool,
) -> Option<(Vec<usize>, Vec<usize>)> {
    let (q, r) = (n / size, n % size);
    let window = if r == 0 { q } else { q + 1 };
    if window == 1 {
        return None;
    }
    Some(segmentation(n, window, overlapping, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_examples() {
        // np.percentile([1, 2, 3, 4], 50) == 2.5; np.percentile([0, 10], 33) == 3.3
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&mut v, 50.0), 2.5);
        let mut v = vec![10.0, 0.0];
        assert!((percentile(&mut v, 33.0) - 3.3).abs() < 1e-12);
        let mut v = vec![5.0, 1.0, 3.0];
        assert_eq!(percentile(&mut v, 100.0), 5.0);
        assert_eq!(percentile(&mut v, 0.0), 1.0);
    }

    #[test]
    fn segmentation_matches_pyts_docstring() {
        // pyts: segmentation(12, 3) -> start [0 3 6 9], end [3 6 9 12]
        let (s, e) = segmentation(12, 3, false, 4);
        assert_eq!(s, vec![0, 3, 6, 9]);
        assert_eq!(e, vec![3, 6, 9, 12]);
        // 10 values into 4 segments: linspace(0, 10, 5) = [0, 2.5, 5, 7.5, 10]
        let (s, e) = paa_bounds(10, 4, false).unwrap();
        assert_eq!(s, vec![0, 2, 5, 7]);
        assert_eq!(e, vec![2, 5, 7, 10]);
        assert!(paa_bounds(10, 10, false).is_none());
    }

    #[test]
    fn size_resolution() {
        assert_eq!(Size::Fraction(0.25).resolve(10, "x").unwrap(), 3);
        assert!(Size::Count(0).resolve(10, "x").is_err());
        assert!(Size::Count(11).resolve(10, "x").is_err());
        assert!(Size::Fraction(1.5).resolve(10, "x").is_err());
    }
}
