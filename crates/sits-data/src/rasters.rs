//! A folder of single-band GeoTIFFs, one per band and date, read as a [`Datacube`].
//!
//! File names give the band and the date. The default naming is the one the R
//! package sits uses for local cubes, `<satellite>_<sensor>_<tile>_<band>_<date>.tif`
//! (`CBERS-4_AWFI_022024_B13_2018-02-02.tif`); another naming is given as a pattern
//! with `{band}` and `{date}` fields and any other `{name}` matching anything
//! (`"T33UUP_{date}_{band}_10m.tif"`). Dates are `YYYY-MM-DD` or `YYYYMMDD`.
//!
//! Before any pixel is read, [`RasterFolder::scan`] opens every file's header and
//! checks that all lie on one grid (size, geotransform, CRS), that every band exists
//! on every date, and that one tile is present; an error names the file and what
//! differs. A cloud or quality layer becomes the validity mask: by default a layer
//! named `CMASK` (CBERS/Brazil Data Cube: 4 cloud, 255 nodata) or `SCL` (Sentinel-2
//! L2A scene classification: no data, saturated, dark, cloud shadow, cloud medium
//! and high probability, cirrus and snow) is used with its preset, or any layer with
//! the values the user names. Nodata becomes NaN (masked).
//!
//! Windows are read file by file, tiles on demand, so a cube larger than memory is
//! processed block by block ([`RasterFolder::read_window`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use ndarray::{Array3, Array4, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sits_core::dates::Timestamps;

use crate::cube::{Datacube, GeoInfo, Radiometry};
use crate::error::{DataError, Result};
use crate::geotiff::{GeoTiff, Window};

/// The R sits naming of local cube files.
pub const SITS_PATTERN: &str = "{satellite}_{sensor}_{tile}_{band}_{date}";

/// A layer whose values mark unusable observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudMask {
    /// The layer's name in the file names (`CMASK`, `SCL`, `Fmask`...).
    pub band: String,
    /// Values that make a pixel unusable on that date.
    pub invalid: Vec<f64>,
}

impl CloudMask {
    /// The preset for a layer name: `CMASK` (CBERS-4 and Brazil Data Cube cloud
    /// masks: 4 cloud, 255 nodata; 0 clear, 127 no cloud), `SCL` (Sentinel-2 L2A
    /// scene classification: 0 no data, 1 saturated or defective, 2 dark area, 3
    /// cloud shadow, 8 and 9 cloud medium and high probability, 10 thin cirrus, 11
    /// snow; the classes the R package sits masks). `None` for other names.
    pub fn preset(band: &str) -> Option<Self> {
        let invalid: Vec<f64> = match band.to_ascii_uppercase().as_str() {
            "CMASK" => vec![4.0, 255.0],
            "SCL" => vec![0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0],
            _ => return None,
        };
        Some(Self {
            band: band.to_string(),
            invalid,
        })
    }
}

/// How a raster folder is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RasterFolderOptions {
    /// File-name pattern (without the extension); default [`SITS_PATTERN`].
    pub pattern: Option<String>,
    /// Bands to keep, in this order (default: every band but the cloud layer, sorted
    /// by name).
    pub bands: Option<Vec<String>>,
    /// The cloud layer: default a layer named `CMASK` or `SCL` with its
    /// [preset](CloudMask::preset); `Some` with an empty `band` turns masking off.
    pub cloud: Option<CloudMask>,
    /// STAC collections only: the target grid and the items kept (see
    /// [`crate::stac::StacCubeOptions`]; `bands` and `cloud` above apply too).
    #[serde(default)]
    pub stac: crate::stac::StacGrid,
}

/// A scanned raster folder: its grid, bands and dates; pixels are read on demand.
#[derive(Debug, Clone)]
pub struct RasterFolder {
    dir: PathBuf,
    bands: Vec<String>,
    dates: Vec<NaiveDate>,
    times: Timestamps,
    /// `files[t][c]`.
    files: Vec<Vec<PathBuf>>,
    cloud: Option<(CloudMask, Vec<PathBuf>)>,
    height: usize,
    width: usize,
    geo: Option<GeoInfo>,
    /// Per band: nodata, scale, offset.
    band_meta: Vec<(Option<f64>, f64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(String),
}

fn compile(pattern: &str) -> std::result::Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("pattern `{pattern}`: `{{` without `}}`"))?;
                parts.push(Part::Field(rest[1..end].to_string()));
                rest = &rest[end + 1..];
            }
            Some(i) => {
                parts.push(Part::Lit(rest[..i].to_string()));
                rest = &rest[i..];
            }
            None => {
                parts.push(Part::Lit(rest.to_string()));
                rest = "";
            }
        }
    }
    for need in ["band", "date"] {
        if !parts.contains(&Part::Field(need.into())) {
            return Err(format!("pattern `{pattern}` has no {{{need}}} field"));
        }
    }
    Ok(parts)
}

/// Matches `name` against `parts`; fields take the shortest text that lets the rest
/// match, except the last field before the end, which takes what remains.
fn matches(parts: &[Part], name: &str, out: &mut BTreeMap<String, String>) -> bool {
    match parts.split_first() {
        None => name.is_empty(),
        Some((Part::Lit(l), rest)) => name
            .strip_prefix(l.as_str())
            .is_some_and(|r| matches(rest, r, out)),
        Some((Part::Field(f), rest)) => {
            // try the longest text first for the last field, the shortest otherwise
            let ends: Vec<usize> = (1..=name.len())
                .filter(|&i| name.is_char_boundary(i))
                .collect();
            let order: Box<dyn Iterator<Item = &usize>> = if rest.is_empty() {
                Box::new(ends.iter().rev())
            } else {
                Box::new(ends.iter())
            };
            for &i in order {
                if matches(rest, &name[i..], out) {
                    out.insert(f.clone(), name[..i].to_string());
                    return true;
                }
            }
            false
        }
    }
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y%m%d"))
        .ok()
}

fn is_tiff(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"))
}

/// Whether `dir` holds GeoTIFF files (nothing is opened).
pub fn has_rasters(dir: &Path) -> Result<bool> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for e in entries {
        let e = e.map_err(|e| DataError::io(dir, e))?;
        if is_tiff(&e.path()) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl RasterFolder {
    /// Lists `dir`, parses the file names, opens every header and checks the grid,
    /// the bands and the dates (see the module docs). Nothing else is read.
    pub fn scan(dir: &Path, options: &RasterFolderOptions) -> Result<Self> {
        let pattern = options.pattern.as_deref().unwrap_or(SITS_PATTERN);
        let parts = compile(pattern).map_err(DataError::Argument)?;
        crate::io_util::listable_dir(dir, "a folder of GeoTIFF files")?;
        let mut names: Vec<PathBuf> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
            let p = e.map_err(|e| DataError::io(dir, e))?.path();
            if is_tiff(&p) {
                names.push(p);
            }
        }
        names.sort();
        if names.is_empty() {
            return Err(DataError::field(
                dir,
                "files",
                "no .tif or .tiff file in this folder",
            ));
        }
        // band -> date -> file
        let mut table: BTreeMap<String, BTreeMap<NaiveDate, PathBuf>> = BTreeMap::new();
        let mut tiles = BTreeSet::new();
        for p in &names {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let mut fields = BTreeMap::new();
            if !matches(&parts, stem, &mut fields) {
                return Err(DataError::field(
                    p,
                    "name",
                    format!(
                        "does not match the pattern `{pattern}` (give the naming of your \
                         files with a pattern such as `{{tile}}_{{date}}_{{band}}`)"
                    ),
                ));
            }
            let date = parse_date(&fields["date"]).ok_or_else(|| {
                DataError::field(
                    p,
                    "date",
                    format!(
                        "`{}` is not a date (YYYY-MM-DD or YYYYMMDD)",
                        fields["date"]
                    ),
                )
            })?;
            if let Some(t) = fields.get("tile") {
                tiles.insert(t.clone());
            }
            let band = fields["band"].clone();
            if let Some(prev) = table
                .entry(band.clone())
                .or_default()
                .insert(date, p.clone())
            {
                return Err(DataError::field(
                    p,
                    "name",
                    format!("band {band} on {date} is also in {}", prev.display()),
                ));
            }
        }
        if tiles.len() > 1 {
            return Err(DataError::field(
                dir,
                "tile",
                format!(
                    "files of {} tiles ({}): a cube is one tile; put each tile in its own folder",
                    tiles.len(),
                    tiles.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        // the cloud layer
        let cloud = match &options.cloud {
            Some(c) if c.band.is_empty() => None,
            Some(c) => {
                if !table.contains_key(&c.band) {
                    return Err(DataError::field(
                        dir,
                        "cloud band",
                        format!(
                            "no files of the cloud layer `{}` (layers: {})",
                            c.band,
                            table.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                Some(c.clone())
            }
            None => table.keys().find_map(|b| CloudMask::preset(b)),
        };
        let bands: Vec<String> = match &options.bands {
            Some(b) => {
                if let Some(missing) = b.iter().find(|b| !table.contains_key(*b)) {
                    return Err(DataError::UnknownBand {
                        name: missing.clone(),
                        available: table.keys().cloned().collect(),
                    });
                }
                b.clone()
            }
            None => table
                .keys()
                .filter(|b| cloud.as_ref().is_none_or(|c| &c.band != *b))
                .cloned()
                .collect(),
        };
        if bands.is_empty() {
            return Err(DataError::field(
                dir,
                "bands",
                "no band besides the cloud layer",
            ));
        }
        let mut used: Vec<&String> = bands.iter().collect();
        if let Some(c) = &cloud {
            used.push(&c.band);
        }
        let dates: BTreeSet<NaiveDate> = used
            .iter()
            .flat_map(|b| table[*b].keys().copied())
            .collect();
        let mut missing = Vec::new();
        for b in &used {
            for d in &dates {
                if !table[*b].contains_key(d) {
                    missing.push(format!("{b} on {d}"));
                }
            }
        }
        if !missing.is_empty() {
            return Err(DataError::field(
                dir,
                "files",
                format!(
                    "{} band-date file(s) missing: {} (leave an incomplete band out with \
                     the band list)",
                    missing.len(),
                    missing.join(", ")
                ),
            ));
        }
        let dates: Vec<NaiveDate> = dates.into_iter().collect();
        let files: Vec<Vec<PathBuf>> = dates
            .iter()
            .map(|d| bands.iter().map(|b| table[b][d].clone()).collect())
            .collect();
        let cloud = cloud.map(|c| {
            let f = dates.iter().map(|d| table[&c.band][d].clone()).collect();
            (c, f)
        });

        // every header, checked against the first
        let all: Vec<&PathBuf> = files
            .iter()
            .flatten()
            .chain(cloud.iter().flat_map(|(_, f)| f))
            .collect();
        let infos = all
            .par_iter()
            .map(|p| GeoTiff::open(p).map(|t| t.info().clone()))
            .collect::<Result<Vec<_>>>()?;
        let first = &infos[0];
        for (p, info) in all.iter().zip(&infos) {
            let differs = |what: String| {
                DataError::field(
                    p,
                    "grid",
                    format!(
                        "{what}, unlike {} (every file must lie on one grid)",
                        all[0].display()
                    ),
                )
            };
            if info.bands != 1 {
                return Err(DataError::field(
                    p,
                    "bands",
                    format!(
                        "{} bands in one file; a raster folder holds single-band files",
                        info.bands
                    ),
                ));
            }
            if (info.height, info.width) != (first.height, first.width) {
                return Err(differs(format!(
                    "{} x {} pixels instead of {} x {}",
                    info.height, info.width, first.height, first.width
                )));
            }
            match (&info.geo, &first.geo) {
                (Some(a), Some(b)) => {
                    if a.crs != b.crs {
                        return Err(differs(format!("CRS `{}` instead of `{}`", a.crs, b.crs)));
                    }
                    let step = b.transform[1].abs().max(b.transform[5].abs());
                    if a.transform
                        .iter()
                        .zip(&b.transform)
                        .any(|(x, y)| (x - y).abs() > 1e-6 * step.max(1e-12))
                    {
                        return Err(differs(format!(
                            "geotransform {:?} instead of {:?}",
                            a.transform, b.transform
                        )));
                    }
                }
                (None, None) => {}
                (a, _) => {
                    return Err(differs(format!(
                        "{} georeference",
                        if a.is_some() { "a" } else { "no" }
                    )))
                }
            }
        }
        let band_meta = (0..bands.len())
            .map(|c| {
                let i = &infos[c];
                (i.nodata, i.scales[0], i.offsets[0])
            })
            .collect();
        let times = Timestamps::from_dates(&dates, &dir.display().to_string())?;
        Ok(Self {
            dir: dir.to_path_buf(),
            bands,
            times,
            dates,
            files,
            cloud,
            height: first.height,
            width: first.width,
            geo: first.geo.clone(),
            band_meta,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Band names, in cube order.
    pub fn bands(&self) -> &[String] {
        &self.bands
    }

    /// Acquisition dates, sorted.
    pub fn dates(&self) -> &[NaiveDate] {
        &self.dates
    }

    /// Acquisition times (the dates at midnight).
    pub fn times(&self) -> &Timestamps {
        &self.times
    }

    /// `(T, C, H, W)` of the whole cube.
    pub fn shape(&self) -> (usize, usize, usize, usize) {
        (self.dates.len(), self.bands.len(), self.height, self.width)
    }

    /// The grid's georeference.
    pub fn geo(&self) -> Option<&GeoInfo> {
        self.geo.as_ref()
    }

    /// The cloud layer and its invalid values, when one is used.
    pub fn cloud(&self) -> Option<&CloudMask> {
        self.cloud.as_ref().map(|(c, _)| c)
    }

    /// Reads the window `(row, col, height, width)` of every band and date: values
    /// as stored (nodata as NaN), the cloud layer as the validity mask, the
    /// georeference of the window. Files are read in parallel, each only in the
    /// tiles the window touches.
    pub fn read_window(
        &self,
        row: usize,
        col: usize,
        height: usize,
        width: usize,
    ) -> Result<Datacube> {
        let (t, c) = (self.dates.len(), self.bands.len());
        crate::io_util::check_read_size(
            &self.dir.display().to_string(),
            &[t as u64, c as u64, height as u64, width as u64],
            4,
        )?;
        let win = Window::new(row, col, height, width);
        let jobs: Vec<(usize, usize)> = (0..t).flat_map(|i| (0..c).map(move |j| (i, j))).collect();
        let planes = jobs
            .par_iter()
            .map(|&(i, j)| {
                let mut tif = GeoTiff::open(&self.files[i][j])?;
                tif.read_window::<f32>(win)
            })
            .collect::<Result<Vec<Array3<f32>>>>()?;
        // one radiometry for the cube when the bands share it; otherwise each band is
        // scaled here and the cube holds physical values
        let shared = self
            .band_meta
            .iter()
            .all(|m| (m.1, m.2) == (self.band_meta[0].1, self.band_meta[0].2));
        let mut values = Array4::<f32>::zeros((t, c, height, width));
        for ((i, j), plane) in jobs.iter().zip(planes) {
            let (nodata, scale, offset) = self.band_meta[*j];
            let mut dst = values.slice_mut(ndarray::s![*i, *j, .., ..]);
            dst.assign(&plane.index_axis(Axis(0), 0));
            dst.mapv_inplace(|v| {
                if nodata.is_some_and(|n| f64::from(v) == n || (n.is_nan() && v.is_nan())) {
                    f32::NAN
                } else if shared {
                    v
                } else {
                    (f64::from(v) * scale + offset) as f32
                }
            });
        }
        let mut cube = Datacube::new(values, self.times.clone(), self.bands.clone())?
            .with_geo(self.geo.as_ref().map(|g| g.shifted(row, col)));
        if shared {
            cube = cube.with_radiometry(Radiometry {
                scale: self.band_meta[0].1 as f32,
                offset: self.band_meta[0].2 as f32,
            });
        }
        if let Some((mask, files)) = &self.cloud {
            let layers = files
                .par_iter()
                .map(|p| GeoTiff::open(p)?.read_window::<f64>(win))
                .collect::<Result<Vec<_>>>()?;
            let mut valid = Array3::from_elem((t, height, width), true);
            for (i, layer) in layers.iter().enumerate() {
                let mut v = valid.index_axis_mut(Axis(0), i);
                ndarray::Zip::from(&mut v)
                    .and(&layer.index_axis(Axis(0), 0))
                    .for_each(|ok, x| *ok = !mask.invalid.contains(x));
            }
            cube = cube.with_valid(valid)?;
        }
        Ok(cube)
    }

    /// Reads the whole cube (within the read budget).
    pub fn read_all(&self) -> Result<Datacube> {
        self.read_window(0, 0, self.height, self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_patterns() {
        let p = compile(SITS_PATTERN).unwrap();
        let mut f = BTreeMap::new();
        assert!(matches(&p, "CBERS-4_AWFI_022024_B13_2018-02-02", &mut f));
        assert_eq!(
            (f["band"].as_str(), f["date"].as_str(), f["tile"].as_str()),
            ("B13", "2018-02-02", "022024")
        );
        let p = compile("T33UUP_{date}_{band}_10m").unwrap();
        let mut f = BTreeMap::new();
        assert!(matches(&p, "T33UUP_20200101_B04_10m", &mut f));
        assert_eq!(f["band"], "B04");
        assert!(!matches(
            &p,
            "T33UUP_20200101_B04_20m",
            &mut BTreeMap::new()
        ));
        assert!(compile("{tile}_{date}").is_err());
    }
}
