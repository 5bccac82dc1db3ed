//! PNG charts and Markdown tables for experiment reports: training curves,
//! confusion matrices, 2-D scatter plots of embeddings.
//!
//! The charts need the `plots` feature (plotters and a bundled font, about 40 more
//! crates to build); without it [`CHARTS`] is `false`, the chart functions do not
//! exist and the report writers of [`crate::few_label`] and [`crate::segment`] write
//! their tables, JSON and class maps but no charts, saying so in `report.md`.
//!
//! Charts are drawn with plotters into an in-memory RGB buffer and written with
//! [`sits_repr::render::RgbImage::write_png`] (a temporary file renamed into place).
//! Text uses the DejaVu Sans Mono font bundled in `assets/fonts`, so no system font
//! is needed.
//!
//! ```
//! # #[cfg(feature = "plots")] {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("loss.png");
//! let curve: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect();
//! sits_tasks::report::line_chart(&path, "training loss", "step", "loss", &[("loss", &curve)]).unwrap();
//! assert!(std::fs::metadata(&path).unwrap().len() > 1000);
//! # }
//! ```

use std::path::{Path, PathBuf};

#[cfg(feature = "plots")]
mod charts;
#[cfg(feature = "plots")]
#[cfg_attr(docsrs, doc(cfg(feature = "plots")))]
pub use charts::{confusion_chart, line_chart, scatter_chart};

/// Whether this build draws charts (the `plots` feature).
pub const CHARTS: bool = cfg!(feature = "plots");

/// The line `report.md` carries in place of its charts when they are not drawn.
pub(crate) const NO_CHARTS: &str =
    "Charts are not drawn: this build of sits-tasks lacks its `plots` feature.";

/// Errors of the report helpers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The input cannot be drawn (empty, mismatched lengths, non-finite range).
    #[error("{0}")]
    Input(String),
    /// plotters failed while drawing.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The chart being drawn.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
    /// Writing the PNG failed.
    #[error("writing {path}: {message}")]
    Write {
        /// The PNG file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Result of the report helpers.
pub type Result<T> = std::result::Result<T, ReportError>;

/// Writes `bytes` to `path` through a temporary file in the same folder and a
/// rename, so a crash never leaves a half-written file in place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sits_core::io::write_atomic(path, bytes).map_err(|e| ReportError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A Markdown table from a header and rows of cells.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n", header.join(" | "));
    s.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_table_has_a_separator_row() {
        let t = markdown_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n| --- | --- |\n| 1 | 2 |\n");
    }
}
