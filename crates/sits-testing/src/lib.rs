//! Test support for the sits workspace (never published):
//!
//! - [`compare`]: comparisons of tensors and slices that see NaN and infinities.
//!   Candle's CPU `max` and `f32::max` both skip NaN, so a maximum of differences
//!   taken with them passes a tensor that is NaN anywhere but its first element;
//!   these helpers count any non-finite difference as an infinite one.
//! - `S3Server` (feature `s3`): an S3-compatible server on 127.0.0.1 over a local
//!   folder, for the object-storage tests.

pub mod compare;
#[cfg(feature = "s3")]
mod s3;

pub use compare::{
    assert_close, assert_finite, max_abs, max_abs_diff, max_abs_diff_slices, max_abs_slice,
};
#[cfg(feature = "s3")]
pub use s3::{S3Server, ACCESS_KEY, SECRET_KEY};
