//! Loaders by name for the real datasets bundled with the repository (`data/`), in the
//! spirit of torchgeo's dataset classes. Each reads the generic layout its folder
//! uses ([`SampleSet::read_folder`] or [`CubeFolder::read`]) and adds what is
//! specific to that dataset.
//!
//! | loader | folder | content |
//! | --- | --- | --- |
//! | [`mato_grosso`] | `mato_grosso_mod13q1/` | 2115 MODIS pixel series x 23 dates x 6 bands, 9 classes |
//! | [`DtwsatCube`] | `dtwsat_mato_grosso_mod13q1_cube/` | MODIS cube 137 x 6 x 27 x 37, 603 labelled pixel-years |
//! | [`SloveniaNdvi`] | `eolearn_slovenia_s2_ndvi/` | Sentinel-2 NDVI cube 68 x 1 x 101 x 100 with clouds, land cover, parcels |
//!
//! The datasets live in the repository's `data/` folder, not in the published crates
//! (their licences differ from the code's). [`data_dir`] finds that folder: a path
//! you give, else the `SITS_DATA` environment variable, else the checkout these
//! crates were built from.
//!
//! ```
//! // needs the repository's data/ folder (a checkout, or SITS_DATA pointing at a copy)
//! use sits_data::datasets;
//! let data = datasets::data_dir(None).unwrap();
//! let set = datasets::mato_grosso(&data.join(datasets::MATO_GROSSO)).unwrap();
//! assert_eq!(set.len(), 2115);
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ndarray::{s, Array2, Array3, Ix3};

use crate::cube::Datacube;
use crate::error::{DataError, Result};
use crate::folder::{layer_2d, CubeFolder, CubePixelSample};
use crate::samples::{SampleSet, Series, Split};

/// Folder names of the bundled datasets inside the data directory.
pub const MATO_GROSSO: &str = "mato_grosso_mod13q1";
/// See [`MATO_GROSSO`].
pub const DTWSAT_CUBE: &str = "dtwsat_mato_grosso_mod13q1_cube";
/// See [`MATO_GROSSO`].
pub const SLOVENIA_NDVI: &str = "eolearn_slovenia_s2_ndvi";

/// The environment variable naming the folder of the bundled datasets.
pub const DATA_ENV: &str = "SITS_DATA";

/// The folder holding the bundled datasets, looked for in this order:
///
/// 1. `explicit`, when given;
/// 2. the folder named by the `SITS_DATA` environment variable, when set;
/// 3. the `data/` folder of the checkout this crate was built from (examples, tests
///    and `cargo install --path` builds; a crate from crates.io has none).
///
/// The first of these that is given decides: a wrong explicit path or `SITS_DATA`
/// is an error, not a reason to fall back to another folder. A folder counts when
/// it holds at least one of the dataset folders ([`MATO_GROSSO`], [`DTWSAT_CUBE`],
/// [`SLOVENIA_NDVI`]). The error names every place tried and why it was not used.
/// Nothing is downloaded.
pub fn data_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    find_data_dir(explicit, std::env::var_os(DATA_ENV), &checkout)
}

/// Why `dir` is not a data folder, or `None` when it is one.
fn not_a_data_dir(dir: &Path) -> Option<String> {
    if !dir.exists() {
        return Some("does not exist".into());
    }
    if !dir.is_dir() {
        return Some("is not a folder".into());
    }
    if [MATO_GROSSO, DTWSAT_CUBE, SLOVENIA_NDVI]
        .iter()
        .any(|d| dir.join(d).is_dir())
    {
        None
    } else {
        Some(format!(
            "holds none of the dataset folders {MATO_GROSSO}, {DTWSAT_CUBE}, {SLOVENIA_NDVI}"
        ))
    }
}

/// [`data_dir`] with the environment and the checkout passed in (for tests).
fn find_data_dir(
    explicit: Option<&Path>,
    env: Option<OsString>,
    checkout: &Path,
) -> Result<PathBuf> {
    let fail = |tried: String| Err(DataError::NoDataDir { tried });
    if let Some(dir) = explicit {
        return match not_a_data_dir(dir) {
            None => Ok(dir.to_path_buf()),
            Some(why) => fail(format!("the path given, {} ({why})", dir.display())),
        };
    }
    let mut tried = vec!["no path given".to_string()];
    match env.filter(|v| !v.is_empty()) {
        Some(v) => {
            let dir = PathBuf::from(v);
            return match not_a_data_dir(&dir) {
                None => Ok(dir),
                Some(why) => {
                    tried.push(format!("{DATA_ENV}={} ({why})", dir.display()));
                    fail(tried.join("; "))
                }
            };
        }
        None => tried.push(format!("{DATA_ENV} (not set)")),
    }
    match not_a_data_dir(checkout) {
        None => Ok(checkout.to_path_buf()),
        Some(why) => {
            tried.push(format!("the checkout's {} ({why})", checkout.display()));
            fail(tried.join("; "))
        }
    }
}

/// The labelled MODIS pixel series of Mato Grosso (`dir` is the dataset folder).
pub fn mato_grosso(dir: &Path) -> Result<SampleSet> {
    SampleSet::read_folder(dir)
}

/// The dtwSat MODIS cube of Mato Grosso with its labelled pixel-years.
#[derive(Debug, Clone)]
pub struct DtwsatCube {
    /// Cube `(137, 6, 27, 37)`; NaN marks the missing values (see [`Datacube::validity`]).
    pub cube: Datacube,
    /// True acquisition day of year of each pixel and composite, `(T, H, W)`.
    pub doy: Array3<i64>,
    /// Labelled pixel-years.
    pub samples: Vec<CubePixelSample>,
    /// Class names by label index.
    pub class_names: Vec<String>,
}

impl DtwsatCube {
    /// Reads the dataset folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let f = CubeFolder::read(dir)?;
        let p = dir.join("doy.npy");
        let doy = f.layer("doy")?.to_i64(&p)?.into_dimensionality::<Ix3>()?;
        let (t, _, h, w) = f.cube.shape();
        if doy.dim() != (t, h, w) {
            return Err(DataError::Shape {
                what: p.display().to_string(),
                expected: format!("(T, H, W) = ({t}, {h}, {w})"),
                got: doy.shape().to_vec(),
            });
        }
        Ok(Self {
            cube: f.cube,
            doy,
            samples: f.samples,
            class_names: f.class_names,
        })
    }

    /// Number of labelled pixel-years per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.class_names.len()];
        for l in self.samples.iter().filter_map(|s| s.label) {
            c[l] += 1;
        }
        c
    }

    /// Every pixel in every complete agricultural year (1 September to 31 August)
    /// that has exactly `dates` composites (23 for MOD13Q1; the 2012-13 year of
    /// this cube has 22 because one composite is missing, so it is skipped): the
    /// series as an unlabelled [`SampleSet`] (ids `r{row}c{col}y{year}`), and for each
    /// series its pixel, year and label when a labelled sample covers it.
    pub fn pixel_years(&self, dates: usize) -> Result<(SampleSet, Vec<PixelYear>)> {
        let years = agricultural_years(self.cube.times(), 9, dates);
        if years.is_empty() {
            return Err(DataError::InvalidValue {
                what: "dtwsat cube".into(),
                reason: format!("no agricultural year has exactly {dates} dates"),
            });
        }
        let (_, _, h, w) = self.cube.shape();
        let mut series = Vec::with_capacity(years.len() * h * w);
        let mut index = Vec::with_capacity(years.len() * h * w);
        let mut ids = Vec::with_capacity(years.len() * h * w);
        for (year, idx) in &years {
            for row in 0..h {
                for col in 0..w {
                    let px = self.cube.pixel_series(row, col)?;
                    let values = px.values.select(ndarray::Axis(0), idx);
                    let valid = idx.iter().map(|&t| px.valid[t]).collect();
                    series.push(Series::new(values, px.times.select(idx), Some(valid))?);
                    let label = self
                        .samples
                        .iter()
                        .find(|s| s.row == row && s.col == col && s.t_start == idx[0])
                        .and_then(|s| s.label);
                    index.push(PixelYear {
                        row,
                        col,
                        year: *year,
                        label,
                    });
                    ids.push(format!("r{row}c{col}y{year}"));
                }
            }
        }
        let set = SampleSet::new(series, self.cube.bands().to_vec(), None, Vec::new(), None)?
            .with_ids(ids)?;
        Ok((set, index))
    }

    /// The labelled pixel-years as a [`SampleSet`] of series (22 or 23 dates each),
    /// with the cube's nominal composite dates and NaN-aware validity.
    pub fn labelled_series(&self) -> Result<SampleSet> {
        let mut series = Vec::with_capacity(self.samples.len());
        let mut labels = Vec::with_capacity(self.samples.len());
        let mut splits = Vec::with_capacity(self.samples.len());
        for s in &self.samples {
            let px = self.cube.pixel_series(s.row, s.col)?;
            let idx: Vec<usize> = (s.t_start..=s.t_end).collect();
            let values = px.values.slice(s![s.t_start..=s.t_end, ..]).to_owned();
            let valid = px.valid[s.t_start..=s.t_end].to_vec();
            series.push(Series::new(values, px.times.select(&idx), Some(valid))?);
            labels.push(s.label.ok_or_else(|| DataError::InvalidValue {
                what: format!("dtwsat sample {}", s.id),
                reason: "no label".into(),
            })?);
            splits.push(s.split.unwrap_or(Split::Train));
        }
        let ids = self.samples.iter().map(|s| s.id.clone()).collect();
        SampleSet::new(
            series,
            self.cube.bands().to_vec(),
            Some(labels),
            self.class_names.clone(),
            Some(splits),
        )?
        .with_ids(ids)
    }
}

/// The date indices of each agricultural year starting on the first of
/// `start_month` (9 = September for Mato Grosso), keeping only the years with
/// exactly `dates` dates; each year is named by the calendar year it starts in.
pub fn agricultural_years(
    times: &sits_core::dates::Timestamps,
    start_month: u32,
    dates: usize,
) -> Vec<(i32, Vec<usize>)> {
    use chrono::Datelike;
    let mut years: Vec<(i32, Vec<usize>)> = Vec::new();
    for (t, d) in times.as_slice().iter().enumerate() {
        let y = if d.month() >= start_month {
            d.year()
        } else {
            d.year() - 1
        };
        match years.last_mut() {
            Some((yy, idx)) if *yy == y => idx.push(t),
            _ => years.push((y, vec![t])),
        }
    }
    years.retain(|(_, idx)| idx.len() == dates);
    years
}

/// One series of [`DtwsatCube::pixel_years`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelYear {
    /// Row of the pixel.
    pub row: usize,
    /// Column of the pixel.
    pub col: usize,
    /// Calendar year in which the agricultural year starts (September).
    pub year: i32,
    /// Class of the labelled sample covering this pixel and year, if any.
    pub label: Option<usize>,
}

/// The eo-learn Sentinel-2 NDVI cube of Slovenia with cloud masks and labels.
#[derive(Debug, Clone)]
pub struct SloveniaNdvi {
    /// Cube `(68, 1, 101, 100)`, validity = not cloudy.
    pub cube: Datacube,
    /// Land-cover class id per pixel `(H, W)` (0 = unlabelled).
    pub lulc: Array2<i64>,
    /// Reference polygon id per pixel `(H, W)`.
    pub parcel_id: Array2<i64>,
    /// 0 = unlabelled, 1 = train, 2 = test, per pixel `(H, W)`.
    pub split: Array2<i64>,
    /// Class names by class id (ids 5..7 are unused and have empty names).
    pub class_names: Vec<String>,
}

impl SloveniaNdvi {
    /// Reads the dataset folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let f = CubeFolder::read(dir)?;
        if f.cube.valid_mask().is_none() {
            return Err(DataError::field(
                &dir.join("metadata.json"),
                "files",
                "cloud_mask.npy (T, H, W) is missing",
            ));
        }
        if f.class_names.is_empty() {
            return Err(DataError::field(
                &dir.join("metadata.json"),
                "classes",
                "missing: lulc.npy holds class ids, and metadata.json must name them \
                 (`classes`: a list, or an object of id -> name)",
            ));
        }
        let lulc = layer_2d(&f, "lulc")?;
        if let Some(bad) = lulc
            .iter()
            .find(|&&c| c < 0 || c as usize >= f.class_names.len())
        {
            return Err(DataError::InvalidValue {
                what: format!("{}", dir.join("lulc.npy").display()),
                reason: format!("class id {bad} has no name in metadata.json `classes`"),
            });
        }
        Ok(Self {
            parcel_id: layer_2d(&f, "parcel_id")?,
            split: layer_2d(&f, "split")?,
            lulc,
            cube: f.cube,
            class_names: f.class_names,
        })
    }

    /// Pixel count of each class id.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.class_names.len()];
        for &l in &self.lulc {
            c[l as usize] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data_like(root: &Path) -> PathBuf {
        let d = root.join("data");
        std::fs::create_dir_all(d.join(SLOVENIA_NDVI)).unwrap();
        d
    }

    #[test]
    fn the_data_folder_is_found_in_order_and_a_wrong_choice_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let good = data_like(tmp.path());
        let other = tmp.path().join("other");
        std::fs::create_dir_all(other.join(MATO_GROSSO)).unwrap();
        let missing = tmp.path().join("missing");
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();

        // explicit first, then the variable, then the checkout
        let env = Some(OsString::from(&other));
        assert_eq!(
            find_data_dir(Some(&good), env.clone(), &missing).unwrap(),
            good
        );
        assert_eq!(find_data_dir(None, env, &good).unwrap(), other);
        assert_eq!(find_data_dir(None, None, &good).unwrap(), good);
        assert_eq!(find_data_dir(None, Some("".into()), &good).unwrap(), good);

        // a wrong explicit path does not fall back, and says why
        let e = find_data_dir(Some(&missing), None, &good)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing (does not exist)") && e.contains("SITS_DATA"),
            "{e}"
        );
        // a wrong variable does not fall back either
        let e = find_data_dir(None, Some(empty.clone().into()), &good)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SITS_DATA=") && e.contains("holds none"), "{e}");
        // nothing given and no checkout: all three places are named
        let e = find_data_dir(None, None, &missing).unwrap_err().to_string();
        assert!(
            e.contains("no path given")
                && e.contains("SITS_DATA (not set)")
                && e.contains("checkout"),
            "{e}"
        );
    }

    #[test]
    fn the_checkout_holds_the_data_when_tests_run_in_the_repository() {
        // tests run from the repository, whose data/ folder is the checkout's
        if std::env::var_os(DATA_ENV).is_none() {
            let d = data_dir(None).unwrap();
            assert!(d.join(MATO_GROSSO).is_dir(), "{}", d.display());
        }
    }
}
