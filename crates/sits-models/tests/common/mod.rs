//! Helpers shared by the integration tests of `sits-models`.
// Each test file uses its own subset.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use candle_core::{Device, Tensor};
use sits_data::npy::read_npy;

/// Deterministic test values in `[offset - scale, offset + scale)`: a multiplicative
/// hash of the index and `seed`, so each op test draws the same inputs every run.
pub(crate) fn pattern(len: usize, seed: u64, scale: f32, offset: f32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            (((i as u64 * 2654435761 + seed * 7919) % 1000) as f32 / 500.0 - 1.0) * scale + offset
        })
        .collect()
}

/// [`pattern`] values as an f32 tensor of `dims` on the CPU.
pub(crate) fn pattern_tensor(dims: &[usize], seed: u64, scale: f32, offset: f32) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(pattern(n, seed, scale, offset), dims, &Device::Cpu).unwrap()
}

#[allow(unused_imports)]
pub(crate) use sits_testing::max_abs_diff;

/// Asserts that `ours` is within 1e-5 of `reference`, relative to the largest
/// absolute value of `reference` (at least 1), NaN and infinities failing: the
/// tolerance of the op tests, whose two sides add the same terms in different orders.
pub(crate) fn close(ours: &Tensor, reference: &Tensor, what: &str) {
    sits_testing::assert_close(ours, reference, 1e-5, what);
}

/// A `.npy` file as an f32 tensor on the CPU.
pub(crate) fn npy_f32(path: &Path) -> Tensor {
    let a = read_npy(path).unwrap();
    let shape = a.shape().to_vec();
    let v: Vec<f32> = a.to_f32().iter().copied().collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}
