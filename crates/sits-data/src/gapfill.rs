//! Gap filling and temporal resampling of irregular series.
//!
//! Time is measured in fractional days from the acquisition timestamps, so two
//! acquisitions minutes apart interpolate correctly. Gaps before the first or after
//! the last valid observation take the nearest valid value (constant extrapolation);
//! a series with no valid observation cannot be filled and is reported, never
//! invented.

use chrono::{Duration, NaiveDateTime};
use ndarray::{Array2, ArrayViewMut1, Axis};
use rayon::prelude::*;

use crate::cube::Datacube;
use crate::error::{DataError, Result};
use crate::samples::Series;
use sits_core::dates::Timestamps;

fn day_positions(times: &Timestamps) -> Vec<f64> {
    let t0 = times.first().unwrap_or_default();
    times
        .as_slice()
        .iter()
        .map(|t| (*t - t0).num_seconds() as f64 / 86_400.0)
        .collect()
}

/// Value at position `x` by linear interpolation between the valid points `(xs, ys)`
/// (sorted by `xs`), constant beyond the ends. `None` if there is no valid point.
fn interp_at(xs: &[f64], ys: &[f32], x: f64) -> Option<f32> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let j = xs.partition_point(|&v| v < x);
    Some(if j == 0 {
        ys[0]
    } else if j == n {
        ys[n - 1]
    } else if xs[j] == x {
        ys[j]
    } else {
        let w = ((x - xs[j - 1]) / (xs[j] - xs[j - 1])) as f32;
        ys[j - 1] + w * (ys[j] - ys[j - 1])
    })
}

/// Fills the invalid entries of one band's series in place; returns how many were
/// filled, or `None` when the series has no valid entry.
pub fn fill_band(
    mut values: ArrayViewMut1<'_, f32>,
    valid: &[bool],
    days: &[f64],
) -> Option<usize> {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for (i, &ok) in valid.iter().enumerate() {
        if ok && values[i].is_finite() {
            xs.push(days[i]);
            ys.push(values[i]);
        }
    }
    if xs.is_empty() {
        return None;
    }
    let mut filled = 0;
    for (i, &ok) in valid.iter().enumerate() {
        if !ok || !values[i].is_finite() {
            values[i] = interp_at(&xs, &ys, days[i])?;
            filled += 1;
        }
    }
    Some(filled)
}

/// Fills the invalid dates (mask or NaN) of a series in place and marks them valid.
/// Returns the number of dates filled; a series with no valid date is an error.
pub fn fill_series(series: &mut Series) -> Result<usize> {
    let valid = series.validity();
    let days = day_positions(&series.times);
    let missing = valid.iter().filter(|v| !**v).count();
    for band in series.values.axis_iter_mut(Axis(1)) {
        if fill_band(band, &valid, &days).is_none() {
            return Err(DataError::Empty(
                "valid observations of a series to gap-fill".into(),
            ));
        }
    }
    series.valid = Some(vec![true; series.len()]);
    Ok(missing)
}

/// What [`fill_cube`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillReport {
    /// Pixel-dates that were interpolated.
    pub filled: usize,
    /// Pixels with no valid date at all, left unfilled and invalid.
    pub empty_pixels: usize,
}

/// Fills every invalid pixel-date of a cube in place (parallel over pixels) and marks
/// it valid. Pixels without any valid date are left as they are and counted.
pub fn fill_cube(cube: &mut Datacube) -> Result<FillReport> {
    let valid = cube.validity();
    let days = day_positions(cube.times());
    let (t, _, h, w) = cube.shape();
    // work pixel by pixel on a (pixel, T, C) copy for parallelism
    let vals = cube.values();
    let mut pixels: Vec<(Array2<f32>, Vec<bool>)> = (0..h * w)
        .map(|p| {
            let (y, x) = (p / w, p % w);
            let v = vals.slice(ndarray::s![.., .., y, x]).to_owned();
            let m = (0..t).map(|ti| valid[[ti, y, x]]).collect();
            (v, m)
        })
        .collect();
    let results: Vec<Option<usize>> = pixels
        .par_iter_mut()
        .map(|(v, m)| {
            let mut n = 0;
            for band in v.axis_iter_mut(Axis(1)) {
                n = fill_band(band, m, &days)?;
            }
            Some(n)
        })
        .collect();
    let mut report = FillReport {
        filled: 0,
        empty_pixels: 0,
    };
    let mut new_valid = valid.clone();
    let out = cube.values_mut();
    for (p, ((v, _), r)) in pixels.iter().zip(&results).enumerate() {
        let (y, x) = (p / w, p % w);
        match r {
            None => report.empty_pixels += 1,
            Some(n) => {
                report.filled += n;
                out.slice_mut(ndarray::s![.., .., y, x]).assign(v);
                for ti in 0..t {
                    new_valid[[ti, y, x]] = true;
                }
            }
        }
    }
    cube.set_valid(new_valid)?;
    Ok(report)
}

/// Resamples a series onto a regular grid every `every_days` days from its first
/// acquisition up to its last, by linear interpolation of the valid observations.
pub fn resample(series: &Series, every_days: u32) -> Result<Series> {
    if every_days == 0 {
        return Err(DataError::Argument(
            "resampling step must be at least 1 day".into(),
        ));
    }
    let valid = series.validity();
    let days = day_positions(&series.times);
    let t0: NaiveDateTime = series
        .times
        .first()
        .ok_or_else(|| DataError::Empty("series".into()))?;
    let span = days.last().copied().unwrap_or(0.0);
    let n = (span / every_days as f64).floor() as usize + 1;
    let grid: Vec<f64> = (0..n).map(|i| (i * every_days as usize) as f64).collect();
    let c = series.values.ncols();
    let mut out = Array2::zeros((n, c));
    for ci in 0..c {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for (i, &ok) in valid.iter().enumerate() {
            let v = series.values[[i, ci]];
            if ok && v.is_finite() {
                xs.push(days[i]);
                ys.push(v);
            }
        }
        for (gi, &g) in grid.iter().enumerate() {
            out[[gi, ci]] = interp_at(&xs, &ys, g).ok_or_else(|| {
                DataError::Empty("valid observations of a series to resample".into())
            })?;
        }
    }
    let times = grid
        .iter()
        .map(|&g| t0 + Duration::days(g as i64))
        .collect();
    Series::new(out, Timestamps::new(times, "resampled series")?, None)
}

/// Composites `cube` on regular time steps of `every_days` days from its first
/// date: each step holds, per pixel and band, the median of its valid observations
/// (the mean of the two middle ones for an even count, as numpy's `nanmedian`), and
/// is valid where at least one observation was. Steps without any observation stay,
/// invalid, so that the time axis is regular. Dates are the steps' first days.
pub fn composite(cube: &Datacube, every_days: u32) -> Result<Datacube> {
    if every_days == 0 {
        return Err(DataError::Argument(
            "composite step must be at least 1 day".into(),
        ));
    }
    let (t, c, h, w) = cube.shape();
    let days = day_positions(cube.times());
    let t0 = cube
        .times()
        .first()
        .ok_or_else(|| DataError::Empty("cube".into()))?;
    let step_of: Vec<usize> = days
        .iter()
        .map(|d| (d / f64::from(every_days)).floor() as usize)
        .collect();
    let n = step_of.last().map_or(0, |s| s + 1);
    crate::io_util::check_read_size("composite", &[n as u64, c as u64, h as u64, w as u64], 4)?;
    let valid = cube.validity();
    let v = cube.values();
    let mut out = ndarray::Array4::<f32>::from_elem((n, c, h, w), f32::NAN);
    let mut ok = ndarray::Array3::<bool>::from_elem((n, h, w), false);
    let mut buf = Vec::with_capacity(t);
    for (si, ti0) in (0..n).map(|s| (s, step_of.iter().position(|&x| x == s))) {
        let Some(ti0) = ti0 else { continue };
        let members: Vec<usize> = (ti0..t).take_while(|&i| step_of[i] == si).collect();
        for y in 0..h {
            for x in 0..w {
                let clear: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&i| valid[[i, y, x]])
                    .collect();
                if clear.is_empty() {
                    continue;
                }
                ok[[si, y, x]] = true;
                for ci in 0..c {
                    buf.clear();
                    buf.extend(
                        clear
                            .iter()
                            .map(|&i| v[[i, ci, y, x]])
                            .filter(|v| !v.is_nan()),
                    );
                    if buf.is_empty() {
                        continue;
                    }
                    buf.sort_by(f32::total_cmp);
                    let m = buf.len() / 2;
                    out[[si, ci, y, x]] = if buf.len() % 2 == 1 {
                        buf[m]
                    } else {
                        ((f64::from(buf[m - 1]) + f64::from(buf[m])) / 2.0) as f32
                    };
                }
            }
        }
    }
    let times: Vec<NaiveDateTime> = (0..n)
        .map(|s| t0 + Duration::days((s * every_days as usize) as i64))
        .collect();
    let mut result = Datacube::new(
        out,
        Timestamps::new(times, "composite")?,
        cube.bands().to_vec(),
    )?
    .with_radiometry(cube.radiometry())
    .with_geo(cube.geo().cloned());
    result.set_valid(ok)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(vals: Vec<f32>, dates: &[&str]) -> Series {
        let n = vals.len();
        Series::new(
            Array2::from_shape_vec((n, 1), vals).unwrap(),
            Timestamps::parse(dates, "t").unwrap(),
            None,
        )
        .unwrap()
    }

    #[test]
    fn fills_with_time_weights_and_constant_ends() {
        let mut s = series(
            vec![f32::NAN, 1.0, f32::NAN, 4.0, f32::NAN],
            &[
                "2020-01-01",
                "2020-01-02",
                "2020-01-03",
                "2020-01-05",
                "2020-01-09",
            ],
        );
        assert_eq!(fill_series(&mut s).unwrap(), 3);
        assert_eq!(s.values.column(0).to_vec(), vec![1.0, 1.0, 2.0, 4.0, 4.0]);
        let mut empty = series(vec![f32::NAN, f32::NAN], &["2020-01-01", "2020-01-02"]);
        assert!(fill_series(&mut empty).is_err());
    }

    #[test]
    fn resamples_on_a_regular_grid() {
        let s = series(
            vec![0.0, 10.0, 30.0],
            &["2020-01-01", "2020-01-11", "2020-01-21"],
        );
        let r = resample(&s, 5).unwrap();
        assert_eq!(
            r.values.column(0).to_vec(),
            vec![0.0, 5.0, 10.0, 20.0, 30.0]
        );
        assert_eq!(r.times.day_of_year(), vec![1, 6, 11, 16, 21]);
    }
}
