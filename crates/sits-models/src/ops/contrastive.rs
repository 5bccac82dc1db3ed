//! SimCLR's NT-Xent as one op: from the two views `(N, d)` to the `2N` per-anchor
//! losses, the L2 normalisation included.
//!
//! Composed from candle's operations, the loss concatenates the views, normalises
//! them in five element-wise passes, builds an identity matrix to mask the diagonal
//! and runs three matrix products (the similarities, and two for the backward
//! pass of `z · zᵀ`). Here the forward pass is one product and one pass over the
//! similarity rows, and keeps the softmax of the similarities for the backward
//! pass, which is one more product: `dz = (G + Gᵀ) · z` for the gradient `G` of the
//! similarities, then the normalisation's gradient row by row.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_f32, f32_slice, matmul_into, rows, Mat};
use crate::nn::{l2_normalize, log_softmax};

/// Norms below this are clamped to it, as PyTorch's `F.normalize`.
const NORM_FLOOR: f64 = 1e-12;
/// Side of the tiles of the transposed sum in the backward pass.
const TILE: usize = 64;

/// What the forward pass keeps for the backward pass.
struct Saved {
    /// The normalised views stacked, `(2N, d)`.
    z: Vec<f32>,
    /// Each row's norm (clamped).
    norms: Vec<f32>,
    /// Row softmax of the similarities over temperature, diagonal excluded, `(2N, 2N)`.
    p: Vec<f32>,
}

#[derive(Clone)]
struct NtXent {
    n: usize,
    d: usize,
    temperature: f64,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl NtXent {
    fn new(a: &[usize], b: &[usize], temperature: f64) -> Result<Self> {
        let (&[n, d], true) = (a, a == b) else {
            candle_core::bail!(
                "NT-Xent needs two views of the same shape (N, d), got {a:?} and {b:?}"
            );
        };
        if n < 2 || d == 0 {
            candle_core::bail!(
                "NT-Xent needs at least 2 samples of at least 1 value, got views of {a:?}"
            );
        }
        if !temperature.is_finite() || temperature <= 0.0 {
            candle_core::bail!(
                "NT-Xent temperature must be a finite number > 0, got {temperature}"
            );
        }
        Ok(Self {
            n,
            d,
            temperature,
            saved: Arc::new(Mutex::new(None)),
        })
    }

    /// Index of the positive of anchor `i`: the other view of the same sample.
    fn positive(&self, i: usize) -> usize {
        (i + self.n) % (2 * self.n)
    }

    /// The normalised views, their norms, the similarity softmax and the per-anchor
    /// losses.
    fn forward(&self, x1: &[f32], x2: &[f32]) -> Result<(Saved, Vec<f32>)> {
        let (n2, d) = (2 * self.n, self.d);
        let mut z: Vec<f32> = x1.iter().chain(x2).copied().collect();
        let norms: Vec<f32> = z
            .par_chunks_mut(d)
            .map(|row| {
                let norm = rows::dot(row, row).sqrt().max(NORM_FLOOR);
                let inv = (1.0 / norm) as f32;
                row.iter_mut().for_each(|v| *v *= inv);
                norm as f32
            })
            .collect();
        let mut p = vec![0f32; n2 * n2];
        let zm = Mat::new(&z, n2, d);
        matmul_into(zm, zm.t(), &mut p, rayon::current_num_threads())?;
        let inv_t = (1.0 / self.temperature) as f32;
        let loss: Vec<f32> = p
            .par_chunks_mut(n2)
            .enumerate()
            .map(|(i, row)| {
                let pos = row[self.positive(i)] * inv_t;
                // the diagonal is excluded: -inf there gives e^(-inf) = 0
                row[i] = f32::NEG_INFINITY;
                let m = rows::row_max(row) * inv_t;
                let sum = rows::exp_in_place(row, inv_t, m);
                let inv = (1.0 / sum) as f32;
                row.iter_mut().for_each(|v| *v *= inv);
                (m as f64 + sum.ln() - pos as f64) as f32
            })
            .collect();
        Ok((Saved { z, norms, p }, loss))
    }
}

impl CustomOp2 for NtXent {
    fn name(&self) -> &'static str {
        "sits-nt-xent"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let me = Self::new(l1.dims(), l2.dims(), self.temperature)?;
        let x1 = f32_slice(s1, l1, "NT-Xent first view")?;
        let x2 = f32_slice(s2, l2, "NT-Xent second view")?;
        let (saved, loss) = me.forward(x1, x2)?;
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved);
        Ok((CpuStorage::F32(loss), Shape::from(2 * me.n)))
    }

    fn bwd(
        &self,
        x1: &Tensor,
        x2: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x1.apply_op3_no_bwd(x2, &grad.contiguous()?, &NtXentGrad(self.clone()))?;
        let n = self.n;
        let dx1 = x1.track_op().then(|| dx.narrow(0, 0, n)).transpose()?;
        let dx2 = x2.track_op().then(|| dx.narrow(0, n, n)).transpose()?;
        Ok((dx1, dx2))
    }
}

/// `(x1, x2, dloss) -> [dx1; dx2]` as `(2N, d)`.
struct NtXentGrad(NtXent);

impl CustomOp3 for NtXentGrad {
    fn name(&self) -> &'static str {
        "sits-nt-xent-grad"
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
        let (n2, d) = (2 * me.n, me.d);
        let dl = f32_slice(s3, l3, "NT-Xent loss gradient")?;
        if dl.len() != n2 {
            candle_core::bail!(
                "NT-Xent backward: gradient {:?} for {n2} anchors",
                l3.dims()
            );
        }
        // the forward pass's saved values, or the forward pass again (a second
        // backward pass through the same graph)
        let saved = me
            .saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Saved { z, norms, mut p } = match saved {
            Some(s) => s,
            None => {
                let x1 = f32_slice(s1, l1, "NT-Xent first view")?;
                let x2 = f32_slice(s2, l2, "NT-Xent second view")?;
                me.forward(x1, x2)?.0
            }
        };
        // G[i][j] = dl_i (P_ij − [j = pos_i]) / T, in place of P
        let inv_t = (1.0 / me.temperature) as f32;
        p.par_chunks_mut(n2).enumerate().for_each(|(i, row)| {
            let c = dl[i] * inv_t;
            row.iter_mut().for_each(|v| *v *= c);
            row[me.positive(i)] -= c;
        });
        // M = G + Gᵀ, in tiles so that the transposed reads stay in the cache
        let g = p;
        let mut m = vec![0f32; n2 * n2];
        m.par_chunks_mut(TILE * n2)
            .enumerate()
            .for_each(|(bi, block)| {
                let i0 = bi * TILE;
                for j0 in (0..n2).step_by(TILE) {
                    let j1 = (j0 + TILE).min(n2);
                    for (di, row) in block.chunks_mut(n2).enumerate() {
                        let i = i0 + di;
                        for j in j0..j1 {
                            row[j] = g[i * n2 + j] + g[j * n2 + i];
                        }
                    }
                }
            });
        drop(g);
        let mut dz = vec![0f32; n2 * d];
        matmul_into(
            Mat::new(&m, n2, n2),
            Mat::new(&z, n2, d),
            &mut dz,
            rayon::current_num_threads(),
        )?;
        // through the normalisation: dx = (dz − z (z · dz)) / norm
        dz.par_chunks_mut(d)
            .zip(z.par_chunks(d))
            .zip(norms.par_iter())
            .for_each(|((gr, zr), &norm)| {
                let clamped = (norm as f64) <= NORM_FLOOR;
                let proj = if clamped {
                    0.0
                } else {
                    rows::dot(zr, gr) as f32
                };
                let inv = 1.0 / norm;
                for (g, &v) in gr.iter_mut().zip(zr) {
                    *g = (*g - v * proj) * inv;
                }
            });
        Ok((CpuStorage::F32(dz), Shape::from((n2, d))))
    }
}

/// NT-Xent per anchor, `(2N,)`: for views `z1`, `z2` of `(N, d)`, both rows
/// L2-normalised (norms clamped at 1e-12), similarities over `temperature`; anchor
/// `i` of `[z1; z2]` has its other view as positive and the `2N − 2` other rows as
/// negatives (itself excluded), and its loss is the cross-entropy of the positive.
/// One op each way on the CPU in `f32`, candle's operations elsewhere
/// ([`nt_xent_per_anchor_candle`]).
pub fn nt_xent_per_anchor(z1: &Tensor, z2: &Tensor, temperature: f64) -> Result<Tensor> {
    let op = NtXent::new(z1.dims(), z2.dims(), temperature)?;
    if cpu_f32(&[z1, z2]) {
        z1.contiguous()?.apply_op2(&z2.contiguous()?, op)
    } else {
        nt_xent_per_anchor_candle(z1, z2, temperature)
    }
}

/// [`nt_xent_per_anchor`] with candle's operations, on any device and dtype
/// (computed in `f32`): the reference of the tests.
pub fn nt_xent_per_anchor_candle(z1: &Tensor, z2: &Tensor, temperature: f64) -> Result<Tensor> {
    let op = NtXent::new(z1.dims(), z2.dims(), temperature)?;
    let n = op.n;
    let z = l2_normalize(&Tensor::cat(
        &[&z1.to_dtype(DType::F32)?, &z2.to_dtype(DType::F32)?],
        0,
    )?)?;
    let sim = (z.matmul(&z.t()?)? / temperature)?;
    // self-similarity excluded with a large negative value (exp underflows to 0)
    let eye = Tensor::eye(2 * n, DType::F32, z.device())?;
    let sim = (sim - (eye * 1e9)?)?;
    let ls = log_softmax(&sim)?;
    let targets: Vec<u32> = (0..2 * n).map(|i| op.positive(i) as u32).collect();
    let targets = Tensor::from_vec(targets, (2 * n, 1), z.device())?;
    ls.gather(&targets, 1)?.neg()?.squeeze(1)
}
