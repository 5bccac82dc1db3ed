//! Cluster, change and class maps of a large region, a block at a time and by
//! shards: the passes of `sits cluster`, `changes` and `classify` over an
//! embeddings store written by `sits embed` (on local disk or object storage).
//!
//! What needs the whole region is fitted once, before the shards run, and stored
//! beside the output as a small JSON file: k-means centroids and the
//! standardisation of the features, fitted on a sample of the store
//! ([`fit_clusters`], `cluster_model.json`), or a linear probe trained on labelled
//! points ([`ProbeModel`], `probe_model.json`). Each worker then reads that file
//! and fills its shard of a shared store (see [`sits_data::zarr::SharedCubeWriter`]):
//! block `k` of the embeddings store's chunk grid is shard `k % n`'s, a block is
//! done once its marker is written after its chunks, and a rerun skips done
//! blocks. Memory is bounded by one block (and, when fitting, by the sample).
//!
//! With a sample that covers the whole store, the cluster map of the passes is the
//! one of [`cluster`](crate::cluster::cluster) on the same store read whole; the
//! change map always is the one of [`changes`](crate::changes::changes).

use std::path::Path;

use candle_core::Device;
use ndarray::Array4;
use serde::{Deserialize, Serialize};
use sits_core::dates::Timestamps;
use sits_core::io::IfExists;
use sits_data::zarr::{CubeChunks, DynStore, SharedCubeWriter, ZarrCube};
use sits_ssl::cluster::{kmeans_restarts, nearest};
use sits_ssl::probe::{features, LinearProbe, ProbeParts};

use crate::changes::Distance;
use crate::classify::{ClassifyConfig, Points};
use crate::cluster::{ClusterConfig, Standardisation};
use crate::error::{Context, Result, TaskError};
use crate::shard::Shard;

/// File name of the fitted k-means model beside the output.
pub const CLUSTER_MODEL: &str = "cluster_model.json";
/// File name of the trained probe beside the output.
pub const PROBE_MODEL: &str = "probe_model.json";
/// A model file larger than this is refused before it is read.
const MODEL_MAX_BYTES: u64 = 256 << 20;

/// Opens the embeddings store at `path` for a pass: a cube store (every block done
/// when it was written by shards), a local folder or an object-storage prefix.
pub fn open_embeddings(path: &Path) -> Result<ZarrCube<DynStore>> {
    ZarrCube::open_path(path).map_err(|e| {
        TaskError::input(
            path.display().to_string(),
            format!(
                "{e} (the sharded passes read an embeddings store written by `sits embed`, \
                 for example OUT/embeddings.zarr)"
            ),
        )
    })
}

/// The rows of one block `(T, C, h, w)`: `(t, row, col, values)` of every
/// pixel-date whose values are all finite, in date, row, column order.
fn block_rows(v: &Array4<f32>) -> Vec<(usize, usize, usize, Vec<f32>)> {
    let (t, c, h, w) = v.dim();
    let mut out = Vec::new();
    for ti in 0..t {
        for r in 0..h {
            for col in 0..w {
                let row: Vec<f32> = (0..c).map(|ci| v[[ti, ci, r, col]]).collect();
                if row.iter().all(|x| x.is_finite()) {
                    out.push((ti, r, col, row));
                }
            }
        }
    }
    out
}

/// Origins `(row, col)` of blocks, in row-major order.
type Origins = Vec<(usize, usize)>;

/// The block origins of `emb`'s chunk grid in row-major order, and the block side.
fn blocks(emb: &ZarrCube<DynStore>) -> Result<(Origins, [usize; 2])> {
    let [_, _, h, w] = emb.shape();
    let ch = emb.chunk_shape()?;
    let (cy, cx) = (ch[2].max(1), ch[3].max(1));
    let origins = (0..h)
        .step_by(cy)
        .flat_map(|r| (0..w).step_by(cx).map(move |c| (r, c)))
        .collect();
    Ok((origins, [cy, cx]))
}

fn read_block(
    emb: &ZarrCube<DynStore>,
    (r, c): (usize, usize),
    [cy, cx]: [usize; 2],
) -> Result<Array4<f32>> {
    let [t, _, h, w] = emb.shape();
    Ok(emb
        .read(0..t, r..(r + cy).min(h), c..(c + cx).min(w))?
        .values()
        .to_owned())
}

/// At most `max_rows` pixel-dates of `emb` with finite values, spread over the
/// store, in date, row, column order (the order of
/// [`read_embeddings`](crate::embed::read_embeddings)). When the store holds at
/// most `max_rows` pixel-dates, every one with finite values is taken. Reads an
/// evenly spread subset of the blocks, a block at a time.
pub fn sample_rows(emb: &ZarrCube<DynStore>, max_rows: usize) -> Result<Vec<Vec<f32>>> {
    if max_rows == 0 {
        return Err(TaskError::Settings(
            "the sample must hold at least 1 row".into(),
        ));
    }
    let [t, _, _, _] = emb.shape();
    let (origins, side) = blocks(emb)?;
    let per_block = t * side[0] * side[1];
    let total = per_block.saturating_mul(origins.len());
    // read four times the blocks the sample needs at least, to spread it
    let m = if total <= max_rows {
        origins.len()
    } else {
        (max_rows.div_ceil(per_block).saturating_mul(4)).clamp(1, origins.len())
    };
    let stride = (m * per_block).div_ceil(max_rows).max(1);
    let mut picked = Vec::new();
    let mut seen = 0usize;
    for i in 0..m {
        let (r0, c0) = origins[i * origins.len() / m];
        let v = read_block(emb, (r0, c0), side)?;
        let (_, _, h, w) = v.dim();
        for ti in 0..t {
            for r in 0..h {
                for c in 0..w {
                    let take = seen.is_multiple_of(stride);
                    seen += 1;
                    if !take {
                        continue;
                    }
                    let row: Vec<f32> = (0..v.dim().1).map(|ci| v[[ti, ci, r, c]]).collect();
                    if row.iter().all(|x| x.is_finite()) {
                        picked.push(((ti, r0 + r, c0 + c), row));
                    }
                }
            }
        }
    }
    picked.sort_by_key(|(k, _)| *k);
    Ok(picked.into_iter().map(|(_, r)| r).collect())
}

/// k-means centroids and the feature standardisation, fitted on a sample of an
/// embeddings store: what every shard of the cluster pass assigns with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterModel {
    /// The store it was fitted on.
    pub embeddings: String,
    /// Length of an embedding.
    pub dims: usize,
    /// The settings (k, iterations, seed, standardisation).
    pub config: ClusterConfig,
    /// Rows of the sample.
    pub sample_rows: usize,
    /// The standardisation, when `config.standardise`.
    pub standardisation: Option<Standardisation>,
    /// The centroids, in the standardised space.
    pub centroids: Vec<Vec<f32>>,
    /// Sum of squared distances of the sample to its centroids.
    pub inertia: f64,
}

/// Fits [`ClusterModel`] on at most `max_rows` rows of `emb` (see [`sample_rows`]);
/// `what` names the store.
pub fn fit_clusters(
    emb: &ZarrCube<DynStore>,
    what: &str,
    cfg: &ClusterConfig,
    max_rows: usize,
) -> Result<ClusterModel> {
    let rows = sample_rows(emb, max_rows)?;
    if rows.len() < cfg.k.max(1) {
        return Err(TaskError::input(
            what,
            format!(
                "the sample holds {} pixel-periods with finite embeddings, fewer than k = {} \
                 (raise --sample, or lower --k)",
                rows.len(),
                cfg.k
            ),
        ));
    }
    let st = cfg.standardise.then(|| Standardisation::fit(&rows));
    let x: Vec<Vec<f32>> = match &st {
        Some(s) => rows.iter().map(|r| s.apply(r)).collect(),
        None => rows,
    };
    let km = kmeans_restarts(&x, cfg.k, cfg.max_iter, cfg.seed, cfg.restarts)?;
    Ok(ClusterModel {
        embeddings: what.to_string(),
        dims: emb.shape()[1],
        config: *cfg,
        sample_rows: x.len(),
        standardisation: st,
        centroids: km.centroids,
        inertia: km.inertia,
    })
}

/// A linear probe trained on labelled points, with its test scores: what every
/// shard of the class pass predicts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeModel {
    /// The encoder folder the points were embedded with.
    pub encoder: String,
    /// The labelled points.
    pub points: String,
    /// Length of an embedding.
    pub dims: usize,
    /// Class names by class number.
    pub class_names: Vec<String>,
    /// Training points used.
    pub n_train: usize,
    /// Test points scored.
    pub n_test: usize,
    /// Overall accuracy on the test points, if there are some.
    pub test_oa: Option<f64>,
    /// Macro F1 on the test points, if there are some.
    pub test_macro_f1: Option<f64>,
    /// The probe's numbers.
    pub probe: ProbeParts,
}

impl ProbeModel {
    /// Trains the probe on `points` (see [`train_probe`](crate::classify::train_probe)).
    pub fn train(
        points: &Points,
        cfg: &ClassifyConfig,
        encoder: &str,
        points_name: &str,
        device: &Device,
    ) -> Result<Self> {
        let t = crate::classify::train_probe(points, cfg, device)?;
        Ok(Self {
            encoder: encoder.to_string(),
            points: points_name.to_string(),
            dims: points.rows.first().map_or(0, Vec::len),
            class_names: points.class_names.clone(),
            n_train: t.n_train,
            n_test: t.n_test,
            test_oa: t.test_oa,
            test_macro_f1: t.test_macro_f1,
            probe: t.probe.parts().ctx("the probe's parameters")?,
        })
    }
}

/// Writes `model` as `name` into `dir` (a local folder or an object-storage prefix).
pub fn save_model<T: Serialize>(
    dir: &Path,
    name: &str,
    model: &T,
    if_exists: IfExists,
) -> Result<std::path::PathBuf> {
    let json = serde_json::to_vec_pretty(model)
        .map_err(|e| TaskError::Settings(format!("{name}: {e}")))?;
    Ok(sits_data::zarr::store::put_file(
        dir, name, &json, if_exists,
    )?)
}

/// Reads the model `name` of `dir`, written by [`save_model`]; `fit` is the command
/// that makes it, for the error when it is not there.
pub fn load_model<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str, fit: &str) -> Result<T> {
    let path = sits_data::zarr::store::join(dir, name);
    let what = path.display().to_string();
    let bytes = sits_data::zarr::store::get_file(dir, name, MODEL_MAX_BYTES)?.ok_or_else(|| {
        TaskError::input(
            &what,
            format!(
                "not found: the shards assign with a model fitted once before they run; \
                 run `{fit}` first"
            ),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        TaskError::input(
            &what,
            format!("{e} (written by another version of sits? fit it again: `{fit}`)"),
        )
    })
}

/// What a pass did.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// The shared output store.
    pub store: std::path::PathBuf,
    /// Blocks of the whole store.
    pub blocks: usize,
    /// Blocks of this shard written by this run.
    pub blocks_written: usize,
    /// Blocks of this shard found done and skipped.
    pub blocks_done_before: usize,
    /// Finite values written by this run.
    pub values: usize,
}

/// One pass: block by block over `emb`'s chunk grid, this shard's blocks not done
/// yet are read, turned into `(layers, 1, h, w)` by `f` and written into the shared
/// store `out` (dates `times`, one band `band`).
#[allow(clippy::too_many_arguments)]
fn run_pass(
    emb: &ZarrCube<DynStore>,
    out: &Path,
    times: &Timestamps,
    band: &str,
    shard: Shard,
    f: &dyn Fn(&Array4<f32>) -> Result<Array4<f32>>,
    on_block: &mut dyn FnMut(usize, usize),
) -> Result<Pass> {
    let [_, _, h, w] = emb.shape();
    let (origins, [cy, cx]) = blocks(emb)?;
    let writer = SharedCubeWriter::create_or_open(
        out,
        times,
        vec![band.to_string()],
        [h, w],
        CubeChunks {
            t: times.len().max(1),
            c: 1,
            y: cy,
            x: cx,
        },
        emb.geo().as_ref(),
    )?;
    let mut pass = Pass {
        store: out.to_path_buf(),
        blocks: origins.len(),
        blocks_written: 0,
        blocks_done_before: 0,
        values: 0,
    };
    for (i, &(r, c)) in origins.iter().enumerate() {
        if !shard.owns(i) {
            continue;
        }
        if writer.is_done(r, c) {
            pass.blocks_done_before += 1;
        } else {
            let o = f(&read_block(emb, (r, c), [cy, cx])?)?;
            pass.values += o.iter().filter(|v| v.is_finite()).count();
            writer.write_block(r, c, o.view())?;
            pass.blocks_written += 1;
        }
        on_block(i + 1, origins.len());
    }
    Ok(pass)
}

/// The cluster pass: each pixel-period of `emb` with a finite embedding gets the
/// number of its nearest centroid of `model`, written into the shared store `out`
/// (one band `cluster`, the dates of `emb`). `what` names `emb` in errors.
pub fn cluster_pass(
    emb: &ZarrCube<DynStore>,
    what: &str,
    model: &ClusterModel,
    out: &Path,
    shard: Shard,
    on_block: &mut dyn FnMut(usize, usize),
) -> Result<Pass> {
    check_dims(emb, what, model.dims, CLUSTER_MODEL)?;
    if model.centroids.is_empty() {
        return Err(TaskError::input(CLUSTER_MODEL, "no centroid"));
    }
    let f = |v: &Array4<f32>| -> Result<Array4<f32>> {
        let (t, _, h, w) = v.dim();
        let mut o = Array4::<f32>::from_elem((t, 1, h, w), f32::NAN);
        for (ti, r, c, row) in block_rows(v) {
            let x = match &model.standardisation {
                Some(s) => s.apply(&row),
                None => row,
            };
            o[[ti, 0, r, c]] = nearest(&model.centroids, &x) as f32;
        }
        Ok(o)
    };
    run_pass(emb, out, emb.times(), "cluster", shard, &f, on_block)
}

/// The change pass: the cosine distance of each pixel's embeddings between
/// consecutive dates (periods) of `emb`, where both are finite, into the shared
/// store `out` (one band `change_score`, dated at the second period of each pair).
pub fn changes_pass(
    emb: &ZarrCube<DynStore>,
    what: &str,
    out: &Path,
    shard: Shard,
    on_block: &mut dyn FnMut(usize, usize),
) -> Result<Pass> {
    let t = emb.shape()[0];
    if t < 2 {
        return Err(TaskError::input(
            what,
            format!("the store holds {t} period; change scores need at least 2"),
        ));
    }
    let times = Timestamps::parse(&emb.times().to_iso()[1..], "second periods of the pairs")
        .map_err(sits_data::DataError::from)?;
    let f = |v: &Array4<f32>| -> Result<Array4<f32>> {
        let (t, _, h, w) = v.dim();
        let mut o = Array4::<f32>::from_elem((t - 1, 1, h, w), f32::NAN);
        // each pixel-date's row is built once, and read for both pairs it is in
        let mut at: Vec<Option<Vec<f32>>> = vec![None; t * h * w];
        for (ti, r, col, row) in block_rows(v) {
            at[(ti * h + r) * w + col] = Some(row);
        }
        for ti in 0..t - 1 {
            for r in 0..h {
                for col in 0..w {
                    let (a, b) = (
                        &at[(ti * h + r) * w + col],
                        &at[((ti + 1) * h + r) * w + col],
                    );
                    if let (Some(a), Some(b)) = (a, b) {
                        o[[ti, 0, r, col]] = Distance::Cosine.between(a, b) as f32;
                    }
                }
            }
        }
        Ok(o)
    };
    run_pass(emb, out, &times, "change_score", shard, &f, on_block)
}

/// The class pass: each pixel-period of `emb` with a finite embedding gets the
/// class the probe of `model` predicts, into the shared store `out` (one band
/// `class`, the dates of `emb`).
pub fn classify_pass(
    emb: &ZarrCube<DynStore>,
    what: &str,
    model: &ProbeModel,
    out: &Path,
    shard: Shard,
    device: &Device,
    on_block: &mut dyn FnMut(usize, usize),
) -> Result<Pass> {
    check_dims(emb, what, model.dims, PROBE_MODEL)?;
    let probe = LinearProbe::from_parts(&model.probe, device)
        .map_err(|e| TaskError::input(PROBE_MODEL, e.to_string()))?;
    let f = |v: &Array4<f32>| -> Result<Array4<f32>> {
        let (t, _, h, w) = v.dim();
        let mut o = Array4::<f32>::from_elem((t, 1, h, w), f32::NAN);
        let rows = block_rows(v);
        if rows.is_empty() {
            return Ok(o);
        }
        let x: Vec<Vec<f32>> = rows.iter().map(|r| r.3.clone()).collect();
        let pred = probe
            .predict(&features(&x, device).ctx("block features")?)
            .ctx("predicting a block")?;
        for ((ti, r, c, _), k) in rows.into_iter().zip(pred) {
            o[[ti, 0, r, c]] = k as f32;
        }
        Ok(o)
    };
    run_pass(emb, out, emb.times(), "class", shard, &f, on_block)
}

fn check_dims(emb: &ZarrCube<DynStore>, what: &str, dims: usize, model: &str) -> Result<()> {
    let c = emb.shape()[1];
    if c != dims {
        return Err(TaskError::input(
            what,
            format!(
                "embeddings of {c} dimensions, but {model} was fitted on embeddings of {dims}: \
                 fit it on this store (or on points embedded by the encoder that made it)"
            ),
        ));
    }
    Ok(())
}
