//! Encoders for satellite image time series, in candle.
//!
//! - [`ltae::Ltae2d`] and [`utae::Utae`]: L-TAE2d and U-TAE as in
//!   `VSainteuf/utae-paps`, with the PyTorch parameter names so that a safetensors
//!   export of an official checkpoint loads without renaming; checked against
//!   fixtures made by running the official code.
//! - [`transformer::PixelTransformer`]: SITS-BERT/Presto-like encoder of pixel
//!   series with a mask token for masked-reconstruction pretext tasks.
//! - [`tsvit::Tsvit`]: TSViT as in `michaeltrs/DeepSatModels`.
//! - [`ubarn::Ubarn`]: U-Net per date + post-norm transformer per pixel, sized as
//!   the published U-BARN.
//! - [`vision`]: small ResNet and ViT for recurrence-plot and planar images.
//! - [`alise`]: ALISE's learned-query temporal projection (a fixed `n_q × d`
//!   representation whatever the dates) and its date-queried decoder.
//! - [`presto`]: the published Presto encoder and decoder, loading
//!   `default_model.pt` as released, with its input mapping and normalisation.
//! - [`heads`]: linear, MLP, segmentation, temporal attention pooling, forecasting.
//! - [`io`]: safetensors and `.pth` loading, atomic safetensors saving.
//! - [`ops`]: CPU kernels with their own backward passes (convolution).
//! - [`nn`]: reflect padding, BatchNorm with running statistics as buffers,
//!   differentiable bilinear resizing, LayerNorm/softmax with gradients.
//!
//! Every sequence and cube encoder implements [`sits_core::Encoder`]. Models are
//! built from a [`Ctx`] (a `VarBuilder` plus the buffer store): over a `VarMap` to
//! train, over loaded tensors to run a checkpoint.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use sits_models::{Ctx, Utae, UtaeConfig};
//! let vm = VarMap::new();
//! let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu));
//! let cfg = UtaeConfig { input_dim: 4, ..UtaeConfig::pastis() };
//! let model = Utae::new(&ctx, cfg).unwrap();
//! let x = Tensor::randn(0f32, 1.0, (1, 3, 4, 32, 32), &Device::Cpu).unwrap();
//! let days = Tensor::new(&[[10f32, 25.0, 40.0]], &Device::Cpu).unwrap();
//! let (logits, attention) = model.forward(&x, &days, false).unwrap();
//! assert_eq!(logits.dims(), &[1, 20, 32, 32]);
//! assert_eq!(attention.dims(), &[16, 1, 3, 4, 4]);
//! ```
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle. Pick the device at run time
//!   with `candle_core::Device`; nothing in the API depends on the feature.
//!
//! ## Re-exports
//! [`candle_core`], [`candle_nn`] (tensors, `VarBuilder`/`VarMap`) and [`sits_core`]
//! cross this crate's API and are re-exported, so a user never matches their
//! versions by hand.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alise;
pub mod error;
pub mod galileo;
pub mod heads;
pub mod io;
pub mod ltae;
pub mod nn;
pub mod ops;
pub mod presto;
pub mod transformer;
pub mod tsvit;
pub mod ubarn;
pub mod utae;
pub mod vision;

pub use error::ModelError;
pub use ltae::{Ltae2d, LtaeConfig, PositionalEncoder};
pub use nn::{Buffers, Ctx};
pub use transformer::{PixelTransformer, PixelTransformerConfig};
pub use tsvit::{Tsvit, TsvitConfig};
pub use ubarn::{Ubarn, UbarnConfig};
pub use utae::{AggregationMode, Utae, UtaeConfig};
pub use vision::{SmallResNet, SmallVit};
pub use {candle_core, candle_nn, sits_core};
