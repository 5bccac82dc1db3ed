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

use crate::cube::{Datacube, GeoInfo, Radiometry};
use crate::error::{DataError, Result};
pub use crate::io_util::IfExists;
use crate::samples::{SampleSet, Series, Split};
use sits_core::dates::Timestamps;

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

/// Chunk shape of the `/values` array of a cube, `(t, c, y, x)`; clamped to the cube.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CubeChunks {
    /// Dates per chunk.
    pub t: usize,
    /// Bands per chunk.
    pub c: usize,
    /// Rows per chunk.
    pub y: usize,
    /// Columns per chunk.
    pub x: usize,
}

impl Default for CubeChunks {
    /// 16 dates, all bands (up to 16), 64 x 64 pixels.
    fn default() -> Self {
        Self {
            t: 16,
            c: 16,
            y: 64,
            x: 64,
        }
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

fn new_store(path: &Path) -> Result<Arc<FilesystemStore>> {
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
    let text = std::fs::read_to_string(path.join("zarr.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("attributes")?
        .get("sits")?
        .get("kind")?
        .as_str()
        .map(str::to_string)
}

/// A store being built in a temporary folder next to its destination; the folder is
/// removed if the store is dropped before [`StagedStore::commit`].
struct StagedStore {
    tmp: tempfile::TempDir,
    dest: std::path::PathBuf,
    kind: &'static str,
    if_exists: IfExists,
}

impl StagedStore {
    fn new(path: &Path, kind: &'static str, if_exists: IfExists) -> Result<Self> {
        let name = path.file_name().ok_or_else(|| {
            DataError::Argument(format!("{} is not a store path", path.display()))
        })?;
        check_store_output(path, kind, if_exists)?;
        let dir = crate::io_util::parent_dir(path);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".tmp")
            .tempdir_in(dir)
            .map_err(|e| DataError::io(path, e))?;
        Ok(Self {
            tmp,
            dest: path.to_path_buf(),
            kind,
            if_exists,
        })
    }

    /// Moves the finished store into place. An existing store is replaced only if it
    /// still passes [`check_store_output`]; it is moved aside first and restored if the
    /// rename fails, so the destination is never left empty.
    fn commit(self) -> Result<()> {
        let dest = &self.dest;
        check_store_output(dest, self.kind, self.if_exists)?;
        let old = if dest.exists() {
            let aside = tempfile::Builder::new()
                .prefix(&format!(
                    ".{}.",
                    dest.file_name().unwrap_or_default().to_string_lossy()
                ))
                .suffix(".old")
                .tempdir_in(crate::io_util::parent_dir(dest))
                .map_err(|e| DataError::io(dest, e))?;
            let aside_path = aside.path().join("store");
            std::fs::rename(dest, &aside_path).map_err(|e| DataError::io(dest, e))?;
            Some((aside, aside_path))
        } else {
            None
        };
        let tmp = self.tmp.keep();
        if let Err(e) = std::fs::rename(&tmp, dest) {
            if let Some((_, aside_path)) = &old {
                let _ = std::fs::rename(aside_path, dest);
            }
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(DataError::io(dest, e));
        }
        // `old` (a store of our own kind, checked above) is removed on drop
        drop(old);
        Ok(())
    }
}

/// Writes `f` into a fresh temporary folder next to `path` and renames it into place, so
/// that a crash never leaves a half-written store at `path`.
fn write_store_atomic(
    path: &Path,
    kind: &'static str,
    if_exists: IfExists,
    f: impl FnOnce(Arc<FilesystemStore>, &str) -> Result<()>,
) -> Result<()> {
    let staged = StagedStore::new(path, kind, if_exists)?;
    let desc = path.display().to_string();
    new_store(staged.tmp.path()).and_then(|s| f(s, &desc))?;
    staged.commit()
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

/// Writes a cube store (the layout of [`write_cube`], values only) window by window,
/// so a cube larger than memory can be produced chunk by chunk: create it with its
/// dates, bands and size, [`write_window`](Self::write_window) every spatial
/// window (all dates and bands), then [`finish`](Self::finish). The store is built
/// in a temporary folder next to `path` and renamed into place by `finish`, so an
/// interrupted run never leaves a half-written store at `path`. Pixels never
/// written read as NaN.
pub struct CubeWriter {
    staged: StagedStore,
    desc: String,
    values: Array<FilesystemStore>,
    shape: [usize; 4],
}

impl std::fmt::Debug for CubeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CubeWriter")
            .field("dest", &self.staged.dest)
            .field("shape", &self.shape)
            .finish()
    }
}

impl CubeWriter {
    /// Starts a store of `times.len()` dates, `bands`, `height` x `width` pixels at
    /// `path`. An existing `path` is refused unless `if_exists` is
    /// [`IfExists::Replace`] and it is a `sits` datacube store (checked now, so that a
    /// long run fails before it starts, and again by [`finish`](Self::finish)).
    pub fn create(
        path: &Path,
        times: &sits_core::dates::Timestamps,
        bands: Vec<String>,
        [height, width]: [usize; 2],
        chunks: CubeChunks,
        geo: Option<&GeoInfo>,
        if_exists: IfExists,
    ) -> Result<Self> {
        let staged = StagedStore::new(path, "datacube", if_exists)?;
        let desc = path.display().to_string();
        let shape = [times.len(), bands.len(), height, width];
        if shape.contains(&0) {
            return Err(DataError::Argument(format!(
                "{desc}: cannot write an empty cube {shape:?} (T, C, H, W)"
            )));
        }
        let store = new_store(staged.tmp.path())?;
        let attrs = StoreAttrs {
            kind: "datacube".into(),
            format_version: 1,
            bands,
            times: times.to_iso(),
            scale: 1.0,
            offset: 0.0,
            nodata: None,
            crs: geo.map(|g| g.crs.clone()),
            geotransform: geo.map(|g| g.transform),
            class_names: Vec::new(),
            ids: Vec::new(),
        };
        write_root(&store, &desc, &attrs)?;
        let dims = shape.map(|d| d as u64);
        let ch: Vec<u64> = [chunks.t, chunks.c, chunks.y, chunks.x]
            .iter()
            .zip(&dims)
            .map(|(&c, &s)| (c as u64).clamp(1, s))
            .collect();
        let values = ArrayBuilder::new(dims.to_vec(), ch, data_type::float32(), f32::NAN)
            .bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(
                3, false,
            ))])
            .dimension_names(Some(["time", "band", "y", "x"].to_vec()))
            .build(store.clone(), "/values")
            .map_err(|e| zerr(&desc, format!("/values: {e}")))?;
        values
            .store_metadata()
            .map_err(|e| zerr(&desc, format!("/values: {e}")))?;
        Ok(Self {
            staged,
            desc,
            values,
            shape,
        })
    }

    /// Shape `(T, C, H, W)` of the store.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Writes `values` `(T, C, h, w)` at rows `row..row + h`, columns `col..col + w`.
    pub fn write_window(
        &self,
        row: usize,
        col: usize,
        values: ndarray::ArrayView4<'_, f32>,
    ) -> Result<()> {
        let (t, c, h, w) = values.dim();
        let [st, sc, sh, sw] = self.shape;
        let fits = |start: usize, len: usize, size: usize| start.checked_add(len) <= Some(size);
        if t != st || c != sc || !fits(row, h, sh) || !fits(col, w, sw) {
            return Err(DataError::Shape {
                what: format!("window at row {row}, col {col} of {}", self.desc),
                expected: format!(
                    "({st}, {sc}, <= {}, <= {})",
                    sh - row.min(sh),
                    sw - col.min(sw)
                ),
                got: vec![t, c, h, w],
            });
        }
        let ranges = [
            0..t as u64,
            0..c as u64,
            row as u64..(row + h) as u64,
            col as u64..(col + w) as u64,
        ];
        self.values
            .store_array_subset(
                &ranges.as_slice(),
                values.as_standard_layout().into_owned().into_dyn(),
            )
            .map_err(|e| zerr(&self.desc, format!("/values window: {e}")))
    }

    /// Renames the finished store into place (replacing an existing datacube store
    /// only if `create` was asked to). A writer dropped without `finish` removes its
    /// temporary folder.
    pub fn finish(self) -> Result<()> {
        drop(self.values);
        self.staged.commit()
    }
}

/// Writes a cube as a Zarr v3 store at `path`, atomically. An existing `path` is
/// refused unless `if_exists` is [`IfExists::Replace`] and it is a `sits` datacube
/// store (see [`check_store_output`]).
pub fn write_cube(
    cube: &Datacube,
    path: &Path,
    chunks: CubeChunks,
    if_exists: IfExists,
) -> Result<()> {
    write_store_atomic(path, "datacube", if_exists, |store, desc| {
        write_cube_to(&store, desc, cube, chunks)
    })
}

/// Writes a cube into any writable zarrs storage (see [`write_cube`]).
pub fn write_cube_to<S: ReadableWritableListableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
    cube: &Datacube,
    chunks: CubeChunks,
) -> Result<()> {
    let r = cube.radiometry();
    let attrs = StoreAttrs {
        kind: "datacube".into(),
        format_version: 1,
        bands: cube.bands().to_vec(),
        times: cube.times().to_iso(),
        scale: r.scale,
        offset: r.offset,
        nodata: cube.nodata(),
        crs: cube.geo().map(|g| g.crs.clone()),
        geotransform: cube.geo().map(|g| g.transform),
        class_names: Vec::new(),
        ids: Vec::new(),
    };
    write_root(store, desc, &attrs)?;
    let ch = vec![
        chunks.t as u64,
        chunks.c as u64,
        chunks.y as u64,
        chunks.x as u64,
    ];
    write_array(
        store,
        desc,
        "/values",
        &cube.values().to_owned().into_dyn(),
        ch,
        data_type::float32(),
        f32::NAN,
        &["time", "band", "y", "x"],
    )?;
    if let Some(v) = cube.valid_mask() {
        let v = v.mapv(u8::from).into_dyn();
        let ch = vec![chunks.t as u64, chunks.y as u64, chunks.x as u64];
        write_array(
            store,
            desc,
            "/valid",
            &v,
            ch,
            data_type::uint8(),
            0u8,
            &["time", "y", "x"],
        )?;
    }
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

/// An opened cube store: metadata in memory, values read on demand.
pub struct ZarrCube<S: ?Sized> {
    desc: String,
    attrs: StoreAttrs,
    times: Timestamps,
    values: Array<S>,
    valid: Option<Array<S>>,
    shape: [usize; 4],
}

impl<S: ?Sized> std::fmt::Debug for ZarrCube<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrCube")
            .field("store", &self.desc)
            .field("shape", &self.shape)
            .field("bands", &self.attrs.bands)
            .finish()
    }
}

impl ZarrCube<FilesystemStore> {
    /// Opens a cube store on the local file system.
    pub fn open_path(path: &Path) -> Result<Self> {
        check_store_dir(path)?;
        Self::open(new_store(path)?, &path.display().to_string())
    }
}

impl<S: ReadableStorageTraits + ?Sized + 'static> ZarrCube<S> {
    /// Opens a cube store on any zarrs storage; `desc` names it in errors.
    pub fn open(store: Arc<S>, desc: &str) -> Result<Self> {
        let attrs = read_attrs(&store, desc)?;
        if attrs.kind != "datacube" {
            return Err(zerr(
                desc,
                format!(
                    "attribute sits.kind is {:?}, expected \"datacube\"",
                    attrs.kind
                ),
            ));
        }
        let values = open_array(&store, desc, "/values")?;
        let shape: Vec<usize> = values.shape().iter().map(|&d| d as usize).collect();
        let shape: [usize; 4] = shape.clone().try_into().map_err(|_| DataError::Shape {
            what: format!("{desc}/values"),
            expected: "(T, C, H, W)".into(),
            got: shape,
        })?;
        let times = Timestamps::parse(&attrs.times, &format!("{desc} attribute sits.times"))?;
        if times.len() != shape[0] {
            return Err(DataError::Dates {
                what: desc.to_string(),
                reason: format!(
                    "{} times in sits.times but /values has T = {}",
                    times.len(),
                    shape[0]
                ),
            });
        }
        if attrs.bands.len() != shape[1] {
            return Err(zerr(
                desc,
                format!(
                    "{} names in sits.bands but /values has C = {}",
                    attrs.bands.len(),
                    shape[1]
                ),
            ));
        }
        let valid = match Array::open(store.clone(), "/valid") {
            Ok(a) => {
                let expect = [shape[0] as u64, shape[2] as u64, shape[3] as u64];
                if a.shape() != expect {
                    return Err(DataError::Shape {
                        what: format!("{desc}/valid"),
                        expected: format!("{expect:?}"),
                        got: a.shape().iter().map(|&d| d as usize).collect(),
                    });
                }
                Some(a)
            }
            Err(zarrs::array::ArrayCreateError::MissingMetadata) => None,
            Err(e) => return Err(zerr(desc, format!("array /valid: {e}"))),
        };
        Ok(Self {
            desc: desc.to_string(),
            attrs,
            times,
            values,
            valid,
            shape,
        })
    }

    /// `(T, C, H, W)`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Acquisition times.
    pub fn times(&self) -> &Timestamps {
        &self.times
    }

    /// Band names.
    pub fn bands(&self) -> &[String] {
        &self.attrs.bands
    }

    /// Chunk shape of `/values` (of its first chunk).
    pub fn chunk_shape(&self) -> Result<Vec<usize>> {
        Ok(self.values.chunk_shape_usize(&[0, 0, 0, 0])?)
    }

    /// Reads the whole cube.
    pub fn read_all(&self) -> Result<Datacube> {
        let [t, _, h, w] = self.shape;
        self.read(0..t, 0..h, 0..w)
    }

    /// Reads dates `times`, rows `rows` and columns `cols` (all bands); only the
    /// overlapping chunks are retrieved.
    pub fn read(
        &self,
        times: Range<usize>,
        rows: Range<usize>,
        cols: Range<usize>,
    ) -> Result<Datacube> {
        let [t, c, h, w] = self.shape;
        if times.start >= times.end
            || rows.start >= rows.end
            || cols.start >= cols.end
            || times.end > t
            || rows.end > h
            || cols.end > w
        {
            return Err(DataError::OutOfBounds {
                what: format!(
                    "read of dates {times:?}, rows {rows:?}, cols {cols:?} from {}",
                    self.desc
                ),
                reason: format!("the store holds {t} dates x {h} rows x {w} columns"),
            });
        }
        let r = |r: &Range<usize>| r.start as u64..r.end as u64;
        crate::io_util::check_read_size(
            &format!("{}/values", self.desc),
            &[
                times.len() as u64,
                c as u64,
                rows.len() as u64,
                cols.len() as u64,
            ],
            4,
        )?;
        let values = retrieve_f32(
            &self.values,
            &self.desc,
            &[r(&times), 0..c as u64, r(&rows), r(&cols)],
        )?
        .into_dimensionality::<Ix4>()?;
        let idx: Vec<usize> = times.clone().collect();
        let mut cube = Datacube::new(values, self.times.select(&idx), self.attrs.bands.clone())?
            .with_radiometry(Radiometry {
                scale: self.attrs.scale,
                offset: self.attrs.offset,
            })
            .with_nodata(self.attrs.nodata);
        if let Some(gt) = self.attrs.geotransform {
            let geo = GeoInfo {
                crs: self.attrs.crs.clone().unwrap_or_default(),
                transform: gt,
            };
            cube = cube.with_geo(Some(geo.shifted(rows.start, cols.start)));
        }
        if let Some(v) = &self.valid {
            let ranges = [r(&times), r(&rows), r(&cols)];
            let dt = v.data_type();
            let m: ArrayD<bool> = if *dt == data_type::uint8() || *dt == data_type::bool() {
                // one pass from the stored bytes (the common case)
                let a: ArrayD<u8> = v
                    .retrieve_array_subset(&ranges.as_slice())
                    .map_err(|e| zerr(&self.desc, format!("/valid: {e}")))?;
                a.mapv(|x| x != 0)
            } else {
                retrieve_i64(v, &self.desc, &ranges)?.mapv(|x| x != 0)
            };
            let m: Array3<bool> = m.into_dimensionality::<Ix3>()?;
            cube = cube.with_valid(m)?;
        }
        Ok(cube)
    }

    /// Reads the dates with `start <= t < end` over the whole extent.
    pub fn read_time_range(
        &self,
        start: chrono::NaiveDateTime,
        end: chrono::NaiveDateTime,
    ) -> Result<Datacube> {
        let r = self.times.range_indices(start, end);
        let [_, _, h, w] = self.shape;
        self.read(r, 0..h, 0..w)
    }
}

/// Writes a sample set as a Zarr v3 store at `path`, atomically; an existing `path`
/// is treated as by [`write_cube`].
pub fn write_samples(set: &SampleSet, path: &Path, if_exists: IfExists) -> Result<()> {
    write_store_atomic(path, "samples", if_exists, |store, desc| {
        write_samples_to(&store, desc, set)
    })
}

/// Writes a sample set into any writable zarrs storage (see [`write_samples`]).
pub fn write_samples_to<S: ReadableWritableListableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
    set: &SampleSet,
) -> Result<()> {
    let (n, t, c) = (set.len(), set.max_len(), set.bands().len());
    let mut values = ndarray::Array3::from_elem((n, t, c), f32::NAN);
    let mut times = Array2::from_elem((n, t), i64::MIN);
    let mut length = Array1::zeros(n);
    for (i, s) in set.series().iter().enumerate() {
        values
            .slice_mut(ndarray::s![i, ..s.len(), ..])
            .assign(&s.values);
        for (j, ts) in s.times.as_slice().iter().enumerate() {
            times[[i, j]] = ts.and_utc().timestamp();
        }
        length[i] = s.len() as i32;
    }
    let label = Array1::from_iter((0..n).map(|i| set.labels().map_or(-1, |l| l[i] as i64)));
    let split = Array1::from_iter((0..n).map(|i| match set.splits().map(|s| s[i]) {
        Some(Split::Train) => 0u8,
        Some(Split::Val) => 1,
        Some(Split::Test) => 2,
        None => 255,
    }));
    let attrs = StoreAttrs {
        kind: "samples".into(),
        format_version: SAMPLES_FORMAT,
        bands: set.bands().to_vec(),
        times: Vec::new(),
        scale: 1.0,
        offset: 0.0,
        nodata: None,
        crs: None,
        geotransform: None,
        class_names: set.class_names().to_vec(),
        ids: set.ids().to_vec(),
    };
    write_root(store, desc, &attrs)?;
    let nc = 4096u64;
    write_array(
        store,
        desc,
        "/values",
        &values.into_dyn(),
        vec![nc, t as u64, c as u64],
        data_type::float32(),
        f32::NAN,
        &["sample", "time", "band"],
    )?;
    write_array(
        store,
        desc,
        "/times",
        &times.into_dyn(),
        vec![nc, t as u64],
        data_type::int64(),
        i64::MIN,
        &["sample", "time"],
    )?;
    write_array(
        store,
        desc,
        "/length",
        &length.into_dyn(),
        vec![nc],
        data_type::int32(),
        0i32,
        &["sample"],
    )?;
    write_array(
        store,
        desc,
        "/label",
        &label.into_dyn(),
        vec![nc],
        data_type::int64(),
        -1i64,
        &["sample"],
    )?;
    write_array(
        store,
        desc,
        "/split",
        &split.into_dyn(),
        vec![nc],
        data_type::uint8(),
        255u8,
        &["sample"],
    )?;
    Ok(())
}

/// What a store holds.
#[derive(Debug)]
pub enum ZarrContent {
    /// A cube store (opened, not read).
    Cube(Box<ZarrCube<FilesystemStore>>),
    /// A sample-set store (read).
    Samples(SampleSet),
}

/// Opens a store written in this crate's layout and tells what it holds.
pub fn open_path(path: &Path) -> Result<ZarrContent> {
    check_store_dir(path)?;
    let store = new_store(path)?;
    let desc = path.display().to_string();
    let attrs = read_attrs(&store, &desc)?;
    match attrs.kind.as_str() {
        "datacube" => Ok(ZarrContent::Cube(Box::new(ZarrCube::open(store, &desc)?))),
        "samples" => Ok(ZarrContent::Samples(read_samples_from(&store, &desc)?)),
        k => Err(zerr(&desc, format!("unknown sits.kind {k:?}"))),
    }
}

/// Checks that every chunk of `array` is in the store (a missing chunk would read as
/// fill values: NaN values, absent labels, dates of 1677).
fn require_chunks<S: ReadableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
    array: &Array<S>,
) -> Result<()> {
    let grid = array.chunk_grid_shape().to_vec();
    let mut idx = vec![0u64; grid.len()];
    if grid.contains(&0) {
        return Ok(());
    }
    loop {
        let key = array.chunk_key(&idx);
        if store.size_key(&key)?.is_none() {
            return Err(zerr(
                desc,
                format!(
                    "{}: chunk {idx:?} ({key}) is missing; the store is incomplete (copy it again \
                     or rewrite it)",
                    array.path()
                ),
            ));
        }
        // next index, last axis fastest
        let mut axis = grid.len();
        loop {
            if axis == 0 {
                return Ok(());
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < grid[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

/// Reads a sample-set store from any zarrs storage.
///
/// The shapes of all arrays are checked against each other and the whole read against
/// [`read_budget`](crate::io_util::read_budget) before anything is read, and every
/// chunk must be present.
pub fn read_samples_from<S: ReadableStorageTraits + ?Sized + 'static>(
    store: &Arc<S>,
    desc: &str,
) -> Result<SampleSet> {
    let attrs = read_attrs(store, desc)?;
    let values = open_array(store, desc, "/values")?;
    let sh = values.shape().to_vec();
    let [n, t, c] = sh[..] else {
        return Err(DataError::Shape {
            what: format!("{desc}/values"),
            expected: "(N, T, C)".into(),
            got: sh.iter().map(|&d| d as usize).collect(),
        });
    };
    if c != attrs.bands.len() as u64 {
        return Err(zerr(
            desc,
            format!(
                "/values has C = {c} but sits.bands names {} bands",
                attrs.bands.len()
            ),
        ));
    }
    let arrays = [
        ("/times", vec![n, t]),
        ("/length", vec![n]),
        ("/label", vec![n]),
        ("/split", vec![n]),
    ]
    .map(|(node, expect)| {
        let a = open_array(store, desc, node)?;
        if a.shape() != expect.as_slice() {
            return Err(DataError::Shape {
                what: format!("{desc}{node}"),
                expected: format!("{expect:?} to match /values {sh:?}"),
                got: a.shape().iter().map(|&d| d as usize).collect(),
            });
        }
        Ok(a)
    });
    let [times, length, label, split] = arrays;
    let (times, length, label, split) = (times?, length?, label?, split?);
    crate::io_util::check_read_size(&format!("{desc}/values"), &sh, 4)?;
    crate::io_util::check_read_size(&format!("{desc}/times"), &[n, t], 8)?;
    let strict = attrs.format_version >= SAMPLES_FORMAT;
    for a in [&times, &length] {
        require_chunks(store, desc, a)?;
    }
    if strict {
        for a in [&values, &label, &split] {
            require_chunks(store, desc, a)?;
        }
    }
    let values = retrieve_f32(&values, desc, &[0..n, 0..t, 0..c])?.into_dimensionality::<Ix3>()?;
    let times = retrieve_i64(&times, desc, &[0..n, 0..t])?.into_dimensionality::<Ix2>()?;
    let whole = 0..n;
    let all = std::slice::from_ref(&whole);
    let length = retrieve_i64(&length, desc, all)?.into_dimensionality::<Ix1>()?;
    let label = retrieve_i64(&label, desc, all)?.into_dimensionality::<Ix1>()?;
    let split = retrieve_i64(&split, desc, all)?.into_dimensionality::<Ix1>()?;
    if let Some((idx, v)) = values.indexed_iter().find(|(_, v)| v.is_infinite()) {
        return Err(zerr(
            desc,
            format!("/values{idx:?} is {v}; missing values are stored as NaN"),
        ));
    }
    let mut series = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let len = length[i];
        if len <= 0 || len as u64 > t {
            return Err(zerr(
                desc,
                format!("/length[{i}] = {len} is outside 1..={t}"),
            ));
        }
        let len = len as usize;
        let ts = (0..len)
            .map(|j| {
                DateTime::from_timestamp(times[[i, j]], 0)
                    .map(|d| d.naive_utc())
                    .ok_or_else(|| zerr(desc, format!("/times[{i}, {j}] is not a valid timestamp")))
            })
            .collect::<Result<Vec<_>>>()?;
        let what = format!("{desc} sample {i}");
        let s = Series::new(
            values.slice(ndarray::s![i, ..len, ..]).to_owned(),
            Timestamps::new(ts, &what)?,
            None,
        )?;
        series.push(s);
    }
    let labels = if label.iter().all(|&l| l < 0) {
        None
    } else {
        if let Some(i) = label.iter().position(|&l| l < 0) {
            return Err(zerr(
                desc,
                format!("/label[{i}] is missing (-1) while other samples are labelled"),
            ));
        }
        Some(label.iter().map(|&l| l as usize).collect())
    };
    let splits = if split.iter().all(|&s| s == 255) {
        None
    } else {
        Some(
            split
                .iter()
                .enumerate()
                .map(|(i, &s)| match s {
                    0 => Ok(Split::Train),
                    1 => Ok(Split::Val),
                    2 => Ok(Split::Test),
                    v => Err(zerr(desc, format!("/split[{i}] = {v} is not 0, 1 or 2"))),
                })
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let mut set = SampleSet::new(series, attrs.bands, labels, attrs.class_names, splits)?;
    if !attrs.ids.is_empty() {
        if attrs.ids.len() != set.len() {
            return Err(zerr(
                desc,
                format!(
                    "sits.ids lists {} ids for {} samples",
                    attrs.ids.len(),
                    set.len()
                ),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(attrs.ids.len());
        if let Some(dup) = attrs.ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(zerr(
                desc,
                format!("sits.ids: sample id {dup:?} appears twice; ids must be unique"),
            ));
        }
        set = set.with_ids(attrs.ids)?;
    }
    Ok(set)
}
