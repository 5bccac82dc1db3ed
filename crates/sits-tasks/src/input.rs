//! Any input of the jobs, read by its layout, and a cube cut into comparable pixel
//! series: one series per pixel and *period* (an agricultural year, a calendar
//! year), every series with the same number of dates.
//!
//! The layout is told from the files (see [`sits_data::open::detect`]): a
//! sample-table folder or sample-set Zarr store gives pixel series; a cube folder, a
//! cube Zarr store or one patch of a PASTIS folder gives a [`Datacube`]. Bands are
//! named by the input's metadata and dates come from it too.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sits_data::datasets::agricultural_years;
use sits_data::open::{open_with, Opened};
use sits_data::rasters::RasterFolderOptions;
use sits_data::samples::Series;
use sits_data::{Datacube, SampleSet};

use crate::error::{Result, TaskError};

/// What [`read`] found.
#[derive(Debug)]
pub enum Input {
    /// A cube, with its labelled pixels when the folder has a `samples.csv`.
    Cube {
        /// The cube (values as stored, validity from the mask or NaN).
        cube: Box<Datacube>,
        /// Labelled pixels over date ranges (cube folders only).
        labels: Vec<sits_data::folder::CubePixelSample>,
        /// Class names of the labels.
        class_names: Vec<String>,
    },
    /// Pixel series (labelled or not).
    Samples(Box<SampleSet>),
}

impl Input {
    /// `"cube"` or `"sample set"`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Cube { .. } => "cube",
            Input::Samples(_) => "sample set",
        }
    }

    /// The band names.
    pub fn bands(&self) -> &[String] {
        match self {
            Input::Cube { cube, .. } => cube.bands(),
            Input::Samples(s) => s.bands(),
        }
    }
}

/// Reads `path`, whatever its layout. A PASTIS folder holds many patches: `patch`
/// picks one (an error lists a few ids when it is missing or unknown). A Zarr cube
/// is read whole within the read budget of [`sits_data::io_util::read_budget`].
pub fn read(path: &Path, patch: Option<u64>) -> Result<Input> {
    read_with(path, patch, &RasterFolderOptions::default())
}

/// [`read`], with the naming, bands and cloud layer of a folder of GeoTIFFs.
pub fn read_with(path: &Path, patch: Option<u64>, rasters: &RasterFolderOptions) -> Result<Input> {
    Ok(match open_with(path, rasters)? {
        Opened::Samples(s) => Input::Samples(s),
        Opened::Cube(f) => Input::Cube {
            cube: Box::new(f.cube),
            labels: f.samples,
            class_names: f.class_names,
        },
        Opened::ZarrCube(z) => Input::Cube {
            cube: Box::new(z.read_all()?),
            labels: Vec::new(),
            class_names: Vec::new(),
        },
        Opened::Rasters(r) => Input::Cube {
            cube: Box::new(r.read_all()?),
            labels: Vec::new(),
            class_names: Vec::new(),
        },
        Opened::Stac(cube) => Input::Cube {
            cube,
            labels: Vec::new(),
            class_names: Vec::new(),
        },
        Opened::Pastis(p) => {
            let ids: Vec<u64> = p.patches().iter().map(|q| q.id).collect();
            let some = ids
                .iter()
                .take(5)
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let Some(id) = patch else {
                return Err(TaskError::input(
                    path.display(),
                    format!(
                        "a PASTIS folder holds {} patches; pick one with --patch ID (for \
                         example {some})",
                        ids.len()
                    ),
                ));
            };
            if !ids.contains(&id) {
                return Err(TaskError::input(
                    path.display(),
                    format!("no patch {id} in this PASTIS folder (ids include {some})"),
                ));
            }
            Input::Cube {
                cube: Box::new(p.read_patch(id)?),
                labels: Vec::new(),
                class_names: Vec::new(),
            }
        }
    })
}

/// Reads `path` and requires a cube (the jobs that draw maps need one).
pub fn read_cube(path: &Path, patch: Option<u64>) -> Result<Input> {
    read_cube_with(path, patch, &RasterFolderOptions::default())
}

/// [`read_cube`], with the naming, bands and cloud layer of a folder of GeoTIFFs.
pub fn read_cube_with(
    path: &Path,
    patch: Option<u64>,
    rasters: &RasterFolderOptions,
) -> Result<Input> {
    let input = read_with(path, patch, rasters)?;
    if let Input::Samples(_) = input {
        return Err(TaskError::input(
            path.display(),
            "this is a sample set (pixel series without a grid); this job draws maps and \
             needs a cube: a cube folder, a cube Zarr store or a PASTIS folder with --patch",
        ));
    }
    Ok(input)
}

/// Whether `path` is a table of labelled points in longitude/latitude (a `.csv`,
/// `.geojson` or `.json` file) rather than a sample set.
pub fn is_point_table(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    path.is_file() && matches!(ext.as_deref(), Some("csv" | "geojson" | "json"))
}

/// Places the labelled points of `points` (longitude/latitude, see
/// [`sits_data::points`]) on the cube of `input`, whose labels they replace. Returns
/// the labelled cube and the points that could not be placed, with the reason. An
/// error when `input` is not a georeferenced cube or when no point can be placed.
pub fn with_points(input: Input, points: &Path) -> Result<(Input, Vec<(String, String)>)> {
    let Input::Cube { cube, .. } = input else {
        return Err(TaskError::input(
            points.display(),
            "points in longitude/latitude are placed on a cube; the input is a sample set",
        ));
    };
    let table = sits_data::points::read_points(points)?;
    let placed = sits_data::points::place(&table, &cube, &points.display().to_string())?;
    if placed.samples.is_empty() {
        let why = placed
            .refused
            .first()
            .map_or(String::new(), |(id, r)| format!(" ({id}: {r})"));
        return Err(TaskError::input(
            points.display(),
            format!("none of the {} points lies on the cube{why}", table.len()),
        ));
    }
    Ok((
        Input::Cube {
            cube,
            labels: placed.samples,
            class_names: placed.class_names,
        },
        placed.refused,
    ))
}

/// The series of each labelled pixel of a cube over its own dates (`t_start..=t_end`),
/// with its label and split: the labelled sample set of points placed by
/// [`with_points`].
pub fn labelled_pixel_series(
    cube: &Datacube,
    labels: &[sits_data::folder::CubePixelSample],
    class_names: &[String],
) -> Result<SampleSet> {
    let mut series = Vec::with_capacity(labels.len());
    let mut classes = Vec::with_capacity(labels.len());
    let mut splits = Vec::with_capacity(labels.len());
    let mut ids = Vec::with_capacity(labels.len());
    for l in labels {
        let px = cube.pixel_series(l.row, l.col)?;
        let idx: Vec<usize> = (l.t_start..=l.t_end).collect();
        let values = px.values.select(ndarray::Axis(0), &idx);
        let valid = idx.iter().map(|&t| px.valid[t]).collect();
        series.push(Series::new(values, px.times.select(&idx), Some(valid))?);
        classes.push(l.label.unwrap_or(0));
        splits.push(l.split.unwrap_or(sits_data::Split::Train));
        ids.push(l.id.clone());
    }
    Ok(SampleSet::new(
        series,
        cube.bands().to_vec(),
        Some(classes),
        class_names.to_vec(),
        Some(splits),
    )?
    .with_ids(ids)?)
}

/// How a cube's dates are cut into comparable series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Periods {
    /// Month (1 to 12) on whose first day each period starts: 1 for calendar years,
    /// 9 for the agricultural year of Mato Grosso (September to August).
    pub start_month: u32,
    /// Dates every period must have; periods with another number are skipped (a
    /// missing composite, a partial first or last year). `None`: the most common
    /// number among the periods of the input.
    pub dates: Option<usize>,
    /// Keep every period with at least 2 dates, whatever its number of dates (for
    /// irregular acquisitions and an encoder that pools over dates by the mean);
    /// `dates` is then the longest period's.
    #[serde(default)]
    pub any_length: bool,
    /// Leave invalid dates (clouds, nodata) invalid instead of gap-filling them, for
    /// encoders that mask missing observations themselves (the published ones).
    #[serde(default)]
    pub keep_gaps: bool,
}

impl Periods {
    /// MODIS MOD13Q1 16-day composites in agricultural years from 1 September: 23
    /// dates per period (the bundled dtwSat cube and Mato Grosso series).
    pub const MOD13Q1_SEPTEMBER: Periods = Periods {
        start_month: 9,
        dates: Some(23),
        any_length: false,
        keep_gaps: false,
    };
}

impl Default for Periods {
    fn default() -> Self {
        Self {
            start_month: 1,
            dates: None,
            any_length: false,
            keep_gaps: false,
        }
    }
}

/// One series of [`PixelPeriods`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelPeriod {
    /// Row of the pixel.
    pub row: usize,
    /// Column of the pixel.
    pub col: usize,
    /// The calendar year in which the period starts.
    pub period: i32,
    /// Class of the labelled sample of this pixel starting on this period's first
    /// date, if the input has one.
    pub label: Option<usize>,
    /// The evaluation split of that labelled sample, if given.
    pub split: Option<sits_data::Split>,
}

/// Where the rows of a job sit: the pixel and period of each row, on a grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Pixel, period and label of each row.
    pub index: Vec<PixelPeriod>,
    /// Height and width.
    pub size: (usize, usize),
    /// The periods, in order.
    pub periods: Vec<i32>,
    /// First date of each period (ISO 8601).
    pub period_starts: Vec<String>,
    /// Class names of the labels.
    pub class_names: Vec<String>,
    /// The georeference of the grid (the input's), written with every map.
    pub geo: Option<sits_data::GeoInfo>,
}

impl Grid {
    /// The labels as one option per row.
    pub fn labels(&self) -> Vec<Option<usize>> {
        self.index.iter().map(|p| p.label).collect()
    }

    /// The position of `period` in `periods`.
    pub fn period_index(&self, period: i32) -> Option<usize> {
        self.periods.iter().position(|&y| y == period)
    }
}

/// A cube as one gap-filled series per pixel and period, every series with the
/// same number of dates.
#[derive(Debug, Clone)]
pub struct PixelPeriods {
    /// The series, in period, row, column order, gap-filled, not normalised; ids
    /// `r{row}c{col}p{period}`.
    pub set: SampleSet,
    /// Where each series sits.
    pub grid: Grid,
    /// Dates per series.
    pub dates: usize,
    /// Pixel-periods left out because the pixel has no valid observation in it.
    pub skipped: usize,
}

/// The number of dates of each period of `times` starting on `start_month`, in
/// order of the periods.
pub fn period_lengths(times: &sits_core::dates::Timestamps, start_month: u32) -> Vec<(i32, usize)> {
    use chrono::Datelike;
    let mut out: Vec<(i32, usize)> = Vec::new();
    for d in times.as_slice() {
        let y = if d.month() >= start_month {
            d.year()
        } else {
            d.year() - 1
        };
        match out.last_mut() {
            Some((yy, n)) if *yy == y => *n += 1,
            _ => out.push((y, 1)),
        }
    }
    out
}

/// Cuts `cube` into [`PixelPeriods`]: every pixel in every period of
/// `periods.start_month` that has the chosen number of dates, gap-filled by linear
/// interpolation in time (unless `periods.keep_gaps`). A pixel with no valid observation in a period is left
/// out of that period (counted in `skipped`). `labels` (from a cube folder's
/// `samples.csv`) label the pixel-periods whose first date they start on.
///
/// `what` names the input in errors.
pub fn pixel_periods(
    cube: &Datacube,
    labels: &[sits_data::folder::CubePixelSample],
    class_names: &[String],
    periods: Periods,
    what: &str,
) -> Result<PixelPeriods> {
    if !(1..=12).contains(&periods.start_month) {
        return Err(TaskError::Settings(format!(
            "the period start month is {}; give a month from 1 to 12",
            periods.start_month
        )));
    }
    let lengths = period_lengths(cube.times(), periods.start_month);
    let dates = match periods.dates {
        _ if periods.any_length => lengths.iter().map(|l| l.1).max().unwrap_or(0),
        Some(d) => d,
        None => {
            // the most common length; ties go to the longer periods
            let mut counts: Vec<(usize, usize)> = Vec::new();
            for &(_, n) in &lengths {
                match counts.iter_mut().find(|(m, _)| *m == n) {
                    Some(c) => c.1 += 1,
                    None => counts.push((n, 1)),
                }
            }
            counts
                .iter()
                .max_by_key(|&&(n, c)| (c, n))
                .map(|&(n, _)| n)
                .ok_or_else(|| TaskError::input(what, "the cube has no date"))?
        }
    };
    let chosen: Vec<(i32, Vec<usize>)> = if periods.any_length {
        let mut start = 0;
        let mut all = Vec::with_capacity(lengths.len());
        for &(y, n) in &lengths {
            if n >= 2 {
                all.push((y, (start..start + n).collect()));
            }
            start += n;
        }
        all
    } else {
        agricultural_years(cube.times(), periods.start_month, dates)
    };
    if chosen.is_empty() || dates < 2 {
        return Err(TaskError::input(
            what,
            format!(
                "no period starting in month {} has {dates} dates (at least 2 are needed); \
                 the periods have {}: pick another --start-month or --dates",
                periods.start_month,
                describe_lengths(&lengths)
            ),
        ));
    }
    let (_, _, h, w) = cube.shape();
    let n = chosen.len().saturating_mul(h).saturating_mul(w);
    let mut series = Vec::with_capacity(n);
    let mut index = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut skipped = 0;
    // the first labelled sample of each pixel and first date, as a linear search did
    let mut by_pixel = std::collections::HashMap::with_capacity(labels.len());
    for l in labels {
        by_pixel.entry((l.row, l.col, l.t_start)).or_insert(l);
    }
    for (year, idx) in &chosen {
        for row in 0..h {
            for col in 0..w {
                let px = cube.pixel_series(row, col)?;
                let values = px.values.select(ndarray::Axis(0), idx);
                let valid = idx.iter().map(|&t| px.valid[t]).collect();
                let mut s = Series::new(values, px.times.select(idx), Some(valid))?;
                let usable = if periods.keep_gaps {
                    s.validity().iter().any(|&v| v)
                } else {
                    sits_data::gapfill::fill_series(&mut s).is_ok()
                };
                if !usable {
                    skipped += 1;
                    continue;
                }
                series.push(s);
                let sample = by_pixel.get(&(row, col, idx[0])).copied();
                index.push(PixelPeriod {
                    row,
                    col,
                    period: *year,
                    label: sample.and_then(|s| s.label),
                    split: sample.and_then(|s| s.split),
                });
                ids.push(format!("r{row}c{col}p{year}"));
            }
        }
    }
    if series.is_empty() {
        return Err(TaskError::input(
            what,
            "no pixel has a valid observation in any period (check the mask and the nodata value)",
        ));
    }
    let period_starts = chosen
        .iter()
        .map(|(_, idx)| cube.times().select(&idx[..1]).to_iso().remove(0))
        .collect();
    let set =
        SampleSet::new(series, cube.bands().to_vec(), None, Vec::new(), None)?.with_ids(ids)?;
    Ok(PixelPeriods {
        set,
        grid: Grid {
            index,
            size: (h, w),
            periods: chosen.iter().map(|(y, _)| *y).collect(),
            period_starts,
            class_names: class_names.to_vec(),
            geo: cube.geo().cloned(),
        },
        dates,
        skipped,
    })
}

fn describe_lengths(lengths: &[(i32, usize)]) -> String {
    if lengths.is_empty() {
        return "no date".into();
    }
    lengths
        .iter()
        .map(|(y, n)| format!("{y}: {n} dates"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cube's bands named `names`, in that order (a cube with more bands, or the
/// same bands in another order, is fine); a missing band is a [`TaskError::Mismatch`]
/// naming it and the bands the input has.
pub fn select_bands(
    cube: &Datacube,
    names: &[String],
    what: &str,
    encoder: &Path,
) -> Result<Datacube> {
    if cube.bands() == names {
        return Ok(cube.clone());
    }
    let missing: Vec<&String> = names.iter().filter(|n| !cube.bands().contains(n)).collect();
    if !missing.is_empty() {
        return Err(TaskError::Mismatch {
            input: what.to_string(),
            encoder: encoder.to_path_buf(),
            what: format!(
                "the encoder reads bands {names:?}; the input has {:?} and lacks {missing:?} \
                 (bands are matched by name: rename them in the input's metadata, or \
                 pretrain an encoder on these bands)",
                cube.bands()
            ),
        });
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(cube.select_bands(&refs)?)
}

/// Makes `dir` ready for a job's outputs: refused when it is, contains or lies in
/// one of `inputs`, or when it is an existing folder that no run of this library
/// made (see [`sits_data::io_util::prepare_run_dir`]); created when missing. An
/// object-storage prefix (`s3://...`) is taken as it is: each store written under
/// it checks that its own prefix is empty.
pub fn output_dir(dir: &Path, inputs: &[&Path]) -> Result<PathBuf> {
    if let Some(url) = sits_data::zarr::store::url_of(dir) {
        let url = url.trim_end_matches('/');
        for i in inputs {
            let i = i.to_string_lossy();
            let i = i.trim_end_matches('/');
            if url == i || url.starts_with(&format!("{i}/")) || i.starts_with(&format!("{url}/")) {
                return Err(TaskError::Settings(format!(
                    "the output {url} is, contains or lies in the input {i}: choose another \
                     prefix"
                )));
            }
        }
        return Ok(dir.to_path_buf());
    }
    for i in inputs {
        sits_data::io_util::check_output_outside_input(i, dir)?;
    }
    sits_data::io_util::prepare_run_dir(dir)?;
    Ok(dir.to_path_buf())
}
