//! The cube folder layout: named `.npy` arrays described by a `metadata.json`.
//!
//! ```text
//! metadata.json   {"shape": {"time": T, "band": C, "height": H, "width": W},
//!                  "bands": [..], "dates": ["2015-07-11T10:00:08", ..],
//!                  "files": {"cube.npy": {"shape": [T, C, H, W], ..}, "doy.npy": {..}, ..},
//!                  "grid": {"crs" | "crs_wkt": .., "geotransform_gdal": [6 numbers]},
//!                  "classes": [..] | {"id": name}, optional "scale", "offset", "nodata"}
//! <values>.npy    (T, C, H, W): the file listed with that shape (cube.npy if there are several)
//! *cloud*.npy     optional (T, H, W) mask, nonzero = cloud (invalid)
//! *valid*.npy     optional (T, H, W) mask, nonzero = valid
//! other .npy      extra layers, kept by name (per-pixel day of year, labels, parcels, splits)
//! samples.csv     optional labelled pixels: id,label_index,row,col,t_start,t_end[,split]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{Array3, Ix3, Ix4};

use crate::cube::{Datacube, GeoInfo, Radiometry};
use crate::error::{DataError, Result};
use crate::io_util::read_json;
use crate::npy::{read_npy, read_npy_header, NpyArray};
use crate::samples::{metadata_bands, metadata_classes, read_sample_table, Split};
use sits_core::dates::Timestamps;

/// A labelled pixel of a cube over a range of dates.
#[derive(Debug, Clone, PartialEq)]
pub struct CubePixelSample {
    /// Identifier from the table.
    pub id: String,
    /// Row of the pixel.
    pub row: usize,
    /// Column of the pixel.
    pub col: usize,
    /// First date index (inclusive).
    pub t_start: usize,
    /// Last date index (inclusive).
    pub t_end: usize,
    /// Class index, if labelled.
    pub label: Option<usize>,
    /// Evaluation split, if given.
    pub split: Option<Split>,
}

/// Everything read from a cube folder.
#[derive(Debug, Clone)]
pub struct CubeFolder {
    /// The folder.
    pub path: PathBuf,
    /// The datacube (with the validity mask when the folder has one).
    pub cube: Datacube,
    /// Other arrays of the folder by file stem (`doy`, `lulc`, `parcel_id`, `split`...).
    pub layers: BTreeMap<String, NpyArray>,
    /// Class names by class id (empty names for unused ids).
    pub class_names: Vec<String>,
    /// Labelled pixels from `samples.csv`, if present.
    pub samples: Vec<CubePixelSample>,
    /// The parsed `metadata.json`.
    pub metadata: serde_json::Value,
}

impl CubeFolder {
    /// Reads a cube folder (see the module docs).
    pub fn read(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("metadata.json");
        let meta = read_json(&meta_path)?;
        let bands = metadata_bands(&meta_path, &meta)?;
        let class_names = metadata_classes(&meta_path, &meta)?;
        let dates: Vec<String> = meta
            .get("dates")
            .and_then(|d| d.as_array())
            .ok_or_else(|| DataError::field(&meta_path, "dates", "missing or not a list"))?
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.as_str().map(str::to_string).ok_or_else(|| {
                    DataError::field(&meta_path, &format!("dates[{i}]"), "expected a string")
                })
            })
            .collect::<Result<_>>()?;
        let times = Timestamps::parse(&dates, &format!("{} field `dates`", meta_path.display()))?;

        // every .npy listed (or present), with its real header
        let mut names: Vec<String> = match meta.get("files").and_then(|f| f.as_object()) {
            Some(files) => files
                .keys()
                .filter(|k| k.ends_with(".npy"))
                .cloned()
                .collect(),
            None => list_npy(dir)?,
        };
        names.sort();
        for name in &names {
            confined(&meta_path, name)?;
        }
        let mut headers = Vec::new();
        for name in &names {
            let p = dir.join(name);
            let h = read_npy_header(&p)?;
            if let Some(claimed) = meta
                .get("files")
                .and_then(|f| f.get(name))
                .and_then(|f| f.get("shape"))
                .and_then(|s| s.as_array())
            {
                let claimed: Vec<usize> = claimed
                    .iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as usize)
                    .collect();
                if claimed != h.shape {
                    return Err(DataError::Shape {
                        what: format!("{} (metadata.json says {claimed:?})", p.display()),
                        expected: format!("{claimed:?}"),
                        got: h.shape.clone(),
                    });
                }
            }
            headers.push((name.clone(), h));
        }
        let four_d: Vec<&(String, _)> =
            headers.iter().filter(|(_, h)| h.shape.len() == 4).collect();
        let values_name = match four_d.as_slice() {
            [] => {
                return Err(DataError::field(
                    &meta_path,
                    "files",
                    "no (T, C, H, W) .npy array in the folder",
                ))
            }
            [one] => one.0.clone(),
            many => many
                .iter()
                .find(|(n, _)| n == "cube.npy")
                .map(|(n, _)| n.clone())
                .ok_or_else(|| {
                    DataError::field(
                        &meta_path,
                        "files",
                        "several 4-D arrays and none is cube.npy",
                    )
                })?,
        };
        let values_path = dir.join(&values_name);
        let values = read_npy(&values_path)?
            .to_f32()
            .into_dimensionality::<Ix4>()?;
        if let Some((idx, v)) = values.indexed_iter().find(|(_, v)| v.is_infinite()) {
            return Err(DataError::InvalidValue {
                what: format!("{} at (t, c, y, x) = {idx:?}", values_path.display()),
                reason: format!(
                    "{v} is not a measurement; store missing values as NaN or declare a \
                     `nodata` value in metadata.json"
                ),
            });
        }
        let (t, c, h, w) = values.dim();
        if let Some(shape) = meta.get("shape") {
            let get = |k: &str| shape.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
            let claimed = [get("time"), get("band"), get("height"), get("width")];
            if claimed
                .iter()
                .zip([t, c, h, w])
                .any(|(a, b)| a.is_some_and(|a| a != b))
            {
                return Err(DataError::Shape {
                    what: format!(
                        "{} (metadata.json `shape` says {claimed:?})",
                        values_path.display()
                    ),
                    expected: "the shape in metadata.json".into(),
                    got: vec![t, c, h, w],
                });
            }
        }
        if times.len() != t {
            return Err(DataError::Dates {
                what: format!("{}", meta_path.display()),
                reason: format!(
                    "{} dates but {} has T = {t}",
                    times.len(),
                    values_path.display()
                ),
            });
        }
        let radiometry = Radiometry {
            scale: meta.get("scale").and_then(|v| v.as_f64()).unwrap_or(1.0) as f32,
            offset: meta.get("offset").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32,
        };
        let nodata = meta
            .get("nodata")
            .and_then(|v| v.as_f64())
            .map(|v| v as f32);
        let mut cube = Datacube::new(values, times, bands)?
            .with_radiometry(radiometry)
            .with_nodata(nodata)
            .with_geo(read_geo(&meta));

        let mut layers = BTreeMap::new();
        for (name, hdr) in &headers {
            if *name == values_name {
                continue;
            }
            let p = dir.join(name);
            let arr = read_npy(&p)?;
            let lower = name.to_ascii_lowercase();
            let is_mask =
                hdr.shape == [t, h, w] && (lower.contains("cloud") || lower.contains("valid"));
            if is_mask && cube.valid_mask().is_none() {
                let m = arr.to_i64(&p)?.into_dimensionality::<Ix3>()?;
                let valid: Array3<bool> = if lower.contains("cloud") {
                    m.mapv(|v| v == 0)
                } else {
                    m.mapv(|v| v != 0)
                };
                cube = cube.with_valid(valid)?;
            }
            let stem = name.trim_end_matches(".npy").to_string();
            layers.insert(stem, arr);
        }

        let samples_path = dir.join("samples.csv");
        let samples = if samples_path.exists() {
            read_pixel_samples(&samples_path, &class_names, &cube)?
        } else {
            Vec::new()
        };
        Ok(Self {
            path: dir.to_path_buf(),
            cube,
            layers,
            class_names,
            samples,
            metadata: meta,
        })
    }

    /// A layer converted to f32 with its shape checked.
    pub fn layer(&self, name: &str) -> Result<&NpyArray> {
        self.layers.get(name).ok_or_else(|| {
            DataError::field(
                &self.path.join("metadata.json"),
                "files",
                format!(
                    "no layer `{name}`; layers: {:?}",
                    self.layers.keys().collect::<Vec<_>>()
                ),
            )
        })
    }
}

/// Checks that a file named in `metadata.json` stays inside the folder: a plain
/// relative path without `..`, so that a metadata file cannot make the reader open
/// files elsewhere on the machine.
fn confined(meta_path: &Path, name: &str) -> Result<()> {
    use std::path::Component;
    let p = Path::new(name);
    let inside =
        p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)));
    if inside {
        Ok(())
    } else {
        Err(DataError::field(
            meta_path,
            "files",
            format!(
                "{name:?} is not a file inside the folder; list files by their name \
                 relative to the folder, without `..` or a leading `/`"
            ),
        ))
    }
}

/// Pixel counts of the values of an integer layer (labels, parcels), by value.
///
/// Returns the counts of the non-negative values other than the cube's `nodata`, and
/// the number of pixels that are negative or `nodata` (unlabelled). Counts are kept by
/// value, so a value read from the file (-9999, 4294967295) never sizes an allocation.
pub fn layer_value_counts(
    folder: &CubeFolder,
    name: &str,
) -> Result<(BTreeMap<i64, usize>, usize)> {
    let p = folder.path.join(format!("{name}.npy"));
    let ids = folder.layer(name)?.to_i64(&p)?;
    let nodata = folder
        .cube
        .nodata()
        .filter(|v| v.fract() == 0.0)
        .map(|v| v as i64);
    let mut by_id = BTreeMap::new();
    let mut unlabelled = 0usize;
    for &v in ids.iter() {
        if v < 0 || Some(v) == nodata {
            unlabelled += 1;
        } else {
            *by_id.entry(v).or_insert(0usize) += 1;
        }
    }
    Ok((by_id, unlabelled))
}

fn list_npy(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| DataError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".npy") {
            out.push(name);
        }
    }
    Ok(out)
}

pub(crate) fn read_geo(meta: &serde_json::Value) -> Option<GeoInfo> {
    let grid = meta.get("grid")?;
    // `crs` when it is an EPSG code or a PROJ string (what the GeoTIFF writer and
    // the projections take), else the WKT
    let text = |k: &str| grid.get(k).and_then(|c| c.as_str());
    let usable = |c: &&str| crate::geo::epsg_code(c).is_some() || c.trim_start().starts_with('+');
    let crs = text("crs")
        .filter(usable)
        .or_else(|| text("crs_wkt"))
        .or_else(|| text("crs"))
        .unwrap_or("")
        .to_string();
    let gt = grid
        .get("geotransform_gdal")
        .or_else(|| grid.get("geotransform"))?
        .as_array()?;
    let v: Vec<f64> = gt.iter().filter_map(|x| x.as_f64()).collect();
    let transform: [f64; 6] = v.try_into().ok()?;
    Some(GeoInfo { crs, transform })
}

fn read_pixel_samples(
    path: &Path,
    class_names: &[String],
    cube: &Datacube,
) -> Result<Vec<CubePixelSample>> {
    let st = read_sample_table(path, class_names)?;
    let tb = &st.table;
    let (rc, cc) = (tb.require("row")?, tb.require("col")?);
    let (ts, te) = (tb.column("t_start"), tb.column("t_end"));
    let (t, _, h, w) = cube.shape();
    let mut out = Vec::with_capacity(tb.rows.len());
    for line in 0..tb.rows.len() {
        let row: usize = tb.parse(line, rc, "a row index")?;
        let col: usize = tb.parse(line, cc, "a column index")?;
        let t_start: usize = match ts {
            Some(c) => tb.parse(line, c, "a date index")?,
            None => 0,
        };
        let t_end: usize = match te {
            Some(c) => tb.parse(line, c, "a date index")?,
            None => t - 1,
        };
        if row >= h || col >= w || t_start > t_end || t_end >= t {
            return Err(DataError::OutOfBounds {
                what: format!(
                    "{} line {}: pixel ({row}, {col}) dates {t_start}..={t_end}",
                    path.display(),
                    line + 2
                ),
                reason: format!("the cube is {t} dates x {h} rows x {w} columns"),
            });
        }
        out.push(CubePixelSample {
            id: st.ids[line].clone(),
            row,
            col,
            t_start,
            t_end,
            label: st.labels.as_ref().map(|l| l[line]),
            split: st.splits.as_ref().map(|s| s[line]),
        });
    }
    Ok(out)
}

/// Converts an integer layer `(H, W)` to i64, checking its shape.
pub(crate) fn layer_2d(folder: &CubeFolder, name: &str) -> Result<ndarray::Array2<i64>> {
    let arr = folder.layer(name)?;
    let p = folder.path.join(format!("{name}.npy"));
    let (_, _, h, w) = folder.cube.shape();
    let a = arr.to_i64(&p)?;
    if a.shape() != [h, w] {
        return Err(DataError::Shape {
            what: format!("{}", p.display()),
            expected: format!("(H, W) = ({h}, {w})"),
            got: a.shape().to_vec(),
        });
    }
    Ok(a.into_dimensionality()?)
}

/// Writes `cube` as a cube folder at `dir` (the layout of the module docs:
/// `metadata.json`, `cube.npy` and, when the cube has a validity mask, `valid.npy`),
/// readable by [`CubeFolder::read`]. `dir` must not exist, or be an empty folder;
/// with [`IfExists::Replace`] a cube folder (one holding `metadata.json`) may be
/// written over, file by file (each file is replaced atomically).
///
/// [`IfExists::Replace`]: sits_core::io::IfExists::Replace
pub fn write_cube_folder(
    cube: &Datacube,
    dir: &Path,
    if_exists: sits_core::io::IfExists,
) -> Result<()> {
    use sits_core::io::IfExists;
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| DataError::io(dir, e))?
            .next()
            .is_none();
        let is_cube = dir.join("metadata.json").is_file();
        let replaceable = is_cube && if_exists == IfExists::Replace;
        if !(empty || replaceable) {
            return Err(DataError::Exists {
                path: dir.to_path_buf(),
                reason: if is_cube {
                    "a cube folder is already here; choose another output or ask to \
                     overwrite it"
                        .into()
                } else {
                    "this folder is not empty and is not a cube folder; choose another output"
                        .into()
                },
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let (t, c, h, w) = cube.shape();
    let r = cube.radiometry();
    let mut files = serde_json::Map::new();
    files.insert(
        "cube.npy".into(),
        serde_json::json!({ "shape": [t, c, h, w] }),
    );
    if cube.valid_mask().is_some() {
        files.insert(
            "valid.npy".into(),
            serde_json::json!({ "shape": [t, h, w] }),
        );
    }
    let mut meta = serde_json::json!({
        "shape": {"time": t, "band": c, "height": h, "width": w},
        "bands": cube.bands().iter().map(|b| serde_json::json!({"name": b})).collect::<Vec<_>>(),
        "dates": cube.times().to_iso(),
        "files": files,
        "scale": r.scale,
        "offset": r.offset,
    });
    if let Some(nd) = cube.nodata() {
        meta["nodata"] = serde_json::json!(nd);
    }
    if let Some(g) = cube.geo() {
        meta["grid"] = serde_json::json!({"crs": g.crs, "geotransform_gdal": g.transform});
    }
    let replace = IfExists::Replace;
    crate::npy::write_npy(&dir.join("cube.npy"), &cube.values().into_dyn(), replace)?;
    if let Some(v) = cube.valid_mask() {
        crate::npy::write_npy(&dir.join("valid.npy"), &v.view().into_dyn(), replace)?;
    }
    let text = serde_json::to_string_pretty(&meta)
        .map_err(|e| DataError::field(dir, "metadata.json", e.to_string()))?;
    crate::io_util::write_atomic(&dir.join("metadata.json"), text.as_bytes())
}
