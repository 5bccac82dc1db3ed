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
//! - [`inputs`]: ready-made SSL inputs: the PIMC multi-index recurrence images and
//!   positive pairs of two planar slices of one region (two views, in the SSL sense).
//! - [`render`]: colour maps and PNG output for looking at any of these.
//!
//! Every function takes `ndarray` views and returns `ndarray` arrays, so the output
//! can go to candle with `Tensor::from_vec` or be written with `sits_data::npy`.
//!
//! ```
//! use sits_repr::{curve_order, Curve, RecurrencePlot, Threshold};
//! // two NDVI-like series of 5 dates; binary plot with a fixed ε = 0.15 (pyts semantics)
//! let x = ndarray::array![[0.2f32, 0.3, 0.7, 0.8, 0.3], [0.6, 0.6, 0.6, 0.6, 0.6]];
//! let rp = RecurrencePlot {
//!     threshold: Threshold::Value(0.15),
//!     ..RecurrencePlot::default()
//! }
//! .transform(x.view())
//! .unwrap();
//! assert_eq!(rp[[0, 0, 1]], 1.0); // |0.2 - 0.3| < 0.15
//! assert_eq!(rp[[0, 0, 2]], 0.0);
//! assert!(rp.index_axis(ndarray::Axis(0), 1).iter().all(|&v| v == 1.0)); // constant series
//! // pixel order of a 4 x 4 region along the Hilbert curve: every pixel once
//! let order = curve_order(Curve::Hilbert, 4, 4);
//! assert_eq!(order.len(), 16);
//! assert_eq!(order[0], (0, 0));
//! ```
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle; the computations here run
//!   on the CPU.
//!
//! ## Re-exports
//! [`ndarray`] (every input and output) and [`sits_data`] are re-exported, so a user
//! never matches their versions by hand.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod fields;
pub mod indices;
pub mod inputs;
pub mod numeric;
pub mod planar;
pub mod recurrence;
pub mod render;

pub use error::{ReprError, Result};
pub use fields::{GafMethod, GramianAngularField, MarkovTransitionField};
pub use indices::SpectralIndex;
pub use numeric::Size;
pub use planar::{curve_order, planar_image, Curve};
pub use recurrence::{RecurrencePlot, Threshold};
pub use {ndarray, sits_data};
