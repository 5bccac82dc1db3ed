//! GELU (the exact form, `x · Φ(x)` with the normal distribution function, as
//! PyTorch's default `nn.GELU`) as one op each way.
//!
//! candle evaluates `erf` with the `libm` crate, one scalar call per value, in the
//! forward pass and again in the backward pass: about a fifth of a pixel-transformer
//! forward pass. Here `erfc` is the rational approximation 7.1.26 of Abramowitz and
//! Stegun (absolute error below 1.5e-7), which shares its `e^(−z²)` with the
//! derivative and vectorises with the polynomial `exp` of `rows.rs`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_f32, f32_slice, rows};

/// Values per rayon task.
const TASK: usize = 1 << 15;

/// `(Φ(x), φ(x))`: the standard normal distribution function and density.
#[inline(always)]
fn phi(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152,
        1.061_405_4,
    ];
    const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * INV_SQRT2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let e = rows::exp(-z * z); // e^(−x²/2)
                               // erfc(|x|/√2) / 2: the mass of the tail beyond |x|
    let tail = 0.5 * poly * e;
    let cdf = if x < 0.0 { tail } else { 1.0 - tail };
    (cdf, e * INV_SQRT_2PI)
}

rows::dispatch! {
    /// `y = x · Φ(x)`.
    fn gelu_into / gelu_avx2 / gelu_body(x: &[f32], y: &mut [f32]) -> ()
}

#[inline(always)]
fn gelu_body(x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v * phi(v).0;
    }
}

rows::dispatch! {
    /// `dx = dy · (Φ(x) + x · φ(x))`.
    fn gelu_grad_into / gelu_grad_avx2 / gelu_grad_body(x: &[f32], dy: &[f32], dx: &mut [f32]) -> ()
}

#[inline(always)]
fn gelu_grad_body(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        let (cdf, pdf) = phi(v);
        *o = g * (cdf + v * pdf);
    }
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "sits-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "GELU input")?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(TASK)
            .zip(x.par_chunks(TASK))
            .for_each(|(yc, xc)| gelu_into(xc, yc));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "sits-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "GELU input")?;
        let dy = f32_slice(s2, l2, "GELU output gradient")?;
        if x.len() != dy.len() {
            candle_core::bail!(
                "GELU backward: gradient {:?} for input {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(TASK)
            .zip(x.par_chunks(TASK).zip(dy.par_chunks(TASK)))
            .for_each(|(dc, (xc, gc))| gelu_grad_into(xc, gc, dc));
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// GELU, `x · Φ(x)` (PyTorch's `nn.GELU()`, candle's `gelu_erf`), with a gradient:
/// one op each way on the CPU in `f32` (within 1e-7 of the exact value times `|x|`),
/// candle's `gelu_erf` elsewhere.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[x]) {
        x.contiguous()?.apply_op1(Gelu)
    } else {
        x.gelu_erf()
    }
}
