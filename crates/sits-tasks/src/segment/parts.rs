//! The pieces [`segment`](super::segment) assembles: padding, the date head, the
//! trainers and loaders, per-epoch means.

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ndarray::{Array2, Array3, Array4};
use sits_core::{Augmentation, ObjectiveOutput, SitsBatch};
use sits_data::augment::{Compose, FlipRotate, ResampleDates};
use sits_data::loader::{CubePatches, Sample};
use sits_data::{Datacube, Loader, LoaderConfig};
use sits_models::nn::{linear, seeded_init, Conv2d, PaddingMode};
use sits_ssl::finetune::weighted_cross_entropy_ignore;
use sits_ssl::optim::AdamW;
use sits_ssl::train::{StepRecord, TrainConfig, Trainer};

use crate::error::{Context, Result, TaskError};

/// The cube with rows and columns repeated at the bottom and right edges up to
/// `hp x wp` (the models need sides divisible by their down-sampling factor).
pub(super) fn pad_edges(cube: &Datacube, hp: usize, wp: usize) -> Result<Datacube> {
    let (t, c, h, w) = cube.shape();
    let v = cube.values();
    let values = Array4::from_shape_fn((t, c, hp, wp), |(a, b, y, x)| {
        v[[a, b, y.min(h - 1), x.min(w - 1)]]
    });
    let valid = cube.validity();
    let valid = Array3::from_shape_fn((t, hp, wp), |(a, y, x)| {
        valid[[a, y.min(h - 1), x.min(w - 1)]]
    });
    Ok(Datacube::new(values, cube.times().clone(), cube.bands().to_vec())?.with_valid(valid)?)
}

/// Argmax over classes of logits `(1, K, Hp, Wp)`, cropped to `h x w`.
pub(super) fn argmax_map(logits: &Tensor, h: usize, w: usize) -> Result<Array2<i64>> {
    let (_, _, hp, wp) = logits.dims4().ctx("logits")?;
    if h > hp || w > wp {
        return Err(TaskError::Settings(format!(
            "logits {hp} x {wp} smaller than the image {h} x {w}"
        )));
    }
    let am: Vec<u32> = logits
        .argmax(1)
        .and_then(|a| a.flatten_all())
        .and_then(|a| a.to_vec1())
        .ctx("argmax of the logits")?;
    Ok(Array2::from_shape_fn((h, w), |(y, x)| {
        am[y * wp + x] as i64
    }))
}

/// A segmentation head on per-date maps `(B, T, d, H, W)`: the `T` per-date
/// representations of a pixel concatenated (a mean over dates would wash out the
/// timing of the phenology), projected to 64 channels by a 1x1 convolution (one
/// matmul), a 3x3 convolution with ReLU and a 1x1 convolution to the classes,
/// without batch normalisation (the frozen encoder's head sees the same single image
/// at every step). Its variables live in their own [`VarMap`].
pub(super) struct DateHead {
    pub(super) vars: VarMap,
    proj: sits_models::nn::Linear,
    conv: Conv2d,
    out: Conv2d,
}

impl DateHead {
    /// A head for `t` dates of `d` features, seeded.
    pub(super) fn new(
        t: usize,
        d: usize,
        classes: usize,
        seed: u64,
        dev: &Device,
    ) -> candle_core::Result<Self> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, dev).pp("head");
        let head = Self {
            proj: linear(t * d, 64, vb.pp("proj"))?,
            conv: Conv2d::new(vb.pp("conv"), 64, 32, 3, 1, 1, PaddingMode::Reflect)?,
            out: Conv2d::new(vb.pp("out"), 32, classes, 1, 1, 0, PaddingMode::Zeros)?,
            vars,
        };
        seeded_init(&head.vars, seed)?;
        Ok(head)
    }

    /// Class logits `(B, classes, H, W)`.
    pub(super) fn forward(&self, per_date: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, d, h, w) = per_date.dims5()?;
        let rows = per_date
            .permute((0, 3, 4, 1, 2))?
            .reshape((b * h * w, t * d))?
            .contiguous()?;
        let maps = self
            .proj
            .forward(&rows)?
            .relu()?
            .reshape((b, h, w, 64))?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        self.out.forward(&self.conv.forward(&maps)?.relu()?)
    }

    /// Full-image training on frozen per-date maps `(1, T, d, H, W)` of one image;
    /// the loss per step.
    pub(super) fn fit_frozen(
        &self,
        per_date: &Tensor,
        train_labels: &Tensor,
        steps: usize,
        class_weights: Option<&[f64]>,
    ) -> candle_core::Result<Vec<f64>> {
        let mut opt = AdamW::from_varmap(&self.vars, 1e-2)?;
        let mut losses = Vec::with_capacity(steps);
        for _ in 0..steps {
            let (loss, _) = weighted_cross_entropy_ignore(
                &self.forward(per_date)?,
                train_labels,
                class_weights,
            )?;
            opt.backward_step(&loss, 3e-3)?;
            losses.push(loss.to_scalar::<f32>()? as f64);
        }
        Ok(losses)
    }
}

/// A trainer of every variable of `vars` for `epochs`: 10 warm-up steps to `lr`,
/// cosine decay to `min_lr`, no checkpoint.
pub(super) fn trainer(
    epochs: usize,
    lr: f64,
    min_lr: f64,
    seed: u64,
    vars: &VarMap,
    buffers: &sits_models::Buffers,
) -> candle_core::Result<Trainer> {
    let cfg = TrainConfig {
        epochs,
        lr,
        min_lr,
        warmup_steps: 10,
        seed,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    Trainer::new(cfg, vars, buffers, None)
}

/// Cross-entropy of class logits `(B, K, H, W)` against a labelled patch batch's
/// classes (negative ones ignored; weighted by class when `class_weights` are
/// given), with the accuracy as a metric.
pub(super) fn labelled_loss(
    b: &SitsBatch,
    logits: &Tensor,
    class_weights: Option<&[f64]>,
) -> candle_core::Result<ObjectiveOutput> {
    let labels = b
        .labels()
        .ok_or_else(|| candle_core::Error::Msg("unlabelled patch batch".into()))?;
    let (loss, accuracy) = weighted_cross_entropy_ignore(logits, labels, class_weights)?;
    Ok(ObjectiveOutput {
        loss,
        metrics: vec![("accuracy".into(), accuracy)],
    })
}

/// Shuffled patches with random flips and rotations and a random subset of `dates`
/// dates per patch.
pub(super) fn loader(
    source: CubePatches,
    batch_size: usize,
    dates: usize,
    seed: u64,
    cube: &Datacube,
) -> Result<Loader> {
    let cfg = LoaderConfig {
        batch_size,
        shuffle: true,
        seed,
        reference: cube.times().as_slice()[0].date(),
        ..LoaderConfig::default()
    };
    let augment: Arc<dyn Augmentation<Sample>> = Arc::new(Compose::new(vec![
        Arc::new(ResampleDates { len: dates }),
        Arc::new(FlipRotate),
    ]));
    Ok(Loader::new(Arc::new(source), cfg, Device::Cpu)?.with_augmentation(augment))
}

pub(super) fn epoch_means(history: &[StepRecord], per_epoch: usize) -> Vec<(f64, f64)> {
    history
        .chunks(per_epoch.max(1))
        .enumerate()
        .map(|(e, c)| {
            (
                (e + 1) as f64,
                c.iter().map(|r| r.loss).sum::<f64>() / c.len() as f64,
            )
        })
        .collect()
}
