//! A cube store that several processes fill at once, one chunk-aligned block each,
//! on disk or on object storage (see [`store`](super::store)). The store is created
//! once: on disk its metadata is built aside and renamed into place, so a worker
//! that loses the race opens the winner's store; on object storage every worker
//! writes the same metadata bytes, root last. Every worker writes only whole blocks
//! of chunks, and a block counts as done once its marker exists, written after its
//! chunks. A rerun skips done blocks; [`SharedCubeWriter::missing`] lists the blocks
//! still to do, or whose chunks went missing.

use std::collections::HashSet;

use zarrs::storage::{StoreKey, StorePrefix};

#[allow(clippy::wildcard_imports)] // the parent module's helpers and imports
use super::*;

/// Folder (key prefix) of the done markers inside a shared store: `layout.json`
/// says the store is shared, `{row}_{col}.stored` (or `.empty` for a block of NaN
/// only, whose chunks zarrs does not store) that a block is done.
pub const DONE_DIR: &str = ".sits-done";

const LAYOUT_KEY: &str = ".sits-done/layout.json";

/// A cube store filled block by block by any number of processes.
pub struct SharedCubeWriter {
    desc: String,
    store: Arc<DynStore>,
    values: Array<DynStore>,
    shape: [usize; 4],
    chunks: [usize; 4],
    /// Blocks found done when the store was opened (see [`is_done`](Self::is_done)).
    done: HashSet<(usize, usize)>,
}

impl std::fmt::Debug for SharedCubeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCubeWriter")
            .field("store", &self.desc)
            .field("shape", &self.shape)
            .field("chunks", &self.chunks)
            .finish()
    }
}

fn key(desc: &str, k: &str) -> Result<StoreKey> {
    StoreKey::new(k).map_err(|e| zerr(desc, e))
}

/// Writes the metadata of a shared cube store: the values array, the layout marker,
/// and the root group last.
fn write_shared_metadata(
    store: &Arc<DynStore>,
    desc: &str,
    attrs: &StoreAttrs,
    shape: [usize; 4],
    ch: &[u64],
) -> Result<()> {
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    ArrayBuilder::new(dims, ch.to_vec(), data_type::float32(), f32::NAN)
        .bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(
            3, false,
        ))])
        .dimension_names(Some(["time", "band", "y", "x"].to_vec()))
        .build(store.clone(), "/values")
        .and_then(|a| a.store_metadata().map(|_| ()).map_err(Into::into))
        .map_err(|e| zerr(desc, format!("/values: {e}")))?;
    let layout = serde_json::json!({ "shape": shape, "chunks": ch });
    store
        .set(
            &key(desc, LAYOUT_KEY)?,
            layout.to_string().into_bytes().into(),
        )
        .map_err(|e| zerr(desc, format!("{LAYOUT_KEY}: {e}")))?;
    write_root(store, desc, attrs)
}

/// Whether the store is a shared cube store (a datacube with a layout marker).
fn is_shared(store: &DynStore, desc: &str) -> Result<bool> {
    Ok(store::kind_of(store).as_deref() == Some("datacube")
        && store
            .size_key(&key(desc, LAYOUT_KEY)?)
            .map_err(|e| zerr(desc, e))?
            .is_some())
}

/// The blocks with a done marker, and whether each was stored (`false`: all NaN).
fn list_done(store: &DynStore, desc: &str) -> Result<Vec<((usize, usize), bool)>> {
    let prefix = StorePrefix::new(format!("{DONE_DIR}/")).map_err(|e| zerr(desc, e))?;
    let keys = store
        .list_prefix(&prefix)
        .map_err(|e| zerr(desc, format!("{DONE_DIR}: {e}")))?;
    Ok(keys
        .iter()
        .filter_map(|k| {
            let name = k.as_str().rsplit('/').next()?;
            let (block, state) = name.split_once('.')?;
            let (r, c) = block.split_once('_')?;
            let stored = match state {
                "stored" => true,
                "empty" => false,
                _ => return None,
            };
            Some(((r.parse().ok()?, c.parse().ok()?), stored))
        })
        .collect())
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
        geo: Option<&GeoInfo>,
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
            crs: geo.map(|g| g.crs.clone()),
            geotransform: geo.map(|g| g.transform),
            class_names: Vec::new(),
            ids: Vec::new(),
        };
        let refuse = || DataError::Exists {
            path: path.to_path_buf(),
            reason: "something other than a shared sits cube store is there; it is never \
                     replaced: choose a new output path"
                .into(),
        };
        let store = if is_remote(path) {
            let store = store::open(path, true)?;
            if store::kind_of(store.as_ref()).is_none() {
                // nothing there, or a store being created by another worker (only
                // names a shared store has); every worker writes the same bytes
                let listed = store
                    .list_dir(&StorePrefix::root())
                    .map_err(|e| zerr(&desc, e))?;
                let foreign = listed
                    .keys()
                    .iter()
                    .map(|k| k.as_str().to_string())
                    .chain(
                        listed
                            .prefixes()
                            .iter()
                            .map(|p| p.as_str().trim_end_matches('/').to_string()),
                    )
                    .any(|n| !["zarr.json", "values", DONE_DIR].contains(&n.as_str()));
                if foreign {
                    return Err(refuse());
                }
                write_shared_metadata(&store, &desc, &attrs, shape, &ch)?;
            }
            store
        } else {
            if std::fs::symlink_metadata(path).is_err() {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let tmp = tempfile::Builder::new()
                    .prefix(".sits-shared.")
                    .tempdir_in(parent)
                    .map_err(|e| DataError::io(parent, e))?;
                write_shared_metadata(&new_store(tmp.path())?, &desc, &attrs, shape, &ch)?;
                // the rename is atomic; if another worker renamed its store first,
                // ours is dropped (with the temporary folder this call made) and
                // theirs opened
                if let Err(e) = std::fs::rename(tmp.path(), path) {
                    if std::fs::symlink_metadata(path).is_err() {
                        return Err(DataError::io(path, e));
                    }
                }
            }
            if store_kind(path).is_none() {
                return Err(refuse());
            }
            new_store(path)?
        };
        if !is_shared(store.as_ref(), &desc)? {
            return Err(refuse());
        }
        let found = read_attrs(&store, &desc)?;
        let values = Array::open(store.clone(), "/values")
            .map_err(|e| zerr(&desc, format!("/values: {e}")))?;
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
        let mut writer = Self {
            desc,
            store,
            values,
            shape,
            chunks: [
                ch[0] as usize,
                ch[1] as usize,
                ch[2] as usize,
                ch[3] as usize,
            ],
            done: HashSet::new(),
        };
        // done: marked done with its chunks present (one listing of each); a block
        // whose chunks were deleted since is written again
        let missing: HashSet<(usize, usize)> = writer.missing()?.into_iter().collect();
        writer.done = writer
            .blocks()
            .into_iter()
            .filter(|b| !missing.contains(b))
            .collect();
        Ok(writer)
    }

    /// Opens a shared store made by [`create_or_open`](Self::create_or_open), with
    /// the layout it has (to check it, or to write more blocks of it).
    pub fn open(path: &Path) -> Result<Self> {
        let desc = path.display().to_string();
        let store = store::open(path, false)?;
        if !is_shared(store.as_ref(), &desc)? {
            return Err(DataError::field(
                path,
                "layout",
                format!(
                    "not a shared sits cube store (no {LAYOUT_KEY}, or not a cube store); \
                     only stores written by sharded workers can be checked"
                ),
            ));
        }
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
        let geo = attrs.geotransform.map(|transform| GeoInfo {
            crs: attrs.crs.clone().unwrap_or_default(),
            transform,
        });
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
            geo.as_ref(),
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

    /// Whether the block at `(row, col)` was done when the store was opened: marked
    /// done, with every chunk it stores present.
    pub fn is_done(&self, row: usize, col: usize) -> bool {
        self.done.contains(&(row, col))
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
        // whether the chunks must exist: an all-NaN block is not stored by zarrs
        let state = if values.iter().all(|v| v.is_nan()) {
            "empty"
        } else {
            "stored"
        };
        let k = format!("{DONE_DIR}/{row}_{col}.{state}");
        self.store
            .set(&key(&self.desc, &k)?, Vec::new().into())
            .map_err(|e| zerr(&self.desc, format!("{k}: {e}")))
    }

    /// The blocks not done, and the done blocks whose chunks are missing, in
    /// row-major order (two listings of the store, whatever its size).
    pub fn missing(&self) -> Result<Vec<(usize, usize)>> {
        let [t, c, _, _] = self.shape;
        let [ct, cc, cy, cx] = self.chunks;
        let done: std::collections::HashMap<(usize, usize), bool> =
            list_done(self.store.as_ref(), &self.desc)?
                .into_iter()
                .collect();
        let prefix = StorePrefix::new("values/c/").map_err(|e| zerr(&self.desc, e))?;
        let chunks: HashSet<String> = self
            .store
            .list_prefix(&prefix)
            .map_err(|e| zerr(&self.desc, format!("/values: {e}")))?
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        Ok(self
            .blocks()
            .into_iter()
            .filter(|&(r, col)| match done.get(&(r, col)) {
                None => true,
                Some(false) => false,
                // every chunk of the block along time and band
                Some(true) => (0..t.div_ceil(ct)).any(|ti| {
                    (0..c.div_ceil(cc)).any(|ci| {
                        !chunks.contains(&format!("values/c/{ti}/{ci}/{}/{}", r / cy, col / cx))
                    })
                }),
            })
            .collect())
    }
}

/// Checks a shared store before it is read: every block must be done, or the
/// blocks not yet written would read as NaN. Stores without a layout marker are not
/// shared and pass.
pub(super) fn check_complete(
    store: &Arc<DynStore>,
    desc: &str,
    shape: [usize; 4],
    chunk: [u64; 4],
) -> Result<()> {
    if store
        .size_key(&key(desc, LAYOUT_KEY)?)
        .map_err(|e| zerr(desc, e))?
        .is_none()
    {
        return Ok(());
    }
    let blocks =
        shape[2].div_ceil(chunk[2].max(1) as usize) * shape[3].div_ceil(chunk[3].max(1) as usize);
    let done = list_done(store.as_ref(), desc)?.len();
    if done < blocks {
        return Err(zerr(
            desc,
            format!(
                "this store is written by sharded workers and {} of its {blocks} blocks are not \
                 done yet: run the missing shards (`sits verify` lists them) before reading it",
                blocks - done
            ),
        ));
    }
    Ok(())
}
