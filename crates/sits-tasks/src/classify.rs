//! Classification maps: a linear probe trained on the embeddings of labelled
//! points (the labelled pixels of a cube folder, or a labelled sample set with the
//! encoder's bands and dates), scored on the points of the test split, applied to
//! every pixel-period of a cube.

use candle_core::Device;
use ndarray::Array3;
use serde::{Deserialize, Serialize};
use sits_data::Split;
use sits_ssl::metrics::ConfusionMatrix;
use sits_ssl::probe::{features, LinearProbe, ProbeConfig};

use std::path::Path;

use sits_data::SampleSet;
use sits_ssl::embed::Pooling;

use crate::cluster::period_times;
use crate::embed::embed_series;
use crate::encoder::SavedEncoder;
use crate::error::{Context, Result, TaskError};
use crate::input::Grid;
use crate::input::Input;
use crate::maps::{MapKind, MapStack};
use crate::pretrain::training_series;

/// Settings of [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClassifyConfig {
    /// The linear probe.
    pub probe: ProbeConfig,
}

/// Labelled points: embeddings, classes and whether each is a test point.
#[derive(Debug, Clone, Default)]
pub struct Points {
    /// One embedding per point.
    pub rows: Vec<Vec<f32>>,
    /// Class of each point.
    pub labels: Vec<usize>,
    /// Split of each point (`None`: training).
    pub splits: Vec<Option<Split>>,
    /// Class names by class number.
    pub class_names: Vec<String>,
}

impl Points {
    /// The labelled rows of a grid (a cube folder's labelled pixels).
    pub fn from_grid(rows: &[Vec<f32>], grid: &Grid) -> Self {
        let mut p = Points {
            class_names: grid.class_names.clone(),
            ..Points::default()
        };
        for (r, i) in rows.iter().zip(&grid.index) {
            if let Some(l) = i.label {
                p.rows.push(r.clone());
                p.labels.push(l);
                p.splits.push(i.split);
            }
        }
        p
    }
}

impl Points {
    /// The points of a labelled sample set prepared by [`points_for`], embedded by
    /// `enc`.
    pub fn from_samples(enc: &SavedEncoder, set: &SampleSet, device: &Device) -> Result<Self> {
        Ok(Points {
            rows: embed_series(enc, set, device)?,
            labels: set.labels().map(<[usize]>::to_vec).unwrap_or_default(),
            splits: match set.splits() {
                Some(s) => s.iter().map(|&x| Some(x)).collect(),
                None => vec![None; set.len()],
            },
            class_names: set.class_names().to_vec(),
        })
    }
}

/// The labelled sample set at `path` made ready for `enc`: labels required, the
/// encoder's bands selected by name, gap-filled, of the encoder's number of dates
/// (flatten pooling). A mismatch is a [`TaskError::Mismatch`] naming what differs.
pub fn points_for(enc: &SavedEncoder, path: &Path) -> Result<SampleSet> {
    let what = path.display().to_string();
    let set = sits_data::open::open_samples(path)?;
    if set.labels().is_none() {
        return Err(TaskError::input(&what, "the points have no labels"));
    }
    enc.check_input(&what, set.bands(), None)?;
    let names: Vec<&str> = enc.card.bands.iter().map(String::as_str).collect();
    let set = set.select_bands(&names)?;
    let (set, _, _) = training_series(
        &Input::Samples(Box::new(set)),
        enc.input_periods(),
        enc.card.aligner.is_none(),
        &what,
    )?;
    let want = enc.card.dates();
    if let (None, Pooling::Flatten { .. }) = (&enc.card.aligner, enc.card.pooling) {
        if set.max_len() != want {
            return Err(TaskError::Mismatch {
                input: what,
                encoder: enc.dir.clone(),
                what: format!(
                    "the encoder reads series of {want} dates ({}); the points have {}",
                    enc.card.date_convention(),
                    set.max_len()
                ),
            });
        }
    }
    Ok(set)
}

/// What [`classify`] found.
#[derive(Debug, Clone)]
pub struct Classification {
    /// Predicted class of every row of the grid.
    pub predictions: Vec<usize>,
    /// Training points used.
    pub n_train: usize,
    /// Test points scored.
    pub n_test: usize,
    /// Overall accuracy on the test points, if there are some.
    pub test_oa: Option<f64>,
    /// Macro F1 on the test points, if there are some.
    pub test_macro_f1: Option<f64>,
    /// Class names.
    pub class_names: Vec<String>,
}

/// A linear probe trained on labelled points, with its scores on their test
/// split.
#[derive(Debug, Clone)]
pub struct TrainedProbe {
    /// The probe.
    pub probe: LinearProbe,
    /// Number of classes it scores.
    pub classes: usize,
    /// Training points used.
    pub n_train: usize,
    /// Test points scored.
    pub n_test: usize,
    /// Overall accuracy on the test points, if there are some.
    pub test_oa: Option<f64>,
    /// Macro F1 on the test points, if there are some.
    pub test_macro_f1: Option<f64>,
}

/// Trains a linear probe on the training points (every point not marked test or
/// validation) and scores it on the test points.
pub fn train_probe(points: &Points, cfg: &ClassifyConfig, device: &Device) -> Result<TrainedProbe> {
    let classes = points
        .class_names
        .len()
        .max(points.labels.iter().max().map_or(0, |&m| m + 1));
    let (mut xtr, mut ytr, mut xte, mut yte) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((r, &l), s) in points.rows.iter().zip(&points.labels).zip(&points.splits) {
        match s {
            Some(Split::Test) => {
                xte.push(r.clone());
                yte.push(l);
            }
            Some(Split::Val) => {}
            _ => {
                xtr.push(r.clone());
                ytr.push(l);
            }
        }
    }
    let mut present = ytr.clone();
    present.sort_unstable();
    present.dedup();
    if present.len() < 2 {
        return Err(TaskError::input(
            "labelled points",
            format!(
                "{} training points of {} class{}; a classifier needs at least 2 classes \
                 (label more pixels in samples.csv, or give a labelled sample set)",
                ytr.len(),
                present.len(),
                if present.len() == 1 { "" } else { "es" }
            ),
        ));
    }
    let probe = LinearProbe::fit(
        &features(&xtr, device).ctx("training features")?,
        &ytr,
        classes,
        cfg.probe,
    )
    .ctx("training the probe")?;
    let (test_oa, test_macro_f1) = if xte.is_empty() {
        (None, None)
    } else {
        let pred = probe
            .predict(&features(&xte, device).ctx("test features")?)
            .ctx("predicting the test points")?;
        let t: Vec<i64> = yte.iter().map(|&c| c as i64).collect();
        let p: Vec<i64> = pred.iter().map(|&c| c as i64).collect();
        let cm = ConfusionMatrix::from_labels(classes, &t, &p, None)?;
        (Some(cm.overall_accuracy()), Some(cm.macro_f1()))
    };
    Ok(TrainedProbe {
        probe,
        classes,
        n_train: ytr.len(),
        n_test: yte.len(),
        test_oa,
        test_macro_f1,
    })
}

/// The predicted class of each of `rows`, 8,192 rows at a time.
pub fn predict_rows(probe: &LinearProbe, rows: &[Vec<f32>], device: &Device) -> Result<Vec<usize>> {
    let mut predictions = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(8192) {
        predictions.extend(
            probe
                .predict(&features(chunk, device).ctx("map features")?)
                .ctx("predicting the map")?,
        );
    }
    Ok(predictions)
}

/// Trains a linear probe on the training points (see [`train_probe`]), scores it
/// on the test points and predicts every row of `rows`.
pub fn classify(
    rows: &[Vec<f32>],
    points: &Points,
    cfg: &ClassifyConfig,
    device: &Device,
) -> Result<Classification> {
    let t = train_probe(points, cfg, device)?;
    Ok(Classification {
        predictions: predict_rows(&t.probe, rows, device)?,
        n_train: t.n_train,
        n_test: t.n_test,
        test_oa: t.test_oa,
        test_macro_f1: t.test_macro_f1,
        class_names: points.class_names.clone(),
    })
}

/// The class maps named `name`: one layer per period (NaN where a pixel has no
/// row).
pub fn class_map(c: &Classification, grid: &Grid, name: &str) -> Result<MapStack> {
    let (h, w) = grid.size;
    let mut v = Array3::<f32>::from_elem((grid.periods.len(), h, w), f32::NAN);
    for (p, &k) in grid.index.iter().zip(&c.predictions) {
        if let Some(t) = grid.period_index(p.period) {
            v[[t, p.row, p.col]] = k as f32;
        }
    }
    Ok(MapStack {
        name: name.into(),
        band: "class".into(),
        labels: grid.periods.iter().map(i32::to_string).collect(),
        times: period_times(grid)?,
        values: v,
        kind: MapKind::Categorical,
        geo: grid.geo.clone(),
    })
}
