//! A collection's items onto one grid: the target grid, each asset warped onto it,
//! same-day fusion, the cloud layer and the composites.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use ndarray::{Array2, Array3, Array4};
use sits_core::dates::Timestamps;

use super::{read_item_collection, stac_err, Resampling, StacCubeOptions, StacItem};
use crate::cube::{Datacube, GeoInfo};
use crate::error::{DataError, Result};
use crate::geo::Crs;
use crate::geotiff::{GeoTiff, Window};
use crate::rasters::CloudMask;

/// Where an asset's file is: a URL as it is, a path against the collection's folder.
fn resolve(base: &Path, href: &str) -> PathBuf {
    let href = href.strip_prefix("file://").unwrap_or(href);
    if href.contains("://") || Path::new(href).is_absolute() {
        PathBuf::from(href)
    } else {
        base.parent().unwrap_or(Path::new(".")).join(href)
    }
}

struct Asset {
    tif: GeoTiff,
    geo: GeoInfo,
    crs: Option<Crs>,
    scale: f64,
    offset: f64,
    nodata: Option<f64>,
}

fn open_asset(collection: &Path, item: &StacItem, key: &str) -> Result<Asset> {
    let a = item.assets.get(key).ok_or_else(|| {
        stac_err(
            collection,
            "assets",
            format!(
                "item {} has no asset `{key}` (its assets: {})",
                item.id,
                item.assets.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let tif = GeoTiff::open(&resolve(collection, &a.href))?;
    let info = tif.info();
    let geo = match (a.transform, &a.crs, info.geo.clone()) {
        (Some(t), Some(c), _) => GeoInfo {
            crs: c.clone(),
            transform: t,
        },
        (_, _, Some(g)) => g,
        _ => {
            return Err(stac_err(
                collection,
                "proj:transform",
                format!(
                    "item {} asset {key}: no georeference in STAC or in the file",
                    item.id
                ),
            ))
        }
    };
    if let Some([h, w]) = a.shape {
        if (h, w) != (info.height, info.width) {
            return Err(stac_err(
                collection,
                "proj:shape",
                format!(
                    "item {} asset {key}: proj:shape {h} x {w}, the file has {} x {}",
                    item.id, info.height, info.width
                ),
            ));
        }
    }
    let crs = if geo.crs.is_empty() {
        None
    } else {
        Some(Crs::parse(&geo.crs)?)
    };
    let nodata = a.nodata.or(info.nodata);
    Ok(Asset {
        tif,
        geo,
        crs,
        scale: a.scale,
        offset: a.offset,
        nodata,
    })
}

/// An asset's grid (georeference, rows, cols): from its STAC fields when they are
/// complete (nothing is fetched), else from the file's header.
fn asset_grid(collection: &Path, item: &StacItem, key: &str) -> Result<(GeoInfo, usize, usize)> {
    if let Some(a) = item.assets.get(key) {
        if let (Some(t), Some(c), Some([h, w])) = (a.transform, &a.crs, a.shape) {
            return Ok((
                GeoInfo {
                    crs: c.clone(),
                    transform: t,
                },
                h,
                w,
            ));
        }
    }
    let a = open_asset(collection, item, key)?;
    let (h, w) = (a.tif.info().height, a.tif.info().width);
    Ok((a.geo, h, w))
}

/// The footprint of a grid in the target CRS, `[xmin, ymin, xmax, ymax]`, from its
/// corners and edge points.
fn footprint(geo: &GeoInfo, h: usize, w: usize, target: &Crs) -> Result<[f64; 4]> {
    let src = if geo.crs.is_empty() || geo.crs == target.text() {
        None
    } else {
        Some(Crs::parse(&geo.crs)?)
    };
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    let (hf, wf) = (h as f64, w as f64);
    for k in 0..=8 {
        let f = f64::from(k) / 8.0;
        for (r, c) in [(0.0, f * wf), (hf, f * wf), (f * hf, 0.0), (f * hf, wf)] {
            let (x, y) = geo.coords_of(r, c);
            let (x, y) = match &src {
                Some(s) => {
                    let (lon, lat) = s.to_lonlat(x, y)?;
                    target.from_lonlat(lon, lat)?
                }
                None => (x, y),
            };
            b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        }
    }
    Ok(b)
}

/// The target grid: CRS text, geotransform, rows, cols.
fn target_grid(
    collection: &Path,
    items: &[&StacItem],
    o: &StacCubeOptions,
) -> Result<(String, [f64; 6], usize, usize)> {
    let crs_text = match &o.grid.crs {
        Some(c) => c.clone(),
        None => asset_grid(collection, items[0], &o.bands[0])?.0.crs,
    };
    let target = Crs::parse(&crs_text)?;
    let res = match o.grid.resolution {
        Some(r) if r > 0.0 && r.is_finite() => r,
        Some(r) => {
            return Err(DataError::Argument(format!(
                "resolution {r}: a positive size"
            )))
        }
        None => {
            let mut best = f64::INFINITY;
            for b in &o.bands {
                best = best.min(asset_grid(collection, items[0], b)?.0.transform[1].abs());
            }
            best
        }
    };
    let bounds = match (o.grid.bounds, o.grid.bbox) {
        (Some(b), _) => b,
        (None, Some([w0, s0, e0, n0])) => {
            // the projected box: corners and edge points of the longitude/latitude box
            let mut b = [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ];
            for k in 0..=8 {
                let f = f64::from(k) / 8.0;
                for (lon, lat) in [
                    (w0 + f * (e0 - w0), s0),
                    (w0 + f * (e0 - w0), n0),
                    (w0, s0 + f * (n0 - s0)),
                    (e0, s0 + f * (n0 - s0)),
                ] {
                    let (x, y) = target.from_lonlat(lon, lat)?;
                    b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
                }
            }
            b
        }
        (None, None) => {
            let mut b = [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ];
            for item in items {
                let (geo, h, w) = asset_grid(collection, item, &o.bands[0])?;
                let f = footprint(&geo, h, w, &target)?;
                b = [
                    b[0].min(f[0]),
                    b[1].min(f[1]),
                    b[2].max(f[2]),
                    b[3].max(f[3]),
                ];
            }
            b
        }
    };
    if !(bounds[2] > bounds[0] && bounds[3] > bounds[1]) {
        return Err(DataError::Argument(format!(
            "bounds {bounds:?}: an empty area"
        )));
    }
    // snap outwards to multiples of the resolution
    let x0 = (bounds[0] / res).floor() * res;
    let y1 = (bounds[3] / res).ceil() * res;
    let w = ((bounds[2] - x0) / res).ceil();
    let h = ((y1 - bounds[1]) / res).ceil();
    if !(w >= 1.0 && h >= 1.0 && w * h <= 1e10) {
        return Err(DataError::Argument(format!(
            "a target grid of {h} x {w} pixels (bounds {bounds:?}, resolution {res})"
        )));
    }
    Ok((
        crs_text,
        [x0, res, 0.0, y1, 0.0, -res],
        h as usize,
        w as usize,
    ))
}

/// Reads the items of `collection` (see [`read_item_collection`]) as a cube on one
/// grid (see the module docs). An item lacking a band is an error naming it,
/// before any pixel is read.
pub fn stac_cube(collection: &Path, options: &StacCubeOptions) -> Result<Datacube> {
    let all = read_item_collection(collection)?;
    if options.bands.is_empty() {
        return Err(DataError::Argument(format!(
            "{}: give the asset keys to read as bands (the first item has: {})",
            collection.display(),
            all[0].assets.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let items: Vec<&StacItem> = all
        .iter()
        .filter(|i| match (options.grid.max_cloud_cover, i.cloud_cover) {
            (Some(m), Some(c)) => c <= m,
            _ => true,
        })
        .collect();
    if items.is_empty() {
        return Err(DataError::Empty(format!(
            "{}: no item with eo:cloud_cover <= {:?}",
            collection.display(),
            options.grid.max_cloud_cover
        )));
    }
    let cloud = match &options.cloud {
        Some(c) if c.band.is_empty() => None,
        Some(c) => Some(c.clone()),
        None => ["SCL", "scl"]
            .iter()
            .find(|k| items[0].assets.contains_key(**k))
            .and_then(|k| CloudMask::preset(k)),
    };
    for item in &items {
        for b in options.bands.iter().chain(cloud.iter().map(|c| &c.band)) {
            if !item.assets.contains_key(b) {
                return Err(stac_err(
                    collection,
                    "assets",
                    format!(
                        "item {} has no asset `{b}` (its assets: {})",
                        item.id,
                        item.assets.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    let (crs_text, transform, h, w) = target_grid(collection, &items, options)?;
    let target = Crs::parse(&crs_text)?;
    let grid = GeoInfo {
        crs: crs_text,
        transform,
    };
    let mut days: BTreeMap<NaiveDate, Vec<&StacItem>> = BTreeMap::new();
    for item in &items {
        days.entry(item.datetime.date()).or_default().push(item);
    }
    let (t, c) = (days.len(), options.bands.len());
    crate::io_util::check_read_size(
        &collection.display().to_string(),
        &[t as u64, c as u64 + 1, h as u64, w as u64],
        4,
    )?;
    let area = [
        transform[0],
        transform[3] + h as f64 * transform[5],
        transform[0] + w as f64 * transform[1],
        transform[3],
    ];
    let overlaps = |item: &StacItem, key: &str| -> Result<bool> {
        let (geo, ah, aw) = asset_grid(collection, item, key)?;
        let f = footprint(&geo, ah, aw, &target)?;
        Ok(f[0] < area[2] && f[2] > area[0] && f[1] < area[3] && f[3] > area[1])
    };
    let mut n_overlap = 0;
    for item in &items {
        n_overlap += usize::from(overlaps(item, &options.bands[0])?);
    }
    if n_overlap == 0 {
        return Err(DataError::OutOfBounds {
            what: format!("{}: the area {area:?} ({})", collection.display(), grid.crs),
            reason: format!("none of the {} items covers any of it", items.len()),
        });
    }
    let mut values = Array4::<f32>::from_elem((t, c, h, w), f32::NAN);
    let mut valid = Array3::<bool>::from_elem((t, h, w), cloud.is_none());
    for (ti, day_items) in days.values().enumerate() {
        for item in day_items {
            // an item outside the area is not opened (its STAC fields tell)
            if !overlaps(item, &options.bands[0])? {
                continue;
            }
            // the cloud layer of this item on the target grid, if any
            let clear = match &cloud {
                Some(m) => {
                    let a = open_asset(collection, item, &m.band)?;
                    let layer = warp(a, &target, &grid, h, w, Resampling::Nearest)?;
                    Some(layer.mapv(|v| !v.is_nan() && !m.invalid.contains(&f64::from(v))))
                }
                None => None,
            };
            for (ci, b) in options.bands.iter().enumerate() {
                let a = open_asset(collection, item, b)?;
                let plane = warp(a, &target, &grid, h, w, options.grid.resampling)?;
                let mut dst = values.slice_mut(ndarray::s![ti, ci, .., ..]);
                // same-day fusion: the first item with a clear value wins
                ndarray::Zip::indexed(&mut dst)
                    .and(&plane)
                    .for_each(|(r, col), d, &v| {
                        let ok = clear.as_ref().is_none_or(|m| m[[r, col]]);
                        if ok && !v.is_nan() && d.is_nan() {
                            *d = v;
                        }
                    });
            }
            if let Some(m) = clear {
                ndarray::Zip::from(valid.index_axis_mut(ndarray::Axis(0), ti))
                    .and(&m)
                    .for_each(|v, &c| *v |= c);
            }
        }
    }
    let dates: Vec<NaiveDate> = days.keys().copied().collect();
    let times = Timestamps::from_dates(&dates, &collection.display().to_string())?;
    let cube = Datacube::new(values, times, options.bands.clone())?
        .with_geo(Some(grid))
        .with_valid(valid)?;
    match options.grid.step_days {
        Some(days) => crate::gapfill::composite(&cube, days),
        None => Ok(cube),
    }
}

/// One asset on the target grid (`h x w`, geotransform and CRS of `grid`): physical
/// values, NaN outside the asset or on its nodata. `nearest` for class layers (stored
/// values), bilinear otherwise (on pixel centres, as GDAL; a missing neighbour's
/// weight goes to the others).
fn warp(
    mut a: Asset,
    target: &Crs,
    grid: &GeoInfo,
    h: usize,
    w: usize,
    resampling: Resampling,
) -> Result<Array2<f32>> {
    let nearest = resampling == Resampling::Nearest;
    let same = a.crs.as_ref().is_none_or(|c| c.text() == target.text());
    // the source position (fractional row, col) of a target position
    let source_of = |r: f64, c: f64| -> Option<(f64, f64)> {
        let (x, y) = grid.coords_of(r, c);
        let (x, y) = match (&a.crs, same) {
            (_, true) => (x, y),
            (Some(src), false) => target
                .to_lonlat(x, y)
                .and_then(|(lon, lat)| src.from_lonlat(lon, lat))
                .ok()?,
            (None, false) => return None,
        };
        a.geo.position_of(x, y)
    };
    // of every target pixel centre
    let mut pos = vec![(f64::NAN, f64::NAN); h * w];
    for r in 0..h {
        for c in 0..w {
            if let Some(p) = source_of(r as f64 + 0.5, c as f64 + 0.5) {
                pos[r * w + c] = p;
            }
        }
    }
    // and of every pixel corner, for the average
    let corners: Vec<(f64, f64)> = if resampling == Resampling::Average {
        (0..=h)
            .flat_map(|r| (0..=w).map(move |c| (r, c)))
            .map(|(r, c)| source_of(r as f64, c as f64).unwrap_or((f64::NAN, f64::NAN)))
            .collect()
    } else {
        Vec::new()
    };
    let info = a.tif.info().clone();
    let (sh, sw) = (info.height as f64, info.width as f64);
    let inside = |r: f64, c: f64| r >= 0.0 && c >= 0.0 && r < sh && c < sw;
    // the window of the asset the target grid touches, with one pixel of margin
    let (mut r0, mut c0, mut r1, mut c1) = (
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    );
    for &(r, c) in pos
        .iter()
        .chain(corners.iter())
        .filter(|(r, c)| inside(*r, *c))
    {
        r0 = r0.min(r);
        c0 = c0.min(c);
        r1 = r1.max(r);
        c1 = c1.max(c);
    }
    let mut out = Array2::<f32>::from_elem((h, w), f32::NAN);
    if !r0.is_finite() {
        return Ok(out);
    }
    let wr0 = (r0.floor() - 1.0).max(0.0) as usize;
    let wc0 = (c0.floor() - 1.0).max(0.0) as usize;
    let wr1 = (r1.floor() + 2.0).min(sh) as usize;
    let wc1 = (c1.floor() + 2.0).min(sw) as usize;
    let win = a
        .tif
        .read_window::<f64>(Window::new(wr0, wc0, wr1 - wr0, wc1 - wc0))?;
    let (scale, offset, nodata) = (a.scale, a.offset, a.nodata);
    let at = |r: isize, c: isize| -> Option<f64> {
        let (rr, cc) = (r - wr0 as isize, c - wc0 as isize);
        if rr < 0 || cc < 0 || rr as usize >= wr1 - wr0 || cc as usize >= wc1 - wc0 {
            return None;
        }
        let v = win[[0, rr as usize, cc as usize]];
        (!(v.is_nan() || Some(v) == nodata)).then_some(v)
    };
    for (i, &(r, c)) in pos.iter().enumerate() {
        if !inside(r, c) {
            continue;
        }
        let v = if nearest {
            at(r.floor() as isize, c.floor() as isize)
        } else if resampling == Resampling::Average {
            // the source pixels whose centres lie in the box of this pixel's corners
            let (tr, tc) = (i / w, i % w);
            let k = [
                corners[tr * (w + 1) + tc],
                corners[tr * (w + 1) + tc + 1],
                corners[(tr + 1) * (w + 1) + tc],
                corners[(tr + 1) * (w + 1) + tc + 1],
            ];
            let rmin = k.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
            let rmax = k.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
            let cmin = k.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let cmax = k.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            if [rmin, rmax, cmin, cmax].iter().any(|v| !v.is_finite()) {
                None
            } else {
                let (mut sum, mut n) = (0.0, 0usize);
                let mut rr = (rmin - 0.5).ceil() as isize;
                while (rr as f64) + 0.5 < rmax {
                    let mut cc = (cmin - 0.5).ceil() as isize;
                    while (cc as f64) + 0.5 < cmax {
                        if let Some(v) = at(rr, cc) {
                            sum += v;
                            n += 1;
                        }
                        cc += 1;
                    }
                    rr += 1;
                }
                (n > 0).then(|| sum / n as f64)
            }
        } else {
            let (fr, fc) = (r - 0.5, c - 0.5);
            let (ir, ic) = (fr.floor() as isize, fc.floor() as isize);
            let (dr, dc) = (fr - ir as f64, fc - ic as f64);
            let (mut sum, mut wsum) = (0.0, 0.0);
            for (rr, wr) in [(ir, 1.0 - dr), (ir + 1, dr)] {
                for (cc, wc) in [(ic, 1.0 - dc), (ic + 1, dc)] {
                    let wgt = wr * wc;
                    if wgt > 0.0 {
                        if let Some(v) = at(rr, cc) {
                            sum += wgt * v;
                            wsum += wgt;
                        }
                    }
                }
            }
            (wsum > 0.0).then(|| sum / wsum)
        };
        if let Some(v) = v {
            out[[i / w, i % w]] = if nearest {
                v as f32
            } else {
                (v * scale + offset) as f32
            };
        }
    }
    Ok(out)
}
