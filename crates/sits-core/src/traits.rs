//! The small object-safe traits through which the crates meet.
//!
//! They deliberately stay few: anything that takes one tensor and returns one tensor
//! is a [`candle_nn::Module`] (or [`candle_nn::ModuleT`] when train and eval differ)
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

/// A self-supervised objective: views of a batch in, a loss out.
pub trait Objective {
    /// Short name used in logs and checkpoints, e.g. `"simclr"`.
    fn name(&self) -> &str;

    /// Computes the loss of `encoder` on the given views of one batch.
    fn loss(&self, encoder: &dyn Encoder, views: &[SitsBatch]) -> Result<ObjectiveOutput>;
}
