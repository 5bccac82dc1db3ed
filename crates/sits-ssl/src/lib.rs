//! Self-supervised objectives, the pretraining loop and evaluation for satellite
//! image time series.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sits_ssl::{nt_xent, ConfusionMatrix, NtXentReduction};
//! // two views of 4 samples: identical views give a lower loss than shuffled ones
//! let z = Tensor::new(&[[1f32, 0.], [0., 1.], [-1., 0.], [0., -1.]], &Device::Cpu).unwrap();
//! let shuffled = Tensor::new(&[[0f32, 1.], [-1., 0.], [0., -1.], [1., 0.]], &Device::Cpu).unwrap();
//! let same = nt_xent(&z, &z, 0.5, NtXentReduction::MeanOverAnchors).unwrap();
//! let other = nt_xent(&z, &shuffled, 0.5, NtXentReduction::MeanOverAnchors).unwrap();
//! assert!(same.to_scalar::<f32>().unwrap() < other.to_scalar::<f32>().unwrap());
//! // metrics from a confusion matrix
//! let cm = ConfusionMatrix::from_labels(2, &[0, 1, 1, 0], &[0, 1, 0, 0], None).unwrap();
//! assert_eq!(cm.overall_accuracy(), 0.75);
//! ```
//!
//! Contents:
//! - [`losses`], checked against PyTorch: NT-Xent (both reference reductions), DINO
//!   (centering, teacher temperature schedule, cross-view pairs, health metrics),
//!   masked-reconstruction MSE, symmetric InfoNCE (PIMC), the CSCL similarity loss.
//! - [`heads`]: SimCLR projector, DINO head (both weight-norm spellings).
//! - [`probe`]: standardisation, L2 logistic-regression probe, cosine k-NN,
//!   stratified label fractions and the few-label probe report.
//! - [`metrics`]: confusion matrix, OA, macro-F1, kappa, IoU/mIoU.
//! - [`optim`]: AdamW with inspectable state, gradient clipping, cosine schedule
//!   with warm-up, EMA updates.
//! - [`train`]: the pretraining loop (JSONL log, progress bar, NaN detection,
//!   frozen groups, atomic checkpoints with exact resume).
//! - [`objectives`]: BERT-style masked reconstruction (mask token, SITS-BERT noise,
//!   U-BARN permutation) for the pixel transformer; SimCLR over any encoder with
//!   tensor-level series views (crop, date dropping, noise); DINO with an EMA
//!   teacher and series multi-crop; PIMC (recurrence images of NDVI/EVI/SAVI vs the
//!   series, learnable temperature); batched frozen embeddings.
//!
//! - [`cluster`]: seeded k-means++ on embeddings, per-pixel trajectories over
//!   years, the adjusted Rand index (cluster maps render with
//!   `sits_repr::render::RgbImage::from_labels`).
//! - [`cscl`]: the CSCL context self-similarity (checked against DeepSatModels),
//!   its targets from label maps, and the CSCL objective on feature maps.
//!
//! - [`objectives::classification_loss`]: supervised fine-tuning of any encoder with
//!   a head in the same loop.
//!
//! Views for SimCLR and DINO come for series ([`objectives::SeriesViews`]: date
//! windows, dropping, noise) and for cube patches ([`objectives::CubeViews`]:
//! resized spatial crops, flips, dropping, noise); cube encoders' maps are
//! averaged over space before the heads.
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle.

pub mod cluster;
pub mod cscl;
pub mod heads;
pub mod losses;
pub mod metrics;
pub mod objectives;
pub mod optim;
pub mod probe;
pub mod train;

pub use losses::{nt_xent, DinoLoss, NtXentReduction};
pub use metrics::ConfusionMatrix;
