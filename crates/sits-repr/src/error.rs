//! The error type of `sits-repr`.

/// What can go wrong while computing a representation.
///
/// Messages name the argument, the band or the sample that is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReprError {
    /// A parameter outside its domain (for example a percentage above 100).
    #[error("invalid parameter `{name}`: {reason}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An input or output buffer whose shape does not fit.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        /// Which array.
        what: String,
        /// The shape that was expected, in words.
        expected: String,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// A NaN or infinite value where the computation needs finite numbers.
    #[error(
        "{what}: non-finite value at {location}; gap-fill the series first (sits_data::gapfill)"
    )]
    NonFinite {
        /// Which array.
        what: String,
        /// Sample and date index of the first bad value.
        location: String,
    },
    /// A spectral band an index needs is missing.
    #[error(
        "index {index} needs a `{role}` band; none of {tried:?} is among the bands {available:?}"
    )]
    MissingBand {
        /// The spectral index.
        index: String,
        /// Role of the band (red, nir, ...).
        role: &'static str,
        /// Names that were accepted for this role.
        tried: Vec<&'static str>,
        /// Bands present.
        available: Vec<String>,
    },
    /// Writing an image failed.
    #[error("{path}: {reason}")]
    Image {
        /// The output file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An error from the data layer.
    #[error(transparent)]
    Data(#[from] sits_data::DataError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ReprError>;

pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> ReprError {
    ReprError::Param {
        name,
        reason: reason.into(),
    }
}
