//! Shared vocabulary of the `sits` workspace: the batch type that flows from the data
//! layer to the models, and the few object-safe traits that let the crates meet
//! without depending on each other.
//!
//! A satellite image time series (SITS) is a stack of observations of the same place
//! on irregular dates. [`SitsBatch`] carries a batch of such series, either pixel
//! series `(B, T, C)` or image patches `(B, T, C, H, W)`, together with their
//! acquisition dates, a padding mask for series of different lengths, and optional
//! validity (cloud) masks and labels.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use chrono::NaiveDate;
//! use sits_core::SitsBatch;
//!
//! # fn main() -> candle_core::Result<()> {
//! let dev = Device::Cpu;
//! // two pixel series of 3 dates and 2 bands; the second has one padded date
//! let values = Tensor::zeros((2, 3, 2), candle_core::DType::F32, &dev)?;
//! let reference = NaiveDate::from_ymd_opt(2018, 9, 1).unwrap();
//! let days = [[10i64, 20, 35], [5, 40, 0]];
//! let pad = [[false, false, false], [false, false, true]];
//! let batch = SitsBatch::from_days(values, &days, &pad, reference, &dev)?;
//! assert_eq!(batch.batch_size(), 2);
//! assert_eq!(batch.doy()?.to_vec2::<f32>()?[0][0], 254.0); // 2018-09-11
//! # Ok(())
//! # }
//! ```
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to `candle-core`/`candle-nn`. The device
//!   is chosen at run time ([`candle_core::Device`]); no public API depends on a feature.
//!
//! ## Re-exports
//! [`candle_core`] (tensors, devices) and [`chrono`] (dates) cross this crate's API
//! and are re-exported, so a user never matches their versions by hand.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod batch;
pub mod dates;
pub mod io;
pub mod memory;
pub mod random;
pub mod resize;
pub mod traits;

pub use batch::{BatchLayout, SitsBatch};
pub use traits::{Augmentation, Encoder, Objective, ObjectiveOutput, Step};
pub use {candle_core, chrono};
