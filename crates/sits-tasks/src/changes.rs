//! Change scores of every pixel between consecutive periods: the distance between
//! its two embeddings (cosine for learned embeddings, Euclidean for raw series),
//! with the ROC AUC against labelled pixels whose class is known in both periods.

use ndarray::Array3;
use serde::{Deserialize, Serialize};
use sits_ssl::metrics::roc_auc;

use crate::error::{Result, TaskError};
use crate::input::Grid;
use crate::maps::{MapKind, MapStack};

/// The distance between two embeddings of a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    /// 1 - cosine similarity (scale-free; for learned embeddings).
    #[default]
    Cosine,
    /// Euclidean distance (for normalised raw series).
    Euclidean,
}

impl Distance {
    /// The distance between `a` and `b`.
    pub fn between(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Distance::Cosine => {
                let dot: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (*x as f64) * (*y as f64))
                    .sum();
                let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                1.0 - dot / (na * nb).max(1e-12)
            }
            Distance::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum::<f64>()
                .sqrt(),
        }
    }
}

/// What [`changes`] computed.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The pairs of consecutive periods.
    pub pairs: Vec<(i32, i32)>,
    /// Scores `(pairs, height, width)`; NaN where a pixel lacks one of the periods.
    pub scores: Array3<f32>,
    /// Score and "the class changed" of each pixel labelled in both periods of a
    /// pair, in pair, row, column order.
    pub labelled: Vec<(f64, bool)>,
    /// Labelled pixels per pair.
    pub labelled_per_pair: Vec<usize>,
}

impl Changes {
    /// ROC AUC of the scores against the labelled changes; `None` without both a
    /// changed and an unchanged labelled pixel.
    pub fn auc(&self) -> Result<Option<f64>> {
        let truth: Vec<bool> = self.labelled.iter().map(|l| l.1).collect();
        if !truth.iter().any(|&t| t) || truth.iter().all(|&t| t) {
            return Ok(None);
        }
        let s: Vec<f64> = self.labelled.iter().map(|l| l.0).collect();
        Ok(Some(roc_auc(&s, &truth)?))
    }

    /// The mean score over every pixel of every pair.
    pub fn mean_score(&self) -> f64 {
        let v: Vec<f32> = self
            .scores
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
    }

    /// The score maps named `name`, one layer per pair dated at the second period.
    pub fn map(&self, grid: &Grid, name: &str) -> Result<MapStack> {
        let starts: Vec<String> = self
            .pairs
            .iter()
            .filter_map(|&(_, b)| grid.period_index(b).map(|t| grid.period_starts[t].clone()))
            .collect();
        Ok(MapStack {
            name: name.into(),
            band: "change_score".into(),
            labels: self.pairs.iter().map(|(a, b)| format!("{a}-{b}")).collect(),
            times: sits_core::dates::Timestamps::parse(&starts, "period starts")
                .map_err(sits_data::DataError::from)?,
            values: self.scores.clone(),
            kind: MapKind::Continuous,
            geo: grid.geo.clone(),
        })
    }
}

/// Change scores of every pixel between each pair of consecutive periods of
/// `grid`, from `rows` (one per entry of `grid.index`).
pub fn changes(rows: &[Vec<f32>], grid: &Grid, distance: Distance) -> Result<Changes> {
    if rows.len() != grid.index.len() {
        return Err(TaskError::Settings(format!(
            "{} rows for {} pixel-periods",
            rows.len(),
            grid.index.len()
        )));
    }
    let np = grid.periods.len();
    if np < 2 {
        return Err(TaskError::input(
            "change scores",
            format!(
                "the input has {np} complete period{}; change scores need at least 2",
                if np == 1 { "" } else { "s" }
            ),
        ));
    }
    let (h, w) = grid.size;
    let mut at = vec![usize::MAX; np * h * w];
    for (i, p) in grid.index.iter().enumerate() {
        if let Some(t) = grid.period_index(p.period) {
            at[(t * h + p.row) * w + p.col] = i;
        }
    }
    let mut scores = Array3::<f32>::from_elem((np - 1, h, w), f32::NAN);
    let mut labelled = Vec::new();
    let mut labelled_per_pair = Vec::new();
    for t in 0..np - 1 {
        let mut n = 0;
        for r in 0..h {
            for c in 0..w {
                let (i, j) = (at[(t * h + r) * w + c], at[((t + 1) * h + r) * w + c]);
                if i == usize::MAX || j == usize::MAX {
                    continue;
                }
                let s = distance.between(&rows[i], &rows[j]);
                scores[[t, r, c]] = s as f32;
                if let (Some(a), Some(b)) = (grid.index[i].label, grid.index[j].label) {
                    labelled.push((s, a != b));
                    n += 1;
                }
            }
        }
        labelled_per_pair.push(n);
    }
    Ok(Changes {
        pairs: grid.periods.windows(2).map(|p| (p[0], p[1])).collect(),
        scores,
        labelled,
        labelled_per_pair,
    })
}
