//! Stratified label fractions and the few-label probe report.

use candle_core::{Result, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{LinearProbe, ProbeConfig};

/// A seeded, stratified subset of `fraction` of the rows: per class
/// `max(1, round(fraction · count))` rows (all when `fraction >= 1`), sorted.
pub fn stratified_fraction(labels: &[usize], fraction: f64, seed: u64) -> Vec<usize> {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for c in 0..classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        if rows.is_empty() {
            continue;
        }
        let take = if fraction >= 1.0 {
            rows.len()
        } else {
            ((fraction * rows.len() as f64).round() as usize).clamp(1, rows.len())
        };
        rows.shuffle(&mut rng);
        out.extend_from_slice(&rows[..take]);
    }
    out.sort_unstable();
    out
}

/// Test metrics of a linear probe trained on one fraction of the training labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FractionResult {
    /// Fraction of the training labels used.
    pub fraction: f64,
    /// Training rows actually used.
    pub n_train: usize,
    /// The probe's L2 strength (chosen by cross-validation on the training rows).
    #[serde(default)]
    pub l2: f64,
    /// Overall accuracy on the test rows.
    pub oa: f64,
    /// Macro F1 on the test rows.
    pub macro_f1: f64,
    /// Cohen's kappa on the test rows.
    pub kappa: f64,
    /// The predicted class of every test row (for a confusion matrix or a map).
    pub predictions: Vec<usize>,
}

/// The few-label experiment: for each fraction, a seeded stratified subset of the
/// training rows, a linear probe on it, metrics on the test rows.
#[allow(clippy::too_many_arguments)]
pub fn label_fraction_probes(
    train_x: &Tensor,
    train_y: &[usize],
    test_x: &Tensor,
    test_y: &[usize],
    classes: usize,
    fractions: &[f64],
    seed: u64,
    cfg: ProbeConfig,
) -> Result<Vec<FractionResult>> {
    let mut out = Vec::with_capacity(fractions.len());
    for &f in fractions {
        let idx = stratified_fraction(train_y, f, seed);
        let it = Tensor::from_vec(
            idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            idx.len(),
            train_x.device(),
        )?;
        let x = train_x.index_select(&it, 0)?;
        let y: Vec<usize> = idx.iter().map(|&i| train_y[i]).collect();
        let probe = LinearProbe::fit(&x, &y, classes, cfg)?;
        let predictions = probe.predict(test_x)?;
        let pred: Vec<i64> = predictions.iter().map(|&c| c as i64).collect();
        let truth: Vec<i64> = test_y.iter().map(|&c| c as i64).collect();
        let cm = crate::metrics::ConfusionMatrix::from_labels(classes, &truth, &pred, None)
            .map_err(candle_core::Error::wrap)?;
        out.push(FractionResult {
            fraction: f,
            n_train: idx.len(),
            l2: probe.l2(),
            oa: cm.overall_accuracy(),
            macro_f1: cm.macro_f1(),
            kappa: cm.kappa(),
            predictions,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod fraction_tests {
    use super::*;
    use crate::probe::features;
    use candle_core::Device;

    #[test]
    fn fractions_report_more_rows_and_sane_metrics() {
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..90usize {
            let c = i % 3;
            let jitter = ((i * 37) % 11) as f32 / 11.0 - 0.5;
            let mut r = vec![jitter, -jitter, 0.3 * jitter];
            r[c] += 2.0;
            rows.push(r);
            y.push(c);
        }
        let x = features(&rows, &Device::Cpu).unwrap();
        let res = label_fraction_probes(
            &x,
            &y,
            &x,
            &y,
            3,
            &[0.05, 0.5, 1.0],
            1,
            ProbeConfig::default(),
        )
        .unwrap();
        assert_eq!(
            res.iter().map(|r| r.n_train).collect::<Vec<_>>(),
            vec![6, 45, 90]
        );
        for r in &res {
            assert!(r.oa > 0.9 && r.oa <= 1.0 && r.kappa > 0.85, "{r:?}");
        }
    }
}
