//! Encoders for satellite image time series in candle: L-TAE and U-TAE
//! (weight-compatible with the official PyTorch code), temporal transformers, U-BARN,
//! TSViT, and task heads.
//!
//! **Status: not implemented yet.** This crate is reserved in the workspace layout;
//! its content is specified in the project's issue "sits-models". Nothing here is
//! usable today.
//!
//! ## Feature flags
//! None yet; `cuda`, `cudnn`, `mkl` and `metal` will forward to candle.
