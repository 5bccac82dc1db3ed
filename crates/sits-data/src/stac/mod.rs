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
//! - `eo:cloud_cover`, for [`StacGrid::max_cloud_cover`].
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
//! ([`StacGrid::step_days`]: the median, validity kept).
//!
//! Bands can also be resampled by [`Resampling::Average`] (onto a coarser grid) or
//! nearest. `search` (feature `remote`) runs a STAC API search (pages followed) and
//! returns the items as an ItemCollection to save.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(doc)]
use crate::cube::Datacube;
use crate::error::{DataError, Result};
use crate::rasters::CloudMask;

mod cube;
#[cfg(feature = "remote")]
mod search;

pub use cube::stac_cube;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use search::{search, StacSearch};

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

/// The target grid, the items kept and how the bands are resampled and composited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StacGrid {
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

/// The bands, the cloud layer and the grid of [`stac_cube`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StacCubeOptions {
    /// Asset keys to read as bands, in this order.
    pub bands: Vec<String>,
    /// The cloud layer and its invalid values; default: an `SCL` or `scl` asset with
    /// the Sentinel-2 preset of [`CloudMask::preset`], when the items have one; a
    /// `band` left empty turns masking off.
    pub cloud: Option<CloudMask>,
    /// The target grid and the items kept.
    pub grid: StacGrid,
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
            grid: o.stac.clone(),
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
