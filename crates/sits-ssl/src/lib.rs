//! Self-supervised objectives, the pretraining loop and evaluation for satellite
//! image time series.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sits_ssl::metrics::ConfusionMatrix;
//! use sits_ssl::simclr::{nt_xent, NtXentReduction};
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
//! Views for SimCLR and DINO are any `Augmentation<SitsBatch>`, by default
//! `sits_data::augment::{SeriesViews, CubeViews}`: all augmentations live in
//! `sits_data::augment`.
//!
//! One module per method, each holding its loss, heads and [`sits_core::Objective`]
//! implementation; every objective is trained by the same loop
//! ([`train::Trainer::fit`]):
//! - [`alise`]: ALISE: two disjoint date subsets per series, learned-query
//!   aligned vectors, cross-view reconstruction by a date-queried decoder,
//!   invariance and VICReg covariance terms; for pixel series and patches.
//! - [`bert`]: BERT-style masked reconstruction of pixel series (mask token,
//!   SITS-BERT noise, U-BARN permutation) for the pixel transformer.
//! - [`ubarn`]: masked reconstruction of whole dates of cube patches for U-BARN.
//! - [`simclr`]: SimCLR over any encoder, NT-Xent (both reference reductions),
//!   projection head.
//! - [`dino`]: DINO with an EMA teacher, multi-crop, centring, the teacher
//!   temperature and momentum schedules, health metrics.
//! - [`pimc`]: PIMC-style recurrence images of NDVI/EVI/SAVI against the series,
//!   symmetric InfoNCE with a learnable temperature.
//! - [`cscl`]: CSCL context self-similarity (checked against DeepSatModels) and its
//!   loss on feature maps.
//! - [`finetune`]: supervised classification and segmentation with a head, in the
//!   same loop.
//!
//! Shared building blocks:
//! - [`embed`]: pooling and frozen-encoder embeddings.
//! - [`train`]: the training loop (JSONL log, progress bar, NaN detection, frozen
//!   groups, atomic checkpoints with exact resume).
//! - [`optim`]: AdamW with inspectable state, gradient clipping, cosine schedule
//!   with warm-up, EMA updates.
//! - [`probe`]: standardisation, L2 logistic-regression probe, cosine k-NN,
//!   stratified label fractions, the few-label probe report, ridge regression.
//! - [`metrics`]: confusion matrix, OA, macro-F1, kappa, IoU/mIoU, ROC AUC.
//! - [`cluster`]: seeded k-means++, per-pixel trajectories over years, PCA, the
//!   adjusted Rand index.
//! - [`error`]: [`SslError`], the error of the non-tensor functions.
//!
//! ## Feature flags
//! - `progress` (off by default): a progress bar for [`train::Trainer`] (indicatif)
//!   when [`train::TrainConfig::progress`] is set; without it the flag is ignored.
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle.
//!
//! ## Re-exports
//! [`candle_core`] and [`candle_nn`] (tensors, variables, optimiser state) and the
//! crates below this one ([`sits_core`], [`sits_data`], [`sits_models`],
//! [`sits_repr`]), so a user never matches their versions by hand.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alise;
pub mod bert;
pub mod cluster;
pub mod cscl;
pub mod dino;
pub mod embed;
pub mod error;
pub mod finetune;
mod kernels;
pub mod metrics;
pub mod optim;
pub mod pimc;
pub mod presto;
pub mod probe;
mod progress;
pub mod simclr;
pub mod train;
pub mod ubarn;

pub use error::SslError;

pub use {candle_core, candle_nn, sits_core, sits_data, sits_models, sits_repr};
