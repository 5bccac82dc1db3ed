//! The small object-safe traits through which the crates meet.
//!
//! They deliberately stay few: anything that takes one tensor and returns one tensor
//! is a `candle_nn::Module` (or `candle_nn::ModuleT` when train and eval differ)
//! and needs no trait of ours.

use candle_core::{Result, Tensor};
use rand::RngCore;

use crate::SitsBatch;

/// Maps a batch of time series to a representation.
///
/// Implemented by every encoder of `sits-models`, so that `sits-ssl` can pretrain any
/// of them and evaluation code can embed with any of them.
pub trait Encoder {
    /// Encodes a batch. `train` switches dropout and normalisation statistics.
    ///
    /// The output shape is encoder-specific and documented by the implementor, for
    /// instance `(B, D)` for a pooled series encoder or `(B, D, H, W)` for U-TAE.
    fn encode(&self, batch: &SitsBatch, train: bool) -> Result<Tensor>;

    /// Size `D` of the representation's feature dimension.
    fn output_dim(&self) -> usize;
}

/// Makes a randomised view of a sample (one series, one patch, one cube).
///
/// The randomness comes only from `rng`, so a seeded generator makes views
/// reproducible whatever the thread that computes them.
pub trait Augmentation<S>: Send + Sync {
    /// Returns the augmented view of `sample`.
    fn apply(&self, sample: &S, rng: &mut dyn RngCore) -> Result<S>;
}

/// The result of a self-supervised objective on one step.
#[derive(Debug, Clone)]
pub struct ObjectiveOutput {
    /// Scalar loss to minimise.
    pub loss: Tensor,
    /// Named diagnostics (for instance teacher entropy for DINO), already reduced.
    pub metrics: Vec<(String, f64)>,
}

/// Where the training loop stands when it asks an [`Objective`] for a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Epoch of this batch (0-based): drives per-epoch schedules such as DINO's
    /// teacher temperature.
    pub epoch: usize,
    /// Global optimiser step of this batch (0-based).
    pub step: u64,
    /// Optimiser steps of the whole run: drives per-step schedules such as DINO's
    /// teacher momentum.
    pub total_steps: u64,
    /// Training mode: dropout on, batch statistics used and updated.
    pub train: bool,
}

impl Step {
    /// A step outside training (dropout off, running statistics used), for
    /// evaluating an objective's loss on held-out data.
    pub fn eval() -> Self {
        Self {
            epoch: 0,
            step: 0,
            total_steps: 0,
            train: false,
        }
    }
}

/// A self-supervised (or supervised) objective: one batch in, a loss out.
///
/// Every method of `sits-ssl` implements it (masked reconstruction, U-BARN masked
/// reconstruction, SimCLR, DINO, PIMC, CSCL, classification), and the training loop
/// of `sits-ssl` drives any of them the same way: for each batch it calls
/// [`Objective::loss`], back-propagates, steps the optimiser, then calls
/// [`Objective::after_step`]. An objective owns what it adds to the encoder
/// (decoders, projection heads, learnable temperatures: created as variables of the
/// trained `VarMap`, so the optimiser updates them) and whatever state is not a
/// trained variable (an EMA teacher, a running centre), which it updates in
/// [`Objective::after_step`] or in `loss` and hands to checkpoints through
/// [`Objective::state`] and [`Objective::load_state`].
///
/// All randomness (masks, views, noise) must come from `rng`: the loop seeds it
/// from the run's seed and the step, so runs repeat and resume exactly.
///
/// ```
/// use candle_core::{DType, Device, Result, Tensor, Var};
/// use rand::RngCore;
/// use sits_core::{Objective, ObjectiveOutput, SitsBatch, Step};
///
/// /// A toy objective: fit one scale `w` so that `w * x` has unit mean square.
/// struct UnitScale {
///     w: Var,
///     steps_seen: usize,
/// }
///
/// impl Objective for UnitScale {
///     fn name(&self) -> &str {
///         "unit-scale"
///     }
///     fn loss(&mut self, batch: &SitsBatch, _: &Step, _: &mut dyn RngCore) -> Result<ObjectiveOutput> {
///         let ms = batch.values().broadcast_mul(self.w.as_tensor())?.sqr()?.mean_all()?;
///         let loss = (ms - 1.0)?.sqr()?;
///         Ok(ObjectiveOutput { loss, metrics: vec![] })
///     }
///     fn after_step(&mut self, _: &Step) -> Result<()> {
///         self.steps_seen += 1; // an EMA teacher would move here
///         Ok(())
///     }
/// }
///
/// # fn main() -> Result<()> {
/// let dev = Device::Cpu;
/// let values = Tensor::full(2f32, (1, 2, 1), &dev)?;
/// let reference = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
/// let batch = SitsBatch::from_days(values, &[[0i64, 10]], &[[false, false]], reference, &dev)?;
/// let mut obj = UnitScale { w: Var::from_tensor(&Tensor::new(&[1f32], &dev)?)?, steps_seen: 0 };
/// let mut rng = rand::rng(); // the toy draws nothing
/// // what a training loop does, by hand: loss, backward, plain gradient step, hook
/// for step in 0..200u64 {
///     let at = Step { epoch: 0, step, total_steps: 200, train: true };
///     let out = obj.loss(&batch, &at, &mut rng)?;
///     let grads = out.loss.backward()?;
///     let g = grads.get(obj.w.as_tensor()).expect("w has a gradient");
///     obj.w.set(&(obj.w.as_tensor() - (g * 0.01)?)?)?;
///     obj.after_step(&at)?;
/// }
/// let w = obj.w.as_tensor().to_vec1::<f32>()?[0];
/// assert!((w - 0.5).abs() < 1e-3, "w = {w}"); // (0.5 * 2)^2 = 1
/// assert_eq!(obj.steps_seen, 200);
/// # Ok(())
/// # }
/// ```
pub trait Objective {
    /// Short name used in logs and checkpoints, e.g. `"simclr"`.
    fn name(&self) -> &str;

    /// The loss of one batch at `step`, drawing any randomness from `rng`.
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput>;

    /// Called once the optimiser has applied the step's gradients (an EMA teacher
    /// moves towards the student here). Does nothing by default.
    fn after_step(&mut self, step: &Step) -> Result<()> {
        let _ = step;
        Ok(())
    }

    /// The objective's own state that is not a trained variable (an EMA teacher, a
    /// running centre) as named tensors, so that checkpoints hold it and a resumed
    /// run continues exactly. Nothing by default.
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(Vec::new())
    }

    /// Restores what [`Objective::state`] returned, by name (from a checkpoint).
    /// A missing name is an error naming it. Does nothing by default.
    fn load_state(&mut self, tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        let _ = tensors;
        Ok(())
    }
}
