//! The error of this crate's file-facing functions (weights I/O). Building models and
//! running them are tensor code and return [`candle_core::Result`], as candle does;
//! a [`ModelError`] that crosses into tensor code is wrapped with
//! [`candle_core::Error::wrap`] and stays downcastable.

use std::path::PathBuf;

/// What went wrong reading or writing weights.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A weight file cannot be read, or does not fit the model (a missing tensor, a
    /// shape that differs); says which tensor and what the model expects.
    #[error("{}: {reason}", path.display())]
    Weights {
        /// The weight file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An input cannot be given to a model as it is (bands a published model does
    /// not read, a series too long, values in other units); says what to change.
    #[error("{what}: {reason}")]
    Input {
        /// The input.
        what: String,
        /// What is wrong and the fix.
        reason: String,
    },
    /// The output exists and is not to be replaced.
    #[error("{}: {reason}", path.display())]
    Exists {
        /// The output path.
        path: PathBuf,
        /// Why it is refused and what to do.
        reason: String,
    },
    /// Writing a weight file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The output path.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A tensor operation failed while reading or writing weights.
    #[error("{context}: {source}")]
    Candle {
        /// What was being done.
        context: String,
        /// The error.
        source: candle_core::Error,
    },
}

/// Result of the weights I/O functions.
pub type Result<T> = std::result::Result<T, ModelError>;
