//! The pretraining loop: AdamW with weight decay, cosine schedule with linear
//! warm-up, gradient clipping by global norm, frozen parameter groups, a JSONL log
//! of every step, a progress bar on terminals, NaN/Inf detection, and atomic
//! checkpoints that resume exactly.
//!
//! The loop is generic: it owns the optimisation and the bookkeeping, and any
//! [`Objective`] computes the loss of one batch (any encoder, any method; a closure
//! through [`FnObjective`]). Every
//! step's randomness comes from a generator seeded by `(seed, step)`, so an
//! interrupted run resumed from its checkpoint computes the same losses as an
//! uninterrupted one (on CPU, same thread count). That includes dropout: the models
//! of `sits-models` draw their masks from a per-thread generator
//! (`sits_models::nn::seed_dropout`) that the loop reseeds before every step.
//!
//! A checkpoint is two files written through a temporary file and a rename:
//! `ckpt-epoch{E}.safetensors` (variables, BatchNorm buffers, optimiser moments)
//! and `ckpt-epoch{E}.json` (epoch, step, optimiser step, configuration); then
//! `latest.json` is replaced to point at it. A crash at any moment leaves either the
//! previous complete checkpoint or the new one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sits_core::{Objective, ObjectiveOutput, SitsBatch, Step};
use sits_data::Loader;
use sits_models::Buffers;

use crate::optim::{clip_grad_norm, cosine_lr, AdamW};
use crate::progress::Progress;

/// A closure as an [`Objective`], for losses written in place (a custom head, a
/// combination of objectives):
///
/// ```
/// # use sits_ssl::train::FnObjective;
/// # use sits_core::ObjectiveOutput;
/// let mut calls = 0;
/// let _objective = FnObjective::new("my-loss", |batch, _step, _rng| {
///     calls += 1;
///     let loss = batch.values().sqr()?.mean_all()?;
///     Ok(ObjectiveOutput { loss, metrics: vec![] })
/// });
/// ```
pub struct FnObjective<F> {
    name: String,
    f: F,
}

impl<F> FnObjective<F>
where
    F: FnMut(&SitsBatch, &Step, &mut dyn RngCore) -> Result<ObjectiveOutput>,
{
    /// Wraps `f`, logged under `name`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
        }
    }
}

impl<F> Objective for FnObjective<F>
where
    F: FnMut(&SitsBatch, &Step, &mut dyn RngCore) -> Result<ObjectiveOutput>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        (self.f)(batch, step, rng)
    }
}

/// Prefix of an objective's own state in a checkpoint.
const OBJECTIVE_PREFIX: &str = "objective.";

/// Training settings (saved in every checkpoint).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Epochs.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip gradients to this global norm.
    pub clip_grad: Option<f64>,
    /// Seed of the per-step generators.
    pub seed: u64,
    /// Variables whose name starts with one of these are not trained.
    pub frozen_prefixes: Vec<String>,
    /// Checkpoint every this many epochs (0 = only at the end).
    pub checkpoint_every: usize,
    /// Show a progress bar (only drawn on a terminal; needs the `progress` feature).
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 0,
            weight_decay: 1e-2,
            clip_grad: Some(3.0),
            seed: 0,
            frozen_prefixes: Vec::new(),
            checkpoint_every: 1,
            progress: true,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CheckpointMeta {
    epoch: usize,
    step: u64,
    optimizer_steps: u64,
    weights: String,
    config: TrainConfig,
}

/// One logged step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Global step (0-based).
    pub step: u64,
    /// Loss.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// The objective's own metrics.
    pub metrics: Vec<(String, f64)>,
}

/// Mean loss of the logged steps of `epoch` (NaN when none was logged).
pub fn epoch_mean_loss(log: &[StepRecord], epoch: usize) -> f64 {
    let l: Vec<f64> = log
        .iter()
        .filter(|r| r.epoch == epoch)
        .map(|r| r.loss)
        .collect();
    if l.is_empty() {
        return f64::NAN;
    }
    l.iter().sum::<f64>() / l.len() as f64
}

/// The pretraining loop over a `VarMap` (and its BatchNorm buffers).
pub struct Trainer {
    cfg: TrainConfig,
    vars: VarMap,
    buffers: Buffers,
    opt: AdamW,
    epoch: usize,
    step: u64,
    out_dir: Option<PathBuf>,
    log: Option<std::fs::File>,
    history: Vec<StepRecord>,
}

fn io_err(path: &Path, e: std::io::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {e}", path.display()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sits_core::io::write_atomic(path, bytes).map_err(|e| io_err(path, e))
}

/// The step records of a `log.jsonl` written by a [`Trainer`], in order, up to the
/// first line that does not parse (a line cut by a crash).
pub fn read_log(path: &Path) -> Result<Vec<StepRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    Ok(text
        .lines()
        .map_while(|l| serde_json::from_str::<StepRecord>(l).ok())
        .collect())
}

impl Trainer {
    /// A trainer over all variables of `vars` except the frozen ones. With
    /// `out_dir`, checkpoints and `log.jsonl` go there.
    ///
    /// `log.jsonl` always holds exactly the steps that led to the current state: a new
    /// run replaces the log of an earlier run in the same folder, and a resumed run
    /// keeps the steps before its checkpoint and drops any logged after it (by the
    /// run that was interrupted), so no step appears twice.
    pub fn new(
        cfg: TrainConfig,
        vars: &VarMap,
        buffers: &Buffers,
        out_dir: Option<&Path>,
    ) -> Result<Self> {
        let mut named: Vec<(String, candle_core::Var)> = vars
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?
            .iter()
            .filter(|(k, _)| {
                !cfg.frozen_prefixes
                    .iter()
                    .any(|p| k.starts_with(p.as_str()))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        if named.is_empty() {
            candle_core::bail!("nothing to train: every variable is frozen or the VarMap is empty");
        }
        let opt = AdamW::new(named, cfg.weight_decay)?;
        if let Some(d) = out_dir {
            std::fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
        }
        Ok(Self {
            cfg,
            vars: vars.clone(),
            buffers: buffers.clone(),
            opt,
            epoch: 0,
            step: 0,
            out_dir: out_dir.map(Path::to_path_buf),
            log: None,
            history: Vec::new(),
        })
    }

    /// Epochs completed.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Every step logged by this trainer object.
    pub fn history(&self) -> &[StepRecord] {
        &self.history
    }

    /// Trains `objective` until `cfg.epochs`, starting from the current epoch. For
    /// each batch: [`Objective::loss`] with that step's generator, backward pass,
    /// clipping, optimiser step, then [`Objective::after_step`].
    pub fn fit(&mut self, loader: &Loader, objective: &mut dyn Objective) -> Result<()> {
        self.fit_until(loader, self.cfg.epochs, objective)
    }

    /// Like [`Trainer::fit`] but stops after epoch `stop` (the schedule still spans
    /// `cfg.epochs`): a run cut short, to be resumed later.
    pub fn fit_until(
        &mut self,
        loader: &Loader,
        stop: usize,
        objective: &mut dyn Objective,
    ) -> Result<()> {
        let stop = stop.min(self.cfg.epochs);
        self.open_log()?;
        let per_epoch = loader.num_batches() as u64;
        let total = per_epoch * self.cfg.epochs as u64;
        let bar = Progress::new(self.cfg.progress, total, self.step);
        while self.epoch < stop {
            for batch in loader.epoch(self.epoch as u64) {
                let batch = batch.map_err(candle_core::Error::wrap)?;
                let step_seed = self.cfg.seed ^ self.step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut rng = ChaCha8Rng::seed_from_u64(step_seed);
                // dropout masks too are a function of (seed, step): reproducible and
                // exactly resumable
                sits_models::nn::seed_dropout(step_seed.rotate_left(17) ^ 0xD1B5_4A32_D192_ED03);
                let at = Step {
                    epoch: self.epoch,
                    step: self.step,
                    total_steps: total,
                    train: true,
                };
                let out = objective.loss(&batch, &at, &mut rng)?;
                let loss = out
                    .loss
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
                if !loss.is_finite() {
                    candle_core::bail!(
                        "loss is {loss} at step {} (epoch {}): training stopped",
                        self.step,
                        self.epoch
                    );
                }
                let mut grads = out.loss.backward()?;
                let grad_norm = match self.cfg.clip_grad {
                    Some(c) => clip_grad_norm(&mut grads, self.opt.vars(), c)?,
                    None => clip_grad_norm(&mut grads, self.opt.vars(), f64::INFINITY)?,
                };
                if !grad_norm.is_finite() {
                    candle_core::bail!(
                        "gradient norm is {grad_norm} at step {} (epoch {}): training stopped",
                        self.step,
                        self.epoch
                    );
                }
                let lr = cosine_lr(
                    self.step,
                    total,
                    self.cfg.warmup_steps,
                    self.cfg.lr,
                    self.cfg.min_lr,
                );
                self.opt.step(&grads, lr)?;
                objective.after_step(&at)?;
                let rec = StepRecord {
                    epoch: self.epoch,
                    step: self.step,
                    loss,
                    lr,
                    grad_norm,
                    metrics: out.metrics,
                };
                if let Some(f) = self.log.as_mut() {
                    let line = serde_json::to_string(&rec)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                    writeln!(f, "{line}")
                        .map_err(|e| candle_core::Error::Msg(format!("log.jsonl: {e}")))?;
                }
                if let Some(b) = &bar {
                    b.step(format!("epoch {} loss {loss:.4}", self.epoch + 1));
                }
                self.history.push(rec);
                self.step += 1;
            }
            self.epoch += 1;
            let due = self.cfg.checkpoint_every > 0
                && self.epoch.is_multiple_of(self.cfg.checkpoint_every);
            if self.out_dir.is_some() && (due || self.epoch == self.cfg.epochs) {
                self.save_checkpoint(objective)?;
            }
        }
        if let Some(b) = bar {
            b.finish();
        }
        Ok(())
    }

    /// Opens `log.jsonl` for this run (see [`Trainer::new`]), once.
    fn open_log(&mut self) -> Result<()> {
        let Some(dir) = &self.out_dir else {
            return Ok(());
        };
        if self.log.is_some() {
            return Ok(());
        }
        let path = dir.join("log.jsonl");
        let kept: Vec<StepRecord> = if self.step == 0 {
            Vec::new()
        } else {
            read_log(&path)?
                .into_iter()
                .filter(|r| r.step < self.step)
                .collect()
        };
        let mut text = String::new();
        for r in &kept {
            text.push_str(
                &serde_json::to_string(r).map_err(|e| candle_core::Error::Msg(e.to_string()))?,
            );
            text.push('\n');
        }
        write_atomic(&path, text.as_bytes())?;
        self.log = Some(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| io_err(&path, e))?,
        );
        Ok(())
    }

    /// Writes the checkpoint of the current state into the output folder: the
    /// variables, buffers and optimiser moments, and the objective's own state
    /// ([`Objective::state`], under `objective.`).
    pub fn save_checkpoint(&self, objective: &dyn Objective) -> Result<PathBuf> {
        let dir = self
            .out_dir
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("no output folder for checkpoints".into()))?;
        let mut all: HashMap<String, Tensor> = self
            .vars
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        all.extend(self.buffers.tensors());
        all.extend(self.opt.state_tensors());
        for (k, v) in objective.state()? {
            let key = format!("{OBJECTIVE_PREFIX}{k}");
            if all.insert(key.clone(), v).is_some() {
                candle_core::bail!("checkpoint: `{key}` is both a variable and objective state");
            }
        }
        let name = format!("ckpt-epoch{}", self.epoch);
        let weights = dir.join(format!("{name}.safetensors"));
        sits_models::io::save_tensors_atomic(&weights, &all).map_err(candle_core::Error::wrap)?;
        let meta = CheckpointMeta {
            epoch: self.epoch,
            step: self.step,
            optimizer_steps: self.opt.steps(),
            weights: format!("{name}.safetensors"),
            config: self.cfg.clone(),
        };
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let meta_path = dir.join(format!("{name}.json"));
        write_atomic(&meta_path, &json)?;
        write_atomic(&dir.join("latest.json"), &json)?;
        Ok(meta_path)
    }

    /// Restores the latest checkpoint of the output folder, if there is one, into the
    /// variables, the optimiser and `objective` ([`Objective::load_state`]); returns
    /// whether it did. The model and the objective must have been built the same way
    /// (same names).
    pub fn resume(&mut self, objective: &mut dyn Objective) -> Result<bool> {
        let Some(dir) = self.out_dir.clone() else {
            return Ok(false);
        };
        let latest = dir.join("latest.json");
        if !latest.exists() {
            return Ok(false);
        }
        let text = std::fs::read_to_string(&latest).map_err(|e| io_err(&latest, e))?;
        let meta: CheckpointMeta = serde_json::from_str(&text)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", latest.display())))?;
        // a checkpoint of another configuration would resume a different run
        // (the progress bar and the checkpoint interval do not change the numbers)
        let (mut theirs, mut ours) = (meta.config.clone(), self.cfg.clone());
        theirs.progress = false;
        ours.progress = false;
        theirs.checkpoint_every = 0;
        ours.checkpoint_every = 0;
        if theirs != ours {
            let (a, b) = (
                serde_json::to_value(&theirs).unwrap_or_default(),
                serde_json::to_value(&ours).unwrap_or_default(),
            );
            let differ: Vec<String> = a
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| b.get(k.as_str()) != Some(v))
                .map(|(k, v)| format!("{k} (checkpoint {v}, now {})", b[k.as_str()]))
                .collect();
            candle_core::bail!(
                "{}: the checkpoint was made with other training settings: {}; resume with the \
                 same settings, or start a new run in another folder",
                latest.display(),
                differ.join(", ")
            );
        }
        if meta.epoch > self.cfg.epochs {
            candle_core::bail!(
                "{}: the checkpoint is at epoch {} but the run has {} epochs",
                latest.display(),
                meta.epoch,
                self.cfg.epochs
            );
        }
        let wpath = dir.join(&meta.weights);
        let tensors = candle_core::safetensors::load(&wpath, &candle_core::Device::Cpu)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", wpath.display())))?;
        sits_models::io::set_weights(&tensors, &wpath, &self.vars, &self.buffers)
            .map_err(candle_core::Error::wrap)?;
        self.opt.load_state(&tensors, meta.optimizer_steps)?;
        let own: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(OBJECTIVE_PREFIX)
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        objective
            .load_state(&own)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", wpath.display())))?;
        self.epoch = meta.epoch;
        self.step = meta.step;
        Ok(true)
    }
}
