//! The error of the functions of this crate that do not compute on tensors
//! (clustering, metrics, ridge regression). Tensor code returns
//! [`candle_core::Result`], as candle does.

/// What went wrong in a clustering, metric or regression function.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SslError {
    /// The inputs cannot be used as given: sizes that disagree, a value out of
    /// range, a non-finite number. `what` names the function (`"k-means"`,
    /// `"ROC AUC"`, ...), `reason` the input and the fix.
    #[error("{what}: {reason}")]
    Input {
        /// The function that refused its input.
        what: &'static str,
        /// Which input and why.
        reason: String,
    },
    /// The inputs are valid but the problem has no stable solution (for instance a
    /// singular system).
    #[error("{what}: {reason}")]
    Numerical {
        /// The function that failed.
        what: &'static str,
        /// Why, and what to change.
        reason: String,
    },
}

impl SslError {
    pub(crate) fn input(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Input {
            what,
            reason: reason.into(),
        }
    }
}

/// Result of the non-tensor functions of this crate.
pub type Result<T> = std::result::Result<T, SslError>;
