//! Comparisons that see NaN and infinities.
//!
//! Every function here counts a non-finite value (in either input, or in their
//! difference) as an infinite difference, so `d <= tol` fails on it whatever the
//! tolerance. A maximum taken with candle's CPU `max` or with `f32::max` does not:
//! both skip NaN.

use candle_core::{DType, Tensor};

/// The values of `t` as f32, in row-major order.
fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .unwrap_or_else(|e| panic!("reading a {:?} tensor: {e}", t.dims()))
}

/// The largest `|a[i] - b[i]|`, or `f32::INFINITY` when any difference is NaN or
/// infinite (a NaN or an infinity on either side). Panics when the lengths differ.
pub fn max_abs_diff_slices(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        if !d.is_finite() {
            return f32::INFINITY;
        }
        if d > worst {
            worst = d;
        }
    }
    worst
}

/// [`max_abs_diff_slices`] of two tensors of the same shape (any float dtype).
/// Panics when the shapes differ.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    max_abs_diff_slices(&values(a), &values(b))
}

/// The largest `|v[i]|`, or `f32::INFINITY` when any value is NaN or infinite.
pub fn max_abs_slice(v: &[f32]) -> f32 {
    let mut worst = 0f32;
    for x in v {
        if !x.is_finite() {
            return f32::INFINITY;
        }
        worst = worst.max(x.abs());
    }
    worst
}

/// [`max_abs_slice`] of a tensor (any float dtype).
pub fn max_abs(t: &Tensor) -> f32 {
    max_abs_slice(&values(t))
}

/// Asserts that every value of `t` is finite, naming the first that is not.
pub fn assert_finite(t: &Tensor, what: &str) {
    if let Some((i, v)) = values(t).iter().enumerate().find(|(_, v)| !v.is_finite()) {
        panic!("{what}: value {i} of a {:?} tensor is {v}", t.dims());
    }
}

/// Asserts that `ours` is within `tol` of `reference`, relative to the largest
/// absolute value of `reference` (at least 1), with NaN and infinities failing.
pub fn assert_close(ours: &Tensor, reference: &Tensor, tol: f32, what: &str) {
    assert_eq!(ours.dims(), reference.dims(), "{what}: shapes");
    assert_finite(reference, &format!("{what} (reference)"));
    assert_finite(ours, what);
    let scale = max_abs(reference).max(1.0);
    let d = max_abs_diff(ours, reference);
    assert!(
        d <= tol * scale,
        "{what}: max difference {d} > {tol} x scale {scale}"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn candle_max_skips_a_nan_in_the_middle_and_ours_does_not() {
        let a = t(&[0.0, 1.0, f32::NAN, 2.0]);
        let b = t(&[0.0, 1.0, 3.0, 2.0]);
        // the trap these helpers exist for
        let blind: f32 = (&a - &b)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(blind.is_finite(), "candle's max now sees NaN: {blind}");
        assert_eq!(max_abs_diff(&a, &b), f32::INFINITY);
        assert_eq!(max_abs(&a), f32::INFINITY);
        assert_eq!(
            max_abs_diff_slices(&[1.0, f32::NAN, 1.0], &[1.0, 1.0, 1.0]),
            f32::INFINITY
        );
    }

    #[test]
    fn infinities_are_differences_even_when_equal() {
        let a = t(&[1.0, f32::INFINITY, 1.0]);
        assert_eq!(max_abs_diff(&a, &a), f32::INFINITY);
        assert_eq!(max_abs(&t(&[0.0, f32::NEG_INFINITY])), f32::INFINITY);
    }

    #[test]
    fn finite_values_give_the_largest_difference() {
        let d = max_abs_diff(&t(&[1.0, -2.0, 3.0]), &t(&[1.5, -2.0, 0.0]));
        assert_eq!(d, 3.0);
        assert_eq!(max_abs(&t(&[1.0, -4.0, 3.0])), 4.0);
        assert_eq!(max_abs_slice(&[1.0, -4.0, 3.0]), 4.0);
        assert_eq!(max_abs_slice(&[1.0, f32::NAN, 3.0]), f32::INFINITY);
        assert_close(&t(&[1.0, 2.0]), &t(&[1.0, 2.0 + 1e-7]), 1e-5, "close");
    }

    #[test]
    #[should_panic(expected = "value 2 of a [4] tensor is NaN")]
    fn assert_close_fails_on_a_nan_in_the_middle() {
        let ours = t(&[0.0, 1.0, f32::NAN, 2.0]);
        assert_close(&ours, &t(&[0.0, 1.0, 3.0, 2.0]), 1e-5, "poisoned");
    }

    #[test]
    #[should_panic(expected = "max difference")]
    fn assert_close_fails_beyond_the_tolerance() {
        assert_close(&t(&[0.0, 1.1]), &t(&[0.0, 1.0]), 1e-5, "far");
    }
}
