//! Representations of satellite image time series.
//!
//! - [`indices`]: spectral indices (NDVI, EVI, SAVI, NDWI, NDMI, NBR) chosen by band
//!   name, with explicit reflectance scaling and NaN plus a validity mask wherever
//!   the index is undefined.
//! - [`recurrence`]: recurrence plots of pixel series with pyts semantics, batched
//!   and parallel, writing into a caller's buffer if wanted; the NDVI/EVI/SAVI
//!   three-channel plot is the PIMC input.
//! - [`fields`]: Gramian angular summation/difference fields and Markov transition
//!   fields (pyts semantics).
//! - [`planar`]: Deep-STaR planar images of a cube region (pixels ordered along a
//!   Hilbert curve × dates), x-t / y-t / oblique slices, random-walk images, and
//!   local views (patches) usable as tokens.
//! - [`views`]: the PIMC multi-index recurrence images and planar-view positive pairs.
//! - [`render`]: colour maps and PNG output for looking at any of these.
//!
//! Every function takes `ndarray` views and returns `ndarray` arrays, so the output
//! can go to candle with `Tensor::from_vec` or be written with `sits_data::npy`.
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle; the computations here run
//!   on the CPU.

pub mod error;
pub mod fields;
pub mod indices;
pub mod numeric;
pub mod planar;
pub mod recurrence;
pub mod render;
pub mod views;

pub use error::{ReprError, Result};
pub use fields::{GafMethod, GramianAngularField, MarkovTransitionField};
pub use indices::SpectralIndex;
pub use numeric::Size;
pub use planar::{curve_order, planar_image, Curve};
pub use recurrence::{RecurrencePlot, Threshold};
