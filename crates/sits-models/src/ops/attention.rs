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

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_f32, f32_slice, rows};
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
    /// and its output rows (`N · D` values in `out`, zeroed by the caller: the heads'
    /// weighted sums are added into it).
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
            // the kernels' bodies, inlined here: this function is compiled for AVX2 too
            let m = rows::row_max_body(row);
            let inv = (1.0 / rows::exp_in_place_body(row, 1.0, m)) as f32;
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
    if !cpu_f32(&[qkv]) {
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

/// L-TAE's attention weights: one learned query per head against the keys of each
/// sequence. `k (N, T, heads · dk)`, `q (heads, dk)`; weights `(N, heads, T)`.
#[derive(Clone)]
struct QueryScores {
    heads: usize,
    /// Padded dates, `(B·T)` values (1 = padded), for sequences `n` of batch
    /// `n / per_batch`.
    pad: Option<Arc<Vec<u8>>>,
    per_batch: usize,
    /// Score given to padded dates before the softmax (the reference's -1000).
    pad_score: f32,
}

impl QueryScores {
    fn dims(&self, k: &[usize], q: &[usize]) -> Result<(usize, usize, usize)> {
        match (k, q) {
            (&[n, t, hk], &[h, dk]) if h == self.heads && hk == h * dk && t > 0 => {
                if let Some(p) = &self.pad {
                    if self.per_batch == 0 || n % self.per_batch != 0 || p.len() != n / self.per_batch * t {
                        candle_core::bail!(
                            "L-TAE attention: pad mask of {} values for {n} sequences of {t} dates in batches of {}",
                            p.len(),
                            self.per_batch
                        );
                    }
                }
                Ok((n, t, dk))
            }
            _ => candle_core::bail!(
                "L-TAE attention: keys {k:?} must be (N, T, heads · dk) for queries {q:?} of (heads = {}, dk)",
                self.heads
            ),
        }
    }

    /// Weights of sequence `s` into `a` (`heads · T` values).
    fn sequence(&self, k: &[f32], q: &[f32], s: usize, (t, dk): (usize, usize), a: &mut [f32]) {
        let hk = self.heads * dk;
        let scale = 1.0 / (dk as f32).sqrt();
        let ks = &k[s * t * hk..][..t * hk];
        let pad = self.pad.as_ref().map(|p| &p[s / self.per_batch * t..][..t]);
        for h in 0..self.heads {
            let qh = &q[h * dk..][..dk];
            let row = &mut a[h * t..][..t];
            for (j, r) in row.iter_mut().enumerate() {
                *r = match pad {
                    Some(p) if p[j] != 0 => self.pad_score,
                    _ => dot(&ks[j * hk + h * dk..][..dk], qh) * scale,
                };
            }
            let m = rows::row_max(row);
            let inv = (1.0 / rows::exp_in_place(row, 1.0, m)) as f32;
            row.iter_mut().for_each(|w| *w *= inv);
        }
    }
}

impl CustomOp2 for QueryScores {
    fn name(&self) -> &'static str {
        "sits-ltae-scores"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, t, dk) = self.dims(l1.dims(), l2.dims())?;
        let k = f32_slice(s1, l1, "L-TAE keys")?;
        let q = f32_slice(s2, l2, "L-TAE queries")?;
        let mut a = vec![0f32; n * self.heads * t];
        a.par_chunks_mut(self.heads * t)
            .enumerate()
            .for_each(|(s, row)| self.sequence(k, q, s, (t, dk), row));
        Ok((CpuStorage::F32(a), Shape::from((n, self.heads, t))))
    }

    fn bwd(
        &self,
        k: &Tensor,
        q: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // the weights (N·heads·T values) go along in the op: candle ops take at most
        // three tensors
        let a = Arc::new(res.flatten_all()?.to_vec1::<f32>()?);
        let g = k.apply_op3_no_bwd(q, &grad.contiguous()?, &QueryScoresGrad(self.clone(), a))?;
        let nk = k.elem_count();
        let dk = k
            .track_op()
            .then(|| g.narrow(0, 0, nk)?.reshape(k.shape()))
            .transpose()?;
        let dq = q
            .track_op()
            .then(|| g.narrow(0, nk, q.elem_count())?.reshape(q.shape()))
            .transpose()?;
        Ok((dk, dq))
    }
}

/// `(k, q, dweights) -> [dk; dq]` flattened, with the forward pass's weights.
struct QueryScoresGrad(QueryScores, Arc<Vec<f32>>);

impl candle_core::CustomOp3 for QueryScoresGrad {
    fn name(&self) -> &'static str {
        "sits-ltae-scores-grad"
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
        let me = &self.0;
        let (n, t, dk) = me.dims(l1.dims(), l2.dims())?;
        let k = f32_slice(s1, l1, "L-TAE keys")?;
        let q = f32_slice(s2, l2, "L-TAE queries")?;
        let da = f32_slice(s3, l3, "L-TAE weights gradient")?;
        let a = self.1.as_slice();
        let heads = me.heads;
        let hk = heads * dk;
        if a.len() != n * heads * t || da.len() != a.len() {
            candle_core::bail!(
                "L-TAE attention backward: gradient {:?} for weights of ({n}, {heads}, {t})",
                l3.dims()
            );
        }
        let scale = 1.0 / (dk as f32).sqrt();
        let mut dkq = vec![0f32; k.len() + q.len()];
        let (dk_all, dq_out) = dkq.split_at_mut(n * t * hk);
        // per sequence: dS = A ∘ (dA − Σ dA·A) · scale (0 at padded dates, whose
        // score is a constant); dk_j = dS_j q; partial dq = Σ_j dS_j k_j
        let chunk = 64;
        let partial: Vec<Vec<f32>> = dk_all
            .par_chunks_mut(chunk * t * hk)
            .enumerate()
            .map(|(ci, dks)| {
                let mut dq = vec![0f32; hk];
                let mut ds = vec![0f32; t];
                for (si, dkseq) in dks.chunks_mut(t * hk).enumerate() {
                    let s = ci * chunk + si;
                    let ks = &k[s * t * hk..][..t * hk];
                    let pad = me.pad.as_ref().map(|p| &p[s / me.per_batch * t..][..t]);
                    for h in 0..heads {
                        let ar = &a[(s * heads + h) * t..][..t];
                        let gr = &da[(s * heads + h) * t..][..t];
                        let sum: f32 = ar.iter().zip(gr).map(|(x, y)| x * y).sum();
                        for (j, d) in ds.iter_mut().enumerate() {
                            let padded = pad.is_some_and(|p| p[j] != 0);
                            *d = if padded {
                                0.0
                            } else {
                                ar[j] * (gr[j] - sum) * scale
                            };
                        }
                        let qh = &q[h * dk..][..dk];
                        let dqh = &mut dq[h * dk..][..dk];
                        for (j, &d) in ds.iter().enumerate() {
                            axpy(&mut dkseq[j * hk + h * dk..][..dk], d, qh);
                            axpy(dqh, d, &ks[j * hk + h * dk..][..dk]);
                        }
                    }
                }
                dq
            })
            .collect();
        for p in &partial {
            for (o, &v) in dq_out.iter_mut().zip(p) {
                *o += v;
            }
        }
        let len = dkq.len();
        Ok((CpuStorage::F32(dkq), Shape::from(len)))
    }
}

/// L-TAE's weighted sum of values per head: `a (N, heads, T)`, `v (N, T, D)` with
/// `D = heads · dv`; output `(N, D)`, head `h` in columns `h·dv..(h+1)·dv`.
struct HeadMix {
    heads: usize,
}

impl HeadMix {
    fn dims(&self, a: &[usize], v: &[usize]) -> Result<(usize, usize, usize)> {
        match (a, v) {
            (&[n, h, t], &[vn, vt, d]) if n == vn && t == vt && h == self.heads && d % h == 0 => {
                Ok((n, t, d))
            }
            _ => candle_core::bail!(
                "L-TAE attention: weights {a:?} must be (N, heads = {}, T) and values {v:?} (N, T, heads · dv)",
                self.heads
            ),
        }
    }
}

impl CustomOp2 for HeadMix {
    fn name(&self) -> &'static str {
        "sits-ltae-mix"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, t, d) = self.dims(l1.dims(), l2.dims())?;
        let a = f32_slice(s1, l1, "L-TAE weights")?;
        let v = f32_slice(s2, l2, "L-TAE values")?;
        let (heads, dv) = (self.heads, d / self.heads);
        let mut out = vec![0f32; n * d];
        out.par_chunks_mut(d).enumerate().for_each(|(s, o)| {
            let vs = &v[s * t * d..][..t * d];
            for h in 0..heads {
                let ar = &a[(s * heads + h) * t..][..t];
                let oh = &mut o[h * dv..][..dv];
                for (j, &w) in ar.iter().enumerate() {
                    axpy(oh, w, &vs[j * d + h * dv..][..dv]);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, d))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let da = a
            .track_op()
            .then(|| grad.apply_op2_no_bwd(v, &HeadMixGrad::Weights(self.heads)))
            .transpose()?;
        let dv = v
            .track_op()
            .then(|| grad.apply_op2_no_bwd(a, &HeadMixGrad::Values(self.heads)))
            .transpose()?;
        Ok((da, dv))
    }
}

/// Gradients of [`HeadMix`] from the output gradient `g (N, D)`.
enum HeadMixGrad {
    /// `(g, v) -> da (N, heads, T)`.
    Weights(usize),
    /// `(g, a) -> dv (N, T, D)`.
    Values(usize),
}

impl CustomOp2 for HeadMixGrad {
    fn name(&self) -> &'static str {
        "sits-ltae-mix-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, "L-TAE output gradient")?;
        let other = f32_slice(s2, l2, "L-TAE operand")?;
        let &[n, d] = l1.dims() else {
            candle_core::bail!("L-TAE attention backward: gradient {:?}", l1.dims());
        };
        match *self {
            HeadMixGrad::Weights(heads) => {
                let &[vn, t, vd] = l2.dims() else {
                    candle_core::bail!("L-TAE attention backward: values {:?}", l2.dims());
                };
                if vn != n || vd != d || d % heads != 0 {
                    candle_core::bail!(
                        "L-TAE attention backward: values {:?} for gradient {:?}",
                        l2.dims(),
                        l1.dims()
                    );
                }
                let dv = d / heads;
                let mut da = vec![0f32; n * heads * t];
                da.par_chunks_mut(heads * t)
                    .enumerate()
                    .for_each(|(s, das)| {
                        let vs = &other[s * t * d..][..t * d];
                        for h in 0..heads {
                            let gh = &g[s * d + h * dv..][..dv];
                            for (j, x) in das[h * t..][..t].iter_mut().enumerate() {
                                *x = dot(gh, &vs[j * d + h * dv..][..dv]);
                            }
                        }
                    });
                Ok((CpuStorage::F32(da), Shape::from((n, heads, t))))
            }
            HeadMixGrad::Values(heads) => {
                let &[an, ah, t] = l2.dims() else {
                    candle_core::bail!("L-TAE attention backward: weights {:?}", l2.dims());
                };
                if an != n || ah != heads || d % heads != 0 {
                    candle_core::bail!(
                        "L-TAE attention backward: weights {:?} for gradient {:?}",
                        l2.dims(),
                        l1.dims()
                    );
                }
                let dv = d / heads;
                let mut dvals = vec![0f32; n * t * d];
                dvals
                    .par_chunks_mut(t * d)
                    .enumerate()
                    .for_each(|(s, dvs)| {
                        for h in 0..heads {
                            let gh = &g[s * d + h * dv..][..dv];
                            let ar = &other[(s * heads + h) * t..][..t];
                            for (j, &w) in ar.iter().enumerate() {
                                for (o, &x) in dvs[j * d + h * dv..][..dv].iter_mut().zip(gh) {
                                    *o = w * x;
                                }
                            }
                        }
                    });
                Ok((CpuStorage::F32(dvals), Shape::from((n, t, d))))
            }
        }
    }
}

/// L-TAE's attention weights (Garnot and Landrieu 2020): for keys `k (N, T, heads ·
/// dk)` and one learned query per head `q (heads, dk)`, the softmax over dates of
/// `q_h · k_{n,t,h} / sqrt(dk)`, as `(N, heads, T)`. `pad (B, T)` (non-zero =
/// padded date) applies to sequences `n` of batch `n / per_batch`; padded dates
/// get the score `pad_score` (the reference's -1000) and no key gradient. One op
/// each way on the CPU in `f32`, [`query_attention_candle`] elsewhere.
pub fn query_attention(
    k: &Tensor,
    q: &Tensor,
    pad: Option<&Tensor>,
    per_batch: usize,
    pad_score: f32,
) -> Result<Tensor> {
    let heads = q.dim(0)?;
    if !cpu_f32(&[k, q]) {
        return query_attention_candle(k, q, pad, per_batch, pad_score);
    }
    let pad = pad
        .map(|m| -> Result<_> { Ok(Arc::new(m.ne(0f64)?.flatten_all()?.to_vec1::<u8>()?)) })
        .transpose()?;
    let op = QueryScores {
        heads,
        pad,
        per_batch,
        pad_score,
    };
    op.dims(k.dims(), q.dims())?;
    k.contiguous()?.apply_op2(&q.contiguous()?, op)
}

/// [`query_attention`] with candle's operations, on any device and dtype.
pub fn query_attention_candle(
    k: &Tensor,
    q: &Tensor,
    pad: Option<&Tensor>,
    per_batch: usize,
    pad_score: f32,
) -> Result<Tensor> {
    let (heads, dk) = q.dims2()?;
    let (n, t, _) = k.dims3()?;
    let k = k.reshape((n, t, heads, dk))?.transpose(1, 2)?; // (N, heads, T, dk)
    let scores = (k.broadcast_mul(&q.reshape((1, heads, 1, dk))?)?.sum(3)? / (dk as f64).sqrt())?;
    let scores = match pad {
        Some(m) => {
            let b = m.dim(0)?;
            let m = m
                .ne(0f64)?
                .reshape((b, 1, 1, t))?
                .broadcast_as((b, per_batch, heads, t))?
                .reshape((n, heads, t))?;
            let fill =
                Tensor::full(pad_score, (n, heads, t), k.device())?.to_dtype(scores.dtype())?;
            m.where_cond(&fill, &scores)?
        }
        None => scores,
    };
    softmax_last(&scores)
}

/// L-TAE's weighted sum of values per head: `a (N, heads, T)` weights, `v (N, T,
/// heads · dv)` values; returns `(N, heads · dv)`, each head's sum in its own
/// columns. One op each way on the CPU in `f32`, [`head_mix_candle`] elsewhere.
pub fn head_mix(a: &Tensor, v: &Tensor) -> Result<Tensor> {
    let heads = a.dim(1)?;
    let op = HeadMix { heads };
    op.dims(a.dims(), v.dims())?;
    if cpu_f32(&[a, v]) {
        a.contiguous()?.apply_op2(&v.contiguous()?, op)
    } else {
        head_mix_candle(a, v)
    }
}

/// [`head_mix`] with candle's operations, on any device and dtype.
pub fn head_mix_candle(a: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (n, heads, t) = a.dims3()?;
    let d = v.dim(2)?;
    let v = v
        .reshape((n, t, heads, d / heads))?
        .transpose(1, 2)?
        .contiguous()?; // (N, heads, T, dv)
    a.unsqueeze(2)?
        .contiguous()?
        .matmul(&v)?
        .squeeze(2)?
        .reshape((n, d))
}
