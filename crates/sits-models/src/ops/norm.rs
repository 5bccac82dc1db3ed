//! Normalisation with a per-channel affine map, forward and backward in one op each:
//! `y = (x − mean) / sqrt(var + eps) · gamma[c] + beta[c]` for `x (N, C, ...)`, with
//! the biased variance, and the statistics taken
//! - per sample over groups of channels ([`Stats::PerSample`]): GroupNorm, and
//!   LayerNorm over the last dimension as one group of `(rows, features, 1)`;
//! - per channel over the batch and all positions ([`Stats::PerChannel`]):
//!   BatchNorm in training mode.
//!
//! The composed version (mean, centre, square, mean, divide, scale, shift) keeps
//! about ten full-size temporaries alive for its backward pass; this op keeps none
//! (the statistics are recomputed in the backward pass) and sums in `f64`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_f32, f32_slice};

/// Which values share a mean and variance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stats {
    /// For each sample, each of `groups` runs of consecutive channels with all their
    /// positions (GroupNorm; LayerNorm with one group and one position).
    PerSample {
        /// Number of channel groups; divides the channel count.
        groups: usize,
    },
    /// For each channel, all samples and positions (BatchNorm in training).
    PerChannel,
}

/// `x (N, C, ...)` as `N`, `C` and the product `S` of the other sizes.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    s: usize,
    stats: Stats,
}

impl Dims {
    fn new(dims: &[usize], stats: Stats) -> Result<Self> {
        if dims.len() < 2 {
            candle_core::bail!("normalisation needs (N, C, ...) input, got {dims:?}");
        }
        let (n, c) = (dims[0], dims[1]);
        let s = dims[2..].iter().product();
        if let Stats::PerSample { groups } = stats {
            if groups == 0 || !c.is_multiple_of(groups) {
                candle_core::bail!(
                    "{c} channels cannot be split into {groups} groups (input {dims:?})"
                );
            }
        }
        Ok(Self { n, c, s, stats })
    }

    /// Number of statistics.
    fn keys(&self) -> usize {
        match self.stats {
            Stats::PerSample { groups } => self.n * groups,
            Stats::PerChannel => self.c,
        }
    }

    /// Values per statistic.
    fn count(&self) -> usize {
        match self.stats {
            Stats::PerSample { groups } => self.c / groups * self.s,
            Stats::PerChannel => self.n * self.s,
        }
    }

    /// The statistic of channel `c` of sample `n`.
    fn key(&self, n: usize, c: usize) -> usize {
        match self.stats {
            Stats::PerSample { groups } => n * groups + c / (self.c / groups),
            Stats::PerChannel => c,
        }
    }

    /// The values of statistic `k`: `runs` runs of `len` values, the first at
    /// `start`, each `stride` after the previous one.
    fn runs(&self, k: usize) -> (usize, usize, usize, usize) {
        match self.stats {
            Stats::PerSample { groups } => {
                let cg = self.c / groups;
                (
                    (k / groups * self.c + k % groups * cg) * self.s,
                    1,
                    cg * self.s,
                    0,
                )
            }
            Stats::PerChannel => (k * self.s, self.n, self.s, self.c * self.s),
        }
    }

    /// Mean and biased variance of every statistic, two passes in `f64`.
    fn moments(&self, x: &[f32]) -> Vec<(f64, f64)> {
        let len = self.count() as f64;
        let per_key = |k: usize| -> (f64, f64) {
            let (start, runs, run, stride) = self.runs(k);
            let values =
                || (0..runs).flat_map(move |i| &x[start + i * stride..start + i * stride + run]);
            let mean = values().map(|&v| v as f64).sum::<f64>() / len;
            let ss: f64 = values().map(|&v| (v as f64 - mean).powi(2)).sum();
            (mean, ss / len)
        };
        (0..self.keys()).into_par_iter().map(per_key).collect()
    }

    /// Mean and `1 / sqrt(var + eps)` of every statistic.
    fn mean_rstd(&self, x: &[f32], eps: f64) -> (Vec<f32>, Vec<f32>) {
        self.moments(x)
            .into_iter()
            .map(|(m, v)| (m as f32, (1.0 / (v + eps).sqrt()) as f32))
            .unzip()
    }
}

/// The forward op: `(x, gamma, beta) -> y`.
#[derive(Debug, Clone, Copy)]
struct Normalize {
    stats: Stats,
    eps: f64,
}

impl CustomOp3 for Normalize {
    fn name(&self) -> &'static str {
        "sits-normalize"
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
        let d = Dims::new(l1.dims(), self.stats)?;
        let x = f32_slice(s1, l1, "normalisation input")?;
        let gamma = f32_slice(s2, l2, "normalisation weight")?;
        let beta = f32_slice(s3, l3, "normalisation bias")?;
        if gamma.len() != d.c || beta.len() != d.c {
            candle_core::bail!(
                "normalisation of {:?}: weight and bias need {} values, got {} and {}",
                l1.dims(),
                d.c,
                gamma.len(),
                beta.len()
            );
        }
        let (mean, rstd) = d.mean_rstd(x, self.eps);
        let mut y = vec![0f32; x.len()];
        let plane = (d.c * d.s).max(1);
        y.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(n, (yn, xn))| {
                for ch in 0..d.c {
                    let k = d.key(n, ch);
                    // centred first: folding the mean into the shift loses precision
                    // when the spread is small against the mean
                    let (m, a, b) = (mean[k], rstd[k] * gamma[ch], beta[ch]);
                    let r = ch * d.s..(ch + 1) * d.s;
                    for (o, &v) in yn[r.clone()].iter_mut().zip(&xn[r]) {
                        *o = (v - m) * a + b;
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op3_no_bwd(gamma, &grad.contiguous()?, &NormalizeGrad(*self))?;
        let (len, c) = (x.elem_count(), gamma.elem_count());
        let dx = x
            .track_op()
            .then(|| packed.narrow(0, 0, len)?.reshape(x.shape()))
            .transpose()?;
        let dgamma = gamma
            .track_op()
            .then(|| packed.narrow(0, len, c)?.reshape(gamma.shape()))
            .transpose()?;
        let dbeta = beta
            .track_op()
            .then(|| packed.narrow(0, len + c, c)?.reshape(beta.shape()))
            .transpose()?;
        Ok((dx, dgamma, dbeta))
    }
}

/// The backward op: `(x, gamma, dy) -> [dx, dgamma, dbeta]` flattened into one
/// vector.
struct NormalizeGrad(Normalize);

impl CustomOp3 for NormalizeGrad {
    fn name(&self) -> &'static str {
        "sits-normalize-grad"
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
        let d = Dims::new(l1.dims(), self.0.stats)?;
        let x = f32_slice(s1, l1, "normalisation input")?;
        let gamma = f32_slice(s2, l2, "normalisation weight")?;
        let dy = f32_slice(s3, l3, "normalisation output gradient")?;
        if dy.len() != x.len() || gamma.len() != d.c {
            candle_core::bail!(
                "normalisation backward: gradient {:?} for input {:?}",
                l3.dims(),
                l1.dims()
            );
        }
        let (mean, rstd) = d.mean_rstd(x, self.0.eps);
        match d.stats {
            Stats::PerSample { groups } => {
                Ok(per_sample_grad(&d, groups, x, gamma, dy, &mean, &rstd))
            }
            Stats::PerChannel => Ok(per_channel_grad(&d, x, gamma, dy, &mean, &rstd)),
        }
    }
}

/// Backward of per-sample statistics: each sample is done whole by one worker
/// (statistics, `dx`, and its share of the parameter gradients), the workers' shares
/// summed in a fixed order.
fn per_sample_grad(
    d: &Dims,
    groups: usize,
    x: &[f32],
    gamma: &[f32],
    dy: &[f32],
    mean: &[f32],
    rstd: &[f32],
) -> (CpuStorage, Shape) {
    let plane = (d.c * d.s).max(1);
    let cg = d.c / groups;
    let len = d.count() as f64;
    let threads = rayon::current_num_threads().max(1);
    let per = d.n.div_ceil(threads).max(1);
    let mut out = vec![0f32; x.len() + 2 * d.c];
    let (dx, params) = out.split_at_mut(x.len());
    let shares: Vec<(Vec<f64>, Vec<f64>)> = dx
        .par_chunks_mut(per * plane)
        .enumerate()
        .map(|(ci, dxc)| {
            let mut dgamma = vec![0f64; d.c];
            let mut dbeta = vec![0f64; d.c];
            for (j, dxn) in dxc.chunks_exact_mut(plane).enumerate() {
                let n = ci * per + j;
                let xn = &x[n * plane..(n + 1) * plane];
                let dyn_ = &dy[n * plane..(n + 1) * plane];
                for g in 0..groups {
                    let k = n * groups + g;
                    let (m, r) = (mean[k], rstd[k]);
                    let chans = g * cg..(g + 1) * cg;
                    // Σ dx̂ and Σ dx̂·x̂ over the group, with dx̂ = dy·gamma
                    let (mut a, mut b) = (0f64, 0f64);
                    for ch in chans.clone() {
                        let rg = ch * d.s..(ch + 1) * d.s;
                        let (mut s_dy, mut s_dyx) = (0f64, 0f64);
                        for (&v, &gy) in xn[rg.clone()].iter().zip(&dyn_[rg]) {
                            s_dy += gy as f64;
                            s_dyx += (gy * (v - m) * r) as f64;
                        }
                        dbeta[ch] += s_dy;
                        dgamma[ch] += s_dyx;
                        a += s_dy * gamma[ch] as f64;
                        b += s_dyx * gamma[ch] as f64;
                    }
                    let (a, b) = ((a / len) as f32, (b / len) as f32);
                    for ch in chans {
                        let gm = gamma[ch];
                        let rg = ch * d.s..(ch + 1) * d.s;
                        for ((o, &v), &gy) in dxn[rg.clone()]
                            .iter_mut()
                            .zip(&xn[rg.clone()])
                            .zip(&dyn_[rg])
                        {
                            *o = r * (gy * gm - a - (v - m) * r * b);
                        }
                    }
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    let mut sums = vec![0f64; 2 * d.c];
    for (dgamma, dbeta) in &shares {
        for (s, v) in sums.iter_mut().zip(dgamma.iter().chain(dbeta)) {
            *s += v;
        }
    }
    for (p, v) in params.iter_mut().zip(&sums) {
        *p = *v as f32;
    }
    (CpuStorage::F32(out), Shape::from(x.len() + 2 * d.c))
}

/// Backward of per-channel statistics: partial sums per (sample, channel), then the
/// channel sums, then `dx` parallel over samples.
fn per_channel_grad(
    d: &Dims,
    x: &[f32],
    gamma: &[f32],
    dy: &[f32],
    mean: &[f32],
    rstd: &[f32],
) -> (CpuStorage, Shape) {
    let plane = (d.c * d.s).max(1);
    // per (sample, channel): Σ dy and Σ dy·x̂ over the positions
    let partial: Vec<(f64, f64)> = x
        .par_chunks(plane)
        .zip(dy.par_chunks(plane))
        .enumerate()
        .flat_map_iter(|(n, (xn, dyn_))| {
            let (mean, rstd) = (&mean, &rstd);
            (0..d.c).map(move |ch| {
                let k = d.key(n, ch);
                let (m, r) = (mean[k], rstd[k]);
                let rg = ch * d.s..(ch + 1) * d.s;
                let (mut s_dy, mut s_dyx) = (0f64, 0f64);
                for (&v, &g) in xn[rg.clone()].iter().zip(&dyn_[rg]) {
                    s_dy += g as f64;
                    s_dyx += (g * (v - m) * r) as f64;
                }
                (s_dy, s_dyx)
            })
        })
        .collect();
    let mut out = vec![0f32; x.len() + 2 * d.c];
    // parameter gradients: sums over samples; key sums of dx̂ = dy·gamma and dx̂·x̂
    let mut dgamma = vec![0f64; d.c];
    let mut dbeta = vec![0f64; d.c];
    let mut key_dxh = vec![0f64; d.keys()];
    let mut key_dxh_xh = vec![0f64; d.keys()];
    for n in 0..d.n {
        for ch in 0..d.c {
            let (s_dy, s_dyx) = partial[n * d.c + ch];
            dbeta[ch] += s_dy;
            dgamma[ch] += s_dyx;
            let k = d.key(n, ch);
            key_dxh[k] += s_dy * gamma[ch] as f64;
            key_dxh_xh[k] += s_dyx * gamma[ch] as f64;
        }
    }
    let len = d.count() as f64;
    let (dx, params) = out.split_at_mut(x.len());
    for (p, v) in params.iter_mut().zip(dgamma.iter().chain(&dbeta)) {
        *p = *v as f32;
    }
    dx.par_chunks_mut(plane)
        .zip(x.par_chunks(plane).zip(dy.par_chunks(plane)))
        .enumerate()
        .for_each(|(n, (dxn, (xn, dyn_)))| {
            for (ch, &g) in gamma.iter().enumerate() {
                let k = d.key(n, ch);
                let (m, r) = (mean[k], rstd[k]);
                let a = (key_dxh[k] / len) as f32;
                let b = (key_dxh_xh[k] / len) as f32;
                let rg = ch * d.s..(ch + 1) * d.s;
                for ((o, &v), &gy) in dxn[rg.clone()]
                    .iter_mut()
                    .zip(&xn[rg.clone()])
                    .zip(&dyn_[rg])
                {
                    let xh = (v - m) * r;
                    *o = r * (gy * g - a - xh * b);
                }
            }
        });
    (CpuStorage::F32(out), Shape::from(x.len() + 2 * d.c))
}

/// Per-channel mean and biased variance of `x (N, C, ...)` over samples and
/// positions, as one `(2, C)` tensor, without gradient (BatchNorm's running
/// statistics).
struct ChannelMoments;

impl CustomOp1 for ChannelMoments {
    fn name(&self) -> &'static str {
        "sits-channel-moments"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(l.dims(), Stats::PerChannel)?;
        let x = f32_slice(s, l, "normalisation input")?;
        let m = d.moments(x);
        let mut out: Vec<f32> = m.iter().map(|&(mean, _)| mean as f32).collect();
        out.extend(m.iter().map(|&(_, var)| var as f32));
        Ok((CpuStorage::F32(out), Shape::from((2, d.c))))
    }
}

/// `(x − mean) / sqrt(var + eps) · gamma[c] + beta[c]` for `x (N, C, ...)` and
/// `gamma`, `beta` of `C` values, statistics as `stats` says (biased variance).
/// The fused op on the CPU in `f32`, candle's composed operations elsewhere.
pub fn normalize(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: Stats,
    eps: f64,
) -> Result<Tensor> {
    if cpu_f32(&[x, gamma, beta]) {
        x.contiguous()?.apply_op3(
            &gamma.contiguous()?,
            &beta.contiguous()?,
            Normalize { stats, eps },
        )
    } else {
        normalize_candle(x, gamma, beta, stats, eps)
    }
}

/// [`normalize`] with candle's composed operations, on any device and dtype: the
/// reference the fused op is tested against.
pub fn normalize_candle(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: Stats,
    eps: f64,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let d = Dims::new(&dims, stats)?;
    let mut affine = vec![1; dims.len()];
    affine[1] = d.c;
    // rows that share a statistic, as (keys, values)
    let rows = match stats {
        Stats::PerSample { groups } => x.reshape((d.n * groups, d.count()))?,
        Stats::PerChannel => x
            .reshape((d.n, d.c, d.s))?
            .transpose(0, 1)?
            .reshape((d.c, d.count()))?,
    };
    let mean = rows.mean_keepdim(1)?;
    let centred = rows.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(1)?;
    let xh = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    let xh = match stats {
        Stats::PerSample { .. } => xh.reshape(dims.as_slice())?,
        Stats::PerChannel => xh
            .reshape((d.c, d.n, d.s))?
            .transpose(0, 1)?
            .reshape(dims.as_slice())?,
    };
    xh.broadcast_mul(&gamma.reshape(affine.as_slice())?)?
        .broadcast_add(&beta.reshape(affine.as_slice())?)
}

/// Per-channel mean and biased variance of `x (N, C, ...)` over samples and
/// positions, detached from the graph: `(mean, var)`, `C` values each.
pub fn channel_moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = x.dim(1)?;
    if cpu_f32(&[x]) {
        let m = x.detach().contiguous()?.apply_op1_no_bwd(&ChannelMoments)?;
        return Ok((m.get(0)?, m.get(1)?));
    }
    let rows = x.detach().transpose(0, 1)?.flatten_from(1)?; // (C, N·...)
    let mean = rows.mean_keepdim(1)?;
    let var = rows.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
    Ok((mean.reshape(c)?, var.reshape(c)?))
}

/// `y + b[c]` for `y (N, C, ...)`, whose backward sums the gradient per channel in
/// one pass (candle's broadcast add reduces over the broadcast dimensions with a
/// strided reduction, a tenth of a U-TAE train step).
struct ChannelBias;

impl CustomOp2 for ChannelBias {
    fn name(&self) -> &'static str {
        "sits-channel-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(l1.dims(), Stats::PerChannel)?;
        let y = f32_slice(s1, l1, "bias input")?;
        let b = f32_slice(s2, l2, "bias")?;
        if b.len() != d.c {
            candle_core::bail!("bias of {} values for input {:?}", b.len(), l1.dims());
        }
        let plane = (d.c * d.s).max(1);
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(plane)
            .zip(y.par_chunks(plane))
            .for_each(|(on, yn)| {
                for ((oc, yc), &bc) in on.chunks_mut(d.s.max(1)).zip(yn.chunks(d.s.max(1))).zip(b) {
                    for (o, &v) in oc.iter_mut().zip(yc) {
                        *o = v + bc;
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        y: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = y.track_op().then(|| grad.clone());
        let db = if b.track_op() {
            Some(
                grad.contiguous()?
                    .apply_op1_no_bwd(&ChannelSum)?
                    .reshape(b.shape())?,
            )
        } else {
            None
        };
        Ok((dy, db))
    }
}

/// Sum of `x (N, C, ...)` per channel, in `f64`, in a fixed order.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "sits-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(l.dims(), Stats::PerChannel)?;
        let x = f32_slice(s, l, "bias gradient")?;
        let sums: Vec<f32> = (0..d.c)
            .into_par_iter()
            .map(|c| {
                (0..d.n)
                    .map(|n| {
                        let start = (n * d.c + c) * d.s;
                        x[start..start + d.s].iter().map(|&v| v as f64).sum::<f64>()
                    })
                    .sum::<f64>() as f32
            })
            .collect();
        Ok((CpuStorage::F32(sums), Shape::from(d.c)))
    }
}

/// `y + b` with `b` of `C` values broadcast over `y (N, C, ...)`: the fused op on the
/// CPU in `f32` (a one-pass per-channel sum in the backward), candle's broadcast add
/// elsewhere.
pub fn add_channel_bias(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[y, b]) {
        y.contiguous()?.apply_op2(&b.contiguous()?, ChannelBias)
    } else {
        let mut shape = vec![1; y.rank()];
        shape[1] = b.elem_count();
        y.broadcast_add(&b.reshape(shape)?)
    }
}
