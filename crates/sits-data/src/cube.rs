//! [`Datacube`]: a 2D+t image time series with dates, bands, masks and geo metadata.

use candle_core::{Device, Tensor};
use chrono::{NaiveDate, NaiveDateTime};
use ndarray::{s, Array2, Array3, Array4, ArrayView4, Axis};
use serde::{Deserialize, Serialize};
use sits_core::SitsBatch;

use crate::error::{DataError, Result};
use sits_core::dates::Timestamps;

/// Georeferencing of the pixel grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoInfo {
    /// Coordinate reference system as text (EPSG code or WKT).
    pub crs: String,
    /// GDAL geotransform `[x0, dx, rx, y0, ry, dy]` of the top-left corner of pixel (0, 0).
    pub transform: [f64; 6],
}

impl GeoInfo {
    /// The geotransform of the window whose top-left pixel is `(row, col)`.
    pub fn shifted(&self, row: usize, col: usize) -> Self {
        let [x0, dx, rx, y0, ry, dy] = self.transform;
        let (r, c) = (row as f64, col as f64);
        Self {
            crs: self.crs.clone(),
            transform: [x0 + c * dx + r * rx, dx, rx, y0 + c * ry + r * dy, ry, dy],
        }
    }
}

/// How stored numbers map to physical values: `physical = stored * scale + offset`.
///
/// Sentinel-2 L2A digital numbers use `scale = 1e-4` and, from processing baseline
/// 04.00 on, `offset = -0.1` (the -1000 DN offset times the scale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Radiometry {
    /// Multiplicative factor.
    pub scale: f32,
    /// Additive offset, applied after the scale.
    pub offset: f32,
}

impl Default for Radiometry {
    fn default() -> Self {
        Self {
            scale: 1.0,
            offset: 0.0,
        }
    }
}

/// One pixel's time series out of a cube.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelSeries {
    /// Values `(T, C)`.
    pub values: Array2<f32>,
    /// Acquisition times.
    pub times: Timestamps,
    /// Per-date validity (mask, NaN and nodata combined).
    pub valid: Vec<bool>,
}

/// A satellite image time series cube: values `(T, C, H, W)` with acquisition
/// timestamps, band names, an optional per-date validity mask `(T, H, W)` (true =
/// usable observation), an optional nodata value, the radiometric scaling of the
/// stored numbers and optional georeferencing.
///
/// ```
/// use ndarray::Array4;
/// use sits_core::dates::Timestamps;
/// use sits_data::Datacube;
/// let times = Timestamps::parse(&["2020-01-01", "2020-01-11"], "demo").unwrap();
/// let cube = Datacube::new(Array4::zeros((2, 2, 4, 4)), times, vec!["red".into(), "nir".into()]).unwrap();
/// let w = cube.window(1, 1, 2, 3).unwrap();
/// assert_eq!(w.shape(), (2, 2, 2, 3));
/// assert!(cube.select_bands(&["swir"]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Datacube {
    values: Array4<f32>,
    times: Timestamps,
    bands: Vec<String>,
    valid: Option<Array3<bool>>,
    nodata: Option<f32>,
    radiometry: Radiometry,
    geo: Option<GeoInfo>,
}

impl Datacube {
    /// Builds a cube, checking that no dimension is empty, that there is one timestamp
    /// per date and one name per band, that band names are unique and that no value is
    /// infinite (NaN is accepted and means a missing observation).
    pub fn new(values: Array4<f32>, times: Timestamps, bands: Vec<String>) -> Result<Self> {
        let (t, c, h, w) = values.dim();
        if [t, c, h, w].contains(&0) {
            return Err(DataError::Empty(format!(
                "datacube of shape {:?} (T, C, H, W): every dimension needs at least one entry",
                [t, c, h, w]
            )));
        }
        if let Some(((i, j, y, x), v)) = values.indexed_iter().find(|(_, v)| v.is_infinite()) {
            return Err(DataError::InvalidValue {
                what: format!("datacube value at date {i}, band {j}, row {y}, column {x}"),
                reason: format!(
                    "{v} is not a measurement (NaN means missing and is masked; infinities \
                     are refused)"
                ),
            });
        }
        if times.len() != t {
            return Err(DataError::Dates {
                what: "datacube".into(),
                reason: format!(
                    "{} timestamps for T = {t} dates of values {:?}",
                    times.len(),
                    [t, c, h, w]
                ),
            });
        }
        if bands.len() != c {
            return Err(DataError::Shape {
                what: "datacube band names".into(),
                expected: format!("{c} names (C of values {:?})", [t, c, h, w]),
                got: vec![bands.len()],
            });
        }
        for (i, b) in bands.iter().enumerate() {
            if bands[..i].contains(b) {
                return Err(DataError::Argument(format!(
                    "datacube: band name `{b}` appears twice"
                )));
            }
        }
        Ok(Self {
            values,
            times,
            bands,
            valid: None,
            nodata: None,
            radiometry: Radiometry::default(),
            geo: None,
        })
    }

    /// Adds a validity mask `(T, H, W)`, true = usable observation.
    pub fn with_valid(mut self, valid: Array3<bool>) -> Result<Self> {
        self.set_valid(valid)?;
        Ok(self)
    }

    /// Replaces the validity mask `(T, H, W)` in place.
    pub fn set_valid(&mut self, valid: Array3<bool>) -> Result<()> {
        let (t, _, h, w) = self.values.dim();
        if valid.dim() != (t, h, w) {
            return Err(DataError::Shape {
                what: "datacube validity mask".into(),
                expected: format!("(T, H, W) = {:?}", (t, h, w)),
                got: valid.shape().to_vec(),
            });
        }
        self.valid = Some(valid);
        Ok(())
    }

    /// Sets the nodata value of the stored numbers.
    pub fn with_nodata(mut self, nodata: Option<f32>) -> Self {
        self.nodata = nodata;
        self
    }

    /// Sets the scaling of the stored numbers (see [`Radiometry`]).
    pub fn with_radiometry(mut self, radiometry: Radiometry) -> Self {
        self.radiometry = radiometry;
        self
    }

    /// Sets the georeferencing.
    pub fn with_geo(mut self, geo: Option<GeoInfo>) -> Self {
        self.geo = geo;
        self
    }

    /// `(T, C, H, W)`.
    pub fn shape(&self) -> (usize, usize, usize, usize) {
        self.values.dim()
    }

    /// Stored values `(T, C, H, W)` (raw numbers; see [`Self::physical`]).
    pub fn values(&self) -> ArrayView4<'_, f32> {
        self.values.view()
    }

    /// Mutable stored values, for in-place normalisation or gap filling.
    pub fn values_mut(&mut self) -> &mut Array4<f32> {
        &mut self.values
    }

    /// Consumes the cube and returns its stored values.
    pub fn into_values(self) -> Array4<f32> {
        self.values
    }

    /// Physical values: `stored * scale + offset`, with nodata turned into NaN.
    pub fn physical(&self) -> Array4<f32> {
        let Radiometry { scale, offset } = self.radiometry;
        let nodata = self.nodata;
        self.values.mapv(|v| {
            if Some(v) == nodata {
                f32::NAN
            } else {
                v * scale + offset
            }
        })
    }

    /// Acquisition timestamps.
    pub fn times(&self) -> &Timestamps {
        &self.times
    }

    /// Band names.
    pub fn bands(&self) -> &[String] {
        &self.bands
    }

    /// The stored validity mask, if any.
    pub fn valid_mask(&self) -> Option<&Array3<bool>> {
        self.valid.as_ref()
    }

    /// Nodata value of the stored numbers.
    pub fn nodata(&self) -> Option<f32> {
        self.nodata
    }

    /// Scaling of the stored numbers.
    pub fn radiometry(&self) -> Radiometry {
        self.radiometry
    }

    /// Georeferencing, if known.
    pub fn geo(&self) -> Option<&GeoInfo> {
        self.geo.as_ref()
    }

    /// Index of a band by name.
    pub fn band_index(&self, name: &str) -> Result<usize> {
        self.bands
            .iter()
            .position(|b| b == name)
            .ok_or_else(|| DataError::UnknownBand {
                name: name.to_string(),
                available: self.bands.clone(),
            })
    }

    /// Effective validity `(T, H, W)`: the stored mask, and no band NaN or nodata.
    pub fn validity(&self) -> Array3<bool> {
        let (t, c, h, w) = self.values.dim();
        let mut out = match &self.valid {
            Some(v) => v.clone(),
            None => Array3::from_elem((t, h, w), true),
        };
        let nodata = self.nodata;
        for ci in 0..c {
            let band = self.values.index_axis(Axis(1), ci);
            ndarray::Zip::from(&mut out).and(&band).for_each(|o, &v| {
                if v.is_nan() || Some(v) == nodata {
                    *o = false;
                }
            });
        }
        out
    }

    /// The sub-cube of rows `row..row+height` and columns `col..col+width`.
    pub fn window(&self, row: usize, col: usize, height: usize, width: usize) -> Result<Self> {
        let (_, _, h, w) = self.values.dim();
        if height == 0 || width == 0 || row + height > h || col + width > w {
            return Err(DataError::OutOfBounds {
                what: format!(
                    "window rows {row}..{} cols {col}..{}",
                    row + height,
                    col + width
                ),
                reason: format!("the cube has {h} rows and {w} columns"),
            });
        }
        let (r, c) = (row..row + height, col..col + width);
        Ok(Self {
            values: self
                .values
                .slice(s![.., .., r.clone(), c.clone()])
                .to_owned(),
            valid: self
                .valid
                .as_ref()
                .map(|v| v.slice(s![.., r.clone(), c.clone()]).to_owned()),
            geo: self.geo.as_ref().map(|g| g.shifted(row, col)),
            times: self.times.clone(),
            bands: self.bands.clone(),
            nodata: self.nodata,
            radiometry: self.radiometry,
        })
    }

    /// The dates at `indices` (increasing, in range).
    pub fn select_times(&self, indices: &[usize]) -> Result<Self> {
        let t = self.times.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= t) {
            return Err(DataError::OutOfBounds {
                what: format!("date index {bad}"),
                reason: format!("the cube has {t} dates"),
            });
        }
        if indices.windows(2).any(|w| w[1] <= w[0]) {
            return Err(DataError::Argument(
                "select_times: indices must be strictly increasing".into(),
            ));
        }
        Ok(Self {
            values: self.values.select(Axis(0), indices),
            valid: self.valid.as_ref().map(|v| v.select(Axis(0), indices)),
            times: self.times.select(indices),
            bands: self.bands.clone(),
            nodata: self.nodata,
            radiometry: self.radiometry,
            geo: self.geo.clone(),
        })
    }

    /// The acquisitions with `start <= t < end`; an empty result is an error.
    pub fn time_range(&self, start: NaiveDateTime, end: NaiveDateTime) -> Result<Self> {
        let r = self.times.range_indices(start, end);
        if r.is_empty() {
            return Err(DataError::OutOfBounds {
                what: format!("time range {start} .. {end}"),
                reason: format!(
                    "no acquisition in it; the cube spans {:?} .. {:?}",
                    self.times.first(),
                    self.times.last()
                ),
            });
        }
        self.select_times(&r.collect::<Vec<_>>())
    }

    /// The acquisitions between two dates, both included.
    pub fn date_range(&self, first: NaiveDate, last: NaiveDate) -> Result<Self> {
        let end = last
            .succ_opt()
            .unwrap_or(last)
            .and_time(chrono::NaiveTime::MIN);
        self.time_range(first.and_time(chrono::NaiveTime::MIN), end)
    }

    /// The bands named in `names`, in that order.
    pub fn select_bands(&self, names: &[&str]) -> Result<Self> {
        let idx = names
            .iter()
            .map(|n| self.band_index(n))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            values: self.values.select(Axis(1), &idx),
            bands: names.iter().map(|s| s.to_string()).collect(),
            valid: self.valid.clone(),
            times: self.times.clone(),
            nodata: self.nodata,
            radiometry: self.radiometry,
            geo: self.geo.clone(),
        })
    }

    /// The time series of pixel `(row, col)`.
    pub fn pixel_series(&self, row: usize, col: usize) -> Result<PixelSeries> {
        let (_, _, h, w) = self.values.dim();
        if row >= h || col >= w {
            return Err(DataError::OutOfBounds {
                what: format!("pixel ({row}, {col})"),
                reason: format!("the cube has {h} rows and {w} columns"),
            });
        }
        let values = self.values.slice(s![.., .., row, col]).to_owned();
        let nodata = self.nodata;
        let valid = values
            .axis_iter(Axis(0))
            .enumerate()
            .map(|(t, obs)| {
                self.valid.as_ref().is_none_or(|m| m[[t, row, col]])
                    && obs.iter().all(|v| !v.is_nan() && Some(*v) != nodata)
            })
            .collect();
        Ok(PixelSeries {
            values,
            times: self.times.clone(),
            valid,
        })
    }

    /// Top-left corners `(row, col)` of the `size x size` patches on a grid with the
    /// given `stride` that fit entirely inside the cube.
    pub fn patch_origins(&self, size: usize, stride: usize) -> Result<Vec<(usize, usize)>> {
        let (_, _, h, w) = self.values.dim();
        if size == 0 || stride == 0 {
            return Err(DataError::Argument(
                "patch size and stride must be positive".into(),
            ));
        }
        if size > h || size > w {
            return Err(DataError::OutOfBounds {
                what: format!("patch of {size} x {size}"),
                reason: format!("the cube has {h} rows and {w} columns"),
            });
        }
        let rows = (0..=h - size).step_by(stride);
        Ok(rows
            .flat_map(|r| (0..=w - size).step_by(stride).map(move |c| (r, c)))
            .collect())
    }

    /// Iterates over `size x size` patches (see [`Self::patch_origins`]).
    pub fn patches(
        &self,
        size: usize,
        stride: usize,
    ) -> Result<impl Iterator<Item = Result<((usize, usize), Datacube)>> + '_> {
        let origins = self.patch_origins(size, stride)?;
        Ok(origins
            .into_iter()
            .map(move |(r, c)| self.window(r, c, size, size).map(|p| ((r, c), p))))
    }

    /// The cube as a one-item [`SitsBatch`] `(1, T, C, H, W)` on `device`, with day
    /// offsets from `reference` and the effective validity mask. Values are the
    /// physical values with invalid observations set to 0 (the mask says which).
    pub fn to_batch(&self, reference: NaiveDate, device: &Device) -> Result<SitsBatch> {
        let (t, c, h, w) = self.values.dim();
        let valid = self.validity();
        let mut phys = self.physical();
        for ((ti, _, y, x), v) in phys.indexed_iter_mut() {
            if !valid[[ti, y, x]] {
                *v = 0.0;
            }
        }
        let values = Tensor::from_vec(phys.into_raw_vec_and_offset().0, (1, t, c, h, w), device)?;
        let days = [self.times.days_since(reference)];
        let pad = [vec![false; t]];
        let mask: Vec<u8> = valid.iter().map(|&b| b as u8).collect();
        let batch = SitsBatch::from_days(values, &days, &pad, reference, device)?
            .with_valid(Tensor::from_vec(mask, (1, t, h, w), device)?)?;
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube() -> Datacube {
        let values = Array4::from_shape_fn((3, 2, 4, 5), |(t, c, y, x)| {
            (t * 1000 + c * 100 + y * 10 + x) as f32
        });
        let times = Timestamps::parse(&["2020-01-01", "2020-01-11", "2020-02-01"], "test").unwrap();
        Datacube::new(values, times, vec!["red".into(), "nir".into()]).unwrap()
    }

    #[test]
    fn window_bands_times() {
        let c = cube().with_geo(Some(GeoInfo {
            crs: "EPSG:32633".into(),
            transform: [100.0, 10.0, 0.0, 500.0, 0.0, -10.0],
        }));
        let w = c.window(1, 2, 2, 3).unwrap();
        assert_eq!(w.values()[[2, 1, 0, 0]], 2112.0);
        assert_eq!(
            w.geo().unwrap().transform,
            [120.0, 10.0, 0.0, 490.0, 0.0, -10.0]
        );
        let e = c.window(3, 0, 2, 2).unwrap_err().to_string();
        assert!(
            e.contains("window rows 3..5") && e.contains("4 rows"),
            "{e}"
        );
        let b = c.select_bands(&["nir"]).unwrap();
        assert_eq!(b.values()[[0, 0, 0, 0]], 100.0);
        let e = c.select_bands(&["B08"]).unwrap_err().to_string();
        assert!(e.contains("`B08`") && e.contains("red"), "{e}");
        let r = c
            .date_range(
                NaiveDate::from_ymd_opt(2020, 1, 5).unwrap(),
                NaiveDate::from_ymd_opt(2020, 2, 1).unwrap(),
            )
            .unwrap();
        assert_eq!(r.times().len(), 2);
        assert_eq!(r.values()[[0, 0, 0, 0]], 1000.0);
    }

    #[test]
    fn validity_and_series() {
        let mut c = cube().with_nodata(Some(1001.0));
        c.values_mut()[[2, 0, 3, 4]] = f32::NAN;
        let mut m = Array3::from_elem((3, 4, 5), true);
        m[[0, 3, 4]] = false;
        let c = c.with_valid(m).unwrap();
        let s = c.pixel_series(3, 4).unwrap();
        assert_eq!(s.valid, vec![false, true, false]);
        assert!(!c.validity()[[1, 0, 1]]); // nodata 1001 sits at t=1, c=0, y=0, x=1
        assert!(c.pixel_series(4, 0).is_err());
        assert_eq!(c.patch_origins(2, 2).unwrap().len(), 4);
    }

    #[test]
    fn wrong_dates_count() {
        let times = Timestamps::parse(&["2020-01-01"], "t").unwrap();
        let e = Datacube::new(Array4::zeros((2, 1, 1, 1)), times, vec!["a".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 timestamps for T = 2"), "{e}");
    }

    #[test]
    fn batch_has_days_and_mask() {
        let mut m = Array3::from_elem((3, 4, 5), true);
        m[[1, 0, 0]] = false;
        let c = cube().with_valid(m).unwrap();
        let b = c
            .to_batch(NaiveDate::from_ymd_opt(2019, 12, 31).unwrap(), &Device::Cpu)
            .unwrap();
        assert_eq!(b.values().dims(), &[1, 3, 2, 4, 5]);
        assert_eq!(
            b.days().to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 11.0, 32.0]]
        );
        let v = b.values().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v[40], 0.0); // t=1, c=0, (0,0) masked
    }
}
