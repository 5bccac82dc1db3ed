//! Self-supervised objectives, the pretraining loop and evaluation for satellite
//! image time series.
//!
//! **Status: partial.** Written so far:
//! - [`losses`], checked against PyTorch: NT-Xent (both reference reductions), DINO
//!   (centering, teacher temperature schedule, cross-view pairs, health metrics),
//!   masked-reconstruction MSE, symmetric InfoNCE (PIMC), the CSCL similarity loss.
//! - [`heads`]: SimCLR projector, DINO head (both weight-norm spellings).
//! - [`probe`]: standardisation, L2 logistic-regression probe, cosine k-NN,
//!   stratified label fractions.
//! - [`metrics`]: confusion matrix, OA, macro-F1, kappa, IoU/mIoU.
//!
//! Not written yet: the objectives that wrap encoders and augmentations, the
//! pretraining loop with checkpoints and resume, fine-tuning.
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle.

pub mod heads;
pub mod losses;
pub mod metrics;
pub mod probe;

pub use losses::{nt_xent, DinoLoss, NtXentReduction};
pub use metrics::ConfusionMatrix;
