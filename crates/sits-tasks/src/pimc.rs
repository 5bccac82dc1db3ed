//! PIMC-style multimodal contrastive pretraining on labelled pixel series: a small
//! ResNet encodes the unthresholded recurrence plots of each pixel's NDVI, EVI and
//! SAVI (3 channels, computed on the batch), a pixel transformer encodes the series,
//! and a symmetric InfoNCE (learnable temperature) pulls the two views of a pixel
//! together; no label is used for pretraining. Downstream, as in PIMC: linear probes
//! on each frozen encoder (all training labels, held-out test split), and a ridge
//! forecast of the last `horizon` NDVI dates from the embedding of the first `past`
//! dates, against the raw series and persistence. The `pimc` example.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ndarray::s;
use serde::{Deserialize, Serialize};
use sits_data::samples::Series;
use sits_data::{Loader, LoaderConfig, Radiometry, SampleSet};
use sits_models::nn::seeded_init;
use sits_models::{Ctx, PixelTransformer, PixelTransformerConfig, SmallResNet};
use sits_ssl::embed::{PooledPixelEncoder, Pooling};
use sits_ssl::pimc::Pimc;
use sits_ssl::probe::{features, label_fraction_probes, rmse, ProbeConfig, Ridge};
use sits_ssl::train::{StepRecord, TrainConfig, Trainer};

use crate::error::{Context, Result, TaskError};
use crate::experiment::{embed_rows, raw_rows};

/// Settings of [`pimc_study`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PimcConfig {
    /// Pretraining epochs.
    pub epochs: usize,
    /// Dates given to the forecast.
    pub past: usize,
    /// Dates forecast (the series have `past + horizon` dates).
    pub horizon: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for PimcConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            past: 19,
            horizon: 4,
            seed: 0,
        }
    }
}

/// What [`pimc_study`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PimcStudy {
    /// Probe OA on the recurrence-plot encoder.
    pub rp_oa: f64,
    /// Probe OA on the series encoder.
    pub series_oa: f64,
    /// Probe OA on the raw series.
    pub raw_oa: f64,
    /// Forecast RMSE from the recurrence-plot embedding (NDVI units).
    pub rp_rmse: f64,
    /// Forecast RMSE from the raw series.
    pub raw_rmse: f64,
    /// RMSE of repeating the last given date.
    pub persistence_rmse: f64,
    /// InfoNCE, mean of the first and of the last epoch.
    pub losses: (f64, f64),
    /// Wall-clock seconds of pretraining.
    pub pretrain_seconds: f64,
}

impl PimcStudy {
    /// The machine-readable last line.
    pub fn result_line(&self) -> String {
        format!(
            "result: rp_probe_oa={:.4} series_probe_oa={:.4} rp_forecast_rmse={:.4} raw_forecast_rmse={:.4}",
            self.rp_oa, self.series_oa, self.rp_rmse, self.raw_rmse
        )
    }
}

fn loader(set: &Arc<SampleSet>, shuffle: bool, seed: u64) -> Result<Loader> {
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle,
        seed,
        ..LoaderConfig::default()
    };
    Ok(Loader::new(set.clone(), cfg, Device::Cpu)?)
}

/// The first `t` dates of every series.
fn first_dates(set: &SampleSet, t: usize) -> Result<SampleSet> {
    let series = set
        .series()
        .iter()
        .map(|s| {
            let idx: Vec<usize> = (0..t).collect();
            let valid = s.valid.as_ref().map(|v| v[..t].to_vec());
            Series::new(
                s.values.slice(s![..t, ..]).to_owned(),
                s.times.select(&idx),
                valid,
            )
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(SampleSet::new(
        series,
        set.bands().to_vec(),
        set.labels().map(<[usize]>::to_vec),
        set.class_names().to_vec(),
        None,
    )?)
}

/// Image-encoder features of the recurrence plots of every series.
fn rp_rows(pimc: &Pimc, images: &SmallResNet, set: &Arc<SampleSet>) -> Result<Vec<Vec<f32>>> {
    let mut parts = Vec::new();
    for b in loader(set, false, 0)?.epoch(0) {
        let b = b?;
        parts.push(
            images
                .forward(&pimc.recurrence_images(&b).ctx("recurrence images")?, false)
                .ctx("image encoder")?
                .detach(),
        );
    }
    Tensor::cat(&parts, 0)
        .and_then(|t| t.to_vec2())
        .ctx("image features")
}

/// Runs the study on labelled `train` and `test` series of `past + horizon` dates
/// with an `ndvi` band (values in physical units: the recurrence plots need them, so
/// the series are not standardised).
pub fn pimc_study(
    train: &SampleSet,
    test: &SampleSet,
    cfg: &PimcConfig,
    dev: &Device,
) -> Result<PimcStudy> {
    let (train, test) = (Arc::new(train.clone()), Arc::new(test.clone()));
    let bands = train.bands().to_vec();
    let dates = train.series()[0].len();
    if train.is_empty() || test.is_empty() {
        return Err(TaskError::input(
            "PIMC study",
            format!(
                "{} training and {} test series; both are needed",
                train.len(),
                test.len()
            ),
        ));
    }
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let pcfg = PixelTransformerConfig {
        d_model: 64,
        heads: 4,
        d_ff: 128,
        layers: 2,
        dropout: 0.0,
        ..PixelTransformerConfig::small(bands.len())
    };
    let series = PixelTransformer::new(&Ctx::new(vb.pp("series")), pcfg).ctx("series encoder")?;
    let series_enc = PooledPixelEncoder::new(&series, Pooling::Flatten { dates });
    let ctx = Ctx::new(vb.pp("images"));
    let images = SmallResNet::new(&ctx, 3, 16).ctx("image encoder")?;
    let mut pimc = Pimc::new(
        &series_enc,
        &images,
        vb.pp("pimc"),
        64,
        bands.clone(),
        Radiometry::default(),
        0.1,
        true,
    )
    .ctx("PIMC objective")?;
    seeded_init(&vm, 1000 + cfg.seed).ctx("seeding")?;
    let tcfg = TrainConfig {
        epochs: cfg.epochs,
        lr: 1e-3,
        min_lr: 1e-5,
        warmup_steps: 20,
        seed: cfg.seed,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(tcfg, &vm, &ctx.buffers, None).ctx("PIMC pretraining")?;
    let start = std::time::Instant::now();
    tr.fit(&loader(&train, true, cfg.seed)?, &mut pimc)
        .ctx("PIMC pretraining")?;
    let h = tr.history();
    let mean = |r: &[StepRecord]| r.iter().map(|s| s.loss).sum::<f64>() / r.len().max(1) as f64;
    let per_epoch = h.len() / cfg.epochs.max(1);
    let pretrain_seconds = start.elapsed().as_secs_f64();
    let losses = (
        mean(&h[..per_epoch.min(h.len())]),
        mean(&h[h.len().saturating_sub(per_epoch)..]),
    );

    // classification: linear probes on each frozen encoder
    let dev = dev.clone();
    let unlabelled = || TaskError::input("PIMC study", "the series need labels for the probes");
    let (ytr, yte) = (
        train.labels().ok_or_else(unlabelled)?.to_vec(),
        test.labels().ok_or_else(unlabelled)?.to_vec(),
    );
    let classes = train.class_names().len();
    let probe = |xtr: Vec<Vec<f32>>, xte: Vec<Vec<f32>>| -> Result<f64> {
        let r = label_fraction_probes(
            &features(&xtr, &dev).ctx("features")?,
            &ytr,
            &features(&xte, &dev).ctx("features")?,
            &yte,
            classes,
            &[1.0],
            cfg.seed,
            ProbeConfig::default(),
        )
        .ctx("linear probe")?;
        Ok(r[0].oa)
    };
    let rp_oa = probe(
        rp_rows(&pimc, &images, &train)?,
        rp_rows(&pimc, &images, &test)?,
    )?;
    let series_oa = probe(
        embed_rows(&series, &train, Pooling::Flatten { dates }, &dev)?,
        embed_rows(&series, &test, Pooling::Flatten { dates }, &dev)?,
    )?;
    let raw_oa = probe(raw_rows(&train), raw_rows(&test))?;

    // forecasting the last 4 NDVI dates from the first 19
    let (past, horizon) = (cfg.past, cfg.horizon);
    if dates != past + horizon {
        return Err(TaskError::input(
            "PIMC study",
            format!(
                "the forecasting task expects {} dates, the data have {dates}",
                past + horizon
            ),
        ));
    }
    let ndvi = bands
        .iter()
        .position(|b| b.eq_ignore_ascii_case("ndvi"))
        .ok_or_else(|| TaskError::input("PIMC study", format!("no ndvi band in {bands:?}")))?;
    let target = |s: &SampleSet| -> Vec<Vec<f32>> {
        s.series()
            .iter()
            .map(|x| (past..dates).map(|t| x.values[[t, ndvi]]).collect())
            .collect()
    };
    let (ptr, pte) = (
        Arc::new(first_dates(&train, past)?),
        Arc::new(first_dates(&test, past)?),
    );
    let lambda = 1e-2;
    let forecast = |xtr: Vec<Vec<f32>>, xte: Vec<Vec<f32>>| -> Result<f64> {
        let m = Ridge::fit(&xtr, &target(&train), lambda)?;
        Ok(rmse(&m.predict(&xte), &target(&test)))
    };
    let rp_rmse = forecast(
        rp_rows(&pimc, &images, &ptr)?,
        rp_rows(&pimc, &images, &pte)?,
    )?;
    let raw_rmse = forecast(raw_rows(&ptr), raw_rows(&pte))?;
    let last = |s: &SampleSet| -> Vec<Vec<f32>> {
        s.series()
            .iter()
            .map(|x| vec![x.values[[past - 1, ndvi]]; horizon])
            .collect()
    };
    let persistence = rmse(&last(&test), &target(&test));
    Ok(PimcStudy {
        rp_oa,
        series_oa,
        raw_oa,
        rp_rmse,
        raw_rmse,
        persistence_rmse: persistence,
        losses,
        pretrain_seconds,
    })
}
