//! Softmax and log-softmax over the last dimension, and the multi-crop soft
//! cross-entropy of DINO, each one op forward and one op backward.
//!
//! candle 0.11 has a fused softmax without a backward pass; with a gradient it runs
//! the composed version (maximum, subtract, exp, sum, divide), which keeps each
//! temporary alive for the backward pass and evaluates `exp` as one C library call
//! per value. Here each row is read twice forward (maximum, then shifted
//! exponentials) and once backward, with a vectorised `exp` (see `rows.rs`), and
//! rows are spread over the rayon pool in chunks of whole rows.
//!
//! On other devices and dtypes, [`softmax_last`] and [`log_softmax_last`] run candle's
//! own operations ([`softmax_last_candle`], [`log_softmax_last_candle`], also the
//! references of the tests), [`multi_crop_cross_entropy`] runs
//! [`multi_crop_cross_entropy_candle`].

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::{cpu_f32, f32_slice, rows};

/// Values per rayon task: rows are grouped so that each task has at least this many.
const TASK: usize = 1 << 14;

/// Rows of length `k` (the last dimension) of a tensor of `dims`.
fn row_len(dims: &[usize], what: &str) -> Result<usize> {
    match dims.last() {
        Some(&k) if k > 0 => Ok(k),
        _ => candle_core::bail!(
            "{what} over the last dimension needs a non-empty last dimension, got shape {dims:?}"
        ),
    }
}

/// Rows per task for rows of `k` values.
fn rows_per_task(k: usize) -> usize {
    TASK.div_ceil(k).max(1)
}

#[derive(Debug, Clone, Copy)]
struct Softmax {
    log: bool,
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        if self.log {
            "sits-log-softmax"
        } else {
            "sits-softmax"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let k = row_len(l.dims(), self.name())?;
        let x = f32_slice(s, l, "softmax input")?;
        let mut y = vec![0f32; x.len()];
        let per = rows_per_task(k) * k;
        let log = self.log;
        y.par_chunks_mut(per)
            .zip(x.par_chunks(per))
            .for_each(|(yc, xc)| {
                for (yr, xr) in yc.chunks_exact_mut(k).zip(xc.chunks_exact(k)) {
                    let m = rows::row_max(xr);
                    if log {
                        let lse = m + rows::exp_sum(xr, 1.0, m).ln() as f32;
                        for (o, &v) in yr.iter_mut().zip(xr) {
                            *o = v - lse;
                        }
                    } else {
                        let inv = (1.0 / rows::exp_into(xr, 1.0, m, yr)) as f32;
                        for o in yr.iter_mut() {
                            *o *= inv;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad(*self))?;
        Ok(Some(dx))
    }
}

/// `(y, dy) -> dx` for [`Softmax`], from its output `y`:
/// softmax `dx = y · (dy − Σ dy·y)`, log-softmax `dx = dy − e^y · Σ dy`.
struct SoftmaxGrad(Softmax);

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "sits-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let k = row_len(l1.dims(), "softmax backward")?;
        let y = f32_slice(s1, l1, "softmax output")?;
        let dy = f32_slice(s2, l2, "softmax output gradient")?;
        if l1.dims() != l2.dims() {
            candle_core::bail!(
                "softmax backward: gradient {:?} for output {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let mut dx = vec![0f32; y.len()];
        let per = rows_per_task(k) * k;
        let log = self.0.log;
        dx.par_chunks_mut(per)
            .zip(y.par_chunks(per).zip(dy.par_chunks(per)))
            .for_each(|(dc, (yc, gc))| {
                for ((dr, yr), gr) in dc
                    .chunks_exact_mut(k)
                    .zip(yc.chunks_exact(k))
                    .zip(gc.chunks_exact(k))
                {
                    if log {
                        let sg = rows::sum(gr) as f32;
                        // dx = dy - e^y · Σdy, with the kernel's sign convention
                        rows::exp_scaled_into(yr, sg, dr);
                        for (d, &g) in dr.iter_mut().zip(gr) {
                            *d = g - *d;
                        }
                    } else {
                        let s = rows::dot(gr, yr) as f32;
                        for ((d, &v), &g) in dr.iter_mut().zip(yr).zip(gr) {
                            *d = v * (g - s);
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Softmax over the last dimension, with a gradient: the fused op on the CPU in
/// `f32`, candle's operations elsewhere.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[x]) {
        x.contiguous()?.apply_op1(Softmax { log: false })
    } else {
        softmax_last_candle(x)
    }
}

/// Log-softmax over the last dimension, with a gradient: the fused op on the CPU in
/// `f32`, candle's operations elsewhere.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[x]) {
        x.contiguous()?.apply_op1(Softmax { log: true })
    } else {
        log_softmax_last_candle(x)
    }
}

/// [`softmax_last`] with candle's operations, on any device and dtype.
pub fn softmax_last_candle(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(x, D::Minus1)
}

/// [`log_softmax_last`] with candle's operations (a max-shifted log-sum-exp; the
/// shift is detached, which leaves the gradient unchanged), on any device and dtype.
pub fn log_softmax_last_candle(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// The multi-crop soft cross-entropy: `V` student crops and `G` teacher crops of `B`
/// samples, `K` classes, student logits multiplied by `scale`.
#[derive(Debug, Clone, Copy)]
struct MultiCrop {
    b: usize,
    v: usize,
    g: usize,
    k: usize,
    scale: f32,
}

impl MultiCrop {
    fn new(student: &[usize], targets: &[usize], g: usize, scale: f64) -> Result<Self> {
        let (&[ns, k], &[nt, kt]) = (student, targets) else {
            candle_core::bail!(
                "multi-crop cross-entropy: student {student:?} and targets {targets:?} must both be (crops·B, K)"
            );
        };
        if k != kt || k == 0 || g == 0 || nt == 0 || !nt.is_multiple_of(g) {
            candle_core::bail!(
                "multi-crop cross-entropy: targets {targets:?} are not {g} crops of B rows of the student's K, or student {student:?} has another K"
            );
        }
        let b = nt / g;
        if !ns.is_multiple_of(b) || ns / b < 2 || !scale.is_finite() || scale <= 0.0 {
            candle_core::bail!(
                "multi-crop cross-entropy: student {student:?} is not at least 2 crops of the targets' B = {b} rows (or the scale {scale} is not a finite number > 0)"
            );
        }
        Ok(Self {
            b,
            v: ns / b,
            g,
            k,
            scale: scale as f32,
        })
    }

    /// Log-sum-exp of the scaled student row `x`.
    fn lse(&self, x: &[f32]) -> f64 {
        let m = rows::row_max(x) * self.scale;
        m as f64 + rows::exp_sum(x, self.scale, m).ln()
    }

    /// Target rows other than the student crop of row `r`: `(row index, values)`.
    fn targets<'a>(&self, q: &'a [f32], r: usize) -> impl Iterator<Item = (usize, &'a [f32])> {
        let (v, b, k, nb) = (r / self.b, r % self.b, self.k, self.b);
        (0..self.g)
            .filter(move |&i| i != v)
            .map(move |i| (i * nb + b, &q[(i * nb + b) * k..][..k]))
    }
}

impl CustomOp2 for MultiCrop {
    fn name(&self) -> &'static str {
        "sits-multi-crop-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let me = Self::new(l1.dims(), l2.dims(), self.g, self.scale as f64)?;
        let x = f32_slice(s1, l1, "student logits")?;
        let q = f32_slice(s2, l2, "target probabilities")?;
        let k = me.k;
        let qsum: Vec<f64> = q.par_chunks(k).map(rows::sum).collect();
        // sample by sample, so that its target rows stay in the cache while its
        // student crops are read; crops summed in a fixed order
        let loss: Vec<f32> = (0..me.b)
            .into_par_iter()
            .map(|b| {
                (0..me.v)
                    .map(|v| {
                        let r = v * me.b + b;
                        let xr = &x[r * k..][..k];
                        let lse = me.lse(xr);
                        me.targets(q, r)
                            .map(|(t, qr)| qsum[t] * lse - me.scale as f64 * rows::dot(qr, xr))
                            .sum::<f64>()
                    })
                    .sum::<f64>() as f32
            })
            .collect();
        Ok((CpuStorage::F32(loss), Shape::from(me.b)))
    }

    fn bwd(
        &self,
        student: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ds = student.apply_op3_no_bwd(targets, &grad.contiguous()?, &MultiCropGrad(*self))?;
        Ok((Some(ds), None))
    }
}

/// `(student, targets, dloss) -> dstudent`: for the student row `r` of crop `v` and
/// sample `b`, `dloss_b · scale · (m_r · softmax(scale · x_r) − Σ_{i≠v} q_i)` with
/// `m_r = Σ_{i≠v} Σ_k q_ik`.
struct MultiCropGrad(MultiCrop);

impl candle_core::CustomOp3 for MultiCropGrad {
    fn name(&self) -> &'static str {
        "sits-multi-crop-cross-entropy-grad"
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
        let me = MultiCrop::new(l1.dims(), l2.dims(), self.0.g, self.0.scale as f64)?;
        let x = f32_slice(s1, l1, "student logits")?;
        let q = f32_slice(s2, l2, "target probabilities")?;
        let dl = f32_slice(s3, l3, "loss gradient")?;
        if dl.len() != me.b {
            candle_core::bail!(
                "multi-crop cross-entropy backward: gradient {:?} for {} samples",
                l3.dims(),
                me.b
            );
        }
        let k = me.k;
        let qsum: Vec<f64> = q.par_chunks(k).map(rows::sum).collect();
        let mut dx = vec![0f32; x.len()];
        // the rows of each sample (one per crop), so that a task works on one sample
        // with its target rows in the cache
        let mut by_sample: Vec<Vec<&mut [f32]>> =
            (0..me.b).map(|_| Vec::with_capacity(me.v)).collect();
        for crop in dx.chunks_mut(me.b * k) {
            for (rows_of, row) in by_sample.iter_mut().zip(crop.chunks_mut(k)) {
                rows_of.push(row);
            }
        }
        by_sample
            .into_par_iter()
            .enumerate()
            .for_each(|(b, rows_of)| {
                let c = dl[b] * me.scale;
                for (v, dr) in rows_of.into_iter().enumerate() {
                    let r = v * me.b + b;
                    let xr = &x[r * k..][..k];
                    let shift = me.lse(xr) as f32;
                    let mass: f64 = me.targets(q, r).map(|(t, _)| qsum[t]).sum();
                    // e^(scale·x − lse) · mass · c − q_first · c, then the other targets
                    let mut targets = me.targets(q, r);
                    match targets.next() {
                        Some((_, q0)) => rows::softmax_minus_into(
                            xr,
                            me.scale,
                            shift,
                            mass as f32 * c,
                            q0,
                            c,
                            dr,
                        ),
                        None => dr.fill(0.0),
                    }
                    for (_, qi) in targets {
                        rows::sub_scaled(dr, qi, c);
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// DINO's cross-entropy between teacher distributions and student crops, per
/// sample: for `student (V·B, K)` logits (crops stacked crop after crop) and
/// `targets (G·B, K)` probabilities (the first `G` crops' teacher outputs, same
/// order), returns `(B,)` with
/// `Σ_{i<G} Σ_{v≠i} −Σ_k targets[i·B+b, k] · log_softmax(scale · student[v·B+b])_k`.
/// The gradient flows to `student` only (`targets` are constants, as DINO detaches
/// the teacher). One op on the CPU in `f32`: the `(V·B, K)` log-softmax is never
/// stored, each student row is read twice forward and three times backward.
pub fn multi_crop_cross_entropy(
    student: &Tensor,
    targets: &Tensor,
    teacher_crops: usize,
    scale: f64,
) -> Result<Tensor> {
    let op = MultiCrop::new(student.dims(), targets.dims(), teacher_crops, scale)?;
    if cpu_f32(&[student, targets]) {
        student
            .contiguous()?
            .apply_op2(&targets.detach().contiguous()?, op)
    } else {
        multi_crop_cross_entropy_candle(student, targets, teacher_crops, scale)
    }
}

/// [`multi_crop_cross_entropy`] with candle's operations, on any device and dtype:
/// the reference of the tests.
pub fn multi_crop_cross_entropy_candle(
    student: &Tensor,
    targets: &Tensor,
    teacher_crops: usize,
    scale: f64,
) -> Result<Tensor> {
    let op = MultiCrop::new(student.dims(), targets.dims(), teacher_crops, scale)?;
    let (b, g) = (op.b, op.g);
    let ls = log_softmax_last_candle(&(student * scale)?)?;
    let q = targets.detach();
    let mut total: Option<Tensor> = None;
    for i in 0..g {
        let qi = q.narrow(0, i * b, b)?;
        for v in (0..op.v).filter(|&v| v != i) {
            let term = qi.mul(&ls.narrow(0, v * b, b)?)?.sum(1)?.neg()?;
            total = Some(match total {
                Some(t) => (t + term)?,
                None => term,
            });
        }
    }
    match total {
        Some(t) => Ok(t),
        None => candle_core::bail!("multi-crop cross-entropy: no crop pairs"),
    }
}
