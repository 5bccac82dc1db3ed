//! Deep-STaR planar images of labelled neighbourhoods (Hilbert order of the
//! `K x K` pixels as rows, dates as columns): a small CNN on them against a pixel
//! transformer on the centre pixel's series and a linear probe on the raw centre
//! series, on the labelled pixel samples of a cube folder (same train/test split).
//! The `planar` example.

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ndarray::{s, Array2, Array3};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sits_data::folder::CubePixelSample;
use sits_data::gapfill::fill_cube;
use sits_data::norm::NormStats;
use sits_data::samples::Series;
use sits_data::{Datacube, Loader, LoaderConfig, SampleSet, Split};
use sits_models::nn::{linear, seeded_init};
use sits_models::{Buffers, Ctx, PixelTransformer, PixelTransformerConfig, SmallResNet};
use sits_repr::planar::{curve_order, planar_image, Curve};
use sits_repr::render::{Colormap, RgbImage};
use sits_ssl::embed::{embed, PooledPixelEncoder, Pooling};
use sits_ssl::finetune::Classification;
use sits_ssl::metrics::ConfusionMatrix;
use sits_ssl::optim::AdamW;
use sits_ssl::probe::{features, label_fraction_probes, ProbeConfig};
use sits_ssl::train::{TrainConfig, Trainer};

use crate::error::{Context, Result, TaskError};

/// Side of the neighbourhood.
pub const K: usize = 5;

/// Settings of [`planar_study`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanarConfig {
    /// Training epochs of both models.
    pub epochs: usize,
    /// Dates of the labelled samples used (others are skipped).
    pub dates: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for PlanarConfig {
    fn default() -> Self {
        Self {
            epochs: 15,
            dates: 23,
            seed: 0,
        }
    }
}

/// What [`planar_study`] measured.
#[derive(Debug, Clone)]
pub struct PlanarStudy {
    /// The planar image `(C, K*K, T)` of every sample used.
    pub images: Vec<Array3<f32>>,
    /// Class of every sample used.
    pub labels: Vec<usize>,
    /// Training samples.
    pub train: usize,
    /// Test samples.
    pub test: usize,
    /// Test OA of the CNN on planar images.
    pub cnn_oa: f64,
    /// Test OA of the pixel transformer on the centre series.
    pub series_oa: f64,
    /// Test OA of the linear probe on the raw centre series.
    pub raw_oa: f64,
    /// Training seconds of the CNN and of the transformer.
    pub seconds: (f64, f64),
}

impl PlanarStudy {
    /// The machine-readable last line.
    pub fn result_line(&self) -> String {
        format!(
            "result: planar_cnn_oa={:.4} pixel_transformer_oa={:.4} raw_probe_oa={:.4}",
            self.cnn_oa, self.series_oa, self.raw_oa
        )
    }

    /// One image per class: the plane of band `band` of its first sample, drawn
    /// with viridis and magnified 8 times.
    pub fn class_images(&self, band: usize, classes: usize) -> Vec<(usize, RgbImage)> {
        (0..classes)
            .filter_map(|k| {
                let i = self.labels.iter().position(|&l| l == k)?;
                let plane: Array2<f32> =
                    self.images[i].index_axis(ndarray::Axis(0), band).to_owned();
                Some((
                    k,
                    RgbImage::from_array(plane.view(), Colormap::Viridis, None).upscale(8),
                ))
            })
            .collect()
    }
}

fn oa(classes: usize, truth: &[usize], pred: &[usize]) -> Result<f64> {
    let t: Vec<i64> = truth.iter().map(|&c| c as i64).collect();
    let p: Vec<i64> = pred.iter().map(|&c| c as i64).collect();
    Ok(ConfusionMatrix::from_labels(classes, &t, &p, None)?.overall_accuracy())
}

/// Runs the study on `cube` and its labelled `samples` (gap-filled and normalised
/// first); samples without a split are training samples.
pub fn planar_study(
    cube: &Datacube,
    samples: &[CubePixelSample],
    class_names: &[String],
    cfg: &PlanarConfig,
    dev: &Device,
) -> Result<PlanarStudy> {
    let mut cube = cube.clone();
    fill_cube(&mut cube)?;
    NormStats::of_cube(&cube, 1e-4)?.apply_cube(&mut cube)?;
    let (_, c, h, w) = cube.shape();
    let classes = class_names.len();
    if h < K || w < K {
        return Err(TaskError::input(
            "planar study",
            format!("the cube is {h} x {w} pixels, smaller than the {K} x {K} neighbourhood"),
        ));
    }
    let order = curve_order(Curve::Hilbert, K, K);

    // planar images and centre series of the labelled pixel-years with 23 dates
    let (mut imgs, mut centre, mut labels, mut split) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for smp in samples
        .iter()
        .filter(|s| s.t_end - s.t_start + 1 == cfg.dates)
    {
        let Some(label) = smp.label else { continue };
        let r0 = smp.row.saturating_sub(K / 2).min(h - K);
        let c0 = smp.col.saturating_sub(K / 2).min(w - K);
        let values = cube.values();
        let region = values.slice(s![smp.t_start..=smp.t_end, .., r0..r0 + K, c0..c0 + K]);
        imgs.push(planar_image(region, &order)?);
        let px = cube.pixel_series(smp.row, smp.col)?;
        let idx: Vec<usize> = (smp.t_start..=smp.t_end).collect();
        centre.push(Series::new(
            px.values.slice(s![smp.t_start..=smp.t_end, ..]).to_owned(),
            px.times.select(&idx),
            None,
        )?);
        labels.push(label);
        split.push(smp.split.unwrap_or(Split::Train));
    }
    let n = imgs.len();
    let (tr, te): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| split[i] == Split::Train);
    if tr.is_empty() || te.is_empty() {
        return Err(TaskError::input(
            "planar study",
            format!(
                "{} train and {} test labelled samples of {} dates; both splits are needed",
                tr.len(),
                te.len(),
                cfg.dates
            ),
        ));
    }

    let dev = dev.clone();
    let (k_, t) = (imgs[0].dim().1, imgs[0].dim().2);
    let stack = |idx: &[usize]| -> candle_core::Result<Tensor> {
        let mut v = Vec::with_capacity(idx.len() * c * k_ * t);
        for &i in idx {
            v.extend(imgs[i].iter().copied());
        }
        Tensor::from_vec(v, (idx.len(), c, k_, t), &dev)
    };

    // 1. small CNN on planar images
    let start = std::time::Instant::now();
    let cnn_pred = (|| -> candle_core::Result<Vec<usize>> {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let ctx = Ctx::new(vb.pp("cnn"));
        let cnn = SmallResNet::new(&ctx, c, 16)?;
        let head = linear(cnn.output_dim(), classes, vb.pp("head"))?;
        seeded_init(&vm, 1000 + cfg.seed)?;
        let mut opt = AdamW::from_varmap(&vm, 0.01)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
        for _ in 0..cfg.epochs {
            let mut order_tr = tr.clone();
            order_tr.shuffle(&mut rng);
            for chunk in order_tr.chunks(32) {
                let x = stack(chunk)?;
                let y = Tensor::from_vec(
                    chunk.iter().map(|&i| labels[i] as u32).collect::<Vec<_>>(),
                    chunk.len(),
                    &dev,
                )?;
                let logits = head.forward(&cnn.forward(&x, true)?)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                opt.backward_step(&loss, 1e-3)?;
            }
        }
        let logits = head.forward(&cnn.forward(&stack(&te)?, false)?)?;
        Ok(logits
            .argmax(1)?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|v| v as usize)
            .collect())
    })()
    .ctx("planar CNN")?;
    let cnn_seconds = start.elapsed().as_secs_f64();
    let truth: Vec<usize> = te.iter().map(|&i| labels[i]).collect();
    let cnn_oa = oa(classes, &truth, &cnn_pred)?;

    // 2. pixel transformer on the centre series, trained from scratch
    let bands = cube.bands().to_vec();
    let subset = |idx: &[usize]| -> Result<Arc<SampleSet>> {
        Ok(Arc::new(SampleSet::new(
            idx.iter().map(|&i| centre[i].clone()).collect(),
            bands.clone(),
            Some(idx.iter().map(|&i| labels[i]).collect()),
            class_names.to_vec(),
            None,
        )?))
    };
    let (str_, ste) = (subset(&tr)?, subset(&te)?);
    let start = std::time::Instant::now();
    let pred = (|| -> candle_core::Result<Vec<usize>> {
        let pvm = VarMap::new();
        let pvb = VarBuilder::from_varmap(&pvm, DType::F32, &dev);
        let pcfg = PixelTransformerConfig {
            d_model: 64,
            heads: 4,
            d_ff: 128,
            layers: 2,
            dropout: 0.0,
            ..PixelTransformerConfig::small(c)
        };
        let model = PixelTransformer::new(&Ctx::new(pvb.pp("encoder")), pcfg)?;
        let enc = PooledPixelEncoder::new(&model, Pooling::Flatten { dates: t });
        let phead = linear(t * 64, classes, pvb.pp("classifier"))?;
        seeded_init(&pvm, 2000 + cfg.seed)?;
        let ld = |set: &Arc<SampleSet>, shuffle: bool| -> candle_core::Result<Loader> {
            let lcfg = LoaderConfig {
                batch_size: 32,
                shuffle,
                seed: cfg.seed,
                ..LoaderConfig::default()
            };
            Loader::new(set.clone(), lcfg, dev.clone()).map_err(candle_core::Error::wrap)
        };
        let mut trainer = Trainer::new(
            TrainConfig {
                epochs: cfg.epochs,
                lr: 1e-3,
                min_lr: 1e-5,
                warmup_steps: 10,
                seed: cfg.seed,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
            &pvm,
            &Buffers::new(),
            None,
        )?;
        trainer.fit(&ld(&str_, true)?, &mut Classification::new(&enc, &phead))?;
        let z = embed(&enc, &ld(&ste, false)?)?;
        Ok(phead
            .forward(&z)?
            .argmax(1)?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|v| v as usize)
            .collect())
    })()
    .ctx("pixel transformer")?;
    let series_seconds = start.elapsed().as_secs_f64();
    let series_oa = oa(classes, &truth, &pred)?;

    // 3. linear probe on the raw centre series
    let raw = |set: &SampleSet| -> Vec<Vec<f32>> {
        set.series()
            .iter()
            .map(|s| s.values.iter().copied().collect())
            .collect()
    };
    let ytr: Vec<usize> = tr.iter().map(|&i| labels[i]).collect();
    let probe = label_fraction_probes(
        &features(&raw(&str_), &dev).ctx("raw features")?,
        &ytr,
        &features(&raw(&ste), &dev).ctx("raw features")?,
        &truth,
        classes,
        &[1.0],
        cfg.seed,
        ProbeConfig::default(),
    )
    .ctx("raw probe")?;
    let raw_oa = probe[0].oa;
    Ok(PlanarStudy {
        images: imgs,
        labels,
        train: tr.len(),
        test: te.len(),
        cnn_oa,
        series_oa,
        raw_oa,
        seconds: (cnn_seconds, series_seconds),
    })
}
