//! STAC ItemCollections (a search result saved as JSON, local or on object storage)
//! read as a [`Datacube`] on one target grid.
//!
//! Each item is one acquisition; each band is one asset, a GeoTIFF or COG found by
//! its `href` (a path relative to the collection file, an absolute path, or an
//! `s3://`, `gs://`, `az://`, `http(s)://` URL). What is read of the STAC fields:
//!
//! - `properties.datetime`: the date; items of the same day are fused (the first item
//!   with a clear value at a pixel gives it);
//! - the asset's (else the item's) `proj:epsg` / `proj:code`, `proj:transform` and
//!   `proj:shape`; without them the asset file's own GeoTIFF tags;
//! - `raster:bands[0]` `scale`, `offset`, `nodata`;
//! - `s2:processing_baseline` (or `processing:version`) 04.00 and later, when a band
//!   asset (`B..`) gives no offset: the -1000 digital-number offset Sentinel-2 L2A
//!   applies from that baseline on;
//! - `eo:cloud_cover`, for [`StacCubeOptions::max_cloud_cover`].
//!
//! Values are physical (scale and offset applied), NaN where there is no observation.
//! Assets in another CRS than the target grid (another UTM zone, geographic) are
//! reprojected pixel by pixel through [`crate::geo`]: for each target pixel centre,
//! the position in the asset, sampled nearest (class layers: the cloud layer) or
//! bilinear (reflectance, by default), as GDAL's warper does with its exact
//! transformation. An
//! item whose footprint misses the area is not opened, and only the window of each
//! asset that the target grid covers is read, so on object storage only the tiles
//! that intersect the area are fetched.
//!
//! Optionally, regular time steps are composited from the clear observations
//! ([`StacCubeOptions::step_days`]: the median, validity kept).
//!
//! Bands can also be resampled by [`Resampling::Average`] (onto a coarser grid) or
//! nearest. [`search`] runs a STAC API search (pages followed) and returns the items
//! as an ItemCollection to save.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use ndarray::{Array2, Array3, Array4};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sits_core::dates::Timestamps;

use crate::cube::{Datacube, GeoInfo};
use crate::error::{DataError, Result};
use crate::geo::Crs;
use crate::geotiff::{GeoTiff, Window};
use crate::rasters::CloudMask;

/// One asset of an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StacAsset {
    /// The file: a path (resolved against the collection's folder) or a URL.
    pub href: String,
    /// CRS (`EPSG:<code>`), when the STAC fields give it.
    pub crs: Option<String>,
    /// GDAL geotransform, when the STAC fields give it.
    pub transform: Option<[f64; 6]>,
    /// `(rows, cols)`, when the STAC fields give it.
    pub shape: Option<[usize; 2]>,
    /// `physical = stored * scale + offset`.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Stored value meaning no data.
    pub nodata: Option<f64>,
}

/// One item: an acquisition with its assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StacItem {
    /// Item id.
    pub id: String,
    /// Acquisition time.
    pub datetime: NaiveDateTime,
    /// `eo:cloud_cover`, percent.
    pub cloud_cover: Option<f64>,
    /// Assets by key.
    pub assets: BTreeMap<String, StacAsset>,
}

/// How band assets are resampled onto the target grid (the cloud layer is always
/// sampled nearest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    /// Bilinear on pixel centres.
    #[default]
    Bilinear,
    /// The mean of the valid source pixels whose centres fall in the target pixel
    /// (for a coarser target grid).
    Average,
    /// The source pixel under the target pixel's centre.
    Nearest,
}

/// The target grid and the items kept, as the command line gives them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StacGrid {
    /// See [`StacCubeOptions::crs`].
    pub crs: Option<String>,
    /// See [`StacCubeOptions::resolution`].
    pub resolution: Option<f64>,
    /// See [`StacCubeOptions::bounds`].
    pub bounds: Option<[f64; 4]>,
    /// See [`StacCubeOptions::bbox`].
    pub bbox: Option<[f64; 4]>,
    /// See [`StacCubeOptions::max_cloud_cover`].
    pub max_cloud_cover: Option<f64>,
    /// See [`StacCubeOptions::step_days`].
    pub step_days: Option<u32>,
    /// See [`StacCubeOptions::resampling`].
    #[serde(default)]
    pub resampling: Resampling,
}

/// The target grid and the bands of [`stac_cube`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StacCubeOptions {
    /// Asset keys to read as bands, in this order.
    pub bands: Vec<String>,
    /// The cloud layer and its invalid values; default: an `SCL` or `scl` asset with
    /// the Sentinel-2 preset of [`CloudMask::preset`], when the items have one; a
    /// `band` left empty turns masking off.
    pub cloud: Option<CloudMask>,
    /// The target CRS (`EPSG:<code>` or PROJ text); default: the first band's CRS in
    /// the first item.
    pub crs: Option<String>,
    /// Pixel size in target units; default: the finest of the bands' in the first item.
    pub resolution: Option<f64>,
    /// `[xmin, ymin, xmax, ymax]` in the target CRS; default: `bbox`, else the union
    /// of the items' first-band footprints.
    pub bounds: Option<[f64; 4]>,
    /// `[lon_min, lat_min, lon_max, lat_max]` (WGS 84 degrees): the area, when
    /// `bounds` is not given; the target grid covers its projection.
    pub bbox: Option<[f64; 4]>,
    /// Items above this `eo:cloud_cover` are left out.
    pub max_cloud_cover: Option<f64>,
    /// Regular time steps of this many days, each the median of its clear
    /// observations ([`crate::gapfill::composite`]); default: one date per day with
    /// an item.
    pub step_days: Option<u32>,
    /// How bands are resampled (default bilinear; the cloud layer is nearest).
    #[serde(default)]
    pub resampling: Resampling,
}

impl StacCubeOptions {
    /// The options of a collection read as a raster input: `bands` (default: every
    /// GeoTIFF asset that every item has, but the cloud layer), `cloud` and the grid.
    pub fn from_rasters(
        collection: &Path,
        o: &crate::rasters::RasterFolderOptions,
    ) -> Result<Self> {
        let bands = match &o.bands {
            Some(b) => b.clone(),
            None => {
                let items = read_item_collection(collection)?;
                let is_tif = |a: &StacAsset| {
                    let h = a.href.to_ascii_lowercase();
                    h.ends_with(".tif") || h.ends_with(".tiff")
                };
                let cloud_key = o.cloud.as_ref().map(|c| c.band.as_str());
                items[0]
                    .assets
                    .iter()
                    .filter(|(k, a)| {
                        is_tif(a)
                            && !k.eq_ignore_ascii_case("scl")
                            && Some(k.as_str()) != cloud_key
                            && items.iter().all(|i| i.assets.contains_key(*k))
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            }
        };
        Ok(Self {
            bands,
            cloud: o.cloud.clone(),
            crs: o.stac.crs.clone(),
            resolution: o.stac.resolution,
            bounds: o.stac.bounds,
            bbox: o.stac.bbox,
            max_cloud_cover: o.stac.max_cloud_cover,
            step_days: o.stac.step_days,
            resampling: o.stac.resampling,
        })
    }
}

fn stac_err(path: &Path, field: &str, reason: impl Into<String>) -> DataError {
    DataError::field(path, field, reason)
}

fn epsg_of(v: &Value) -> Option<String> {
    if let Some(c) = v.get("proj:epsg").and_then(Value::as_u64) {
        return Some(format!("EPSG:{c}"));
    }
    v.get("proj:code")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn transform_of(v: &Value) -> Option<[f64; 6]> {
    let t: Vec<f64> = v
        .get("proj:transform")?
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    // STAC gives the affine coefficients a, b, c, d, e, f (x = a col + b row + c)
    (t.len() >= 6).then(|| [t[2], t[0], t[1], t[5], t[3], t[4]])
}

fn shape_of(v: &Value) -> Option<[usize; 2]> {
    let s = v.get("proj:shape")?.as_array()?;
    Some([s.first()?.as_u64()? as usize, s.get(1)?.as_u64()? as usize])
}

/// Reads an ItemCollection (or a single Item) from a JSON file or object.
pub fn read_item_collection(path: &Path) -> Result<Vec<StacItem>> {
    let v: Value = match crate::zarr::store::url_of(path) {
        Some(url) => {
            let obj = crate::zarr::store::RangedObject::open(url)?;
            let size = obj
                .size()?
                .ok_or_else(|| stac_err(path, "href", "no such object"))?;
            if size > 256 << 20 {
                return Err(stac_err(
                    path,
                    "size",
                    format!("{size} bytes: too large for an ItemCollection"),
                ));
            }
            let bytes = obj.get_range(0, size).map_err(|e| DataError::io(path, e))?;
            serde_json::from_slice(&bytes).map_err(|e| DataError::Json {
                path: path.to_path_buf(),
                source: e,
            })?
        }
        None => crate::io_util::read_json(path)?,
    };
    let features: Vec<&Value> = match v.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => v
            .get("features")
            .and_then(Value::as_array)
            .map(|f| f.iter().collect())
            .ok_or_else(|| stac_err(path, "features", "missing"))?,
        Some("Feature") => vec![&v],
        other => {
            return Err(stac_err(
                path,
                "type",
                format!("{other:?}: a STAC ItemCollection (FeatureCollection) or Item"),
            ))
        }
    };
    let mut items = Vec::with_capacity(features.len());
    for (i, f) in features.iter().enumerate() {
        let id = f
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("feature {i}"), str::to_string);
        let props = &f["properties"];
        let dt = props
            .get("datetime")
            .and_then(Value::as_str)
            .or_else(|| props.get("start_datetime").and_then(Value::as_str))
            .ok_or_else(|| stac_err(path, "datetime", format!("item {id}: no datetime")))?;
        let datetime = sits_core::dates::parse_timestamp(dt.trim_end_matches('Z'))
            .or_else(|| NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S%.fZ").ok())
            .ok_or_else(|| {
                stac_err(path, "datetime", format!("item {id}: `{dt}` is not a time"))
            })?;
        let baseline = props
            .get("s2:processing_baseline")
            .or_else(|| props.get("processing:version"))
            .and_then(Value::as_str)
            .and_then(|b| b.parse::<f64>().ok());
        let mut assets = BTreeMap::new();
        let Some(map) = f.get("assets").and_then(Value::as_object) else {
            return Err(stac_err(path, "assets", format!("item {id}: no assets")));
        };
        for (key, a) in map {
            let Some(href) = a.get("href").and_then(Value::as_str) else {
                continue;
            };
            let rb = a
                .get("raster:bands")
                .and_then(Value::as_array)
                .and_then(|b| b.first());
            let num = |k: &str| rb.and_then(|b| b.get(k)).and_then(Value::as_f64);
            let scale = num("scale").unwrap_or(1.0);
            let band = key.to_ascii_uppercase().starts_with('B');
            let offset = match num("offset") {
                Some(o) => o,
                // Sentinel-2 L2A from baseline 04.00: DN = reflectance x 10^4 + 1000
                None if band && baseline.is_some_and(|b| b >= 4.0) => -1000.0 * scale,
                None => 0.0,
            };
            assets.insert(
                key.clone(),
                StacAsset {
                    href: href.to_string(),
                    crs: epsg_of(a).or_else(|| epsg_of(props)),
                    transform: transform_of(a).or_else(|| transform_of(props)),
                    shape: shape_of(a).or_else(|| shape_of(props)),
                    scale,
                    offset,
                    nodata: num("nodata"),
                },
            );
        }
        items.push(StacItem {
            id,
            datetime,
            cloud_cover: props.get("eo:cloud_cover").and_then(Value::as_f64),
            assets,
        });
    }
    if items.is_empty() {
        return Err(DataError::Empty(format!(
            "{}: ItemCollection",
            path.display()
        )));
    }
    Ok(items)
}

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
    let crs_text = match &o.crs {
        Some(c) => c.clone(),
        None => asset_grid(collection, items[0], &o.bands[0])?.0.crs,
    };
    let target = Crs::parse(&crs_text)?;
    let res = match o.resolution {
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
    let bounds = match (o.bounds, o.bbox) {
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
        .filter(|i| match (options.max_cloud_cover, i.cloud_cover) {
            (Some(m), Some(c)) => c <= m,
            _ => true,
        })
        .collect();
    if items.is_empty() {
        return Err(DataError::Empty(format!(
            "{}: no item with eo:cloud_cover <= {:?}",
            collection.display(),
            options.max_cloud_cover
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
                let plane = warp(a, &target, &grid, h, w, options.resampling)?;
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
    match options.step_days {
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

/// A search of a STAC API (`POST {api}/search`), its pages followed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StacSearch {
    /// The API root (`https://earth-search.aws.element84.com/v1`) or its `/search`
    /// endpoint.
    pub api: String,
    /// Collections to search (`sentinel-2-l2a`).
    pub collections: Vec<String>,
    /// `[lon_min, lat_min, lon_max, lat_max]`.
    pub bbox: Option<[f64; 4]>,
    /// An RFC 3339 interval, `2020-01-01/2020-12-31`.
    pub datetime: Option<String>,
    /// Items above this `eo:cloud_cover` are not asked for (a `query` filter).
    pub max_cloud_cover: Option<f64>,
    /// Items per page asked for (default 100).
    pub limit: Option<usize>,
    /// Stop after this many items (default 10,000): a search is refused beyond it.
    pub max_items: Option<usize>,
}

/// Runs `search` and returns its items as one ItemCollection (the `features` of
/// every page, in order), ready to save and read with [`read_item_collection`].
/// Pages are followed through their `next` link (GET, or POST with the link's body,
/// merged with the search's when `merge` is set). Errors name the URL and the page.
pub fn search(search: &StacSearch) -> Result<Value> {
    let endpoint = if search.api.trim_end_matches('/').ends_with("/search") {
        search.api.trim_end_matches('/').to_string()
    } else {
        format!("{}/search", search.api.trim_end_matches('/'))
    };
    let mut body = serde_json::json!({ "limit": search.limit.unwrap_or(100) });
    if !search.collections.is_empty() {
        body["collections"] = serde_json::json!(search.collections);
    }
    if let Some(b) = search.bbox {
        body["bbox"] = serde_json::json!(b);
    }
    if let Some(d) = &search.datetime {
        body["datetime"] = serde_json::json!(d);
    }
    if let Some(c) = search.max_cloud_cover {
        body["query"] = serde_json::json!({ "eo:cloud_cover": { "lte": c } });
    }
    let max_items = search.max_items.unwrap_or(10_000);
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| DataError::Argument(format!("HTTP client: {e}")))?;
    let mut features = Vec::new();
    let mut request = Some(("POST".to_string(), endpoint.clone(), Some(body.clone())));
    let mut page = 0;
    while let Some((method, url, payload)) = request.take() {
        page += 1;
        let what = format!("{url} (page {page})");
        let fail = |reason: String| DataError::Field {
            path: PathBuf::from(&what),
            field: "search".into(),
            reason,
        };
        let rb = if method.eq_ignore_ascii_case("POST") {
            client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&payload.unwrap_or(Value::Null)).unwrap_or_default())
        } else {
            client.get(&url)
        };
        let resp = rb.send().map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
        let got = v
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| fail("no `features` in the answer".into()))?;
        features.extend(got.iter().cloned());
        if features.len() > max_items {
            return Err(fail(format!(
                "more than {max_items} items: narrow the search (bbox, datetime, cloud cover) \
                 or raise max_items"
            )));
        }
        let next = v
            .get("links")
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|l| l["rel"] == "next"));
        if let (Some(next), false) = (next, got.is_empty()) {
            let href = next["href"]
                .as_str()
                .ok_or_else(|| fail("a next link without href".into()))?;
            let method = next["method"].as_str().unwrap_or("GET").to_string();
            let payload = match next.get("body") {
                Some(b) if next["merge"] == true => {
                    let mut merged = body.clone();
                    if let (Some(m), Some(o)) = (merged.as_object_mut(), b.as_object()) {
                        for (k, x) in o {
                            m.insert(k.clone(), x.clone());
                        }
                    }
                    Some(merged)
                }
                Some(b) => Some(b.clone()),
                None => Some(body.clone()),
            };
            request = Some((method, href.to_string(), payload));
        }
    }
    Ok(serde_json::json!({ "type": "FeatureCollection", "features": features }))
}
