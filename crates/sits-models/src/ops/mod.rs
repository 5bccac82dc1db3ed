//! CPU kernels with their own backward passes, as candle custom ops so that autograd
//! sees them.
//!
//! - [`conv2d`]: 2D convolution (groups 1, any kernel size and stride, zero or
//!   reflect padding) by im2col and one matrix product per band of output rows,
//!   parallel over images.
//! - [`norm`]: GroupNorm, LayerNorm and BatchNorm's training-mode normalisation in one
//!   pass each way, and a per-channel bias whose gradient is one per-channel sum.
//! - [`softmax`]: softmax and log-softmax over the last dimension, and DINO's
//!   multi-crop cross-entropy, with a vectorised `exp`.
//!
//! The ops run for `f32` tensors on the CPU. Other devices and dtypes run candle's
//! own operations (cuDNN on CUDA when built with it), so nothing here depends on a
//! feature: [`conv2d_candle`] and [`norm::normalize_candle`] are those paths, and also
//! the references the ops are tested against.

mod conv;
pub mod norm;
mod rows;
pub mod softmax;

pub use conv::{conv2d, conv2d_candle};

use candle_core::{CpuStorage, Layout, Result};

/// The `f32` values of a contiguous CPU tensor, or an error naming `what`.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(d) => d.as_slice(),
        _ => candle_core::bail!("{what} must be f32"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}
