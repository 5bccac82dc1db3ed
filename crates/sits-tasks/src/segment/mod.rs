//! Segmentation of a cube with per-pixel labels and a train/test split, by three
//! models scored on the test pixels (OA, mIoU, IoU per class):
//!
//! 1. **U-BARN, self-supervised**: the U-Net + transformer encoder is pretrained
//!    with masked reconstruction on random patches of the whole cube (every pixel
//!    and date, no label: whole dates of a patch are replaced by other dates and
//!    their clear pixels predicted), frozen, and a small head (1x1 projection of the
//!    concatenated per-date features, 3x3 and 1x1 convolutions) is trained on the
//!    train pixels with full-image steps. The same head on the encoder at its
//!    seeded initialisation is the control.
//! 2. **U-BARN, fine-tuned**: the pretrained encoder and the head of 1. trained on
//!    it, trained on together with a small rate on labelled patches of the train
//!    pixels with every date (linear probing, then fine-tuning, which keeps the
//!    pretrained features from being distorted by a fresh head's first gradients).
//! 3. **U-TAE from scratch** on the same labelled patches.
//! 4. **A per-pixel linear probe** on the raw series (gap-filled).
//!
//! Dates with less than `min_clear` of the image cloud-free are dropped; values are
//! standardised over the clear observations. Everything is seeded: a run repeats
//! exactly. The `segmentation` example and `sits segment` call [`segment`] and
//! [`write_outputs`].

mod output;
mod parts;

pub use output::{table, write_outputs};
use parts::*;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sits_core::io::IfExists;
use sits_core::SitsBatch;
use sits_data::augment::DateMasking;
use sits_data::gapfill::fill_cube;
use sits_data::loader::CubePatches;
use sits_data::norm::NormStats;
use sits_data::Datacube;
use sits_models::io::{load_weights, save_safetensors};
use sits_models::nn::seeded_init;
use sits_models::transformer::LayerStyle;
use sits_models::utae::Norm;
use sits_models::{Ctx, Ubarn, UbarnConfig, Utae, UtaeConfig};
use sits_ssl::bert::Corruption;
use sits_ssl::finetune::balanced_class_weights;
use sits_ssl::metrics::ConfusionMatrix;
use sits_ssl::probe::{features, LinearProbe, ProbeConfig};
use sits_ssl::train::FnObjective;
use sits_ssl::ubarn::CubeMaskedReconstruction;

use crate::error::{Context, Result, TaskError};

/// A cube with per-pixel classes and a split.
#[derive(Debug, Clone)]
pub struct SegmentationInput {
    /// The cube (values as read; the job normalises them).
    pub cube: Datacube,
    /// Class index of each pixel `(H, W)`, -1 for none.
    pub labels: Array2<i64>,
    /// Split of each pixel `(H, W)`: 0 unused, 1 train, 2 test.
    pub split: Array2<u8>,
    /// Class names by class index.
    pub class_names: Vec<String>,
    /// Colour of each class in the maps (empty: the default palette).
    pub colors: Vec<[u8; 3]>,
}

/// Settings of [`segment`]; the defaults are those of the `segmentation` example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentConfig {
    /// U-BARN pretraining epochs (one epoch = every patch of the grid once).
    pub epochs: usize,
    /// U-TAE training epochs on the labelled patches.
    pub utae_epochs: usize,
    /// Fine-tuning epochs of the pretrained U-BARN with a head on its pooled maps,
    /// on the same labelled patches (0: no fine-tuned model).
    #[serde(default = "default_finetune_epochs")]
    pub finetune_epochs: usize,
    /// Peak learning rate of fine-tuning (after 10 warm-up steps, cosine decay to
    /// 1 % of it).
    #[serde(default = "default_finetune_lr")]
    pub finetune_lr: f64,
    /// Full-image steps of the segmentation head on the frozen U-BARN.
    pub head_steps: usize,
    /// Patch side of U-BARN pretraining (a multiple of 4).
    pub pretrain_patch: usize,
    /// Patch side of U-TAE training (a multiple of 8).
    pub patch: usize,
    /// Random subset of dates per patch while training (inference uses every kept
    /// date).
    pub train_dates: usize,
    /// Keep the dates where at least this fraction of the image is cloud-free.
    pub min_clear: f64,
    /// Load the pretrained U-BARN from this safetensors file instead of pretraining.
    pub encoder: Option<PathBuf>,
    /// Write the pretrained U-BARN here (safetensors, variables and BatchNorm
    /// statistics).
    pub save_encoder: Option<PathBuf>,
    /// The U-BARN encoder.
    pub ubarn: UbarnConfig,
    /// Seed.
    pub seed: u64,
    /// Hold out validation cells from every supervised model's training pixels
    /// (the heads, fine-tuning, U-TAE and the raw probe), score U-TAE and the
    /// fine-tuned U-BARN on them after every epoch
    /// ([`Segmentation::utae_val_curve`], [`Segmentation::finetune_val_curve`]) and
    /// every model at the end ([`Segmentation::validation`]): the run that makes
    /// choices (`utae_epochs`, `finetune_epochs`, any setting) without looking at
    /// the test pixels.
    #[serde(default)]
    pub utae_validation: bool,
    /// Weight every supervised model's loss by class, scikit-learn's "balanced"
    /// weights of the training pixels (the heads, fine-tuning, U-TAE and the raw
    /// probe alike): the rare classes then count as much as the common ones, as in
    /// the mIoU. Off by default: on the example's validation cells (seeds 0, 1, 2,
    /// the same pretrained encoders) it moved the head on the frozen U-BARN from
    /// 0.5375 / 0.5188 / 0.5341 to 0.5284 / 0.5350 / 0.5156 and the raw probe from
    /// 0.5337 to 0.5167.
    #[serde(default)]
    pub class_balanced: bool,
}

/// Chosen on the validation cells of the `segmentation` example (seed 0, the frozen
/// head at 0.5465 validation mIoU): at the end of a 1-, 2- and 5-epoch schedule
/// with rate 2e-5, 0.5787, 0.5668 and 0.5503; with rate 1e-4 no epoch of a 5-epoch
/// schedule beat the frozen head (0.4980 to 0.5362).
fn default_finetune_epochs() -> usize {
    1
}

fn default_finetune_lr() -> f64 {
    2e-5
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            utae_epochs: 40,
            finetune_epochs: default_finetune_epochs(),
            finetune_lr: default_finetune_lr(),
            head_steps: 150,
            pretrain_patch: 16,
            patch: 32,
            train_dates: 16,
            min_clear: 0.05,
            encoder: None,
            save_encoder: None,
            ubarn: UbarnConfig {
                input_dim: 1,
                encoder_widths: vec![16, 32, 32],
                decoder_widths: vec![16, 32, 32],
                d_model: 32,
                layers: 2,
                heads: 4,
                d_ff: 64,
                dropout: 0.0,
                period: 1000.0,
                pool_heads: 4,
                // the wiring the README's result line was measured with; the
                // published preset (UbarnConfig::preset, post-norm, larger) scored
                // lower on the example's validation cells (seeds 0, 1: 0.5036 /
                // 0.5117 against 0.5307 / 0.5296) in about 3 times the time
                layer_style: LayerStyle::PreNormGelu,
            },
            seed: 0,
            utae_validation: false,
            class_balanced: false,
        }
    }
}

/// One model's prediction and scores on the test pixels.
#[derive(Debug, Clone)]
pub struct ModelResult {
    /// The model.
    pub name: String,
    /// Predicted class of every pixel `(H, W)`.
    pub prediction: Array2<i64>,
    /// Confusion matrix on the test pixels.
    pub confusion: ConfusionMatrix,
    /// Wall-clock seconds (training and inference).
    pub seconds: f64,
}

/// What [`segment`] measured.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// Dates kept (clear enough), of all dates.
    pub dates_kept: (usize, usize),
    /// Train and test pixels.
    pub pixels: (usize, usize),
    /// U-BARN SSL + head, U-BARN random init + head, U-BARN fine-tuned (unless
    /// `finetune_epochs` is 0), U-TAE from scratch, raw probe.
    pub models: Vec<ModelResult>,
    /// U-BARN pretraining loss, epoch means (empty when loaded).
    pub pretrain_curve: Vec<(f64, f64)>,
    /// U-TAE loss, epoch means.
    pub utae_curve: Vec<(f64, f64)>,
    /// U-TAE's mIoU on the validation cells after each epoch (empty unless
    /// [`SegmentConfig::utae_validation`]).
    pub utae_val_curve: Vec<(f64, f64)>,
    /// Fine-tuning loss of U-BARN, epoch means.
    pub finetune_curve: Vec<(f64, f64)>,
    /// The fine-tuned U-BARN's mIoU on the validation cells after each epoch, from
    /// epoch 0 (the head on the frozen encoder, where fine-tuning starts; empty
    /// unless [`SegmentConfig::utae_validation`]).
    pub finetune_val_curve: Vec<(f64, f64)>,
    /// Each model's mIoU on the validation cells at the end of its training, in the
    /// order of [`Segmentation::models`] (empty unless
    /// [`SegmentConfig::utae_validation`]).
    pub validation: Vec<(String, f64)>,
    /// Head loss per step (on the pretrained U-BARN).
    pub head_losses: Vec<f64>,
    /// Wall-clock seconds in all.
    pub seconds: f64,
}

impl Segmentation {
    /// The model named `name`.
    pub fn model(&self, name: &str) -> Option<&ModelResult> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The machine-readable last line.
    pub fn result_line(&self) -> String {
        let m = |n: &str| self.model(n).map_or(f64::NAN, |r| r.confusion.miou());
        format!(
            "result: ubarn_miou={:.4} utae_miou={:.4} raw_miou={:.4} ubarn_finetuned_miou={:.4}",
            m(UBARN),
            m(UTAE),
            m(RAW),
            m(UBARN_FINETUNED)
        )
    }
}

/// Name of the self-supervised U-BARN model in [`Segmentation::models`].
pub const UBARN: &str = "U-BARN SSL + head";
/// Name of the random-init control.
pub const UBARN_RANDOM: &str = "U-BARN random init + head";
/// Name of the fine-tuned U-BARN.
pub const UBARN_FINETUNED: &str = "U-BARN SSL fine-tuned";
/// Name of U-TAE.
pub const UTAE: &str = "U-TAE from scratch";
/// Name of the raw probe.
pub const RAW: &str = "raw per-pixel probe";

fn check(input: &SegmentationInput, cfg: &SegmentConfig) -> Result<usize> {
    if cfg.patch < 16 || !cfg.patch.is_multiple_of(8) {
        return Err(TaskError::Settings(format!(
            "the U-TAE patch side {} must be a multiple of 8 and at least 16 (its three \
             down-samplings need 2 pixels left at the deepest level)",
            cfg.patch
        )));
    }
    if cfg.pretrain_patch == 0 || !cfg.pretrain_patch.is_multiple_of(4) {
        return Err(TaskError::Settings(format!(
            "the pretraining patch side {} must be a positive multiple of 4",
            cfg.pretrain_patch
        )));
    }
    let (_, c, h, w) = input.cube.shape();
    if h < cfg.patch || w < cfg.patch {
        return Err(TaskError::input(
            "segmentation cube",
            format!(
                "{h} x {w} pixels, smaller than the U-TAE patch side {}",
                cfg.patch
            ),
        ));
    }
    if input.labels.dim() != (h, w) || input.split.dim() != (h, w) {
        return Err(TaskError::input(
            "segmentation labels",
            format!(
                "labels {:?} and split {:?} must have the cube's size ({h}, {w})",
                input.labels.dim(),
                input.split.dim()
            ),
        ));
    }
    if c != cfg.ubarn.input_dim {
        return Err(TaskError::Settings(format!(
            "the cube has {c} bands, the U-BARN configuration reads {}",
            cfg.ubarn.input_dim
        )));
    }
    let classes = input.class_names.len().max(
        input
            .labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| (m + 1).max(0) as usize),
    );
    let count = |s: u8| {
        input
            .labels
            .iter()
            .zip(&input.split)
            .filter(|(&l, &sp)| l >= 0 && sp == s)
            .count()
    };
    if count(1) == 0 || count(2) == 0 || classes < 2 {
        return Err(TaskError::input(
            "segmentation labels",
            format!(
                "{} train and {} test labelled pixels of {classes} classes; the job needs \
                 both splits and at least 2 classes",
                count(1),
                count(2)
            ),
        ));
    }
    Ok(classes)
}

/// Runs the three models on `input` (see the module docs).
pub fn segment(
    input: &SegmentationInput,
    cfg: &SegmentConfig,
    dev: &Device,
) -> Result<Segmentation> {
    segment_with(input, cfg, &[], dev)
}

/// [`segment`], plus a per-pixel linear probe, trained and scored like the raw
/// probe, on each of `pixel_features`: a name and one feature row per pixel (`H ×
/// W` rows, row-major), such as the embeddings of a published pixel encoder.
pub fn segment_with(
    input: &SegmentationInput,
    cfg: &SegmentConfig,
    pixel_features: &[(String, Vec<Vec<f32>>)],
    dev: &Device,
) -> Result<Segmentation> {
    let classes = check(input, cfg)?;
    let (_, _, h, w) = input.cube.shape();
    for (name, rows) in pixel_features {
        let len = rows.first().map_or(0, Vec::len);
        if rows.len() != h * w || len == 0 || rows.iter().any(|r| r.len() != len) {
            return Err(TaskError::input(
                name,
                format!(
                    "{} feature rows for a {h} × {w} cube (one row per pixel, all of the \
                     same non-zero length)",
                    rows.len()
                ),
            ));
        }
    }
    let total = Instant::now();
    let (t_all, _, _, _) = input.cube.shape();
    let validity = input.cube.validity();
    let keep: Vec<usize> = (0..t_all)
        .filter(|&t| {
            let clear = validity
                .index_axis(ndarray::Axis(0), t)
                .iter()
                .filter(|&&v| v)
                .count();
            clear as f64 >= cfg.min_clear * (h * w) as f64
        })
        .collect();
    if keep.is_empty() {
        return Err(TaskError::input(
            "segmentation cube",
            format!("no date is at least {} cloud-free", cfg.min_clear),
        ));
    }
    let mut cube = input.cube.select_times(&keep)?;
    NormStats::of_cube(&cube, 1e-4)?.apply_cube(&mut cube)?;
    let t = keep.len();

    let only = |which: u8| {
        Array2::from_shape_fn((h, w), |(y, x)| {
            if input.split[[y, x]] == which {
                input.labels[[y, x]]
            } else {
                -1
            }
        })
    };
    let (train_map, test_map) = (only(1), only(2));
    // validation cells: squares of half a patch, one in five in a diagonal pattern
    // (every row and column of cells has some), taken out of every
    // supervised model's training pixels (the frozen encoders' heads included)
    let cell = (cfg.patch / 2).max(1);
    let is_val =
        |y: usize, x: usize| cfg.utae_validation && (y / cell + 2 * (x / cell)).is_multiple_of(5);
    let sup_train_map =
        Array2::from_shape_fn(
            (h, w),
            |(y, x)| if is_val(y, x) { -1 } else { train_map[[y, x]] },
        );
    let val_map = Array2::from_shape_fn(
        (h, w),
        |(y, x)| if is_val(y, x) { train_map[[y, x]] } else { -1 },
    );
    let count = |m: &Array2<i64>| m.iter().filter(|&&c| c >= 0).count();
    let weights = cfg
        .class_balanced
        .then(|| balanced_class_weights(sup_train_map.iter().copied(), classes));
    let class_weights = weights.as_deref();
    let score = |name: &str, pred: Array2<i64>, seconds: f64| -> Result<ModelResult> {
        let tr: Vec<i64> = test_map.iter().copied().collect();
        let p: Vec<i64> = pred.iter().copied().collect();
        Ok(ModelResult {
            name: name.to_string(),
            confusion: ConfusionMatrix::from_labels(classes, &tr, &p, Some(-1))?,
            prediction: pred,
            seconds,
        })
    };

    // The whole image, padded to sides divisible by 8, for inference and the head.
    let (hp, wp) = (h.div_ceil(8) * 8, w.div_ceil(8) * 8);
    let reference = cube.times().as_slice()[0].date();
    // (a kept date can still be empty when `min_clear` is 0)
    let full = pad_edges(&cube, hp, wp)?
        .to_batch(reference, dev)?
        .with_empty_dates_as_padding()
        .ctx("the image's empty dates")?;
    let v: Vec<i64> = (0..hp * wp)
        .map(|k| {
            let (y, x) = (k / wp, k % wp);
            if y < h && x < w {
                sup_train_map[[y, x]]
            } else {
                -1
            }
        })
        .collect();
    let train_full = Tensor::from_vec(v, (1, hp, wp), dev).ctx("train labels")?;

    // 1. U-BARN: masked-reconstruction pretraining on every pixel, no label.
    let build_ubarn = |vm: &VarMap| -> Result<(Ubarn, Ctx<'static>)> {
        let ctx = Ctx::new(VarBuilder::from_varmap(vm, DType::F32, dev));
        let model = Ubarn::new(&ctx.pp("encoder"), cfg.ubarn.clone()).ctx("building U-BARN")?;
        Ok((model, ctx))
    };
    let masking = DateMasking {
        ratio: 0.3,
        contiguous: false,
    };
    let vm = VarMap::new();
    let (ubarn, ctx) = build_ubarn(&vm)?;
    let mut obj =
        CubeMaskedReconstruction::new(&ubarn, ctx.vb.pp("pretext"), masking, Corruption::Permute)
            .ctx("building the pretext decoder")?;
    seeded_init(&vm, cfg.seed).ctx("seeding U-BARN")?;
    let pre_patches = CubePatches::new(
        cube.clone(),
        None,
        cfg.pretrain_patch,
        cfg.pretrain_patch / 2,
    )?;
    let pre_ld = loader(pre_patches, 8, cfg.train_dates, cfg.seed, &cube)?;
    let start = Instant::now();
    let mut pretrain_curve = Vec::new();
    if let Some(path) = &cfg.encoder {
        // variables and BatchNorm statistics (of the U-Net decoder) alike
        load_weights(path, &vm, &ctx.buffers)?;
    } else {
        let mut tr = trainer(cfg.epochs, 2e-3, 1e-5, cfg.seed, &vm, &ctx.buffers)
            .ctx("U-BARN pretraining")?;
        tr.fit(&pre_ld, &mut obj).ctx("U-BARN pretraining")?;
        pretrain_curve = epoch_means(tr.history(), pre_ld.num_batches());
        if let Some(path) = &cfg.save_encoder {
            save_safetensors(path, &vm, &ctx.buffers, IfExists::Replace)?;
        }
    }
    let pretrain_s = start.elapsed().as_secs_f64();

    // in chunks of 8 dates (U-Net) and 1,024 pixels (transformer), without a graph:
    // a whole-image `forward` keeps every activation
    let per_date = |model: &Ubarn| -> Result<Tensor> {
        let doy = full.doy().ctx("day of year")?;
        Ok(model
            .infer(full.values(), &doy, full.pad_mask(), 8, 1024)
            .ctx("U-BARN inference")?
            .per_date)
    };
    let ubarn_map = |model: &Ubarn, seed: u64| -> Result<(Array2<i64>, Vec<f64>, f64, DateHead)> {
        let start = Instant::now();
        let maps = per_date(model)?;
        let head =
            DateHead::new(t, cfg.ubarn.d_model, classes, seed, dev).ctx("building the head")?;
        let losses = head
            .fit_frozen(&maps, &train_full, cfg.head_steps, class_weights)
            .ctx("training the head")?;
        let logits = head.forward(&maps).ctx("the head")?;
        Ok((
            argmax_map(&logits, h, w)?,
            losses,
            start.elapsed().as_secs_f64(),
            head,
        ))
    };
    let (ubarn_pred, head_losses, head_s, head) = ubarn_map(&ubarn, cfg.seed + 10)?;
    let ubarn_result = score(UBARN, ubarn_pred, pretrain_s + head_s)?;

    // Control: the same head on the same encoder at its (seeded) initialisation.
    let vm0 = VarMap::new();
    let (ubarn0, ctx0) = build_ubarn(&vm0)?;
    let _decoder0 =
        CubeMaskedReconstruction::new(&ubarn0, ctx0.vb.pp("pretext"), masking, Corruption::Permute)
            .ctx("building the control's decoder")?;
    seeded_init(&vm0, cfg.seed).ctx("seeding the control")?;
    let (random_pred, _, random_s, _) = ubarn_map(&ubarn0, cfg.seed + 10)?;
    let random_result = score(UBARN_RANDOM, random_pred, random_s)?;

    let seg_ld = loader(
        CubePatches::new(
            cube.clone(),
            Some(sup_train_map.clone()),
            cfg.patch,
            cfg.patch / 4,
        )?,
        4,
        cfg.train_dates,
        cfg.seed,
        &cube,
    )?;
    let val_truth: Vec<i64> = val_map.iter().copied().collect();
    let validation_miou = |pred: &Array2<i64>| -> Result<f64> {
        let p: Vec<i64> = pred.iter().copied().collect();
        Ok(ConfusionMatrix::from_labels(classes, &val_truth, &p, Some(-1))?.miou())
    };
    // 2. U-BARN fine-tuned, the linear-probe-then-fine-tune recipe: the pretrained
    // encoder and the head just trained on its frozen maps, trained on together with
    // a small rate on labelled patches with every date (the head reads the dates in
    // order). It changes the pretrained weights in place, so it runs after the
    // frozen evaluation above.
    let mut finetune_curve = Vec::new();
    let mut finetune_val_curve = Vec::new();
    let mut finetuned = None;
    if cfg.finetune_epochs > 0 {
        let start = Instant::now();
        // the encoder's variables (not the pretext decoder's) and the head's
        let fvm = VarMap::new();
        {
            let lock = |m: &VarMap| {
                m.data()
                    .lock()
                    .map(|d| d.clone())
                    .map_err(|_| TaskError::Settings("a VarMap lock is poisoned".into()))
            };
            let mut all = lock(&vm)?;
            all.retain(|k, _| k.starts_with("encoder."));
            all.extend(lock(&head.vars)?);
            *fvm.data()
                .lock()
                .map_err(|_| TaskError::Settings("a VarMap lock is poisoned".into()))? = all;
        }
        let ft_ld = loader(
            CubePatches::new(
                cube.clone(),
                Some(sup_train_map.clone()),
                cfg.pretrain_patch,
                cfg.pretrain_patch / 2,
            )?,
            4,
            t,
            cfg.seed,
            &cube,
        )?;
        let lr = cfg.finetune_lr;
        let mut ftr = trainer(
            cfg.finetune_epochs,
            lr,
            lr / 100.0,
            cfg.seed,
            &fvm,
            &ctx.buffers,
        )
        .ctx("U-BARN fine-tuning")?;
        let mut ft = FnObjective::new("ubarn-finetune", |b: &SitsBatch, step, _rng| {
            // dates without a clear pixel in the patch skip the U-Net (as in pretraining)
            let b = &b.clone().with_empty_dates_as_padding()?;
            let out = ubarn.forward(b.values(), &b.doy()?, b.pad_mask(), step.train)?;
            labelled_loss(b, &head.forward(&out.per_date)?, class_weights)
        });
        let predict = || -> Result<Array2<i64>> {
            argmax_map(
                &head.forward(&per_date(&ubarn)?).ctx("fine-tuned head")?,
                h,
                w,
            )
        };
        if cfg.utae_validation {
            // epoch 0: the head on the frozen encoder, where fine-tuning starts
            finetune_val_curve.push((0.0, validation_miou(&ubarn_result.prediction)?));
            for epoch in 1..=cfg.finetune_epochs {
                ftr.fit_until(&ft_ld, epoch, &mut ft)
                    .ctx("U-BARN fine-tuning")?;
                finetune_val_curve.push((epoch as f64, validation_miou(&predict()?)?));
            }
        } else {
            ftr.fit(&ft_ld, &mut ft).ctx("U-BARN fine-tuning")?;
        }
        finetune_curve = epoch_means(ftr.history(), ft_ld.num_batches());
        finetuned = Some(score(
            UBARN_FINETUNED,
            predict()?,
            pretrain_s + head_s + start.elapsed().as_secs_f64(),
        )?);
    }

    // 2. U-TAE from scratch on labelled patches of the train pixels.
    let uvm = VarMap::new();
    let uctx = Ctx::new(VarBuilder::from_varmap(&uvm, DType::F32, dev));
    let utae = Utae::new(
        &uctx.pp("utae"),
        UtaeConfig {
            input_dim: cfg.ubarn.input_dim,
            encoder_widths: vec![16, 32, 32, 64],
            decoder_widths: vec![16, 32, 32, 64],
            out_conv: vec![32, classes],
            encoder_norm: Norm::Group,
            n_head: 8,
            d_model: 64,
            d_k: 4,
            ..UtaeConfig::pastis()
        },
    )
    .ctx("building U-TAE")?;
    seeded_init(&uvm, cfg.seed + 20).ctx("seeding U-TAE")?;
    let start = Instant::now();
    let mut utr = trainer(cfg.utae_epochs, 2e-3, 1e-5, cfg.seed, &uvm, &uctx.buffers)
        .ctx("U-TAE training")?;
    // U-TAE's forward gives class logits directly (its own head)
    let mut seg = FnObjective::new("utae-segmentation", |b: &SitsBatch, step, _rng| {
        labelled_loss(
            b,
            &utae.forward(b.values(), b.days(), step.train)?.0,
            class_weights,
        )
    });
    let mut utae_val_curve = Vec::new();
    if cfg.utae_validation {
        for epoch in 1..=cfg.utae_epochs {
            utr.fit_until(&seg_ld, epoch, &mut seg)
                .ctx("U-TAE training")?;
            let (logits, _) = utae
                .forward(full.values(), full.days(), false)
                .ctx("U-TAE validation")?;
            utae_val_curve.push((epoch as f64, validation_miou(&argmax_map(&logits, h, w)?)?));
        }
    } else {
        utr.fit(&seg_ld, &mut seg).ctx("U-TAE training")?;
    }
    let (logits, _) = utae
        .forward(full.values(), full.days(), false)
        .ctx("U-TAE inference")?;
    let utae_pred = argmax_map(&logits, h, w)?;
    let utae_result = score(UTAE, utae_pred, start.elapsed().as_secs_f64())?;
    let utae_curve = epoch_means(utr.history(), seg_ld.num_batches());

    // 3. Linear probe on each pixel's raw (gap-filled) series.
    let start = Instant::now();
    let mut filled = cube.clone();
    fill_cube(&mut filled)?;
    let c = filled.bands().len();
    let v = filled.values();
    let rows: Vec<Vec<f32>> = (0..h * w)
        .map(|k| {
            (0..t)
                .flat_map(|ti| (0..c).map(move |ci| (ti, ci)))
                .map(|(ti, ci)| v[[ti, ci, k / w, k % w]])
                .collect()
        })
        .collect();
    let train_idx: Vec<usize> = (0..h * w)
        .filter(|&k| sup_train_map[[k / w, k % w]] >= 0)
        .collect();
    let ytr: Vec<usize> = train_idx
        .iter()
        .map(|&k| sup_train_map[[k / w, k % w]] as usize)
        .collect();
    let probe_cfg = ProbeConfig {
        balanced: cfg.class_balanced,
        ..ProbeConfig::default()
    };
    // a per-pixel probe on `rows`, trained on the supervised training pixels
    let pixel_probe = |name: &str, rows: &[Vec<f32>], start: Instant| -> Result<ModelResult> {
        let xtr = features(
            &train_idx
                .iter()
                .map(|&k| rows[k].clone())
                .collect::<Vec<_>>(),
            dev,
        )
        .ctx("per-pixel features")?;
        let probe = LinearProbe::fit(&xtr, &ytr, classes, probe_cfg).ctx(name)?;
        let all = probe
            .predict(&features(rows, dev).ctx("per-pixel features")?)
            .ctx(name)?;
        let pred = Array2::from_shape_fn((h, w), |(y, x)| all[y * w + x] as i64);
        score(name, pred, start.elapsed().as_secs_f64())
    };
    let raw_result = pixel_probe(RAW, &rows, start)?;
    let mut feature_results = Vec::with_capacity(pixel_features.len());
    for (name, rows) in pixel_features {
        feature_results.push(pixel_probe(name, rows, Instant::now())?);
    }

    let models: Vec<ModelResult> = [Some(ubarn_result), Some(random_result), finetuned]
        .into_iter()
        .flatten()
        .chain([utae_result, raw_result])
        .chain(feature_results)
        .collect();
    let validation = if cfg.utae_validation {
        models
            .iter()
            .map(|m| Ok((m.name.clone(), validation_miou(&m.prediction)?)))
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    Ok(Segmentation {
        dates_kept: (t, t_all),
        pixels: (count(&train_map), count(&test_map)),
        utae_val_curve,
        validation,
        models,
        finetune_curve,
        finetune_val_curve,
        pretrain_curve,
        utae_curve,
        head_losses,
        seconds: total.elapsed().as_secs_f64(),
    })
}
