//! Classification and segmentation metrics from a confusion matrix: overall
//! accuracy, per-class and macro F1, Cohen's kappa, per-class IoU and mIoU, with an
//! optional ignore label.

use crate::error::SslError;
/// Area under the ROC curve of `scores` for the binary truth `positive` (higher
/// score = more likely positive): the probability that a random positive scores
/// above a random negative, ties counting one half (the Mann-Whitney statistic).
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Result<f64, SslError> {
    if scores.len() != positive.len() {
        return Err(SslError::input(
            "ROC AUC",
            format!(
                "{} scores but {} truth values",
                scores.len(),
                positive.len()
            ),
        ));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(SslError::input(
            "ROC AUC",
            format!("score {i} is {}", scores[i]),
        ));
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(SslError::input(
            "ROC AUC",
            format!("needs positives and negatives, got {n_pos} and {n_neg}"),
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // average ranks (1-based) over ties
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += order[i..=j].iter().filter(|&&k| positive[k]).count() as f64 * avg;
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Ok(u / (n_pos * n_neg) as f64)
}

/// A `k × k` confusion matrix: `counts[true][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    k: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix over `k` classes.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            counts: vec![0; k * k],
        }
    }

    /// Counts pairs of labels. Entries whose true label equals `ignore` are skipped;
    /// a label outside `0..k` (other than `ignore`) is an error naming its position.
    pub fn from_labels(
        k: usize,
        truth: &[i64],
        pred: &[i64],
        ignore: Option<i64>,
    ) -> Result<Self, SslError> {
        if truth.len() != pred.len() {
            return Err(SslError::input(
                "confusion matrix",
                format!("{} true labels but {} predictions", truth.len(), pred.len()),
            ));
        }
        let mut m = Self::new(k);
        for (i, (&t, &p)) in truth.iter().zip(pred).enumerate() {
            if Some(t) == ignore {
                continue;
            }
            if t < 0 || t as usize >= k || p < 0 || p as usize >= k {
                return Err(SslError::input(
                    "confusion matrix",
                    format!("entry {i}: label {t} / prediction {p} outside 0..{k}"),
                ));
            }
            m.counts[t as usize * k + p as usize] += 1;
        }
        Ok(m)
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.k
    }

    /// `counts[true][pred]`.
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        self.counts[truth * self.k + pred]
    }

    /// Rows of the matrix.
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts
            .chunks(self.k.max(1))
            .map(<[u64]>::to_vec)
            .collect()
    }

    /// Total number of counted entries.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn row_sum(&self, c: usize) -> u64 {
        (0..self.k).map(|p| self.get(c, p)).sum()
    }

    fn col_sum(&self, c: usize) -> u64 {
        (0..self.k).map(|t| self.get(t, c)).sum()
    }

    /// Overall accuracy (NaN when empty).
    pub fn overall_accuracy(&self) -> f64 {
        let diag: u64 = (0..self.k).map(|c| self.get(c, c)).sum();
        diag as f64 / self.total() as f64
    }

    /// F1 of each class; a class absent from both truth and predictions gets NaN.
    pub fn f1_per_class(&self) -> Vec<f64> {
        (0..self.k)
            .map(|c| {
                let tp = self.get(c, c) as f64;
                let denom = (self.row_sum(c) + self.col_sum(c)) as f64;
                if denom == 0.0 {
                    f64::NAN
                } else {
                    2.0 * tp / denom
                }
            })
            .collect()
    }

    /// Mean F1 over the classes present in truth or predictions.
    pub fn macro_f1(&self) -> f64 {
        nan_mean(&self.f1_per_class())
    }

    /// Cohen's kappa `(p_o − p_e) / (1 − p_e)`.
    pub fn kappa(&self) -> f64 {
        let n = self.total() as f64;
        let po = self.overall_accuracy();
        let pe: f64 = (0..self.k)
            .map(|c| self.row_sum(c) as f64 * self.col_sum(c) as f64)
            .sum::<f64>()
            / (n * n);
        if pe == 1.0 {
            return if po == 1.0 { 1.0 } else { f64::NAN };
        }
        (po - pe) / (1.0 - pe)
    }

    /// Intersection over union of each class; NaN for a class absent from truth and
    /// predictions.
    pub fn iou_per_class(&self) -> Vec<f64> {
        (0..self.k)
            .map(|c| {
                let tp = self.get(c, c) as f64;
                let union = (self.row_sum(c) + self.col_sum(c)) as f64 - tp;
                if union == 0.0 {
                    f64::NAN
                } else {
                    tp / union
                }
            })
            .collect()
    }

    /// Mean IoU over the classes present in truth or predictions.
    pub fn miou(&self) -> f64 {
        nan_mean(&self.iou_per_class())
    }
}

fn nan_mean(v: &[f64]) -> f64 {
    let ok: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    ok.iter().sum::<f64>() / ok.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-computed case: truth [0,0,0,1,1,2,2,2,2,-1], predictions
    /// [0,0,1,1,2,2,2,0,2,0], ignore -1.
    ///
    /// counts: row0 = [2,1,0], row1 = [0,1,1], row2 = [1,0,3]; N = 9
    /// OA = 6/9; F1 = 2·tp/(row + col) = [4/6, 2/4, 6/8]; kappa: p_e = (3·3 + 2·2 +
    /// 4·4)/81 = 29/81; IoU = tp/(row + col − tp) = [2/4, 1/3, 3/5].
    #[test]
    fn hand_computed_case() {
        let t = [0, 0, 0, 1, 1, 2, 2, 2, 2, -1];
        let p = [0, 0, 1, 1, 2, 2, 2, 0, 2, 0];
        let m = ConfusionMatrix::from_labels(3, &t, &p, Some(-1)).unwrap();
        assert_eq!(m.rows(), vec![vec![2, 1, 0], vec![0, 1, 1], vec![1, 0, 3]]);
        assert!((m.overall_accuracy() - 6.0 / 9.0).abs() < 1e-12);
        let f1 = m.f1_per_class();
        for (a, b) in f1.iter().zip([4.0 / 6.0, 2.0 / 4.0, 6.0 / 8.0]) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!((m.macro_f1() - (4.0 / 6.0 + 0.5 + 0.75) / 3.0).abs() < 1e-12);
        let pe = 29.0 / 81.0;
        assert!((m.kappa() - (6.0 / 9.0 - pe) / (1.0 - pe)).abs() < 1e-12);
        let iou = m.iou_per_class();
        for (a, b) in iou.iter().zip([0.5, 1.0 / 3.0, 0.6]) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!((m.miou() - (0.5 + 1.0 / 3.0 + 0.6) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn absent_classes_and_errors() {
        let m = ConfusionMatrix::from_labels(4, &[0, 1, 1], &[0, 1, 0], None).unwrap();
        assert!(m.f1_per_class()[3].is_nan());
        assert!((m.miou() - (0.5 + 0.5) / 2.0).abs() < 1e-12);
        let perfect = ConfusionMatrix::from_labels(2, &[0, 0], &[0, 0], None).unwrap();
        assert_eq!(perfect.kappa(), 1.0);
        let e = ConfusionMatrix::from_labels(2, &[0, 5], &[0, 1], None).unwrap_err();
        assert!(
            matches!(&e, SslError::Input { what: "confusion matrix", reason } if reason.contains("entry 1")),
            "{e}"
        );
        assert!(ConfusionMatrix::from_labels(2, &[0], &[0, 1], None).is_err());
    }
}

#[cfg(test)]
mod auc_tests {
    use super::roc_auc;

    #[test]
    fn auc_by_hand() {
        // positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4
        let auc = roc_auc(&[0.9, 0.5, 0.4, 0.1], &[true, false, true, false]).unwrap();
        assert_eq!(auc, 0.75);
        // a tie between a positive and a negative counts one half
        let auc = roc_auc(&[0.5, 0.5, 0.2], &[true, false, false]).unwrap();
        assert_eq!(auc, 0.75);
        assert_eq!(
            roc_auc(&[3.0, 2.0, 1.0], &[true, true, false]).unwrap(),
            1.0
        );
        assert_eq!(
            roc_auc(&[1.0, 2.0, 3.0], &[true, true, false]).unwrap(),
            0.0
        );
        assert!(roc_auc(&[1.0, 2.0], &[true, true]).is_err());
        assert!(roc_auc(&[1.0], &[true, false]).is_err());
        assert!(roc_auc(&[f64::NAN, 1.0], &[true, false]).is_err());
    }
}
