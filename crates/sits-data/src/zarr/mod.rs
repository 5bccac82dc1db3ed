//! Datacubes and sample sets in Zarr stores, through [`zarrs`].
//!
//! Writing produces Zarr v3; reading accepts v3 and v2 (as written by zarr-python 2 or
//! 3). A cube store is a group whose attribute `sits` describes the cube, with:
//!
//! | node | dtype | shape | chunks |
//! | --- | --- | --- | --- |
//! | `/values` | float32 (also read: float64, int16, uint16, int32, uint8) | `(T, C, H, W)` | `(t, c, y, x)` as chosen |
//! | `/valid` (optional) | uint8, 1 = usable | `(T, H, W)` | `(t, y, x)` |
//!
//! ```json
//! {"sits": {"kind": "datacube", "format_version": 1, "bands": ["B02", ...],
//!           "times": ["2018-09-24", "2018-10-04T10:07:28", ...],
//!           "scale": 1.0, "offset": 0.0, "nodata": null,
//!           "crs": "EPSG:32633", "geotransform": [x0, dx, 0, y0, 0, dy]}}
//! ```
//!
//! A sample-set store (`"kind": "samples"`) holds `/values` `(N, T_max, C)` float32
//! (NaN after each series' end), `/times` `(N, T_max)` int64 seconds since
//! 1970-01-01T00:00:00 (`i64::MIN` after the end), `/length` `(N)` int32, `/label`
//! `(N)` int64 (-1 = none) and `/split` `(N)` uint8 (0 train, 1 val, 2 test, 255 none),
//! with `bands`, `class_names` and `ids` as attributes.
//!
//! Reading a window or a date range through [`ZarrCube::read`] only retrieves the
//! chunks that overlap it.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use chrono::DateTime;
use ndarray::{Array1, Array2, Array3, ArrayD, Ix1, Ix2, Ix3, Ix4};
use serde::{Deserialize, Serialize};
use zarrs::array::{data_type, Array, ArrayBuilder};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::{Group, GroupBuilder};
use zarrs::storage::{ReadableStorageTraits, ReadableWritableListableStorageTraits};

mod cube;
#[cfg(feature = "remote")]
mod remote;
#[cfg(not(feature = "remote"))]
#[path = "remote_off.rs"]
mod remote;
mod samples;
mod shared;
mod staged;
pub mod store;

pub use cube::{write_cube, write_cube_to, CubeChunks, CubeWriter, ZarrCube};
pub use samples::{read_samples_from, write_samples, write_samples_to};
pub use shared::{SharedCubeWriter, DONE_DIR};
use staged::{write_store_atomic, NewStore};
pub use store::{is_remote, DynStore};

use crate::cube::{Datacube, GeoInfo, Radiometry};
use crate::error::{DataError, Result};
use crate::samples::{SampleSet, Series, Split};
use sits_core::dates::Timestamps;
use sits_core::io::IfExists;
/// The `sits` attribute of a store's root group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreAttrs {
    /// `"datacube"` or `"samples"`.
    pub kind: String,
    /// Layout version of this crate (1).
    #[serde(default = "one")]
    pub format_version: u32,
    /// Band names.
    pub bands: Vec<String>,
    /// ISO timestamps (cubes only).
    #[serde(default)]
    pub times: Vec<String>,
    /// Radiometric scale (cubes).
    #[serde(default = "unit")]
    pub scale: f32,
    /// Radiometric offset (cubes).
    #[serde(default)]
    pub offset: f32,
    /// Nodata value of the stored numbers (cubes).
    #[serde(default)]
    pub nodata: Option<f32>,
    /// CRS (cubes).
    #[serde(default)]
    pub crs: Option<String>,
    /// GDAL geotransform (cubes).
    #[serde(default)]
    pub geotransform: Option<[f64; 6]>,
    /// Class names (sample sets).
    #[serde(default)]
    pub class_names: Vec<String>,
    /// Sample identifiers (sample sets).
    #[serde(default)]
    pub ids: Vec<String>,
}

/// Layout version of sample-set stores written now: 2 stores every chunk (version 1
/// left out chunks equal to the fill value), so a missing chunk is an error.
const SAMPLES_FORMAT: u32 = 2;

fn one() -> u32 {
    1
}

fn unit() -> f32 {
    1.0
}

fn zerr(store: &str, e: impl std::fmt::Display) -> DataError {
    DataError::Zarr {
        store: store.to_string(),
        reason: e.to_string(),
    }
}

/// Checks that `path` is a folder that can be listed, so that a missing path or a
/// permission error is reported as such and not as "not a Zarr store".
fn check_store_dir(path: &Path) -> Result<()> {
    crate::io_util::listable_dir(path, "a Zarr store (a folder)")?;
    for meta_file in ["zarr.json", ".zgroup"] {
        let p = path.join(meta_file);
        if p.try_exists().map_err(|e| DataError::io(&p, e))? {
            crate::io_util::regular_file(&p)?;
            std::fs::File::open(&p).map_err(|e| DataError::io(&p, e))?;
        }
    }
    Ok(())
}

/// Stores `values` `(T, C, h, w)` at rows `row..row + h`, columns `col..col + w` of
/// the cube array `array` (every date and band), naming `what` in errors.
fn store_window(
    array: &Array<DynStore>,
    desc: &str,
    what: &str,
    row: usize,
    col: usize,
    values: ndarray::ArrayView4<'_, f32>,
) -> Result<()> {
    let (t, c, h, w) = values.dim();
    let ranges = [
        0..t as u64,
        0..c as u64,
        row as u64..(row + h) as u64,
        col as u64..(col + w) as u64,
    ];
    array
        .store_array_subset(
            &ranges.as_slice(),
            values.as_standard_layout().into_owned().into_dyn(),
        )
        .map_err(|e| zerr(desc, format!("/values {what}: {e}")))
}

fn new_store(path: &Path) -> Result<Arc<DynStore>> {
    let store = FilesystemStore::new(path).map_err(|e| zerr(&path.display().to_string(), e))?;
    Ok(Arc::new(store))
}

/// Checks that a store of `kind` may be written at `path` under `if_exists`: nothing
/// is there, or (with [`IfExists::Replace`]) a store written by `sits` of the same kind.
/// A folder of other files, a file, or another kind of store is never replaced.
pub fn check_store_output(path: &Path, kind: &str, if_exists: IfExists) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(DataError::io(path, e)),
        Ok(_) => {}
    }
    let found = store_kind(path);
    let reason = match (&found, if_exists) {
        (Some(k), IfExists::Replace) if k == kind => return Ok(()),
        (Some(k), IfExists::Refuse) if k == kind => format!(
            "a sits {kind} store is already there; choose another output or ask to replace it"
        ),
        (Some(k), _) => format!(
            "a sits {k} store is there, and a {kind} store was to be written; choose another \
             output"
        ),
        (None, _) => "this path exists and is not a store written by sits; it is never \
             replaced: choose a new output path"
            .to_string(),
    };
    Err(DataError::Exists {
        path: path.to_path_buf(),
        reason,
    })
}

/// The `sits.kind` of the Zarr v3 store at `path`, if it is one.
fn store_kind(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return None;
    }
    kind_in(&std::fs::read(path.join("zarr.json")).ok()?)
}

/// The `sits.kind` attribute in the bytes of a root `zarr.json`, if there is one.
fn kind_in(root_json: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(root_json).ok()?;
    v.get("attributes")?
        .get("sits")?
        .get("kind")?
        .as_str()
        .map(str::to_string)
}

fn write_root<S: ReadableWritableListableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
    attrs: &StoreAttrs,
) -> Result<()> {
    let value = serde_json::to_value(attrs).map_err(|e| zerr(desc, e))?;
    let mut map = serde_json::Map::new();
    map.insert("sits".into(), value);
    GroupBuilder::new()
        .attributes(map)
        .build(store.clone(), "/")
        .map_err(|e| zerr(desc, e))?
        .store_metadata()
        .map_err(|e| zerr(desc, e))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // a private helper; every argument is a distinct array property
fn write_array<S, T>(
    store: &Arc<S>,
    desc: &str,
    node: &str,
    data: &ArrayD<T>,
    chunks: Vec<u64>,
    dtype: zarrs::array::DataType,
    fill: T,
    dims: &[&str],
) -> Result<()>
where
    S: ReadableWritableListableStorageTraits + ?Sized + 'static,
    T: zarrs::array::Element + Copy + Into<zarrs::array::builder::ArrayBuilderFillValue>,
{
    let shape: Vec<u64> = data.shape().iter().map(|&d| d as u64).collect();
    let chunks: Vec<u64> = chunks
        .iter()
        .zip(&shape)
        .map(|(&c, &s)| c.clamp(1, s.max(1)))
        .collect();
    let array = ArrayBuilder::new(shape.clone(), chunks, dtype, fill)
        .bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(
            3, false,
        ))])
        .dimension_names(Some(dims.to_vec()))
        .build(store.clone(), node)
        .map_err(|e| zerr(desc, format!("{node}: {e}")))?;
    array
        .store_metadata()
        .map_err(|e| zerr(desc, format!("{node}: {e}")))?;
    let ranges: Vec<Range<u64>> = shape.iter().map(|&s| 0..s).collect();
    // Every chunk is stored, even one that equals the fill value, so that a reader can
    // tell a lost chunk from a chunk of fill values.
    let options = zarrs::array::CodecOptions::default().with_store_empty_chunks(true);
    array
        .store_array_subset_opt(
            &ranges.as_slice(),
            data.as_standard_layout().into_owned(),
            &options,
        )
        .map_err(|e| zerr(desc, format!("{node}: {e}")))?;
    Ok(())
}

/// Reads the `sits` attribute of a store.
fn read_attrs<S: ReadableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
) -> Result<StoreAttrs> {
    let group =
        Group::open(store.clone(), "/").map_err(|e| zerr(desc, format!("root group: {e}")))?;
    let attrs = group.attributes().get("sits").ok_or_else(|| {
        zerr(
            desc,
            "the root group has no `sits` attribute (not a store written by sits or in its layout)",
        )
    })?;
    serde_json::from_value(attrs.clone()).map_err(|e| zerr(desc, format!("attribute `sits`: {e}")))
}

fn open_array<S: ReadableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
    node: &str,
) -> Result<Array<S>> {
    Array::open(store.clone(), node).map_err(|e| zerr(desc, format!("array {node}: {e}")))
}

/// Retrieves a subset as f32 whatever the stored numeric type.
fn retrieve_f32<S: ReadableStorageTraits + ?Sized + 'static>(
    array: &Array<S>,
    desc: &str,
    ranges: &[Range<u64>],
) -> Result<ArrayD<f32>> {
    let dt = array.data_type();
    let err = |e: zarrs::array::ArrayError| zerr(desc, format!("{}: {e}", array.path()));
    macro_rules! get {
        ($t:ty) => {{
            let a: ArrayD<$t> = array.retrieve_array_subset(&ranges).map_err(err)?;
            a
        }};
    }
    Ok(if *dt == data_type::float32() {
        get!(f32)
    } else if *dt == data_type::float64() {
        get!(f64).mapv(|v| v as f32)
    } else if *dt == data_type::int16() {
        get!(i16).mapv(f32::from)
    } else if *dt == data_type::uint16() {
        get!(u16).mapv(f32::from)
    } else if *dt == data_type::int32() {
        get!(i32).mapv(|v| v as f32)
    } else if *dt == data_type::uint8() {
        get!(u8).mapv(f32::from)
    } else {
        return Err(zerr(
            desc,
            format!(
                "{}: unsupported data type {dt}; expected float32, float64, int16, uint16, int32 or uint8",
                array.path()
            ),
        ));
    })
}

fn retrieve_i64<S: ReadableStorageTraits + ?Sized + 'static>(
    array: &Array<S>,
    desc: &str,
    ranges: &[Range<u64>],
) -> Result<ArrayD<i64>> {
    let dt = array.data_type();
    let err = |e: zarrs::array::ArrayError| zerr(desc, format!("{}: {e}", array.path()));
    Ok(if *dt == data_type::int64() {
        array.retrieve_array_subset(&ranges).map_err(err)?
    } else if *dt == data_type::int32() {
        let a: ArrayD<i32> = array.retrieve_array_subset(&ranges).map_err(err)?;
        a.mapv(i64::from)
    } else if *dt == data_type::uint8() || *dt == data_type::bool() {
        let a: ArrayD<u8> = array.retrieve_array_subset(&ranges).map_err(err)?;
        a.mapv(i64::from)
    } else {
        return Err(zerr(
            desc,
            format!("{}: expected an integer array, got {dt}", array.path()),
        ));
    })
}

/// What a store holds.
#[derive(Debug)]
pub enum ZarrContent {
    /// A cube store (opened, not read).
    Cube(Box<ZarrCube<DynStore>>),
    /// A sample-set store (read).
    Samples(SampleSet),
}

/// Opens a store written in this crate's layout (a local folder or an
/// object-storage prefix, see [`store`]) and tells what it holds.
pub fn open_path(path: &Path) -> Result<ZarrContent> {
    let store = store::open(path, false)?;
    let desc = path.display().to_string();
    let attrs = read_attrs(&store, &desc)?;
    match attrs.kind.as_str() {
        "datacube" => Ok(ZarrContent::Cube(Box::new(ZarrCube::open_complete(
            store, &desc,
        )?))),
        "samples" => Ok(ZarrContent::Samples(read_samples_from(&store, &desc)?)),
        k => Err(zerr(&desc, format!("unknown sits.kind {k:?}"))),
    }
}
