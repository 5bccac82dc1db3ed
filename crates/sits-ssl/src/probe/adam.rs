//! The probe's first solver, kept to reproduce earlier results: full-batch AdamW on
//! a cosine schedule ([`super::ProbeSolver::Adam`]).

use crate::optim::AdamW;
use candle_core::{DType, Result, Tensor, Var};

use super::linear::row_shares;
use super::ProbeConfig;

/// Weights `(d, classes)` and biases minimising `mean CE + λ/2 ‖W‖²` on standardised
/// features `xs` `(N, d)`, one pair per λ of `l2s`, all fitted in one pass: the
/// candidates' weights sit side by side in one `(d, k·classes)` matrix, and the
/// gradient is written out (`∂/∂logits = (softmax − onehot) / N`, plus `λW`; with
/// [`ProbeConfig::balanced`] each row's `1/N` becomes its class weight over the rows'
/// sum of weights, the weighted mean CE) instead of being taken by autograd. Adam is elementwise, so each candidate follows exactly
/// the path it would follow alone: full batch, `cfg.iterations` steps, rate decaying
/// from `cfg.lr` to zero on a cosine (a constant rate leaves Adam circling the
/// optimum, worst with a strong penalty).
pub(super) fn fit_candidates(
    xs: &Tensor,
    labels: &[usize],
    classes: usize,
    cfg: ProbeConfig,
    l2s: &[f64],
) -> Result<Vec<(Tensor, Tensor)>> {
    let (n, d) = xs.dims2()?;
    let k = l2s.len();
    let dev = xs.device();
    let mut onehot = vec![0f32; n * classes];
    for (i, &c) in labels.iter().enumerate() {
        onehot[i * classes + c] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (n, 1, classes), dev)?;
    // each row's share of the loss: 1/n, or its class weight over the rows' sum
    let row_share = if cfg.balanced {
        let share: Vec<f32> = row_shares(labels, classes, true)
            .iter()
            .map(|&s| s as f32)
            .collect();
        Some(Tensor::from_vec(share, (n, 1, 1), dev)?)
    } else {
        None
    };
    let lambda: Vec<f32> = l2s
        .iter()
        .flat_map(|&l| std::iter::repeat_n(l as f32, classes))
        .collect();
    let lambda = Tensor::from_vec(lambda, (1, k * classes), dev)?;
    let xt = xs.t()?.contiguous()?;
    let w = Var::zeros((d, k * classes), DType::F32, dev)?;
    let b = Var::zeros((1, k * classes), DType::F32, dev)?;
    let mut opt = AdamW::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], 0.0)?;
    let steps = cfg.iterations.max(1) as f64;
    for i in 0..cfg.iterations {
        let logits = xs.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
        let p = sits_models::nn::softmax_last(&logits.reshape((n, k, classes))?)?;
        let diff = p.broadcast_sub(&onehot)?;
        let dlogits = match &row_share {
            None => (diff / n as f64)?,
            Some(share) => diff.broadcast_mul(share)?,
        }
        .reshape((n, k * classes))?;
        let gw = (xt.matmul(&dlogits)? + w.as_tensor().broadcast_mul(&lambda)?)?;
        let gb = dlogits.sum_keepdim(0)?;
        let lr = cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * i as f64 / steps).cos());
        opt.step_with(&[gw, gb], lr)?;
    }
    let (w, b) = (w.as_tensor().detach(), b.as_tensor().detach());
    (0..k)
        .map(|j| {
            let cols = j * classes;
            Ok((
                w.narrow(1, cols, classes)?.contiguous()?,
                b.narrow(1, cols, classes)?.flatten_all()?,
            ))
        })
        .collect()
}
