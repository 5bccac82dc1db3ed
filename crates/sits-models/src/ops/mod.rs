//! CPU kernels with their own backward passes, as candle custom ops so that autograd
//! sees them.
//!
//! - [`conv2d`]: 2D convolution (groups 1, any kernel size and stride, zero or
//!   reflect padding) by im2col and one matrix product per band of output rows,
//!   parallel over images.
//! - [`linear`]: the fully connected layer, its three gradients straight into
//!   their layouts.
//! - [`norm`]: GroupNorm, LayerNorm and BatchNorm's training-mode normalisation in one
//!   pass each way, and a per-channel bias whose gradient is one per-channel sum.
//! - [`activation`]: GELU with a vectorised `erfc`.
//! - [`attention`]: multi-head self-attention from packed projections, per sequence
//!   in one task, attention weights kept for the backward pass.
//! - [`contrastive`]: SimCLR's NT-Xent from the two views to the per-anchor losses,
//!   normalisation included, with the similarity matrix kept for the backward pass.
//! - [`softmax`]: softmax and log-softmax over the last dimension, and DINO's
//!   multi-crop cross-entropy, with a vectorised `exp`.
//!
//! The ops run for `f32` tensors on the CPU. Other devices and dtypes run candle's
//! own operations (cuDNN on CUDA when built with it), so nothing here depends on a
//! feature: [`conv2d_candle`] and [`norm::normalize_candle`] are those paths, and also
//! the references the ops are tested against.

pub mod activation;
pub mod attention;
pub mod contrastive;
mod conv;
pub mod linear;
pub mod norm;
mod rows;
pub mod softmax;

pub use conv::{conv2d, conv2d_candle};

use candle_core::{CpuStorage, Layout, Result, Tensor};

/// Whether every tensor is an `f32` tensor on the CPU: the ops run for those, candle's
/// operations for anything else.
fn cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
}

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

/// A row-major `f32` matrix in a slice: `rows x cols` at row stride `rs` and column
/// stride `cs` (a transpose swaps them).
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A contiguous `rows x cols` matrix.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a · b` for a contiguous `dst` of `a.rows x b.cols` values, on up to
/// `threads` rayon threads.
fn matmul_into(a: Mat, b: Mat, dst: &mut [f32], threads: usize) -> Result<()> {
    matmul_acc_into(a, b, dst, false, threads)
}

/// Rows of the left operand per thread from which [`matmul_acc_into`] splits a product
/// into one single-threaded product per thread on its own band of rows, instead of
/// letting the `gemm` crate share out each block among the threads (which meet at a
/// barrier per block). The per-date layers of the sequence models are tall, narrow
/// products (23,552 x 128 by 128 x 384 in the pixel-transformer bench): split, the
/// bench's forward pass went from 344 ms to 298 ms (`cargo bench --bench models --
/// pixel_transformer`, the two builds alternated twice); L-TAE2d's did not move.
/// Each output row comes from the same kernels; gemm's blocking depends on the
/// product's size, so a row's sum may be grouped differently (float rounding: the
/// quickstart's result line did not move).
const SPLIT_ROWS: usize = 1024;

/// `dst = [dst +] a · b` (added to `dst`'s values when `accumulate`).
fn matmul_acc_into(
    a: Mat,
    b: Mat,
    dst: &mut [f32],
    accumulate: bool,
    threads: usize,
) -> Result<()> {
    if a.cols != b.rows || !a.fits() || !b.fits() || dst.len() != a.rows * b.cols {
        candle_core::bail!(
            "matrix product of {}x{} and {}x{} into {} values",
            a.rows,
            a.cols,
            b.rows,
            b.cols,
            dst.len()
        );
    }
    if threads > 1 && a.rows >= threads * SPLIT_ROWS {
        // one single-threaded product per thread on its own band of rows
        use rayon::prelude::*;
        let per = a.rows.div_ceil(threads);
        return dst
            .par_chunks_mut(per * b.cols)
            .enumerate()
            .try_for_each(|(t, d)| {
                let r0 = t * per;
                let band = Mat {
                    data: &a.data[r0 * a.rs..],
                    rows: d.len() / b.cols,
                    ..a
                };
                matmul_acc_into(band, b, d, accumulate, 1)
            });
    }
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views lie inside their slices (checked above), `dst` holds
    // a.rows x b.cols values and, being a unique borrow, overlaps neither input.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst.as_mut_ptr(),
            1,
            b.cols as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}
