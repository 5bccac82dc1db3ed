//! Supervised classification in the same training loop: a head on any encoder's
//! representation, cross-entropy over the labelled entries, for fine-tuning a
//! pretrained encoder (or training a head on a frozen one) and for segmentation.

use candle_core::{DType, Module, Result, Tensor};
use rand::RngCore;
use sits_core::{Encoder, Objective, ObjectiveOutput, SitsBatch, Step};
use sits_models::nn::log_softmax;

/// Cross-entropy averaged over the labelled entries, as PyTorch's
/// `F.cross_entropy(logits, target, ignore_index=-1)` with any negative label
/// ignored. `logits` is `(N, K)` with `labels` `(N)`, or `(B, K, H, W)` with
/// `labels` `(B, H, W)` (per-pixel segmentation). Labels are `i64`; a label at or
/// above `K` is an error, and so is a batch with no labelled entry.
///
/// Returns the loss and the accuracy of the argmax over the labelled entries.
pub fn cross_entropy_ignore(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, f64)> {
    weighted_cross_entropy_ignore(logits, labels, None)
}

/// [`cross_entropy_ignore`] with a weight per class, as PyTorch's
/// `F.cross_entropy(logits, target, weight=w, ignore_index=-1)`: the mean of
/// `w[y] · nll` over the labelled entries divided by the mean of `w[y]` (so uniform
/// weights give the plain loss). `None` is the plain loss. The weights must be one
/// per class, finite and not negative, and the labelled entries' sum positive.
/// The accuracy returned is unweighted.
pub fn weighted_cross_entropy_ignore(
    logits: &Tensor,
    labels: &Tensor,
    class_weights: Option<&[f64]>,
) -> Result<(Tensor, f64)> {
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
    let nll = log_softmax(&rows.to_dtype(DType::F32)?)?
        .gather(&target, 1)?
        .neg()?;
    let loss = match class_weights {
        None => nll.mean_all()?,
        Some(cw) => {
            if cw.len() != k {
                candle_core::bail!("cross-entropy: {} class weights for {k} classes", cw.len());
            }
            if let Some((c, w)) = cw
                .iter()
                .enumerate()
                .find(|(_, w)| !w.is_finite() || **w < 0.0)
            {
                candle_core::bail!(
                    "cross-entropy: class weight {w} of class {c} is not a finite number >= 0"
                );
            }
            let per_row: Vec<f32> = keep
                .iter()
                .map(|&i| cw[y[i as usize] as usize] as f32)
                .collect();
            let total: f64 = per_row.iter().map(|&v| v as f64).sum();
            if total <= 0.0 {
                candle_core::bail!("cross-entropy: the labelled entries' class weights sum to 0");
            }
            let per_row = Tensor::from_vec(per_row, (keep.len(), 1), rows.device())?;
            (nll * per_row)?.sum_all()?.affine(1.0 / total, 0.0)?
        }
    };
    let pred: Vec<u32> = rows.argmax(1)?.to_vec1()?;
    let correct = pred
        .iter()
        .zip(&keep)
        .filter(|(p, &i)| **p as i64 == y[i as usize])
        .count();
    Ok((loss, correct as f64 / keep.len() as f64))
}

/// Class weights `n / (K · n_c)` for the labelled entries of `labels` (negative
/// labels ignored; `n_c` entries of class `c`, `n` in all, `K` classes present)
/// over `classes` classes, as scikit-learn's `class_weight="balanced"`: every class
/// present then carries the same total weight in a weighted loss.
/// A class without entries gets weight 0; labels at or above `classes` are ignored
/// here (the loss rejects them).
pub fn balanced_class_weights(labels: impl IntoIterator<Item = i64>, classes: usize) -> Vec<f64> {
    let mut counts = vec![0usize; classes];
    for l in labels {
        if l >= 0 && (l as usize) < classes {
            counts[l as usize] += 1;
        }
    }
    let n: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count();
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                n as f64 / (present as f64 * c as f64)
            }
        })
        .collect()
}

/// Supervised classification as an [`Objective`]: `head` on the encoder's
/// representation, cross-entropy against `batch.labels()` (entries labelled
/// negative are ignored), accuracy as a metric. Pixel-series batches give logits
/// `(B, K)` against labels `(B)`; cube batches with label maps give logits
/// `(B, K, H, W)` against `(B, H, W)`, i.e. semantic segmentation (see
/// [`cross_entropy_ignore`]). Train the encoder's and the head's variables together
/// in a [`crate::train::Trainer`] (or freeze the encoder with `frozen_prefixes` for
/// a trained linear head).
pub struct Classification<'a> {
    encoder: &'a dyn Encoder,
    head: &'a dyn Module,
}

impl<'a> Classification<'a> {
    /// `head` maps the encoder's representation to class logits.
    pub fn new(encoder: &'a dyn Encoder, head: &'a dyn Module) -> Self {
        Self { encoder, head }
    }
}

impl Objective for Classification<'_> {
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        _rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let labels = batch.labels().ok_or_else(|| {
            candle_core::Error::Msg("classification needs a labelled batch".into())
        })?;
        let logits = self
            .head
            .forward(&self.encoder.encode(batch, step.train)?)?; // (B, K) or (B, K, H, W)
        let (loss, accuracy) = cross_entropy_ignore(&logits, labels)?;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("accuracy".into(), accuracy)],
        })
    }

    fn name(&self) -> &str {
        "classification"
    }
}
