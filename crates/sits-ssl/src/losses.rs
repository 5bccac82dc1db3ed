//! Self-supervised losses as the reference code defines them (see ANCHORS.md §5):
//! SimCLR's NT-Xent with both reduction conventions, DINO's cross-view
//! cross-entropy with centering and its health metrics, the masked-reconstruction
//! MSE, the CLIP-style symmetric InfoNCE of PIMC, and CSCL's linear similarity loss.
//!
//! Every loss computes in float32 whatever the input dtype (`f16`/`bf16` inputs are
//! promoted), and every softmax goes through a max-shifted log-sum-exp, so large
//! logits neither overflow nor lose the positive pair.

use candle_core::{DType, Result, Tensor, D};

/// Log-softmax over the last dimension, stable for large values.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Rows scaled to unit L2 norm (norm clamped at 1e-12 as `F.normalize`).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&n)
}

fn f32(x: &Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F32 {
        Ok(x.clone())
    } else {
        x.to_dtype(DType::F32)
    }
}

/// How NT-Xent is reduced. The two reference implementations differ by exactly 2×.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NtXentReduction {
    /// Mean over the 2N anchors (sthalles/SimCLR `info_nce_loss`).
    MeanOverAnchors,
    /// Sum of the two directional means over N (google-research/simclr
    /// `add_contrastive_loss`): twice [`NtXentReduction::MeanOverAnchors`].
    SumOfDirections,
}

/// SimCLR NT-Xent of two views `(N, d)`: both L2-normalised, cosine similarities
/// over `temperature`, each embedding's positive is its other view and its
/// negatives the 2N − 2 others (self-similarity excluded).
pub fn nt_xent(
    z1: &Tensor,
    z2: &Tensor,
    temperature: f64,
    reduction: NtXentReduction,
) -> Result<Tensor> {
    let (n, d) = z1.dims2()?;
    if z2.dims() != [n, d] || n < 2 {
        candle_core::bail!(
            "NT-Xent needs two views of the same shape (N >= 2, d), got {:?} and {:?}",
            z1.dims(),
            z2.dims()
        );
    }
    if temperature <= 0.0 {
        candle_core::bail!("NT-Xent temperature must be > 0, got {temperature}");
    }
    let z = l2_normalize(&Tensor::cat(&[&f32(z1)?, &f32(z2)?], 0)?)?;
    let sim = (z.matmul(&z.t()?)? / temperature)?;
    // Exclude self-similarity with a large negative value (exp underflows to 0).
    let eye = Tensor::eye(2 * n, DType::F32, z.device())?;
    let sim = (sim - (eye * 1e9)?)?;
    let ls = log_softmax(&sim)?;
    let targets: Vec<u32> = (0..2 * n).map(|i| ((i + n) % (2 * n)) as u32).collect();
    let targets = Tensor::from_vec(targets, (2 * n, 1), z.device())?;
    let mean = ls.gather(&targets, 1)?.neg()?.mean_all()?;
    match reduction {
        NtXentReduction::MeanOverAnchors => Ok(mean),
        NtXentReduction::SumOfDirections => mean * 2.0,
    }
}

/// CLIP-style symmetric InfoNCE between paired embeddings of two modalities
/// `(N, d)` (PIMC: recurrence-plot encoder vs series encoder): positives are the
/// same row, `logits = a·bᵀ / temperature` on L2-normalised rows, loss =
/// (CE(rows) + CE(columns)) / 2.
pub fn symmetric_info_nce(a: &Tensor, b: &Tensor, temperature: &Tensor) -> Result<Tensor> {
    let (n, d) = a.dims2()?;
    if b.dims() != [n, d] {
        candle_core::bail!(
            "InfoNCE needs paired embeddings of the same shape, got {:?} and {:?}",
            a.dims(),
            b.dims()
        );
    }
    let (a, b) = (l2_normalize(&f32(a)?)?, l2_normalize(&f32(b)?)?);
    let logits = a.matmul(&b.t()?)?.broadcast_div(&f32(temperature)?)?;
    let diag = Tensor::arange(0u32, n as u32, a.device())?.reshape((n, 1))?;
    let rows = log_softmax(&logits)?.gather(&diag, 1)?.neg()?.mean_all()?;
    let cols = log_softmax(&logits.t()?.contiguous()?)?
        .gather(&diag, 1)?
        .neg()?
        .mean_all()?;
    (rows + cols)? * 0.5
}

/// Mean squared error over the entries selected by `mask` (broadcastable to
/// `pred`; 1 = counted), the BERT-style reconstruction loss: pass masked dates that
/// are valid and not padded. Errors when nothing is selected.
pub fn masked_mse(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if pred.dims() != target.dims() {
        candle_core::bail!(
            "masked MSE: prediction {:?} and target {:?} differ",
            pred.dims(),
            target.dims()
        );
    }
    let m = f32(mask)?.broadcast_as(pred.shape())?;
    let count = m.sum_all()?.to_scalar::<f32>()?;
    if count == 0.0 {
        candle_core::bail!("masked MSE: the mask selects no entry");
    }
    let err = (f32(pred)? - f32(target)?)?.sqr()?;
    (err * m)?.sum_all()? / count as f64
}

/// Cross-entropy averaged over the labelled entries, as PyTorch's
/// `F.cross_entropy(logits, target, ignore_index=-1)` with any negative label
/// ignored. `logits` is `(N, K)` with `labels` `(N)`, or `(B, K, H, W)` with
/// `labels` `(B, H, W)` (per-pixel segmentation). Labels are `i64`; a label at or
/// above `K` is an error, and so is a batch with no labelled entry.
///
/// Returns the loss and the accuracy of the argmax over the labelled entries.
pub fn cross_entropy_ignore(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, f64)> {
    let (rows, k) = match logits.rank() {
        2 => (logits.clone(), logits.dim(1)?),
        4 => {
            let (b, k, h, w) = logits.dims4()?;
            if labels.dims() != [b, h, w] {
                candle_core::bail!(
                    "cross-entropy: logits {:?} need labels (B, H, W) = ({b}, {h}, {w}), got {:?}",
                    logits.dims(),
                    labels.dims()
                );
            }
            (logits.permute((0, 2, 3, 1))?.reshape((b * h * w, k))?, k)
        }
        r => {
            candle_core::bail!("cross-entropy: logits must be (N, K) or (B, K, H, W), got rank {r}")
        }
    };
    let y: Vec<i64> = labels.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    if y.len() != rows.dim(0)? {
        candle_core::bail!(
            "cross-entropy: {} logit rows but {} labels {:?}",
            rows.dim(0)?,
            y.len(),
            labels.dims()
        );
    }
    if let Some((i, l)) = y.iter().enumerate().find(|(_, &l)| l >= k as i64) {
        candle_core::bail!("cross-entropy: label {l} at entry {i} is not below the {k} classes");
    }
    let keep: Vec<u32> = (0..y.len())
        .filter(|&i| y[i] >= 0)
        .map(|i| i as u32)
        .collect();
    if keep.is_empty() {
        candle_core::bail!("cross-entropy: no labelled entry (every label is negative)");
    }
    let idx = Tensor::from_vec(keep.clone(), keep.len(), rows.device())?;
    let rows = rows.index_select(&idx, 0)?;
    let target: Vec<u32> = keep.iter().map(|&i| y[i as usize] as u32).collect();
    let target = Tensor::from_vec(target, (keep.len(), 1), rows.device())?;
    let loss = log_softmax(&f32(&rows)?)?
        .gather(&target, 1)?
        .neg()?
        .mean_all()?;
    let pred: Vec<u32> = rows.argmax(1)?.to_vec1()?;
    let correct = pred
        .iter()
        .zip(&keep)
        .filter(|(p, &i)| **p as i64 == y[i as usize])
        .count();
    Ok((loss, correct as f64 / keep.len() as f64))
}

/// CSCL's linear similarity loss `mean(−pos_weight·y·s + (1 − y)·s)` over the
/// entries where `valid` is 1 (`s` similarities, `y` 1 where the neighbour has the
/// centre's label). DeepSatModels uses `pos_weight = 0.125`.
pub fn cscl_loss(sim: &Tensor, same: &Tensor, valid: &Tensor, pos_weight: f64) -> Result<Tensor> {
    let s = f32(sim)?;
    let y = f32(same)?;
    let v = f32(valid)?.broadcast_as(s.shape())?;
    let count = v.sum_all()?.to_scalar::<f32>()?;
    if count == 0.0 {
        candle_core::bail!("CSCL loss: no valid entry");
    }
    let per = ((y.neg()? * pos_weight)?.mul(&s)? + (1.0 - &y)?.mul(&s)?)?;
    (per * v)?.sum_all()? / count as f64
}

/// DINO's teacher temperature per epoch: linear from `warmup` to `final_temp` over
/// `warmup_epochs`, then constant (code defaults 0.04, 0.04, 0).
pub fn teacher_temperature(
    epoch: usize,
    warmup: f64,
    final_temp: f64,
    warmup_epochs: usize,
) -> f64 {
    if epoch < warmup_epochs && warmup_epochs > 1 {
        warmup + (final_temp - warmup) * epoch as f64 / (warmup_epochs - 1) as f64
    } else {
        final_temp
    }
}

/// What one DINO loss evaluation reports besides the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DinoHealth {
    /// Mean entropy of the teacher distributions (collapse to one dimension → 0;
    /// collapse to uniform → ln K).
    pub teacher_entropy: f64,
    /// Mean KL(teacher ‖ student) over the loss pairs.
    pub kl: f64,
}

/// DINO loss state: the center and the temperatures.
#[derive(Debug, Clone)]
pub struct DinoLoss {
    center: Tensor,
    /// Student temperature (0.1).
    pub student_temp: f64,
    /// Center momentum (0.9).
    pub center_momentum: f64,
    /// Number of global crops (2); the teacher sees only those.
    pub n_global: usize,
}

impl DinoLoss {
    /// A loss over `out_dim` prototypes with the reference defaults.
    pub fn new(out_dim: usize, device: &candle_core::Device) -> Result<Self> {
        Ok(Self {
            center: Tensor::zeros((1, out_dim), DType::F32, device)?,
            student_temp: 0.1,
            center_momentum: 0.9,
            n_global: 2,
        })
    }

    /// The current center `(1, K)`.
    pub fn center(&self) -> &Tensor {
        &self.center
    }

    /// Replaces the center (for resuming from a checkpoint).
    pub fn set_center(&mut self, c: Tensor) -> Result<()> {
        if c.dims() != self.center.dims() {
            candle_core::bail!(
                "DINO center must be {:?}, got {:?}",
                self.center.dims(),
                c.dims()
            );
        }
        self.center = c;
        Ok(())
    }

    /// Loss of student outputs `(ncrops·B, K)` (global crops first) against teacher
    /// outputs `(n_global·B, K)` at teacher temperature `teacher_temp`: the mean over
    /// all (teacher crop `i`, student crop `v ≠ i`) pairs of the batch-mean
    /// cross-entropy. Then moves the center towards the teacher batch mean (the
    /// reference updates it after the loss, from the same teacher outputs).
    pub fn forward(
        &mut self,
        student: &Tensor,
        teacher: &Tensor,
        teacher_temp: f64,
    ) -> Result<(Tensor, DinoHealth)> {
        let (ns, k) = student.dims2()?;
        let (nt, kt) = teacher.dims2()?;
        let g = self.n_global;
        if k != kt || k != self.center.dim(1)? || nt % g != 0 || ns % (nt / g) != 0 {
            candle_core::bail!(
                "DINO loss: student {:?}, teacher {:?} and center {:?} do not fit {g} global crops",
                student.dims(),
                teacher.dims(),
                self.center.dims()
            );
        }
        let b = nt / g;
        let ncrops = ns / b;
        if ncrops < 2 {
            candle_core::bail!("DINO loss needs at least two student crops, got {ncrops}");
        }
        let s = (f32(student)? / self.student_temp)?;
        let ls = log_softmax(&s)?;
        let t = f32(teacher)?.detach();
        let q = crate::losses::softmax_rows(&(t.broadcast_sub(&self.center)? / teacher_temp)?)?
            .detach();
        // Sum over pairs (i, v != i) of CE(q_i, ls_v), vectorised as in the peer's
        // check: (sum_i q_i)·(sum_v ls_v) - sum_i q_i·ls_i, per sample.
        let mut q_sum = q.narrow(0, 0, b)?;
        for iq in 1..g {
            q_sum = (q_sum + q.narrow(0, iq * b, b)?)?;
        }
        let mut ls_sum = ls.narrow(0, 0, b)?;
        for v in 1..ncrops {
            ls_sum = (ls_sum + ls.narrow(0, v * b, b)?)?;
        }
        let mut same = q.narrow(0, 0, b)?.mul(&ls.narrow(0, 0, b)?)?;
        for iq in 1..g.min(ncrops) {
            same = (same + q.narrow(0, iq * b, b)?.mul(&ls.narrow(0, iq * b, b)?)?)?;
        }
        let pairs = g * ncrops - g.min(ncrops);
        let cross = (q_sum.mul(&ls_sum)? - same)?.sum(1)?; // (B,)
        let loss = (cross.neg()?.mean_all()? / pairs as f64)?;
        let lq = q.clamp(1e-30, 1.0)?.log()?;
        let entropy = (q.mul(&lq)?.sum(1)?.neg()?)
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        // mean KL over pairs = mean cross-entropy - mean teacher entropy
        let kl = loss.to_scalar::<f32>()? as f64 - entropy;
        // center <- m * center + (1 - m) * mean(teacher)
        let batch_center = t.mean_keepdim(0)?;
        self.center = ((&self.center * self.center_momentum)?
            + (batch_center * (1.0 - self.center_momentum))?)?;
        Ok((
            loss,
            DinoHealth {
                teacher_entropy: entropy,
                kl,
            },
        ))
    }
}

/// Softmax over the last dimension (max-shifted).
pub fn softmax_rows(x: &Tensor) -> Result<Tensor> {
    log_softmax(x)?.exp()
}

/// EMA momentum of the DINO teacher at `step` of `total`: cosine from `base`
/// (0.996) to 1.
pub fn teacher_momentum(step: usize, total: usize, base: f64) -> f64 {
    if total == 0 {
        return 1.0;
    }
    1.0 - (1.0 - base) * ((std::f64::consts::PI * step as f64 / total as f64).cos() + 1.0) / 2.0
}
