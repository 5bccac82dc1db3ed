//! Every map a job makes is written three ways: as PNG images for eyes (one per
//! layer, and a panel of all layers), as a GeoTIFF for a GIS (one band per layer, on
//! the input's grid: its CRS and geotransform, NaN as nodata; GDAL and QGIS place it
//! on the map) and as a Zarr cube for programs (one band, one date per layer, NaN
//! where there is no value, the CRS and geotransform in its attributes), readable by
//! every reader of this library and by xarray.

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, Axis};
use sits_core::dates::Timestamps;
use sits_core::io::IfExists;
use sits_data::geotiff::write::{write_geotiff, WriteOptions};
use sits_data::zarr::{write_cube, CubeChunks};
use sits_data::Datacube;
use sits_repr::render::{Colormap, RgbImage};

use crate::error::Result;

/// How the values of a map are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// Class or cluster numbers (a colour per number; NaN is left black).
    Categorical,
    /// A continuous score (viridis over the layer's range).
    Continuous,
}

/// Layers of one map: `(layers, height, width)` values, NaN where there is none.
#[derive(Debug, Clone)]
pub struct MapStack {
    /// File stem of the outputs (`clusters`, `changes`...).
    pub name: String,
    /// Band name in the Zarr store (`cluster`, `change_score`...).
    pub band: String,
    /// Label of each layer in file names (a period, a pair of periods).
    pub labels: Vec<String>,
    /// Date of each layer in the Zarr store (strictly increasing).
    pub times: Timestamps,
    /// The values.
    pub values: Array3<f32>,
    /// How to draw them.
    pub kind: MapKind,
    /// The grid's georeference (the input's), when it has one.
    pub geo: Option<sits_data::GeoInfo>,
}

/// The PNG magnification of a map `h` x `w`: small cubes are drawn larger.
pub fn png_scale(h: usize, w: usize) -> usize {
    (256 / h.max(w).max(1)).clamp(1, 8)
}

fn image(layer: ndarray::ArrayView2<'_, f32>, kind: MapKind, scale: usize) -> RgbImage {
    match kind {
        MapKind::Categorical => {
            let l = layer.mapv(|v| if v.is_finite() { v as i64 } else { -1 });
            RgbImage::from_labels(l.view()).upscale(scale)
        }
        MapKind::Continuous => RgbImage::from_array(layer, Colormap::Viridis, None).upscale(scale),
    }
}

/// Writes `map` into `dir`: `{name}_{label}.png` per layer, `{name}.png` with every
/// layer side by side, the GeoTIFF `{name}.tif` (Cloud-Optimized, a band per layer
/// named by its label) and the Zarr store `{name}.zarr`. Returns the paths written.
/// Existing outputs are replaced only with [`IfExists::Replace`].
pub fn write_map(dir: &Path, map: &MapStack, if_exists: IfExists) -> Result<Vec<PathBuf>> {
    let (n, h, w) = map.values.dim();
    let scale = png_scale(h, w);
    let mut written = Vec::with_capacity(n + 2);
    let mut images = Vec::with_capacity(n);
    for (layer, label) in map.values.axis_iter(Axis(0)).zip(&map.labels) {
        let img = image(layer, map.kind, scale);
        let p = dir.join(format!("{}_{label}.png", map.name));
        check(&p, if_exists)?;
        img.write_png(&p)?;
        written.push(p);
        images.push(img);
    }
    let panel = dir.join(format!("{}.png", map.name));
    check(&panel, if_exists)?;
    RgbImage::hstack(&images, 6).write_png(&panel)?;
    written.push(panel);
    let tif = dir.join(format!("{}.tif", map.name));
    check(&tif, if_exists)?;
    let options = WriteOptions {
        tile: 256,
        cog: true,
        band_names: map.labels.clone(),
    };
    write_geotiff(
        &tif,
        map.values.view(),
        map.geo.as_ref(),
        Some(f64::NAN),
        &options,
    )?;
    written.push(tif);
    let values: Array4<f32> = map.values.clone().insert_axis(Axis(1));
    let cube =
        Datacube::new(values, map.times.clone(), vec![map.band.clone()])?.with_geo(map.geo.clone());
    let zarr = dir.join(format!("{}.zarr", map.name));
    let chunks = CubeChunks {
        t: 1,
        c: 1,
        y: h.clamp(1, 512),
        x: w.clamp(1, 512),
    };
    write_cube(&cube, &zarr, chunks, if_exists)?;
    written.push(zarr);
    Ok(written)
}

fn check(path: &Path, if_exists: IfExists) -> Result<()> {
    Ok(sits_data::io_util::check_file_output(path, if_exists)?)
}
