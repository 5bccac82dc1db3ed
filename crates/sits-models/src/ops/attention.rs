//! Multi-head scaled dot-product self-attention over short sequences as one op:
//! from the packed projections `qkv (B, N, 3D)` (queries, keys, values, each `D =
//! heads · hd` wide, as PyTorch's `in_proj`) to the heads' outputs side by side,
//! `(B, N, D)`, ready for the output projection.
//!
//! Composed from candle's operations, attention copies the queries, keys and values
//! into per-head layouts, runs one small matrix product per sequence and head, and
//! keeps every intermediate for the backward pass; with a gradient it allocates
//! about ten tensors of `B · heads · N²` or `B · N · D` values. Here each sequence is
//! one task: scores, masked softmax and weighted sum in place, reading the heads
//! straight from `qkv`; the attention weights are kept for the backward pass, which
//! writes the gradient of `qkv` in the same layout. Sequences of satellite time
//! series are short (tens of dates), so the products are plain loops over the head
//! width, which the compiler vectorises.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, rows};
use crate::nn::softmax_last;

#[derive(Clone)]
struct Attention {
    heads: usize,
    /// Per sequence and key, 1 = ignore this key, `(B·N)` values.
    key_pad: Option<Arc<Vec<u8>>>,
    /// The attention weights of the forward pass, `(B, heads, N, N)`.
    saved: Arc<Mutex<Option<Vec<f32>>>>,
}

/// Sizes of one call: `b` sequences of `n` positions, `d` channels in `heads`
/// heads of `hd`.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    b: usize,
    n: usize,
    d: usize,
    hd: usize,
    heads: usize,
}

impl Dims {
    fn new(dims: &[usize], heads: usize) -> Result<Self> {
        let &[b, n, d3] = dims else {
            candle_core::bail!("attention: qkv must be (B, N, 3·D), got {dims:?}");
        };
        let d = d3 / 3;
        if d3 % 3 != 0 || heads == 0 || d % heads != 0 || n == 0 {
            candle_core::bail!(
                "attention: qkv {dims:?} is not (B, N, 3·D) with D a multiple of {heads} heads"
            );
        }
        Ok(Self {
            b,
            n,
            d,
            hd: d / heads,
            heads,
        })
    }
}

/// `Σ a·b` over short vectors, in eight lanes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out += a · x`.
#[inline(always)]
fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += a * v;
    }
}

rows::dispatch! {
    /// Attention weights of sequence `s` (all heads, `heads · N · N` values in `p`)
    /// and its output rows (`N · D` values in `out`).
    fn attend / attend_avx2 / attend_body(pad: Option<&[u8]>, dm: Dims, qkv: &[f32], s: usize, p: &mut [f32], out: &mut [f32]) -> ()
}

#[inline(always)]
fn attend_body(
    pad: Option<&[u8]>,
    dm: Dims,
    qkv: &[f32],
    s: usize,
    p: &mut [f32],
    out: &mut [f32],
) {
    let Dims { n, d, hd, .. } = dm;
    let x = &qkv[s * n * 3 * d..][..n * 3 * d];
    let scale = 1.0 / (hd as f32).sqrt();
    let pad = pad.map(|m| &m[s * n..][..n]);
    out.fill(0.0);
    for h in 0..dm.heads {
        let ph = &mut p[h * n * n..][..n * n];
        for i in 0..n {
            let q = &x[i * 3 * d + h * hd..][..hd];
            let row = &mut ph[i * n..][..n];
            for (j, r) in row.iter_mut().enumerate() {
                let k = &x[j * 3 * d + d + h * hd..][..hd];
                *r = match pad {
                    Some(m) if m[j] != 0 => f32::NEG_INFINITY,
                    _ => dot(q, k) * scale,
                };
            }
            let m = rows::row_max(row);
            let inv = (1.0 / rows::exp_in_place(row, 1.0, m)) as f32;
            let o = &mut out[i * d + h * hd..][..hd];
            for (j, w) in row.iter_mut().enumerate() {
                *w *= inv;
                axpy(o, *w, &x[j * 3 * d + 2 * d + h * hd..][..hd]);
            }
        }
    }
}

rows::dispatch! {
    /// Gradient of `qkv` rows of sequence `s` (`N · 3D` values in `dx`, zeroed)
    /// from the kept attention weights `p` of all sequences and the output gradient.
    fn attend_grad / attend_grad_avx2 / attend_grad_body(dm: Dims, qkv: &[f32], p: &[f32], dout: &[f32], s: usize, dx: &mut [f32]) -> ()
}

#[inline(always)]
fn attend_grad_body(dm: Dims, qkv: &[f32], p: &[f32], dout: &[f32], s: usize, dx: &mut [f32]) {
    let Dims {
        n, d, hd, heads, ..
    } = dm;
    let scale = 1.0 / (hd as f32).sqrt();
    let x = &qkv[s * n * 3 * d..][..n * 3 * d];
    let go = &dout[s * n * d..][..n * d];
    let mut ds = vec![0f32; n];
    for h in 0..heads {
        let ph = &p[(s * heads + h) * n * n..][..n * n];
        for i in 0..n {
            let pr = &ph[i * n..][..n];
            let goi = &go[i * d + h * hd..][..hd];
            // dP_ij = dO_i · V_j, then dS = P ∘ (dP − Σ_j dP_ij P_ij), times the scale
            let mut sum = 0f32;
            for (j, g) in ds.iter_mut().enumerate() {
                *g = dot(goi, &x[j * 3 * d + 2 * d + h * hd..][..hd]);
                sum += *g * pr[j];
            }
            for (g, &w) in ds.iter_mut().zip(pr) {
                *g = w * (*g - sum) * scale;
            }
            let q = &x[i * 3 * d + h * hd..][..hd];
            for j in 0..n {
                // dV_j += P_ij dO_i, dK_j += dS_ij Q_i
                axpy(&mut dx[j * 3 * d + 2 * d + h * hd..][..hd], pr[j], goi);
                axpy(&mut dx[j * 3 * d + d + h * hd..][..hd], ds[j], q);
            }
            // dQ_i = Σ_j dS_ij K_j
            let dq = &mut dx[i * 3 * d + h * hd..][..hd];
            for (j, &g) in ds.iter().enumerate() {
                axpy(dq, g, &x[j * 3 * d + d + h * hd..][..hd]);
            }
        }
    }
}

impl Attention {
    fn forward(&self, dm: Dims, qkv: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (n, d, heads) = (dm.n, dm.d, dm.heads);
        let mut p = vec![0f32; dm.b * heads * n * n];
        let mut out = vec![0f32; dm.b * n * d];
        p.par_chunks_mut(heads * n * n)
            .zip(out.par_chunks_mut(n * d))
            .enumerate()
            .for_each(|(s, (ps, os))| {
                attend(
                    self.key_pad.as_deref().map(|m| m.as_slice()),
                    dm,
                    qkv,
                    s,
                    ps,
                    os,
                )
            });
        (p, out)
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "sits-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dm = Dims::new(l.dims(), self.heads)?;
        let qkv = f32_slice(s, l, "attention qkv")?;
        if let Some(m) = &self.key_pad {
            if m.len() != dm.b * dm.n {
                candle_core::bail!(
                    "attention: key padding mask of {} values for {} sequences of {}",
                    m.len(),
                    dm.b,
                    dm.n
                );
            }
        }
        let (p, out) = self.forward(dm, qkv);
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(p);
        Ok((CpuStorage::F32(out), Shape::from((dm.b, dm.n, dm.d))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = qkv.apply_op2_no_bwd(&grad.contiguous()?, &AttentionGrad(self.clone()))?;
        Ok(Some(g))
    }
}

/// `(qkv, dout) -> dqkv`.
struct AttentionGrad(Attention);

impl CustomOp2 for AttentionGrad {
    fn name(&self) -> &'static str {
        "sits-attention-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let me = &self.0;
        let dm = Dims::new(l1.dims(), me.heads)?;
        let qkv = f32_slice(s1, l1, "attention qkv")?;
        let dout = f32_slice(s2, l2, "attention output gradient")?;
        let Dims { n, d, .. } = dm;
        if l2.dims() != [dm.b, n, d] {
            candle_core::bail!(
                "attention backward: gradient {:?} for output ({}, {n}, {d})",
                l2.dims(),
                dm.b
            );
        }
        let saved = me
            .saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let p = match saved {
            Some(p) => p,
            None => me.forward(dm, qkv).0,
        };
        let mut dqkv = vec![0f32; qkv.len()];
        dqkv.par_chunks_mut(n * 3 * d)
            .enumerate()
            .for_each(|(s, dx)| attend_grad(dm, qkv, &p, dout, s, dx));
        Ok((CpuStorage::F32(dqkv), l1.shape().clone()))
    }
}

/// Multi-head self-attention from packed projections: `qkv (B, N, 3·D)` holds the
/// queries, keys and values side by side (each `D = heads · hd` wide, heads
/// consecutive within each), `key_pad (B, N)` (any integer dtype, non-zero = ignore
/// this key). Returns `softmax(Q Kᵀ / sqrt(hd)) V` per head, heads side by side in
/// `(B, N, D)`. A query whose keys are all ignored gets NaN, as with the composed
/// operations. One op each way on the CPU in `f32`
/// ([`self_attention_candle`] elsewhere, and as the tests' reference).
pub fn self_attention(qkv: &Tensor, heads: usize, key_pad: Option<&Tensor>) -> Result<Tensor> {
    let dm = Dims::new(qkv.dims(), heads)?;
    if !(qkv.device().is_cpu() && qkv.dtype() == DType::F32) {
        return self_attention_candle(qkv, heads, key_pad);
    }
    let key_pad = match key_pad {
        Some(m) => {
            if m.dims() != [dm.b, dm.n] {
                candle_core::bail!(
                    "attention: key padding mask {:?} for qkv {:?} (needs (B, N))",
                    m.dims(),
                    qkv.dims()
                );
            }
            Some(Arc::new(m.ne(0u8 as f64)?.flatten_all()?.to_vec1::<u8>()?))
        }
        None => None,
    };
    qkv.contiguous()?.apply_op1(Attention {
        heads,
        key_pad,
        saved: Arc::new(Mutex::new(None)),
    })
}

/// [`self_attention`] with candle's operations, on any device and dtype.
pub fn self_attention_candle(
    qkv: &Tensor,
    heads: usize,
    key_pad: Option<&Tensor>,
) -> Result<Tensor> {
    let Dims { b, n, d, hd, .. } = Dims::new(qkv.dims(), heads)?;
    let split = |i: usize| -> Result<Tensor> {
        qkv.narrow(2, i * d, d)?
            .reshape((b, n, heads, hd))?
            .transpose(1, 2)?
            .contiguous()
    };
    let (q, k, v) = (split(0)?, split(1)?, split(2)?);
    let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?; // (B, h, N, N)
    let scores = match key_pad {
        Some(m) => {
            let m = m
                .ne(0u8 as f64)?
                .reshape((b, 1, 1, n))?
                .broadcast_as((b, heads, n, n))?;
            let neg = Tensor::full(f32::NEG_INFINITY, (b, heads, n, n), qkv.device())?
                .to_dtype(scores.dtype())?;
            m.where_cond(&neg, &scores)?
        }
        None => scores,
    };
    let attn = softmax_last(&scores)?;
    attn.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))
}
