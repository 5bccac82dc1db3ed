//! Self-supervised objectives (SimCLR, DINO, masked reconstruction, PIMC, CSCL), the
//! pretraining loop and evaluation for satellite image time series.
//!
//! **Status: not implemented yet.** This crate is reserved in the workspace layout;
//! its content is specified in the project's issue "sits-ssl". Nothing here is usable
//! today.
//!
//! ## Feature flags
//! None yet.
