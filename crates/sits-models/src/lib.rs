//! Encoders for satellite image time series, in candle.
//!
//! - [`ltae::Ltae2d`] and [`utae::Utae`]: L-TAE2d and U-TAE as in
//!   `VSainteuf/utae-paps`, with the PyTorch parameter names so that a safetensors
//!   export of an official checkpoint loads without renaming; checked against
//!   fixtures made by running the official code.
//! - [`nn`]: reflect padding, BatchNorm with running statistics as buffers,
//!   differentiable bilinear resizing.
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle. Pick the device at run time
//!   with `candle_core::Device`; nothing in the API depends on the feature.

pub mod heads;
pub mod ltae;
pub mod nn;
pub mod transformer;
pub mod tsvit;
pub mod ubarn;
pub mod utae;
pub mod vision;

pub use ltae::{Ltae2d, LtaeConfig, PositionalEncoder};
pub use nn::{Buffers, Ctx};
pub use transformer::{PixelTransformer, PixelTransformerConfig};
pub use tsvit::{Tsvit, TsvitConfig};
pub use ubarn::{Ubarn, UbarnConfig};
pub use utae::{AggregationMode, Utae, UtaeConfig};
pub use vision::{SmallResNet, SmallVit};
