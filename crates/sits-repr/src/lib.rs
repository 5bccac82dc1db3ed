//! Representations of satellite image time series: spectral indices, recurrence plots
//! of pixel series (as in PIMC) and Deep-STaR spatio-temporal planar slices.
//!
//! **Status: not implemented yet.** This crate is reserved in the workspace layout;
//! its content is specified in the project's issue "sits-repr and augmentations".
//! Nothing here is usable today.
//!
//! ## Feature flags
//! None yet.
