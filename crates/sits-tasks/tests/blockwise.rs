//! The sharded passes of `blockwise` against the in-memory jobs on the same
//! embeddings store: cluster, change and class maps written by several shards are
//! bit-identical to the maps of `cluster`, `changes` and `classify` on the store read
//! whole; a rerun writes nothing; the models are checked against the store.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use candle_core::Device;
use ndarray::Array4;
use sits_core::dates::Timestamps;
use sits_core::io::IfExists;
use sits_data::zarr::{write_cube, CubeChunks, ZarrCube};
use sits_data::Datacube;
use sits_tasks::blockwise::{self, ClusterModel, ProbeModel};
use sits_tasks::changes::{changes, Distance};
use sits_tasks::classify::{predict_rows, ClassifyConfig, Points};
use sits_tasks::cluster::{cluster, cluster_map, ClusterConfig};
use sits_tasks::embed::read_embeddings;
use sits_tasks::shard::Shard;

/// Three periods of 5-dimensional "embeddings" on 10 x 9 pixels: four groups of
/// pixels around four centres, some pixel-periods missing (NaN).
fn embeddings_store(path: &Path) {
    let (t, c, h, w) = (3, 5, 10, 9);
    let mut s = 7u64;
    let mut u = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let v = Array4::from_shape_fn((t, c, h, w), |(ti, ci, r, col)| {
        if (ti * 7 + r * 3 + col) % 11 == 0 {
            return f32::NAN;
        }
        let group = (r / 5) * 2 + (col + ti) % 2;
        (if ci == group { 3.0 } else { 0.0 }) + (ti as f32) * 0.3
    });
    let v = v.mapv(|x| if x.is_nan() { x } else { x + u() });
    let times = Timestamps::parse(&["2019-01-01", "2020-01-01", "2021-01-01"], "periods").unwrap();
    let bands = (0..c).map(|i| format!("e{i}")).collect();
    let cube = Datacube::new(v, times, bands).unwrap();
    let chunks = CubeChunks {
        t: 3,
        c: 5,
        y: 4,
        x: 4,
    };
    write_cube(&cube, path, chunks, IfExists::Refuse).unwrap();
}

fn values(p: &Path) -> Vec<u32> {
    ZarrCube::open_path(p)
        .unwrap()
        .read_all()
        .unwrap()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn no_tick(_: usize, _: usize) {}

#[test]
fn shards_of_each_pass_match_the_whole_store_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("embeddings.zarr");
    embeddings_store(&store);
    let emb = blockwise::open_embeddings(&store).unwrap();
    let e = read_embeddings(&store).unwrap();
    let out = tmp.path().join("maps");
    std::fs::create_dir(&out).unwrap();

    // clusters: a sample covering the store gives the centroids of k-means on all
    let cfg = ClusterConfig {
        k: 4,
        trajectories: false,
        ..ClusterConfig::default()
    };
    let model = blockwise::fit_clusters(&emb, "emb", &cfg, 1_000_000).unwrap();
    assert_eq!(model.sample_rows, e.rows.len());
    blockwise::save_model(&out, blockwise::CLUSTER_MODEL, &model, IfExists::Refuse).unwrap();
    let model: ClusterModel =
        blockwise::load_model(&out, blockwise::CLUSTER_MODEL, "fit it").unwrap();
    let clusters = out.join("clusters.zarr");
    let mut written = 0;
    for i in 0..3 {
        let shard = Shard::new(i, 3).unwrap();
        let p =
            blockwise::cluster_pass(&emb, "emb", &model, &clusters, shard, &mut no_tick).unwrap();
        assert_eq!((p.blocks, p.blocks_done_before), (9, 0));
        written += p.blocks_written;
    }
    assert_eq!(written, 9);
    let whole = cluster(&e.rows, &e.grid, &cfg).unwrap();
    let expect: Vec<u32> = cluster_map(&whole, &e.grid, "c")
        .unwrap()
        .values
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert!(values(&clusters) == expect, "sharded clusters differ");
    assert!((model.inertia - whole.inertia).abs() <= 1e-9 * whole.inertia);

    // a rerun of a shard finds its blocks done and writes nothing
    let again = blockwise::cluster_pass(
        &emb,
        "emb",
        &model,
        &clusters,
        Shard::new(1, 3).unwrap(),
        &mut no_tick,
    )
    .unwrap();
    assert_eq!((again.blocks_written, again.blocks_done_before), (0, 3));

    // changes: two shards
    let ch = out.join("changes.zarr");
    for i in 0..2 {
        blockwise::changes_pass(&emb, "emb", &ch, Shard::new(i, 2).unwrap(), &mut no_tick).unwrap();
    }
    let whole = changes(&e.rows, &e.grid, Distance::Cosine).unwrap();
    let expect: Vec<u32> = whole.scores.iter().map(|v| v.to_bits()).collect();
    assert!(values(&ch) == expect, "sharded change scores differ");

    // classes: a probe trained on labelled rows, applied by one shard of one
    let points = Points {
        rows: e.rows.iter().step_by(3).cloned().collect(),
        labels: e
            .rows
            .iter()
            .step_by(3)
            .map(|r| (0..4).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0))
            .collect(),
        splits: vec![None; e.rows.len().div_ceil(3)],
        class_names: (0..4).map(|i| format!("c{i}")).collect(),
    };
    let dev = Device::Cpu;
    let pm = ProbeModel::train(&points, &ClassifyConfig::default(), "enc", "pts", &dev).unwrap();
    let cl = out.join("classes.zarr");
    blockwise::classify_pass(
        &emb,
        "emb",
        &pm,
        &cl,
        Shard::new(0, 1).unwrap(),
        &dev,
        &mut no_tick,
    )
    .unwrap();
    let probe = sits_ssl::probe::LinearProbe::from_parts(&pm.probe, &dev).unwrap();
    let pred = predict_rows(&probe, &e.rows, &dev).unwrap();
    let mut expect = Array4::<f32>::from_elem((3, 1, 10, 9), f32::NAN);
    for (p, k) in e.grid.index.iter().zip(pred) {
        let t = e.grid.period_index(p.period).unwrap();
        expect[[t, 0, p.row, p.col]] = k as f32;
    }
    let got = ZarrCube::open_path(&cl).unwrap().read_all().unwrap();
    let bits = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&got.values().to_owned()) == bits(&expect),
        "sharded classes differ"
    );
    // and they are the groups the rows were made from
    let right = e
        .grid
        .index
        .iter()
        .zip(&e.rows)
        .filter(|(p, r)| {
            let t = e.grid.period_index(p.period).unwrap();
            let truth = (0..4).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0);
            got.values()[[t, 0, p.row, p.col]] == truth as f32
        })
        .count();
    assert_eq!(right, e.rows.len());
}

#[test]
fn samples_are_bounded_and_models_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("embeddings.zarr");
    embeddings_store(&store);
    let emb = blockwise::open_embeddings(&store).unwrap();
    let all = blockwise::sample_rows(&emb, usize::MAX).unwrap();
    let some = blockwise::sample_rows(&emb, 40).unwrap();
    assert!(
        (20..=40).contains(&some.len()),
        "{} rows sampled",
        some.len()
    );
    assert!(some.iter().all(|r| all.contains(r)));
    assert!(blockwise::sample_rows(&emb, 0).is_err());
    // more clusters than sampled rows is refused before k-means
    let cfg = ClusterConfig {
        k: 50,
        ..ClusterConfig::default()
    };
    let err = blockwise::fit_clusters(&emb, "emb", &cfg, 40)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--sample"), "{err}");

    // no model beside the output: the error gives the command that fits it
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let err = blockwise::load_model::<ClusterModel>(
        &out,
        blockwise::CLUSTER_MODEL,
        "sits cluster X --fit",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sits cluster X --fit"), "{err}");
    // a model of other dimensions is refused before any block is written
    let mut m = blockwise::fit_clusters(&emb, "emb", &ClusterConfig::default(), 100).unwrap();
    m.dims = 7;
    let target = out.join("clusters.zarr");
    let err = blockwise::cluster_pass(
        &emb,
        "emb",
        &m,
        &target,
        Shard::new(0, 1).unwrap(),
        &mut no_tick,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("7"), "{err}");
    assert!(!target.exists());
    // a model file is not replaced unless asked, and a garbled one is an error
    std::fs::write(out.join(blockwise::CLUSTER_MODEL), b"{not json").unwrap();
    assert!(blockwise::save_model(&out, blockwise::CLUSTER_MODEL, &m, IfExists::Refuse).is_err());
    let err = blockwise::load_model::<ClusterModel>(&out, blockwise::CLUSTER_MODEL, "fit")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cluster_model.json"), "{err}");
    // a store with one period has no change to score
    let one = tmp.path().join("one.zarr");
    let cube = emb.read(0..1, 0..10, 0..9).unwrap();
    write_cube(&cube, &one, CubeChunks::default(), IfExists::Refuse).unwrap();
    let one = blockwise::open_embeddings(&one).unwrap();
    let err = blockwise::changes_pass(
        &one,
        "one",
        &out.join("changes.zarr"),
        Shard::new(0, 1).unwrap(),
        &mut no_tick,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("at least 2"), "{err}");
}
