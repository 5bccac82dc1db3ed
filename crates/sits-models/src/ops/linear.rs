//! A fully connected layer, `y = x · Wᵀ + b` over the rows of `x`, as one op each
//! way.
//!
//! Composed from candle's operations, the layer is a matrix product with a
//! transposed weight and a broadcast add; the backward pass of the add reduces the
//! output gradient over its rows with candle's generic strided reduction (about 8 %
//! of a pixel-transformer training step), and every piece adds a node whose
//! gradient candle accumulates into a zeroed buffer. Here the forward pass starts
//! the product from the bias (one pass less), and the backward pass computes the
//! input gradient `dy · W` and the weight gradient `dyᵀ · x` as two products
//! straight into their layouts and the bias gradient as one pass of column sums.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_f32, f32_slice, matmul_acc_into, Mat};

/// Rows per task of the column sums.
const ROWS_PER_TASK: usize = 256;

/// `(x (R, in), W (out, in))` sizes, checked.
fn sizes(x: &[usize], w: &[usize]) -> Result<(usize, usize, usize)> {
    match (x, w) {
        (&[r, i], &[o, wi]) if i == wi => Ok((r, i, o)),
        _ => candle_core::bail!(
            "linear layer: input {x:?} must be (rows, in) and weight {w:?} (out, in) with the same in"
        ),
    }
}

fn threads() -> usize {
    rayon::current_num_threads()
}

/// `x · Wᵀ [+ b]`.
fn forward(
    x: &[f32],
    lx: &Layout,
    w: &[f32],
    lw: &Layout,
    b: Option<&[f32]>,
) -> Result<(CpuStorage, Shape)> {
    let (r, i, o) = sizes(lx.dims(), lw.dims())?;
    // the product starts from the bias rows (no zeroing pass first)
    let (mut y, accumulate) = match b {
        Some(b) if b.len() == o => (b.repeat(r), true),
        Some(b) => {
            candle_core::bail!("linear layer: bias of {} values for {o} outputs", b.len())
        }
        None => (vec![0f32; r * o], false),
    };
    matmul_acc_into(
        Mat::new(x, r, i),
        Mat::new(w, o, i).t(),
        &mut y,
        accumulate,
        threads(),
    )?;
    Ok((CpuStorage::F32(y), Shape::from((r, o))))
}

struct WithBias;

impl CustomOp3 for WithBias {
    fn name(&self) -> &'static str {
        "sits-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward(
            f32_slice(s1, l1, "linear input")?,
            l1,
            f32_slice(s2, l2, "linear weight")?,
            l2,
            Some(f32_slice(s3, l3, "linear bias")?),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = grads(x, w, grad)?;
        let db = b
            .track_op()
            .then(|| grad.contiguous()?.apply_op1_no_bwd(&ColumnSum))
            .transpose()?;
        Ok((dx, dw, db))
    }
}

struct NoBias;

impl CustomOp2 for NoBias {
    fn name(&self) -> &'static str {
        "sits-linear-no-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward(
            f32_slice(s1, l1, "linear input")?,
            l1,
            f32_slice(s2, l2, "linear weight")?,
            l2,
            None,
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        grads(x, w, grad)
    }
}

/// Input and weight gradients, each only when needed.
fn grads(x: &Tensor, w: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let grad = grad.contiguous()?;
    let dx = x
        .track_op()
        .then(|| grad.apply_op2_no_bwd(w, &Product::Dx))
        .transpose()?;
    let dw = w
        .track_op()
        .then(|| grad.apply_op2_no_bwd(x, &Product::Dw))
        .transpose()?;
    Ok((dx, dw))
}

/// The backward products from the output gradient `dy (R, out)`.
enum Product {
    /// `dy · W`, with `W (out, in)`: `(R, in)`.
    Dx,
    /// `dyᵀ · x`, with `x (R, in)`: `(out, in)`.
    Dw,
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "sits-linear-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dy = f32_slice(s1, l1, "linear output gradient")?;
        let other = f32_slice(s2, l2, "linear operand")?;
        let &[r, o] = l1.dims() else {
            candle_core::bail!(
                "linear backward: gradient {:?} is not (rows, out)",
                l1.dims()
            );
        };
        match self {
            Product::Dx => {
                let &[wo, i] = l2.dims() else {
                    candle_core::bail!("linear backward: weight {:?}", l2.dims());
                };
                if wo != o {
                    candle_core::bail!(
                        "linear backward: weight {:?} for gradient {:?}",
                        l2.dims(),
                        l1.dims()
                    );
                }
                let mut dx = vec![0f32; r * i];
                matmul_acc_into(
                    Mat::new(dy, r, o),
                    Mat::new(other, o, i),
                    &mut dx,
                    false,
                    threads(),
                )?;
                Ok((CpuStorage::F32(dx), Shape::from((r, i))))
            }
            Product::Dw => {
                let &[xr, i] = l2.dims() else {
                    candle_core::bail!("linear backward: input {:?}", l2.dims());
                };
                if xr != r {
                    candle_core::bail!(
                        "linear backward: input {:?} for gradient {:?}",
                        l2.dims(),
                        l1.dims()
                    );
                }
                let mut dw = vec![0f32; o * i];
                matmul_acc_into(
                    Mat::new(dy, r, o).t(),
                    Mat::new(other, r, i),
                    &mut dw,
                    false,
                    threads(),
                )?;
                Ok((CpuStorage::F32(dw), Shape::from((o, i))))
            }
        }
    }
}

/// Column sums of `(R, C)`: `C` values, summed in blocks of rows in a fixed order.
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "sits-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "bias gradient")?;
        let &[_, c] = l.dims() else {
            candle_core::bail!("column sums of {:?}: needs (rows, columns)", l.dims());
        };
        if c == 0 {
            return Ok((CpuStorage::F32(vec![]), Shape::from(0)));
        }
        let partial: Vec<Vec<f32>> = x
            .par_chunks(ROWS_PER_TASK * c)
            .map(|block| {
                let mut acc = vec![0f32; c];
                for row in block.chunks_exact(c) {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                acc
            })
            .collect();
        let mut sums = vec![0f64; c];
        for p in &partial {
            for (s, &v) in sums.iter_mut().zip(p) {
                *s += v as f64;
            }
        }
        Ok((
            CpuStorage::F32(sums.into_iter().map(|v| v as f32).collect()),
            Shape::from(c),
        ))
    }
}

/// `x · Wᵀ + b` over the rows of `x (R, in)`, `W (out, in)`, `b` of `out` values or
/// none: one op each way on the CPU in `f32` ([`linear_candle`] elsewhere, and as
/// the tests' reference).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    if !(cpu_f32(&[x, w]) && b.is_none_or(|b| cpu_f32(&[b]))) {
        return linear_candle(x, w, b);
    }
    sizes(x.dims(), w.dims())?;
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, WithBias),
        None => x.apply_op2(&w, NoBias),
    }
}

/// [`linear`] with candle's operations, on any device and dtype.
pub fn linear_candle(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    sizes(x.dims(), w.dims())?;
    let y = x.matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}
