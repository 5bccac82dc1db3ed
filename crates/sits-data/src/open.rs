//! Opening any supported folder or store by looking at what it contains.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::folder::CubeFolder;
use crate::pastis::Pastis;
use crate::rasters::{RasterFolder, RasterFolderOptions};
use crate::samples::SampleSet;

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
    ZarrCube(Box<ZarrCube<crate::zarr::DynStore>>),
    /// A PASTIS-layout folder.
    Pastis(Pastis),
    /// A folder of single-band GeoTIFFs, one per band and date (scanned, checked;
    /// read windows on demand).
    Rasters(Box<RasterFolder>),
    /// A STAC ItemCollection, read as a cube on one grid.
    Stac(Box<crate::Datacube>),
}

/// The layout of a folder, told from the names of the files in it (nothing is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A Zarr store (`zarr.json` or `.zgroup`): a cube or a sample set.
    Zarr,
    /// A PASTIS folder (`metadata.geojson`).
    Pastis,
    /// A sample-table folder (`timeseries.csv`).
    SampleTable,
    /// A cube folder (`metadata.json` and `.npy` arrays, no `timeseries.csv`).
    CubeFolder,
    /// A folder of GeoTIFF files (`.tif`, `.tiff`), one per band and date.
    RasterFolder,
    /// A STAC ItemCollection (a `.json` file or object).
    Stac,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Zarr => "a Zarr store",
            Self::Pastis => "a PASTIS folder",
            Self::SampleTable => "a sample-table folder",
            Self::CubeFolder => "a cube folder",
            Self::RasterFolder => "a folder of GeoTIFF rasters",
            Self::Stac => "a STAC ItemCollection",
        })
    }
}

/// Tells the layout of `path` without reading its data. A path that cannot be looked
/// at (missing, not a folder, no permission) is an error naming it and the cause, not
/// "unknown layout". An object-storage URL (`s3://...`, see
/// [`zarr::store`]) can only be a Zarr store.
pub fn detect(path: &Path) -> Result<Layout> {
    let json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json {
        return Ok(Layout::Stac);
    }
    if zarr::is_remote(path) {
        return Ok(Layout::Zarr);
    }
    crate::io_util::listable_dir(
        path,
        "a sample-table folder, a cube folder, a PASTIS folder, a Zarr store or a folder of \
         GeoTIFFs",
    )?;
    let has = |f: &str| -> Result<bool> {
        let p = path.join(f);
        p.try_exists().map_err(|e| DataError::io(&p, e))
    };
    Ok(if has("zarr.json")? || has(".zgroup")? {
        Layout::Zarr
    } else if has("metadata.geojson")? {
        Layout::Pastis
    } else if has("timeseries.csv")? {
        Layout::SampleTable
    } else if has("metadata.json")? {
        Layout::CubeFolder
    } else if crate::rasters::has_rasters(path)? {
        Layout::RasterFolder
    } else {
        return Err(DataError::field(
            path,
            "layout",
            "not a Zarr store, PASTIS folder, sample-table folder, cube folder or folder \
             of GeoTIFFs (expected zarr.json/.zgroup, metadata.geojson, timeseries.csv, \
             metadata.json or .tif files)",
        ));
    })
}

/// Detects the layout of `path` (see [`detect`]) and opens it.
pub fn open(path: &Path) -> Result<Opened> {
    open_with(path, &RasterFolderOptions::default())
}

/// [`open`], with the naming, bands and cloud layer of a raster folder.
pub fn open_with(path: &Path, rasters: &RasterFolderOptions) -> Result<Opened> {
    Ok(match detect(path)? {
        Layout::Zarr => match zarr::open_path(path)? {
            ZarrContent::Cube(z) => Opened::ZarrCube(z),
            ZarrContent::Samples(s) => Opened::Samples(Box::new(s)),
        },
        Layout::Pastis => Opened::Pastis(Pastis::open(path)?),
        Layout::SampleTable => Opened::Samples(Box::new(SampleSet::read_folder(path)?)),
        Layout::CubeFolder => Opened::Cube(Box::new(CubeFolder::read(path)?)),
        Layout::RasterFolder => Opened::Rasters(Box::new(RasterFolder::scan(path, rasters)?)),
        Layout::Stac => {
            let o = crate::stac::StacCubeOptions::from_rasters(path, rasters)?;
            Opened::Stac(Box::new(crate::stac::stac_cube(path, &o)?))
        }
    })
}

/// Opens a labelled or unlabelled sample set: a sample-table folder or a sample-set
/// Zarr store. Any other layout is an error that says what `path` is instead.
pub fn open_samples(path: &Path) -> Result<SampleSet> {
    let refuse = |what: &str| {
        Err(DataError::field(
            path,
            "layout",
            format!(
                "this is {what}, not a sample set (pixel series with dates); give a \
                 sample-table folder (metadata.json, samples.csv, timeseries.csv) or a \
                 sample-set Zarr store (see docs/data-formats.md)"
            ),
        ))
    };
    match detect(path)? {
        Layout::SampleTable => SampleSet::read_folder(path),
        Layout::Zarr => match zarr::open_path(path)? {
            ZarrContent::Samples(s) => Ok(s),
            ZarrContent::Cube(_) => refuse("a datacube Zarr store"),
        },
        other => refuse(&other.to_string()),
    }
}
