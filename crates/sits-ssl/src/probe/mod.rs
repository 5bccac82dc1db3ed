//! Evaluation of frozen representations: feature standardisation, an L2-regularised
//! multinomial logistic-regression probe, a cosine k-NN classifier, stratified
//! label fractions for few-label experiments, and ridge regression for forecasting.
//!
//! One file per concept: the logistic-regression probe and its cross-validated
//! penalty (`linear`), label fractions and the few-label report (`fractions`),
//! ridge regression (`ridge`); standardisation, k-NN and feature tensors here.

mod adam;
mod fractions;
mod linear;
mod newton;
mod ridge;

pub use fractions::{label_fraction_probes, stratified_fraction, FractionResult};
pub use linear::{cv_folds, LinearProbe, ProbeConfig, ProbeParts, ProbeSolver, L2_CANDIDATES};
pub use ridge::{rmse, Ridge};

use candle_core::{DType, Device, Result, Tensor};
use sits_models::nn::l2_normalize;

use linear::check_labels;

/// Per-feature mean and standard deviation of training features.
#[derive(Debug, Clone)]
pub struct Standardizer {
    mean: Tensor,
    std: Tensor,
}

impl Standardizer {
    /// Fits on `x` `(N, d)`; constant features get std 1.
    pub fn fit(x: &Tensor) -> Result<Self> {
        let x = x.to_dtype(DType::F32)?;
        let mean = x.mean_keepdim(0)?;
        let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?;
        let std = var.sqrt()?;
        let ones = std.ones_like()?;
        let std = std.gt(1e-12)?.where_cond(&std, &ones)?;
        Ok(Self { mean, std })
    }

    /// `(x − mean) / std`.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        x.to_dtype(DType::F32)?
            .broadcast_sub(&self.mean)?
            .broadcast_div(&self.std)
    }
}

/// Cosine k-NN: each query takes the majority class of its `k` most similar training
/// rows (ties go to the class of the most similar of the tied neighbours).
pub fn knn_predict(
    train: &Tensor,
    labels: &[usize],
    query: &Tensor,
    k: usize,
    classes: usize,
) -> Result<Vec<usize>> {
    let (n, _) = train.dims2()?;
    check_labels(labels, n, classes)?;
    if k == 0 || n == 0 {
        candle_core::bail!("k-NN needs k >= 1 and training rows (k = {k}, {n} rows)");
    }
    let sim = l2_normalize(&query.to_dtype(DType::F32)?)?
        .matmul(&l2_normalize(&train.to_dtype(DType::F32)?)?.t()?)?;
    let rows: Vec<Vec<f32>> = sim.to_vec2()?;
    let k = k.min(n);
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.select_nth_unstable_by(k - 1, |&a, &b| r[b].total_cmp(&r[a]));
            let mut top = idx[..k].to_vec();
            top.sort_by(|&a, &b| r[b].total_cmp(&r[a]));
            let mut votes = vec![0usize; classes];
            for &i in &top {
                votes[labels[i]] += 1;
            }
            let best = *votes.iter().max().unwrap_or(&0);
            // first (most similar) neighbour whose class has the best count
            top.iter()
                .map(|&i| labels[i])
                .find(|&c| votes[c] == best)
                .unwrap_or(0)
        })
        .collect())
}

/// Features `(N, d)` from rows of `f32`.
pub fn features(rows: &[Vec<f32>], device: &Device) -> Result<Tensor> {
    let n = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != d) {
        candle_core::bail!("feature rows have different lengths");
    }
    Tensor::from_vec(rows.concat(), (n, d), device)
}
