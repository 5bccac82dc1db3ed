//! Opening any supported folder or store by looking at what it contains.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::folder::CubeFolder;
use crate::pastis::Pastis;
use crate::samples::SampleSet;
use zarrs::filesystem::FilesystemStore;

use crate::zarr::{self, ZarrContent, ZarrCube};

/// What [`open`] found.
#[derive(Debug)]
pub enum Opened {
    /// A sample-table folder (`samples.csv` + `timeseries.csv`) or a sample-set Zarr
    /// store.
    Samples(Box<SampleSet>),
    /// A cube folder (`metadata.json` + `.npy` arrays).
    Cube(Box<CubeFolder>),
    /// A cube Zarr store (opened; read windows on demand).
    ZarrCube(Box<ZarrCube<FilesystemStore>>),
    /// A PASTIS-layout folder.
    Pastis(Pastis),
}

/// Detects the layout of `path` and opens it:
/// a Zarr store (`zarr.json` or `.zgroup`), a PASTIS folder (`metadata.geojson`), a
/// sample-table folder (`timeseries.csv`) or a cube folder (`metadata.json`).
pub fn open(path: &Path) -> Result<Opened> {
    if !path.is_dir() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder or Zarr store"),
        ));
    }
    let has = |f: &str| path.join(f).exists();
    if has("zarr.json") || has(".zgroup") {
        Ok(match zarr::open_path(path)? {
            ZarrContent::Cube(z) => Opened::ZarrCube(z),
            ZarrContent::Samples(s) => Opened::Samples(Box::new(s)),
        })
    } else if has("metadata.geojson") {
        Ok(Opened::Pastis(Pastis::open(path)?))
    } else if has("timeseries.csv") {
        Ok(Opened::Samples(Box::new(SampleSet::read_folder(path)?)))
    } else if has("metadata.json") {
        Ok(Opened::Cube(Box::new(CubeFolder::read(path)?)))
    } else {
        Err(DataError::field(
            path,
            "layout",
            "not a Zarr store, PASTIS folder, sample-table folder or cube folder \
             (expected zarr.json/.zgroup, metadata.geojson, timeseries.csv or metadata.json)",
        ))
    }
}
