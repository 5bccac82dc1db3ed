//! The few-label experiment behind the `quickstart` and `ssl_probe` examples:
//! pretrain a pixel transformer without labels on the training series, freeze it,
//! and compare linear probes on its embeddings with probes on the raw series and on
//! the same encoder at its (seeded) random initialisation, at several fractions of
//! the training labels; then fine-tune the pretrained encoder end to end.
//!
//! Everything is deterministic for a seed on CPU: the initial weights come from
//! [`seeded_init`], the batches and masks from per-step generators, the label
//! subsets from [`sits_ssl::probe::stratified_fraction`].
//!
//! ```no_run
//! use sits_tasks::experiment::{few_label_experiment, ExperimentConfig};
//! use sits_data::{datasets, Split};
//! let set = datasets::mato_grosso(&sits_tasks::bundled_data_dir()?.join(datasets::MATO_GROSSO))?;
//! let (train, test) = (set.split(Split::Train)?, set.split(Split::Test)?);
//! let out = few_label_experiment(&train, &test, &ExperimentConfig::default(), &candle_core::Device::Cpu)?;
//! println!("SSL probe OA at 10 %: {:.3}", out.ssl[2].oa);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sits_core::Encoder;
use sits_core::Objective;
use sits_data::augment::DateMasking;
use sits_data::augment::SeriesViews;
use sits_data::norm::NormStats;
use sits_data::{Loader, LoaderConfig, SampleSet};
use sits_models::alise::{AliseConfig, TemporalProjector};
use sits_models::nn::linear;
use sits_models::nn::seeded_init;
use sits_models::{Buffers, Ctx, PixelTransformer, PixelTransformerConfig};
use sits_ssl::alise::{AlignedEncoder, Alise, AliseWeights};
use sits_ssl::bert::{Corruption, MaskedReconstruction};
use sits_ssl::dino::Dino;
use sits_ssl::embed::{embed, PooledPixelEncoder, Pooling};
use sits_ssl::finetune::Classification;
use sits_ssl::metrics::ConfusionMatrix;
use sits_ssl::probe::ProbeConfig;
use sits_ssl::probe::{features, label_fraction_probes, stratified_fraction, FractionResult};
use sits_ssl::simclr::SimClr;
use sits_ssl::train::{read_log, StepRecord, TrainConfig, Trainer};

/// Errors of the experiment: bad data or a failing step, with context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// The sample sets cannot be used for this experiment (too few series or
    /// classes, series of other lengths, labels that disagree); says which and why.
    #[error("{0}")]
    UnusableData(String),
    /// The settings ask for what cannot run (resuming without a checkpoint folder,
    /// resuming DINO); says what to change.
    #[error("{0}")]
    Settings(String),
    /// Scoring the results failed.
    #[error(transparent)]
    Ssl(#[from] sits_ssl::SslError),
    /// Loading or normalising the data failed.
    #[error(transparent)]
    SitsData(#[from] sits_data::DataError),
    /// A tensor operation, the training loop or a probe failed.
    #[error("{context}: {source}")]
    Candle {
        /// Which stage failed.
        context: String,
        /// The error.
        source: candle_core::Error,
    },
}

/// Result of the experiment functions.
pub type Result<T> = std::result::Result<T, ExperimentError>;

trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Context<T> for candle_core::Result<T> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|source| ExperimentError::Candle {
            context: what.to_string(),
            source,
        })
    }
}

/// The self-supervised objective used for pretraining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Method {
    /// BERT-style masked reconstruction of whole dates (mask token).
    Bert,
    /// SimCLR: two cropped, thinned, noisy views of each series, NT-Xent.
    SimClr,
    /// DINO: an EMA teacher on long date windows, a student on long and short ones.
    Dino,
    /// ALISE: two disjoint date subsets per series, learned-query aligned vectors
    /// (10 x d), cross-view reconstruction, invariance and covariance terms. The
    /// representation probed is the aligned vectors, not the per-date outputs.
    Alise,
}

impl std::str::FromStr for Method {
    type Err = ExperimentError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bert" | "mask" | "masked" => Ok(Self::Bert),
            "simclr" => Ok(Self::SimClr),
            "dino" => Ok(Self::Dino),
            "alise" => Ok(Self::Alise),
            _ => Err(ExperimentError::Settings(format!(
                "unknown method {s:?}: expected bert, simclr, dino or alise"
            ))),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bert => "bert",
            Self::SimClr => "simclr",
            Self::Dino => "dino",
            Self::Alise => "alise",
        })
    }
}

/// Settings of [`few_label_experiment`]. The defaults are the ones measured in the
/// README (about 1 minute of pretraining on 2 CPU cores for Mato Grosso).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExperimentConfig {
    /// Pretraining objective.
    pub method: Method,
    /// Pretraining epochs.
    pub epochs: usize,
    /// Seed of the initial weights, batches, masks and label subsets.
    pub seed: u64,
    /// Encoder width.
    pub d_model: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Batch size of pretraining and fine-tuning.
    pub batch_size: usize,
    /// Peak learning rate of pretraining.
    pub lr: f64,
    /// Fraction of dates hidden by the masked-reconstruction task.
    pub mask_ratio: f64,
    /// Label fractions of the linear probes.
    pub fractions: Vec<f64>,
    /// Label fractions at which the pretrained encoder is also fine-tuned.
    pub finetune_fractions: Vec<f64>,
    /// Optimiser steps of each fine-tuning run (the epochs follow from the subset).
    pub finetune_steps: usize,
    /// Peak learning rate of fine-tuning.
    pub finetune_lr: f64,
    /// Linear-probe settings.
    pub probe: ProbeConfig,
    /// Draw progress bars on a terminal.
    pub progress: bool,
    /// Where pretraining writes its checkpoints and step log (none if `None`).
    pub checkpoint_dir: Option<PathBuf>,
    /// Pretraining checkpoints every this many epochs into `checkpoint_dir` (0 = at
    /// the end only).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Resume pretraining from the latest checkpoint in `checkpoint_dir`, if there is
    /// one (with the same settings); the result equals that of an uninterrupted run.
    #[serde(default)]
    pub resume: bool,
    /// Loss weights of [`Method::Alise`] (the public configuration by default).
    #[serde(default)]
    pub alise: AliseWeights,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            method: Method::Bert,
            epochs: 60,
            seed: 0,
            d_model: 64,
            layers: 2,
            heads: 4,
            batch_size: 64,
            lr: 1e-3,
            mask_ratio: 0.3,
            fractions: vec![0.01, 0.05, 0.1, 1.0],
            finetune_fractions: vec![0.1, 1.0],
            finetune_steps: 240,
            finetune_lr: 5e-4,
            probe: ProbeConfig::default(),
            progress: true,
            checkpoint_dir: None,
            checkpoint_every: 0,
            resume: false,
            alise: AliseWeights::default(),
        }
    }
}

/// Test metrics of the pretrained encoder fine-tuned with a linear head on one
/// fraction of the training labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FineTuneResult {
    /// Fraction of the training labels used.
    pub fraction: f64,
    /// Training rows used.
    pub n_train: usize,
    /// Optimiser steps run.
    pub steps: usize,
    /// Overall accuracy on the test rows.
    pub oa: f64,
    /// Macro F1 on the test rows.
    pub macro_f1: f64,
    /// Cohen's kappa on the test rows.
    pub kappa: f64,
    /// Predicted class of every test row.
    pub predictions: Vec<usize>,
}

/// Everything [`few_label_experiment`] measured.
#[derive(Debug, Clone)]
pub struct ExperimentOutput {
    /// Probes on the raw (normalised) series, one per fraction.
    pub raw: Vec<FractionResult>,
    /// Probes on the encoder at its seeded random initialisation.
    pub random: Vec<FractionResult>,
    /// Probes on the pretrained, frozen encoder.
    pub ssl: Vec<FractionResult>,
    /// Fine-tuned pretrained encoder, one per fine-tuning fraction.
    pub finetune: Vec<FineTuneResult>,
    /// Every pretraining step.
    pub history: Vec<StepRecord>,
    /// Test embeddings of the pretrained encoder, one row per test series.
    pub test_embeddings: Vec<Vec<f32>>,
    /// Test labels.
    pub test_labels: Vec<usize>,
    /// Class names.
    pub class_names: Vec<String>,
    /// Wall-clock seconds of pretraining.
    pub pretrain_seconds: f64,
    /// Wall-clock seconds of the whole experiment.
    pub total_seconds: f64,
    /// Wall-clock seconds of each stage, in order.
    pub stage_seconds: Vec<(String, f64)>,
}

fn check_sets(train: &SampleSet, test: &SampleSet) -> Result<(Vec<usize>, Vec<usize>, usize)> {
    let err = |m: String| Err(ExperimentError::UnusableData(m));
    if train.is_empty() || test.is_empty() {
        return err(format!(
            "the experiment needs training and test series, got {} and {}",
            train.len(),
            test.len()
        ));
    }
    if train.bands() != test.bands() {
        return err(format!(
            "train bands {:?} differ from test bands {:?}",
            train.bands(),
            test.bands()
        ));
    }
    let (Some(ytr), Some(yte)) = (train.labels(), test.labels()) else {
        return err("the experiment needs labelled training and test series".into());
    };
    let mut present: Vec<usize> = ytr.to_vec();
    present.sort_unstable();
    present.dedup();
    if present.len() < 2 {
        return err(format!(
            "the training series hold {} class{} ({:?}); a classifier needs at least 2 \
             (check the label columns of samples.csv)",
            present.len(),
            if present.len() == 1 { "" } else { "es" },
            present
                .iter()
                .map(|&c| train.class_names().get(c).map_or("?", String::as_str))
                .collect::<Vec<_>>()
        ));
    }
    if test.len() < 2 {
        return err(format!(
            "the test split holds {} series; the evaluation needs at least 2 (mark more \
             rows `test` in the split column of samples.csv)",
            test.len()
        ));
    }
    let t = train.series()[0].len();
    for (which, set) in [("train", train), ("test", test)] {
        if let Some((i, s)) = set.series().iter().enumerate().find(|(_, s)| s.len() != t) {
            return err(format!(
                "{which} series {} has {} dates, the first training series {t}: the \
                 per-date embedding (Pooling::Flatten) needs series of one length",
                set.ids()[i],
                s.len()
            ));
        }
    }
    Ok((ytr.to_vec(), yte.to_vec(), t))
}

fn raw_features(set: &SampleSet, device: &Device) -> Result<Tensor> {
    features(&raw_rows(set), device).ctx("raw features")
}

fn loader(
    set: &Arc<SampleSet>,
    shuffle: bool,
    seed: u64,
    bs: usize,
    dev: &Device,
) -> Result<Loader> {
    let cfg = LoaderConfig {
        batch_size: bs,
        shuffle,
        seed,
        ..LoaderConfig::default()
    };
    Ok(Loader::new(set.clone(), cfg, dev.clone())?)
}

fn model_config(cfg: &ExperimentConfig, bands: usize) -> PixelTransformerConfig {
    PixelTransformerConfig {
        d_model: cfg.d_model,
        heads: cfg.heads,
        d_ff: 2 * cfg.d_model,
        layers: cfg.layers,
        dropout: 0.0,
        ..PixelTransformerConfig::small(bands)
    }
}

/// The pretraining loop of both experiments: cosine schedule from `cfg.lr` down to
/// 1 % of it after 20 warm-up steps, checkpoints if `cfg` names a folder, resumed from
/// the latest one there if `cfg.resume`.
fn pretrainer(
    cfg: &ExperimentConfig,
    vars: &VarMap,
    objective: &mut dyn Objective,
) -> Result<Trainer> {
    let tcfg = TrainConfig {
        epochs: cfg.epochs,
        lr: cfg.lr,
        min_lr: cfg.lr * 0.01,
        warmup_steps: 20,
        seed: cfg.seed,
        progress: cfg.progress,
        checkpoint_every: cfg.checkpoint_every,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(tcfg, vars, &Buffers::new(), cfg.checkpoint_dir.as_deref())
        .ctx("starting pretraining")?;
    if cfg.resume {
        if cfg.checkpoint_dir.is_none() {
            return Err(ExperimentError::Settings(
                "resume was asked for but no checkpoint folder is set".into(),
            ));
        }
        trainer.resume(objective).ctx("resuming pretraining")?;
    }
    Ok(trainer)
}

/// Every pretraining step of a run: the log of the checkpoint folder when the run
/// was resumed (it holds the steps before the checkpoint too), else the trainer's.
fn full_history(cfg: &ExperimentConfig, trainer: &Trainer) -> Result<Vec<StepRecord>> {
    match (&cfg.checkpoint_dir, cfg.resume) {
        (Some(dir), true) => read_log(&dir.join("log.jsonl")).ctx("reading the step log"),
        _ => Ok(trainer.history().to_vec()),
    }
}

fn copy_prefix(from: &VarMap, to: &VarMap, prefix: &str) -> Result<()> {
    let src = from
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))
        .ctx("copying pretrained weights")?;
    let dst = to
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))
        .ctx("copying pretrained weights")?;
    for (name, var) in src.iter().filter(|(n, _)| n.starts_with(prefix)) {
        let target = dst
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("the model has no variable {name}")))
            .ctx("copying pretrained weights")?;
        target
            .set(var.as_tensor())
            .ctx("copying pretrained weights")?;
    }
    Ok(())
}

/// ALISE's temporal projector (under `encoder.aligner.`, so that it travels with the
/// encoder's weights) when `cfg.method` is ALISE.
pub(crate) fn aligner(
    cfg: &ExperimentConfig,
    vb: &VarBuilder,
) -> Result<Option<TemporalProjector>> {
    if cfg.method != Method::Alise {
        return Ok(None);
    }
    TemporalProjector::new(
        vb.pp("encoder").pp("aligner"),
        AliseConfig::published(cfg.d_model),
    )
    .map(Some)
    .ctx("building the temporal projector")
}

/// The representation the probes and fine-tuning see: the aligned vectors for ALISE,
/// else the per-date outputs pooled by `pooling`. The random-init control uses the
/// same function, so it has the same architecture and pooling as the SSL encoder.
fn probed_encoder<'a>(
    model: &'a PixelTransformer,
    projector: Option<&'a TemporalProjector>,
    pooling: Pooling,
) -> Box<dyn Encoder + 'a> {
    match projector {
        Some(p) => Box::new(AlignedEncoder::new(model, p)),
        None => Box::new(PooledPixelEncoder::new(model, pooling)),
    }
}

/// The objective of `cfg.method` on `model` (heads under `head.` of `vb`); DINO's
/// teacher is `teacher_enc`, whose variables are `tvm`.
#[allow(clippy::too_many_arguments)]
fn build_objective<'a>(
    cfg: &ExperimentConfig,
    model: &'a PixelTransformer,
    projector: Option<&'a TemporalProjector>,
    mean_enc: &'a PooledPixelEncoder<'a>,
    teacher_enc: &'a PooledPixelEncoder<'a>,
    vb: &VarBuilder,
    vm: &VarMap,
    tvm: &VarMap,
    device: &Device,
) -> Result<Box<dyn Objective + 'a>> {
    let masking = DateMasking {
        ratio: cfg.mask_ratio,
        contiguous: false,
    };
    Ok(match cfg.method {
        Method::Bert => Box::new(
            MaskedReconstruction::new(model, vb.pp("head"), masking, Corruption::MaskToken)
                .ctx("building the masked-reconstruction head")?,
        ),
        Method::SimClr => Box::new(
            SimClr::new(mean_enc, vb.pp("head"), 32, SeriesViews::default(), 0.2)
                .ctx("building the SimCLR head")?,
        ),
        Method::Dino => {
            Box::new(Dino::new(mean_enc, teacher_enc, vm, tvm, 256, device).ctx("building DINO")?)
        }
        Method::Alise => {
            let projector = projector.ok_or_else(|| {
                ExperimentError::Settings("ALISE needs the temporal projector".into())
            })?;
            let mut obj = Alise::new(model, projector, vb.pp("head"), model.config().in_bands)
                .ctx("building ALISE")?;
            obj.weights = cfg.alise;
            Box::new(obj)
        }
    })
}

/// Runs the few-label experiment on labelled `train` and `test` sets of
/// equal-length series (both are normalised with the training statistics first).
/// Tensors live on `device` (CPU, or a GPU when candle is built with its feature).
pub fn few_label_experiment(
    train: &SampleSet,
    test: &SampleSet,
    cfg: &ExperimentConfig,
    device: &Device,
) -> Result<ExperimentOutput> {
    few_label_experiment_with(train, test, None, cfg, device)
}

/// [`few_label_experiment`] whose pretraining also sees `unlabelled` series (same
/// bands and units as `train`; normalised with the training statistics, never
/// probed): self-supervision on data without labels, the probes and fine-tuning
/// still on the labelled training series only.
pub fn few_label_experiment_with(
    train: &SampleSet,
    test: &SampleSet,
    unlabelled: Option<&SampleSet>,
    cfg: &ExperimentConfig,
    device: &Device,
) -> Result<ExperimentOutput> {
    let start = Instant::now();
    let device = device.clone();
    let (ytr, yte, dates) = check_sets(train, test)?;
    let classes = train.class_names().len();
    let stats = NormStats::of_samples(train, 1e-4)?;
    let pretrain_set = match unlabelled {
        Some(extra) => {
            if extra.bands() != train.bands() {
                return Err(ExperimentError::UnusableData(format!(
                    "the unlabelled series have bands {:?}, the training series {:?}; \
                     they must be the same bands in the same order",
                    extra.bands(),
                    train.bands()
                )));
            }
            let mut series = train.series().to_vec();
            series.extend(extra.series().iter().cloned());
            let mut all = SampleSet::new(series, train.bands().to_vec(), None, Vec::new(), None)?;
            stats.apply_samples(&mut all)?;
            Some(Arc::new(all))
        }
        None => None,
    };
    let (mut train, mut test) = (train.clone(), test.clone());
    stats.apply_samples(&mut train)?;
    stats.apply_samples(&mut test)?;
    let (train, test) = (Arc::new(train), Arc::new(test));
    let pretrain_set = pretrain_set.unwrap_or_else(|| train.clone());
    let bs = cfg.batch_size;
    let (tr_plain, te_plain) = (
        loader(&train, false, 0, 256, &device)?,
        loader(&test, false, 0, 256, &device)?,
    );
    let pooling = Pooling::Flatten { dates };
    let probes = |xtr: &Tensor, xte: &Tensor, what: &str| {
        label_fraction_probes(
            xtr,
            &ytr,
            xte,
            &yte,
            classes,
            &cfg.fractions,
            cfg.seed,
            cfg.probe,
        )
        .ctx(what)
    };

    let mut stages: Vec<(String, f64)> = Vec::new();
    let mut lap = Instant::now();
    let mut stage = |name: &str| {
        stages.push((name.to_string(), lap.elapsed().as_secs_f64()));
        lap = Instant::now();
    };
    let raw = probes(
        &raw_features(&train, &device)?,
        &raw_features(&test, &device)?,
        "probes on raw series",
    )?;

    stage("probes on raw series");
    // the encoder (and, for DINO, its teacher), seeded
    let mcfg = model_config(cfg, train.bands().len());
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &device);
    let model = PixelTransformer::new(&Ctx::new(vb.pp("encoder")), mcfg.clone())
        .ctx("building the encoder")?;
    let tvm = VarMap::new();
    let teacher = PixelTransformer::new(
        &Ctx::new(VarBuilder::from_varmap(&tvm, DType::F32, &device).pp("encoder")),
        mcfg.clone(),
    )
    .ctx("building the teacher")?;
    let projector = aligner(cfg, &vb)?;
    let mean_enc = PooledPixelEncoder::new(&model, Pooling::Mean);
    let flat_enc = probed_encoder(&model, projector.as_ref(), pooling);
    let teacher_enc = PooledPixelEncoder::new(&teacher, Pooling::Mean);
    let pre_loader = loader(&pretrain_set, true, cfg.seed, bs, &device)?;

    let mut obj = build_objective(
        cfg,
        &model,
        projector.as_ref(),
        &mean_enc,
        &teacher_enc,
        &vb,
        &vm,
        &tvm,
        &device,
    )?;
    seeded_init(&vm, 1000 + cfg.seed).ctx("seeding the weights")?;
    seeded_init(&tvm, 1000 + cfg.seed).ctx("seeding the teacher")?;

    let random = probes(
        &embed(flat_enc.as_ref(), &tr_plain).ctx("random-init train embeddings")?,
        &embed(flat_enc.as_ref(), &te_plain).ctx("random-init test embeddings")?,
        "probes on the random-init encoder",
    )?;

    stage("probes on the random-init encoder");
    // pretraining
    let pre_start = Instant::now();
    let mut trainer = pretrainer(cfg, &vm, obj.as_mut())?;
    trainer.fit(&pre_loader, obj.as_mut()).ctx("pretraining")?;
    drop(obj);
    let pretrain_seconds = pre_start.elapsed().as_secs_f64();
    let history = full_history(cfg, &trainer)?;
    stage("pretraining");

    let ssl_train = embed(flat_enc.as_ref(), &tr_plain).ctx("SSL train embeddings")?;
    let ssl_test = embed(flat_enc.as_ref(), &te_plain).ctx("SSL test embeddings")?;
    let ssl = probes(&ssl_train, &ssl_test, "probes on the SSL encoder")?;
    let test_embeddings: Vec<Vec<f32>> = ssl_test.to_vec2().ctx("test embeddings")?;
    stage("probes on the SSL encoder");

    // fine-tuning copies of the pretrained encoder
    let mut finetune = Vec::new();
    for &f in &cfg.finetune_fractions {
        let idx = stratified_fraction(&ytr, f, cfg.seed);
        let subset = Arc::new(train.subset(&idx)?);
        let fvm = VarMap::new();
        let fvb = VarBuilder::from_varmap(&fvm, DType::F32, &device);
        let fmodel = PixelTransformer::new(&Ctx::new(fvb.pp("encoder")), mcfg.clone())
            .ctx("fine-tuning encoder")?;
        let fprojector = aligner(cfg, &fvb)?;
        let fenc = probed_encoder(&fmodel, fprojector.as_ref(), pooling);
        let head =
            linear(fenc.output_dim(), classes, fvb.pp("classifier")).ctx("fine-tuning head")?;
        seeded_init(&fvm, 2000 + cfg.seed).ctx("seeding the head")?;
        copy_prefix(&vm, &fvm, "encoder.")?;
        let ld = loader(&subset, true, cfg.seed, bs, &device)?;
        let epochs = cfg.finetune_steps.div_ceil(ld.num_batches().max(1));
        let fcfg = TrainConfig {
            epochs,
            lr: cfg.finetune_lr,
            min_lr: cfg.finetune_lr * 0.01,
            warmup_steps: 10,
            seed: cfg.seed,
            progress: cfg.progress,
            checkpoint_every: 0,
            ..TrainConfig::default()
        };
        let mut ft = Trainer::new(fcfg, &fvm, &Buffers::new(), None).ctx("fine-tuning")?;
        ft.fit(&ld, &mut Classification::new(fenc.as_ref(), &head))
            .ctx("fine-tuning")?;
        let logits = {
            let z = embed(fenc.as_ref(), &te_plain).ctx("fine-tuned test embeddings")?;
            head.forward(&z).ctx("fine-tuned logits")?
        };
        let predictions: Vec<usize> = logits
            .argmax(1)
            .and_then(|a| a.to_vec1::<u32>())
            .ctx("fine-tuned predictions")?
            .into_iter()
            .map(|c| c as usize)
            .collect();
        let truth: Vec<i64> = yte.iter().map(|&c| c as i64).collect();
        let pred: Vec<i64> = predictions.iter().map(|&c| c as i64).collect();
        let cm = ConfusionMatrix::from_labels(classes, &truth, &pred, None)?;
        finetune.push(FineTuneResult {
            fraction: f,
            n_train: idx.len(),
            steps: ft.history().len(),
            oa: cm.overall_accuracy(),
            macro_f1: cm.macro_f1(),
            kappa: cm.kappa(),
            predictions,
        });
        stage(&format!("fine-tuning at {} %", (f * 100.0).round()));
    }

    Ok(ExperimentOutput {
        raw,
        random,
        ssl,
        finetune,
        history,
        test_embeddings,
        test_labels: yte,
        class_names: train.class_names().to_vec(),
        pretrain_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
        stage_seconds: stages,
    })
}

/// A pixel transformer pretrained by [`pretrain_encoder`], with the variables it
/// lives in and the training log.
pub struct Pretrained {
    /// All variables (the encoder under `encoder.`, the decoder under `head.`).
    pub vars: VarMap,
    /// The encoder.
    pub model: PixelTransformer,
    /// ALISE's temporal projector (under `encoder.aligner.`) when the method is
    /// ALISE: the representation is then its aligned vectors.
    pub projector: Option<TemporalProjector>,
    /// Every pretraining step.
    pub history: Vec<StepRecord>,
    /// Wall-clock seconds of pretraining.
    pub seconds: f64,
}

/// Self-supervised pretraining of a pixel transformer (sized by `cfg`) with
/// `cfg.method` on an unlabelled, already normalised set; seeded by `cfg.seed`.
pub fn pretrain_encoder(
    set: &Arc<SampleSet>,
    cfg: &ExperimentConfig,
    device: &Device,
) -> Result<Pretrained> {
    if set.is_empty() {
        return Err(ExperimentError::UnusableData(
            "pretraining needs at least one series".into(),
        ));
    }
    let start = Instant::now();
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
    let mcfg = model_config(cfg, set.bands().len());
    let model = PixelTransformer::new(&Ctx::new(vb.pp("encoder")), mcfg.clone())
        .ctx("building the encoder")?;
    let tvm = VarMap::new();
    let teacher = PixelTransformer::new(
        &Ctx::new(VarBuilder::from_varmap(&tvm, DType::F32, device).pp("encoder")),
        mcfg,
    )
    .ctx("building the teacher")?;
    let projector = aligner(cfg, &vb)?;
    let mean_enc = PooledPixelEncoder::new(&model, Pooling::Mean);
    let teacher_enc = PooledPixelEncoder::new(&teacher, Pooling::Mean);
    let mut obj = build_objective(
        cfg,
        &model,
        projector.as_ref(),
        &mean_enc,
        &teacher_enc,
        &vb,
        &vars,
        &tvm,
        device,
    )?;
    seeded_init(&vars, 1000 + cfg.seed).ctx("seeding the weights")?;
    seeded_init(&tvm, 1000 + cfg.seed).ctx("seeding the teacher")?;
    let mut trainer = pretrainer(cfg, &vars, obj.as_mut())?;
    let ld = loader(set, true, cfg.seed, cfg.batch_size, device)?;
    trainer.fit(&ld, obj.as_mut()).ctx("pretraining")?;
    let history = full_history(cfg, &trainer)?;
    drop(obj);
    Ok(Pretrained {
        vars,
        model,
        projector,
        history,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Frozen embeddings of every series of `set` (in order) with `pooling`, as rows.
pub fn embed_rows(
    model: &PixelTransformer,
    set: &Arc<SampleSet>,
    pooling: Pooling,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    embed_rows_with(model, None, set, pooling, device)
}

/// [`embed_rows`] through ALISE's temporal projector when there is one (the rows
/// are then the flattened aligned vectors, whatever `pooling` says).
pub fn embed_rows_with(
    model: &PixelTransformer,
    projector: Option<&TemporalProjector>,
    set: &Arc<SampleSet>,
    pooling: Pooling,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let ld = loader(set, false, 0, 256, device)?;
    let enc = probed_encoder(model, projector, pooling);
    embed(enc.as_ref(), &ld)
        .and_then(|z| z.to_vec2())
        .ctx("embedding the series")
}

/// The raw values of every series of `set`, flattened date by date, as rows.
///
/// A missing value (NaN) becomes 0, which is the band's training mean once the set is
/// standardised (as the experiments do first): the raw-series baselines mask missing
/// observations by mean imputation, so that no NaN reaches a probe or a distance.
pub fn raw_rows(set: &SampleSet) -> Vec<Vec<f32>> {
    set.series()
        .iter()
        .map(|s| {
            s.values
                .iter()
                .map(|&v| if v.is_nan() { 0.0 } else { v })
                .collect()
        })
        .collect()
}
