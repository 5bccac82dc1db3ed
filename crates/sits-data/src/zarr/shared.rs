//! A cube store that several processes fill at once, one chunk-aligned block each:
//! the store is created once (its metadata built aside and renamed into place, so
//! a worker that loses the race opens the winner's store), every worker writes only
//! whole blocks of chunks, and a block counts as done once its marker file exists,
//! written after its chunks. A rerun skips done blocks; [`SharedCubeWriter::missing`]
//! lists the blocks still to do, or whose chunks went missing.

use std::path::PathBuf;

use super::*;

/// Folder of the done markers inside a shared store.
pub const DONE_DIR: &str = ".sits-done";

/// A cube store filled block by block by any number of processes.
pub struct SharedCubeWriter {
    desc: String,
    path: PathBuf,
    values: Array<FilesystemStore>,
    shape: [usize; 4],
    chunks: [usize; 4],
}

impl std::fmt::Debug for SharedCubeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCubeWriter")
            .field("path", &self.path)
            .field("shape", &self.shape)
            .field("chunks", &self.chunks)
            .finish()
    }
}

impl SharedCubeWriter {
    /// Creates the store at `path` (metadata only: every value reads as NaN until
    /// written), or opens it when a worker made it already. An existing store of
    /// another layout (dates, bands, size, chunks) or anything else at `path` is
    /// refused: it is never replaced.
    pub fn create_or_open(
        path: &Path,
        times: &Timestamps,
        bands: Vec<String>,
        [height, width]: [usize; 2],
        chunks: CubeChunks,
    ) -> Result<Self> {
        let desc = path.display().to_string();
        let shape = [times.len(), bands.len(), height, width];
        if shape.contains(&0) {
            return Err(DataError::Argument(format!(
                "{desc}: cannot write an empty cube {shape:?} (T, C, H, W)"
            )));
        }
        let ch: Vec<u64> = [chunks.t, chunks.c, chunks.y, chunks.x]
            .iter()
            .zip(&shape)
            .map(|(&c, &s)| c.clamp(1, s) as u64)
            .collect();
        let attrs = StoreAttrs {
            kind: "datacube".into(),
            format_version: 1,
            bands: bands.clone(),
            times: times.to_iso(),
            scale: 1.0,
            offset: 0.0,
            nodata: None,
            crs: None,
            geotransform: None,
            class_names: Vec::new(),
            ids: Vec::new(),
        };
        if std::fs::symlink_metadata(path).is_err() {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".sits-shared.")
                .tempdir_in(parent)
                .map_err(|e| DataError::io(parent, e))?;
            let store = new_store(tmp.path())?;
            write_root(&store, &desc, &attrs)?;
            let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            ArrayBuilder::new(dims, ch.clone(), data_type::float32(), f32::NAN)
                .bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(
                    3, false,
                ))])
                .dimension_names(Some(["time", "band", "y", "x"].to_vec()))
                .build(store, "/values")
                .and_then(|a| a.store_metadata().map(|_| ()).map_err(Into::into))
                .map_err(|e| zerr(&desc, format!("/values: {e}")))?;
            let done = tmp.path().join(DONE_DIR);
            std::fs::create_dir(&done).map_err(|e| DataError::io(&done, e))?;
            // the rename is atomic; if another worker renamed its store first, ours
            // is dropped (with the temporary folder this call made) and theirs opened
            if let Err(e) = std::fs::rename(tmp.path(), path) {
                if std::fs::symlink_metadata(path).is_err() {
                    return Err(DataError::io(path, e));
                }
            }
        }
        if store_kind(path).as_deref() != Some("datacube") || !path.join(DONE_DIR).is_dir() {
            return Err(DataError::Exists {
                path: path.to_path_buf(),
                reason: "something other than a shared sits cube store is there; it is never \
                         replaced: choose a new output path"
                    .into(),
            });
        }
        let store = new_store(path)?;
        let found = read_attrs(&store, &desc)?;
        let values =
            Array::open(store, "/values").map_err(|e| zerr(&desc, format!("/values: {e}")))?;
        let found_shape: Vec<u64> = values.shape().to_vec();
        let found_chunks: Vec<u64> = values
            .chunk_grid()
            .chunk_shape_u64(&[0, 0, 0, 0])
            .ok()
            .flatten()
            .unwrap_or_default();
        let want_shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        if found.bands != bands
            || found.times != times.to_iso()
            || found_shape != want_shape
            || found_chunks != ch
        {
            return Err(DataError::Exists {
                path: path.to_path_buf(),
                reason: format!(
                    "a shared store of another layout is there (shape {found_shape:?}, chunks \
                     {found_chunks:?}, {} bands, {} dates; this run writes {want_shape:?} in \
                     chunks {ch:?}): use the same settings on every worker, or a new output",
                    found.bands.len(),
                    found.times.len()
                ),
            });
        }
        Ok(Self {
            desc,
            path: path.to_path_buf(),
            values,
            shape,
            chunks: [
                ch[0] as usize,
                ch[1] as usize,
                ch[2] as usize,
                ch[3] as usize,
            ],
        })
    }

    /// Opens a shared store made by [`create_or_open`](Self::create_or_open), with
    /// the layout it has (to check it, or to write more blocks of it).
    pub fn open(path: &Path) -> Result<Self> {
        let desc = path.display().to_string();
        if store_kind(path).as_deref() != Some("datacube") || !path.join(DONE_DIR).is_dir() {
            return Err(DataError::field(
                path,
                "layout",
                format!("not a shared sits cube store (no {DONE_DIR} folder, or not a cube store)"),
            ));
        }
        let store = new_store(path)?;
        let attrs = read_attrs(&store, &desc)?;
        let values =
            Array::open(store, "/values").map_err(|e| zerr(&desc, format!("/values: {e}")))?;
        let times = Timestamps::parse(&attrs.times, &desc)?;
        let s = values.shape().to_vec();
        let ch = values
            .chunk_grid()
            .chunk_shape_u64(&[0, 0, 0, 0])
            .ok()
            .flatten()
            .unwrap_or_default();
        if s.len() != 4 || ch.len() != 4 {
            return Err(zerr(
                &desc,
                format!("/values has shape {s:?} and chunks {ch:?}"),
            ));
        }
        Self::create_or_open(
            path,
            &times,
            attrs.bands,
            [s[2] as usize, s[3] as usize],
            CubeChunks {
                t: ch[0] as usize,
                c: ch[1] as usize,
                y: ch[2] as usize,
                x: ch[3] as usize,
            },
        )
    }

    /// Shape `(T, C, H, W)`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The origins `(row, col)` of every block, in row-major order: a block is one
    /// chunk in space with every date and band.
    pub fn blocks(&self) -> Vec<(usize, usize)> {
        let [_, _, h, w] = self.shape;
        let [_, _, cy, cx] = self.chunks;
        (0..h)
            .step_by(cy)
            .flat_map(|r| (0..w).step_by(cx).map(move |c| (r, c)))
            .collect()
    }

    /// The size `(height, width)` of the block at `(row, col)`.
    pub fn block_size(&self, row: usize, col: usize) -> (usize, usize) {
        let [_, _, h, w] = self.shape;
        let [_, _, cy, cx] = self.chunks;
        (cy.min(h.saturating_sub(row)), cx.min(w.saturating_sub(col)))
    }

    fn marker(&self, row: usize, col: usize) -> PathBuf {
        self.path.join(DONE_DIR).join(format!("{row}_{col}"))
    }

    /// Whether the block at `(row, col)` was written completely.
    pub fn is_done(&self, row: usize, col: usize) -> bool {
        self.marker(row, col).is_file()
    }

    /// Writes the block at `(row, col)` (its values `(T, C, h, w)`, of
    /// [`block_size`](Self::block_size)), then its done marker.
    pub fn write_block(
        &self,
        row: usize,
        col: usize,
        values: ndarray::ArrayView4<'_, f32>,
    ) -> Result<()> {
        let [t, c, _, _] = self.shape;
        let [_, _, cy, cx] = self.chunks;
        let (bh, bw) = self.block_size(row, col);
        if !row.is_multiple_of(cy) || !col.is_multiple_of(cx) || values.dim() != (t, c, bh, bw) {
            return Err(DataError::Shape {
                what: format!("block at row {row}, col {col} of {}", self.desc),
                expected: format!("a chunk-aligned block ({t}, {c}, {bh}, {bw})"),
                got: values.shape().to_vec(),
            });
        }
        store_window(&self.values, &self.desc, "block", row, col, values)?;
        // whether a chunk file must exist: an all-NaN block is not stored by zarrs
        let stored = if values.iter().all(|v| v.is_nan()) {
            "empty"
        } else {
            "stored"
        };
        let m = self.marker(row, col);
        sits_core::io::write_atomic(&m, stored.as_bytes()).map_err(|e| DataError::io(&m, e))
    }

    /// The blocks not done, and the done blocks whose chunk files are missing, in
    /// row-major order.
    pub fn missing(&self) -> Vec<(usize, usize)> {
        let [t, c, _, _] = self.shape;
        let [ct, cc, cy, cx] = self.chunks;
        self.blocks()
            .into_iter()
            .filter(|&(r, col)| {
                let Ok(m) = std::fs::read_to_string(self.marker(r, col)) else {
                    return true;
                };
                if m != "stored" {
                    return false;
                }
                // every chunk of the block along time and band
                (0..t.div_ceil(ct)).any(|ti| {
                    (0..c.div_ceil(cc)).any(|ci| {
                        !self
                            .path
                            .join("values")
                            .join(format!("c/{ti}/{ci}/{}/{}", r / cy, col / cx))
                            .is_file()
                    })
                })
            })
            .collect()
    }
}
