//! Self-supervised pretraining of a pixel encoder on any input, saved as an
//! [`crate::encoder`] folder that other inputs can be embedded with.
//!
//! A cube is cut into pixel-periods ([`crate::input::pixel_periods`]); a sample
//! set is used as it is (its series must share one length when the pooling
//! flattens the dates). The series are gap-filled, normalised with their own
//! statistics (saved with the encoder) and the encoder is pretrained with the
//! objective of `experiment.method`.

use std::sync::Arc;

use candle_core::Device;
use serde::{Deserialize, Serialize};
use sits_data::norm::NormStats;
use sits_data::SampleSet;
use sits_ssl::embed::Pooling;
use sits_ssl::train::StepRecord;

use crate::encoder::{EncoderCard, CARD_FORMAT};
use crate::error::{Result, TaskError};
use crate::experiment::{
    embed_rows_with, pretrain_encoder, raw_rows, ExperimentConfig, Pretrained,
};
use crate::input::{pixel_periods, Grid, Input, Periods};

/// How per-date outputs become one vector per series (serde: `"flatten"` or
/// `"mean"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PoolingChoice {
    /// The per-date outputs concatenated (keeps the timing of the phenology; the
    /// encoder then reads periods of exactly its number of dates).
    #[default]
    Flatten,
    /// The mean over dates (any number of dates).
    Mean,
}

/// Settings of [`pretrain`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// How a cube is cut into periods (ignored for sample sets).
    pub periods: Periods,
    /// Pooling saved with the encoder.
    pub pooling: PoolingChoice,
    /// Model size, objective, epochs, seed, batch size, learning rate, progress bars.
    pub experiment: ExperimentConfig,
    /// At most this many series are used for pretraining (every k-th, evenly spread
    /// over the input); `None`: all.
    pub max_series: Option<usize>,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            periods: Periods::default(),
            pooling: PoolingChoice::Flatten,
            experiment: ExperimentConfig {
                epochs: 10,
                ..ExperimentConfig::default()
            },
            max_series: None,
        }
    }
}

/// What [`pretrain`] made.
pub struct PretrainOutput {
    /// The card to save beside the weights.
    pub card: EncoderCard,
    /// The pretrained encoder and its variables.
    pub pretrained: Pretrained,
    /// The training series, normalised, in input order.
    pub series: Arc<SampleSet>,
    /// Where each training series sits, when the input is a cube (and no
    /// `max_series` subsampling happened).
    pub grid: Option<Grid>,
}

impl PretrainOutput {
    /// Embeddings of the training series by the pretrained encoder, one row per
    /// series, with the saved pooling.
    pub fn embed_training_series(&self, device: &Device) -> Result<Vec<Vec<f32>>> {
        Ok(embed_rows_with(
            &self.pretrained.model,
            self.pretrained.projector.as_ref(),
            &self.series,
            self.card.pooling,
            device,
        )?)
    }

    /// The normalised raw training series, flattened, one row per series (the
    /// raw-series baseline; see [`crate::experiment::raw_rows`]).
    pub fn raw_rows(&self) -> Vec<Vec<f32>> {
        raw_rows(&self.series)
    }
}

impl PretrainOutput {
    /// Every pretraining step.
    pub fn history(&self) -> &[StepRecord] {
        &self.pretrained.history
    }
}

impl std::fmt::Debug for PretrainOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PretrainOutput")
            .field("card", &self.card)
            .field("series", &self.series.len())
            .finish_non_exhaustive()
    }
}

/// The series an input offers for pretraining, gap-filled and not normalised, and
/// the periods they were cut with (`dates` set).
///
/// With `one_length`, sample-set series must all have the same number of dates.
pub fn training_series(
    input: &Input,
    periods: Periods,
    one_length: bool,
    what: &str,
) -> Result<(SampleSet, Periods, Option<Grid>)> {
    match input {
        Input::Cube {
            cube,
            labels,
            class_names,
        } => {
            let pp = pixel_periods(cube, labels, class_names, periods, what)?;
            let dates = pp.dates;
            Ok((
                pp.set,
                Periods {
                    dates: Some(dates),
                    ..periods
                },
                Some(pp.grid),
            ))
        }
        Input::Samples(set) => {
            let mut set = (**set).clone();
            for (i, s) in set.series_mut().iter_mut().enumerate() {
                sits_data::gapfill::fill_series(s).map_err(|_| {
                    TaskError::input(
                        what,
                        format!("series {i} has no valid observation to gap-fill from"),
                    )
                })?;
            }
            let len = set.series().first().map_or(0, |s| s.len());
            if let Some(s) = set.series().iter().find(|s| one_length && s.len() != len) {
                return Err(TaskError::input(
                    what,
                    format!(
                        "the series have {len} and {} dates; the encoder reads series of one \
                         length (resample them first, or pretrain with --pooling mean)",
                        s.len()
                    ),
                ));
            }
            let dates = Some(set.max_len());
            Ok((set, Periods { dates, ..periods }, None))
        }
    }
}

/// Pretrains an encoder on `input` (named `what` in errors and in the card);
/// `made_by` is recorded in the card (the command line, say).
pub fn pretrain(
    input: &Input,
    cfg: &PretrainConfig,
    what: &str,
    made_by: &str,
    device: &Device,
) -> Result<PretrainOutput> {
    let flatten = cfg.pooling == PoolingChoice::Flatten;
    if flatten && cfg.periods.any_length {
        return Err(TaskError::Settings(
            "periods of any length need the mean pooling (the flatten pooling reads a fixed \
             number of dates)"
                .into(),
        ));
    }
    let (mut set, periods, mut grid) = training_series(input, cfg.periods, flatten, what)?;
    if let Some(max) = cfg.max_series {
        if max == 0 {
            return Err(TaskError::Settings("max_series must be at least 1".into()));
        }
        if set.len() > max {
            let step = set.len().div_ceil(max);
            let idx: Vec<usize> = (0..set.len()).step_by(step).collect();
            set = set.subset(&idx)?;
            grid = None;
        }
    }
    let stats = NormStats::of_samples(&set, 1e-4)?;
    stats.apply_samples(&mut set)?;
    let set = Arc::new(set);
    let dates = periods.dates.unwrap_or(0);
    let pre = pretrain_encoder(&set, &cfg.experiment, device)?;
    let pooling = match cfg.pooling {
        PoolingChoice::Flatten => Pooling::Flatten { dates },
        PoolingChoice::Mean => Pooling::Mean,
    };
    let card = EncoderCard {
        format: CARD_FORMAT,
        architecture: "pixel_transformer".into(),
        model: pre.model.config().clone(),
        bands: set.bands().to_vec(),
        norm: stats,
        periods,
        pooling,
        aligner: pre.projector.as_ref().map(|p| p.config().clone()),
        objective: cfg.experiment.method.to_string(),
        epochs: cfg.experiment.epochs,
        seed: cfg.experiment.seed,
        trained_on: format!(
            "{what} ({} {} series of {dates} dates)",
            set.len(),
            input.kind()
        ),
        made_by: made_by.to_string(),
    };
    Ok(PretrainOutput {
        card,
        pretrained: pre,
        series: set,
        grid,
    })
}
