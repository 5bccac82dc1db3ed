//! The error type of `sits-data`.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading, validating or batching SITS data.
///
/// Messages name the file and the field (or the shape) that is wrong, so that a user
/// can fix the input without reading the code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// An operating-system error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `.npy` file whose header or layout cannot be read.
    #[error("{}: not a valid .npy file: {reason}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A dtype this crate does not read (or cannot convert to the requested one).
    #[error("{}: unsupported dtype `{dtype}`: {reason}", path.display())]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The dtype as written in the file.
        dtype: String,
        /// Why it is refused.
        reason: String,
    },
    /// A file shorter than its header says.
    #[error("{}: truncated: expected {expected} bytes of array data, found {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes actually present.
        found: u64,
    },
    /// A field of a metadata or table file with a wrong or missing value.
    #[error("{}: field `{field}`: {reason}", path.display())]
    Field {
        /// The file (or a logical source name).
        path: PathBuf,
        /// The field, key or column.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A raster (GeoTIFF) that cannot be read: not a TIFF, truncated, a codec or
    /// sample type that is not read, georeferencing that cannot be understood.
    #[error("{}: {reason}", path.display())]
    Raster {
        /// The file or object URL.
        path: PathBuf,
        /// What is wrong, and the fix where there is one.
        reason: String,
    },
    /// An array with the wrong shape.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        /// Which array.
        what: String,
        /// The expected shape, in words or numbers.
        expected: String,
        /// The actual shape.
        got: Vec<usize>,
    },
    /// Acquisition dates that do not fit the data (unsorted, duplicated, wrong count).
    #[error("dates of {what}: {reason}")]
    Dates {
        /// The cube, sample or file the dates belong to.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A spatial window, time range or index outside the data.
    #[error("{what} is outside the data: {reason}")]
    OutOfBounds {
        /// The requested window or index.
        what: String,
        /// The available extent.
        reason: String,
    },
    /// A band name that the cube does not have.
    #[error("band `{name}` not found; available bands: {available:?}")]
    UnknownBand {
        /// The requested band.
        name: String,
        /// The bands the data has.
        available: Vec<String>,
    },
    /// A series or a set with nothing in it where something is required.
    #[error("{0}: empty")]
    Empty(String),
    /// Invalid values (NaN, out of range) where they cannot be accepted.
    #[error("{what}: {reason}")]
    InvalidValue {
        /// Where.
        what: String,
        /// What.
        reason: String,
    },
    /// An output path that exists (or overlaps the input) and may not be replaced.
    #[error("{}: {reason}", path.display())]
    Exists {
        /// The output path.
        path: PathBuf,
        /// Why it is refused, and the fix.
        reason: String,
    },
    /// An array whose declared size is beyond what may be read whole.
    #[error(
        "{what}: an array of shape {shape:?} is larger than the read budget of {budget} bytes; \
         read it in windows, or raise the budget with SITS_READ_BUDGET_MB if the shape is right"
    )]
    TooLarge {
        /// The array.
        what: String,
        /// Its declared shape.
        shape: Vec<u64>,
        /// The budget in bytes.
        budget: u64,
    },
    /// A wrong argument (batch size 0, unknown option...).
    #[error("invalid argument: {0}")]
    Argument(String),
    /// The folder of the bundled datasets was not found.
    #[error(
        "the bundled sits datasets were not found; tried: {tried}. Pass the path of a copy \
         of the repository's data/ folder, or set SITS_DATA to it"
    )]
    NoDataDir {
        /// Each place looked at, with why it was not used.
        tried: String,
    },
    /// A JSON file that does not parse.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser error.
        source: serde_json::Error,
    },
    /// A CSV file that does not parse.
    #[error("{}: invalid CSV: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The parser error.
        source: csv::Error,
    },
    /// A Zarr store that cannot be opened or read.
    #[error("zarr store {store}: {reason}")]
    Zarr {
        /// The store (path or description).
        store: String,
        /// The zarrs error message, with the array or attribute concerned.
        reason: String,
    },
    /// A zarrs array error.
    #[error(transparent)]
    ZarrArray(#[from] zarrs::array::ArrayError),
    /// A zarrs storage error.
    #[error(transparent)]
    ZarrStorage(#[from] zarrs::storage::StorageError),
    /// An ndarray shape error.
    #[error(transparent)]
    NdShape(#[from] ndarray::ShapeError),
    /// A candle error while building tensors.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn field(path: &Path, field: &str, reason: impl Into<String>) -> Self {
        Self::Field {
            path: path.to_path_buf(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<sits_core::dates::DatesError> for DataError {
    fn from(e: sits_core::dates::DatesError) -> Self {
        DataError::Dates {
            what: e.what,
            reason: e.reason,
        }
    }
}
