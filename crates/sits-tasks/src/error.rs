//! The errors of the jobs.

use std::path::PathBuf;

/// What went wrong in a job, with the file, field or setting and what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The input cannot be used for this job (wrong layout, no complete period,
    /// too few pixels); says which input and why.
    #[error("{input}: {reason}")]
    Input {
        /// The input path (or what was given).
        input: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The input differs from what a saved encoder was trained on (bands, dates per
    /// period, date convention); names both sides.
    #[error("{input} does not match the encoder {encoder}: {what}")]
    Mismatch {
        /// The input.
        input: String,
        /// The encoder folder.
        encoder: PathBuf,
        /// What differs: the encoder's value and the input's.
        what: String,
    },
    /// The settings ask for what cannot run; says what to change.
    #[error("{0}")]
    Settings(String),
    /// A saved encoder is missing a file or holds an unreadable description.
    #[error("encoder {path}: {reason}")]
    Encoder {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading or writing data failed.
    #[error(transparent)]
    Data(#[from] sits_data::DataError),
    /// Reading or writing weights failed.
    #[error(transparent)]
    Model(#[from] sits_models::ModelError),
    /// A metric, probe or clustering step refused its input.
    #[error(transparent)]
    Ssl(#[from] sits_ssl::SslError),
    /// Drawing a map failed.
    #[error(transparent)]
    Repr(#[from] sits_repr::ReprError),
    /// The few-label experiment or its pretraining failed.
    #[error(transparent)]
    Experiment(Box<crate::experiment::ExperimentError>),
    /// Drawing a chart failed.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// A tensor operation failed.
    #[error("{context}: {source}")]
    Candle {
        /// Which stage failed.
        context: String,
        /// The error.
        source: candle_core::Error,
    },
}

impl From<crate::experiment::ExperimentError> for TaskError {
    fn from(e: crate::experiment::ExperimentError) -> Self {
        Self::Experiment(Box::new(e))
    }
}

/// Result of the jobs.
pub type Result<T> = std::result::Result<T, TaskError>;

pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Context<T> for candle_core::Result<T> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|source| TaskError::Candle {
            context: what.to_string(),
            source,
        })
    }
}

impl TaskError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn input(input: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Self::Input {
            input: input.to_string(),
            reason: reason.into(),
        }
    }
}
