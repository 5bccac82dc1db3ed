//! Self-supervised objectives, the pretraining loop and evaluation for satellite
//! image time series.
//!
//! **Status: partial.** The losses are implemented and checked against PyTorch
//! ([`losses`]): NT-Xent (both reference reductions), DINO (centering, teacher
//! temperature schedule, cross-view pairs, health metrics), masked-reconstruction
//! MSE, symmetric InfoNCE (PIMC) and the CSCL similarity loss. The objectives that
//! wrap encoders, the pretraining loop, checkpoints and evaluation are not written
//! yet.
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle.

pub mod heads;
pub mod losses;
pub mod metrics;

pub use losses::{nt_xent, DinoLoss, NtXentReduction};
pub use metrics::ConfusionMatrix;
