//! Cube stores: the chunked writer, whole-cube writes and windowed reads.

#[allow(clippy::wildcard_imports)] // the parent module's helpers and imports
use super::*;

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

/// Writes a cube store (the layout of [`write_cube`], values only) window by window,
/// so a cube larger than memory can be produced chunk by chunk: create it with its
/// dates, bands and size, [`write_window`](Self::write_window) every spatial
/// window (all dates and bands), then [`finish`](Self::finish). On disk the store
/// is built in a temporary folder next to `path` and renamed into place by
/// `finish`; on object storage (see [`store`](super::store)) it is written in place
/// under a prefix that must be empty, and its root metadata, which makes it a
/// store, is written last by `finish`. Either way an interrupted run never leaves
/// something at `path` that reads as a cube. Pixels never written read as NaN.
pub struct CubeWriter {
    out: NewStore,
    attrs: StoreAttrs,
    values: Array<DynStore>,
    shape: [usize; 4],
}

impl std::fmt::Debug for CubeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CubeWriter")
            .field("store", &self.out.desc)
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
        let shape = [times.len(), bands.len(), height, width];
        if shape.contains(&0) {
            return Err(DataError::Argument(format!(
                "{}: cannot write an empty cube {shape:?} (T, C, H, W)",
                path.display()
            )));
        }
        let out = NewStore::create(path, "datacube", if_exists)?;
        let desc = out.desc.clone();
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
            .build(out.store.clone(), "/values")
            .map_err(|e| zerr(&desc, format!("/values: {e}")))?;
        values
            .store_metadata()
            .map_err(|e| zerr(&desc, format!("/values: {e}")))?;
        Ok(Self {
            out,
            attrs,
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
                what: format!("window at row {row}, col {col} of {}", self.out.desc),
                expected: format!(
                    "({st}, {sc}, <= {}, <= {})",
                    sh - row.min(sh),
                    sw - col.min(sw)
                ),
                got: vec![t, c, h, w],
            });
        }
        store_window(&self.values, &self.out.desc, "window", row, col, values)
    }

    /// Renames the finished store into place (replacing an existing datacube store
    /// only if `create` was asked to). A writer dropped without `finish` removes its
    /// temporary folder.
    pub fn finish(self) -> Result<()> {
        write_root(&self.out.store, &self.out.desc, &self.attrs)?;
        drop(self.values);
        self.out.commit()
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
    // the root metadata last: a store cut short has none and is not read as a cube
    write_root(store, desc, &attrs)
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

impl ZarrCube<DynStore> {
    /// Opens a cube store in a local folder or under an object-storage prefix (see
    /// [`store`](super::store)). A store still being filled by sharded workers
    /// (see [`SharedCubeWriter`](super::SharedCubeWriter)) is refused until every
    /// block is done, so that unwritten blocks never read as NaN.
    pub fn open_path(path: &Path) -> Result<Self> {
        Self::open_complete(store::open(path, false)?, &path.display().to_string())
    }

    /// [`open`](Self::open), refusing a shared store with blocks not done yet.
    pub(super) fn open_complete(store: Arc<DynStore>, desc: &str) -> Result<Self> {
        let cube = Self::open(store.clone(), desc)?;
        let chunk: Vec<u64> = cube.chunk_shape()?.iter().map(|&c| c as u64).collect();
        let chunk: [u64; 4] = chunk.try_into().unwrap_or([1; 4]);
        super::shared::check_complete(&store, desc, cube.shape, chunk)?;
        Ok(cube)
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

    /// The grid's CRS and geotransform, when the store carries them.
    pub fn geo(&self) -> Option<GeoInfo> {
        self.attrs.geotransform.map(|transform| GeoInfo {
            crs: self.attrs.crs.clone().unwrap_or_default(),
            transform,
        })
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
