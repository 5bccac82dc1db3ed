//! Conversions between layouts: a sample-table folder to a sample-set Zarr store, a
//! cube folder or one PASTIS patch to a cube Zarr store, a cube Zarr store to a
//! cube folder. The `sits convert` command.

use std::path::Path;

use sits_core::io::IfExists;
use sits_data::folder::write_cube_folder;
use sits_data::io_util::check_output_outside_input;
use sits_data::open::{open_with, Opened};
use sits_data::rasters::RasterFolderOptions;
use sits_data::zarr::{write_cube, write_samples, CubeChunks};

use crate::error::{Result, TaskError};

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// `"sample set"` or `"cube"`.
    pub kind: &'static str,
    /// Series (sample sets) or `T x C x H x W` values (cubes) written.
    pub values: usize,
    /// The layout written.
    pub to: &'static str,
    /// Layers of the input that have no place in the output, by name.
    pub not_converted: Vec<String>,
}

/// Converts `input` to `output`: a Zarr store unless the input is a Zarr cube, which
/// becomes a cube folder. `patch` picks a PASTIS patch. Nothing is read before the
/// output is checked against the input.
pub fn convert(
    input: &Path,
    output: &Path,
    patch: Option<u64>,
    if_exists: IfExists,
) -> Result<Converted> {
    convert_with(
        input,
        output,
        patch,
        if_exists,
        &RasterFolderOptions::default(),
    )
}

/// [`convert`], with the naming, bands and cloud layer of a folder of GeoTIFFs.
pub fn convert_with(
    input: &Path,
    output: &Path,
    patch: Option<u64>,
    if_exists: IfExists,
    rasters: &RasterFolderOptions,
) -> Result<Converted> {
    check_output_outside_input(input, output)?;
    Ok(match open_with(input, rasters)? {
        Opened::Samples(set) => {
            write_samples(&set, output, if_exists)?;
            Converted {
                kind: "sample set",
                values: set.len(),
                to: "Zarr store",
                not_converted: Vec::new(),
            }
        }
        Opened::Cube(f) => {
            write_cube(&f.cube, output, CubeChunks::default(), if_exists)?;
            let (t, c, h, w) = f.cube.shape();
            Converted {
                kind: "cube",
                values: t * c * h * w,
                to: "Zarr store",
                not_converted: f
                    .layers
                    .keys()
                    .filter(|k| !(k.contains("cloud") || k.contains("valid")))
                    .cloned()
                    .collect(),
            }
        }
        Opened::ZarrCube(z) => {
            let cube = z.read_all()?;
            write_cube_folder(&cube, output, if_exists)?;
            let (t, c, h, w) = cube.shape();
            Converted {
                kind: "cube",
                values: t * c * h * w,
                to: "cube folder",
                not_converted: Vec::new(),
            }
        }
        Opened::Stac(cube) => cube_to_zarr(&cube, output, if_exists)?,
        Opened::Rasters(r) => cube_to_zarr(&r.read_all()?, output, if_exists)?,
        Opened::Pastis(_) => {
            let crate::input::Input::Cube { cube, .. } = crate::input::read_cube(input, patch)?
            else {
                return Err(TaskError::input(input.display(), "not a cube"));
            };
            cube_to_zarr(&cube, output, if_exists)?
        }
    })
}

/// Writes `cube` as a Zarr store at `output` (default chunks).
fn cube_to_zarr(
    cube: &sits_data::Datacube,
    output: &Path,
    if_exists: IfExists,
) -> Result<Converted> {
    write_cube(cube, output, CubeChunks::default(), if_exists)?;
    let (t, c, h, w) = cube.shape();
    Ok(Converted {
        kind: "cube",
        values: t * c * h * w,
        to: "Zarr store",
        not_converted: Vec::new(),
    })
}
