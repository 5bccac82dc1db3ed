//! The jobs on a cube they were not written for (synthetic: two bands, 15 irregular
//! dates a year, calendar years, clouds): pretrain, save, load, embed, cluster,
//! change scores; bands matched by name; a band or date mismatch with a saved
//! encoder is an error naming what differs.

use candle_core::Device;
use sits_core::io::IfExists;
use sits_tasks::changes::{changes, Distance};
use sits_tasks::classify::{classify, points_for, ClassifyConfig, Points};
use sits_tasks::cluster::{cluster, ClusterConfig};
use sits_tasks::embed::{
    embed_cube, embed_to_zarr, read_embeddings, write_embedding_outputs, CubeSource, StreamOptions,
};
use sits_tasks::encoder::SavedEncoder;
use sits_tasks::experiment::ExperimentConfig;
use sits_tasks::input::{read, Input, Periods};
use sits_tasks::pretrain::{pretrain, training_series, PretrainConfig};
use sits_tasks::synthetic::{cube, SyntheticCube};
use sits_tasks::TaskError;

fn tiny() -> PretrainConfig {
    PretrainConfig {
        periods: Periods::default(),
        experiment: ExperimentConfig {
            epochs: 3,
            d_model: 16,
            heads: 2,
            layers: 1,
            batch_size: 32,
            progress: false,
            ..ExperimentConfig::default()
        },
        ..PretrainConfig::default()
    }
}

fn write_folder(s: &SyntheticCube, dir: &std::path::Path) -> std::path::PathBuf {
    let c = cube(s).expect("synthetic cube");
    let p = dir.join(format!("cube_{}", s.bands.join("_")));
    sits_data::folder::write_cube_folder(&c, &p, IfExists::Refuse).expect("write cube folder");
    p
}

#[test]
fn unseen_two_band_cube_goes_through_pretrain_embed_cluster_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dev = Device::Cpu;
    let spec = SyntheticCube::default();
    let folder = write_folder(&spec, tmp.path());
    let input = read(&folder, None).expect("read the cube folder");
    assert!(matches!(input, Input::Cube { .. }));

    let pre = pretrain(&input, &tiny(), "synthetic", "test", &dev).expect("pretrain");
    assert_eq!(pre.card.bands, ["red", "nir"]);
    assert_eq!(pre.card.periods.dates, Some(15));
    assert_eq!(pre.series.len(), 3 * 12 * 10);
    let enc_dir = tmp.path().join("encoder");
    SavedEncoder::save(&enc_dir, &pre.card, &pre.pretrained.vars, IfExists::Refuse).expect("save");
    // a second save into the same folder is refused
    assert!(
        SavedEncoder::save(&enc_dir, &pre.card, &pre.pretrained.vars, IfExists::Refuse).is_err()
    );
    let enc = SavedEncoder::load(&enc_dir, &dev).expect("load");
    assert_eq!(enc.card, pre.card);

    // the loaded encoder embeds the training series exactly as the trained one
    let (e, pp) = embed_cube(&enc, &input, "synthetic", &dev).expect("embed");
    let direct = pre.embed_training_series(&dev).expect("embed in memory");
    assert_eq!(
        e.rows, direct,
        "saved and reloaded weights embed differently"
    );
    assert_eq!(pp.skipped, 0);
    assert_eq!(e.grid.periods, [2019, 2020, 2021]);
    assert_eq!(e.rows[0].len(), 15 * 16);

    // the same cube as a Zarr store, with its bands in another order and one more:
    // bands are matched by name, so the embeddings are the same
    let mut shuffled = spec.clone();
    shuffled.bands = vec!["red".into(), "nir".into(), "swir".into()];
    let c3 = cube(&shuffled).expect("cube");
    let c3 = c3.select_bands(&["swir", "nir", "red"]).expect("reorder");
    let zarr = tmp.path().join("shuffled.zarr");
    sits_data::zarr::write_cube(&c3, &zarr, Default::default(), IfExists::Refuse).expect("zarr");
    let (e3, _) =
        embed_cube(&enc, &read(&zarr, None).expect("read zarr"), "zarr", &dev).expect("embed zarr");
    assert_eq!(
        e3.rows, e.rows,
        "band order or layout changed the embeddings"
    );

    // outputs round-trip
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    write_embedding_outputs(&e, &out, IfExists::Refuse).expect("write embeddings");
    assert!(out.join("embeddings.png").is_file() && out.join("embeddings_2021.png").is_file());
    let back = read_embeddings(&out.join("embeddings.zarr")).expect("read embeddings");
    assert_eq!(back.rows, e.rows);
    assert_eq!(back.grid.index, e.grid.index);

    // clusters: three types in stripes; the clusters of the first year follow them
    let cl = cluster(
        &e.rows,
        &e.grid,
        &ClusterConfig {
            k: 3,
            ..ClusterConfig::default()
        },
    )
    .expect("cluster");
    assert_eq!(cl.assignment.len(), e.rows.len());
    let traj = cl.trajectory.as_ref().expect("trajectories");
    assert_eq!(traj.len(), 120, "every pixel is present in every year");
    let (a, b): (Vec<usize>, Vec<usize>) = e
        .grid
        .index
        .iter()
        .zip(&cl.assignment)
        .filter(|(p, _)| p.period == 2019)
        .map(|(p, &k)| (k, spec.kind(p.row, p.col, 0)))
        .unzip();
    let ari = sits_ssl::cluster::adjusted_rand_index(&a, &b).expect("ari");
    assert!(
        ari > 0.5,
        "clusters of 2019 against the known types: ARI {ari}"
    );

    // change scores: the block that changes type in 2021 scores higher than the rest
    let ch = changes(&e.rows, &e.grid, Distance::Cosine).expect("changes");
    assert_eq!(ch.pairs, [(2019, 2020), (2020, 2021)]);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for r in 0..12 {
        for c in 0..10 {
            let s = ch.scores[[1, r, c]] as f64;
            if spec.changed(r, c) {
                on.push(s)
            } else {
                off.push(s)
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&on) > 2.0 * mean(&off),
        "changed pixels {:.4} vs unchanged {:.4}",
        mean(&on),
        mean(&off)
    );

    // a probe trained on labelled points (a sample set of the first year's pixels,
    // labelled with their type, every third one a test point) maps every pixel-year
    let (series, _, _) = training_series(&input, enc.card.periods, true, "points").expect("series");
    let n = 120;
    let labels: Vec<usize> = e.grid.index[..n]
        .iter()
        .map(|p| spec.kind(p.row, p.col, 0))
        .collect();
    let splits: Vec<sits_data::Split> = (0..n)
        .map(|i| {
            if i % 3 == 0 {
                sits_data::Split::Test
            } else {
                sits_data::Split::Train
            }
        })
        .collect();
    let first: Vec<usize> = (0..n).collect();
    let pts_set = sits_data::SampleSet::new(
        series.subset(&first).expect("subset").series().to_vec(),
        series.bands().to_vec(),
        Some(labels),
        vec!["a".into(), "b".into(), "c".into()],
        Some(splits),
    )
    .expect("points");
    let pts_path = tmp.path().join("points.zarr");
    sits_data::zarr::write_samples(&pts_set, &pts_path, IfExists::Refuse).expect("write points");
    let ready = points_for(&enc, &pts_path).expect("points for the encoder");
    let pts = Points::from_samples(&enc, &ready, &dev).expect("embed points");
    let cls = classify(&e.rows, &pts, &ClassifyConfig::default(), &dev).expect("classify");
    assert_eq!((cls.n_train, cls.n_test), (80, 40));
    assert_eq!(cls.predictions.len(), e.rows.len());
    let oa = cls.test_oa.expect("test points");
    assert!(
        oa > 0.8,
        "probe on the embeddings of the points: test OA {oa}"
    );

    // the same probe trained once and applied by two shards to the embeddings store
    // gives the same class map
    let emb_path = tmp.path().join("emb.zarr");
    sits_tasks::embed::write_embeddings(&e, &emb_path, IfExists::Refuse).expect("write");
    let emb = sits_tasks::blockwise::open_embeddings(&emb_path).expect("open");
    let model = sits_tasks::blockwise::ProbeModel::train(
        &pts,
        &ClassifyConfig::default(),
        "enc",
        "points",
        &dev,
    )
    .expect("train");
    assert_eq!((model.n_train, model.test_oa), (80, Some(oa)));
    let classes = tmp.path().join("classes.zarr");
    for i in 0..2 {
        sits_tasks::blockwise::classify_pass(
            &emb,
            "emb",
            &model,
            &classes,
            sits_tasks::shard::Shard::new(i, 2).expect("shard"),
            &dev,
            &mut |_, _| {},
        )
        .expect("class pass");
    }
    let map = sits_data::zarr::ZarrCube::open_path(&classes)
        .expect("open")
        .read_all()
        .expect("read");
    let v = map.values();
    let same = e
        .grid
        .index
        .iter()
        .zip(&cls.predictions)
        .filter(|(p, &k)| {
            let t = e.grid.period_index(p.period).expect("period");
            v[[t, 0, p.row, p.col]] == k as f32
        })
        .count();
    assert_eq!(same, e.rows.len(), "sharded classes differ from classify");
    assert_eq!(
        v.iter().filter(|x| x.is_finite()).count(),
        e.rows.len(),
        "a class where there is no embedding"
    );

    // mismatches with the saved encoder are errors that name what differs
    let mut other = spec.clone();
    other.bands = vec!["red".into(), "swir".into()];
    let f = write_folder(&other, tmp.path());
    let err = embed_cube(&enc, &read(&f, None).expect("read"), "other bands", &dev)
        .expect_err("band mismatch");
    let msg = err.to_string();
    assert!(matches!(err, TaskError::Mismatch { .. }), "{msg}");
    assert!(
        msg.contains("lacks [\"nir\"]") && msg.contains("other bands"),
        "{msg}"
    );

    let mut fewer = spec.clone();
    fewer.dates_per_year = 12;
    let f = write_folder(&fewer, tmp.path().join("fewer").as_path());
    let err = embed_cube(&enc, &read(&f, None).expect("read"), "12 dates", &dev)
        .expect_err("date mismatch");
    let msg = err.to_string();
    assert!(matches!(err, TaskError::Mismatch { .. }), "{msg}");
    assert!(
        msg.contains("15 dates") && msg.contains("2019: 12"),
        "{msg}"
    );
}

#[test]
fn a_damaged_encoder_folder_is_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dev = Device::Cpu;
    let err = SavedEncoder::load(tmp.path(), &dev).expect_err("empty folder");
    assert!(err.to_string().contains("encoder.json"), "{err}");
    std::fs::write(tmp.path().join("encoder.json"), "{\"format\": 1}").expect("write");
    let err = SavedEncoder::load(tmp.path(), &dev).expect_err("bad card");
    assert!(err.to_string().contains("not an encoder card"), "{err}");
}

#[test]
fn periods_without_enough_dates_are_refused_before_training() {
    let spec = SyntheticCube::default();
    let c = cube(&spec).expect("cube");
    let input = Input::Cube {
        cube: Box::new(c),
        labels: Vec::new(),
        class_names: Vec::new(),
    };
    let mut cfg = tiny();
    cfg.periods.dates = Some(20);
    let err =
        pretrain(&input, &cfg, "synthetic", "test", &Device::Cpu).expect_err("no period of 20");
    let msg = err.to_string();
    assert!(
        msg.contains("has 20 dates") && msg.contains("2019: 15 dates"),
        "{msg}"
    );
    cfg.periods = Periods {
        start_month: 13,
        ..Periods::default()
    };
    assert!(pretrain(&input, &cfg, "synthetic", "test", &Device::Cpu).is_err());
}

/// The synthetic cube `spec` as a Zarr store in `dir`, read back, and a tiny
/// encoder pretrained on it, saved and loaded.
fn zarr_and_encoder(
    spec: &SyntheticCube,
    dir: &std::path::Path,
) -> (std::path::PathBuf, Input, SavedEncoder) {
    let dev = Device::Cpu;
    let zarr = dir.join("region.zarr");
    sits_data::zarr::write_cube(
        &cube(spec).expect("cube"),
        &zarr,
        Default::default(),
        IfExists::Refuse,
    )
    .expect("zarr");
    let input = read(&zarr, None).expect("read");
    let pre = pretrain(&input, &tiny(), "synthetic", "test", &dev).expect("pretrain");
    let enc_dir = dir.join("encoder");
    SavedEncoder::save(&enc_dir, &pre.card, &pre.pretrained.vars, IfExists::Refuse).expect("save");
    let enc = SavedEncoder::load(&enc_dir, &dev).expect("load");
    (zarr, input, enc)
}

#[test]
fn streaming_a_zarr_cube_block_by_block_gives_the_embeddings_of_the_whole_cube() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dev = Device::Cpu;
    let spec = SyntheticCube {
        size: (11, 13),
        ..SyntheticCube::default()
    };
    let (zarr, input, enc) = zarr_and_encoder(&spec, tmp.path());
    let (whole, _) = embed_cube(&enc, &input, "whole", &dev).expect("embed in memory");

    let sits_data::open::Opened::ZarrCube(z) = sits_data::open::open(&zarr).expect("open") else {
        panic!("not a Zarr cube")
    };
    let out = tmp.path().join("streamed.zarr");
    let mut calls = Vec::new();
    // blocks of 4 x 4: edge blocks of 3 x 1 pixels too
    let done = embed_to_zarr(
        &enc,
        &CubeSource::Zarr(&z),
        "streamed",
        &out,
        StreamOptions {
            block: 4,
            if_exists: IfExists::Refuse,
            rgb_max_pixels: 1 << 20,
            shard: None,
        },
        &dev,
        &mut |i, n| calls.push((i, n)),
    )
    .expect("stream");
    assert_eq!(done.blocks, 3 * 4);
    let rgb = done.rgb.as_ref().expect("RGB images asked for");
    assert_eq!(rgb.len(), 3);
    assert_eq!((rgb[0].width, rgb[0].height), (13, 11));
    assert_eq!(calls.last(), Some(&(12, 12)));
    assert_eq!(done.pixel_periods, whole.rows.len());
    let back = read_embeddings(&out).expect("read back");
    assert_eq!(back.grid.index.len(), whole.grid.index.len());
    // the same pixel-periods in the same order (period, row, column)
    for (a, b) in back.grid.index.iter().zip(&whole.grid.index) {
        assert_eq!((a.row, a.col, a.period), (b.row, b.col, b.period));
    }
    // batches of other sizes may change the last float bits of a matmul
    let flat = |rows: &[Vec<f32>]| rows.concat();
    // NaN anywhere makes this infinite
    let worst = sits_testing::max_abs_diff_slices(&flat(&back.rows), &flat(&whole.rows));
    assert!(
        worst < 1e-5,
        "streamed and whole-cube embeddings differ by {worst}"
    );
    // an existing output is not replaced without asking
    assert!(embed_to_zarr(
        &enc,
        &CubeSource::Zarr(&z),
        "again",
        &out,
        StreamOptions {
            block: 4,
            if_exists: IfExists::Refuse,
            rgb_max_pixels: 1 << 20,
            shard: None,
        },
        &dev,
        &mut |_, _| {}
    )
    .is_err());
}

#[test]
fn three_shards_write_the_store_one_process_writes_and_a_rerun_skips_done_blocks() {
    use sits_tasks::shard::Shard;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dev = Device::Cpu;
    let spec = SyntheticCube {
        size: (10, 14),
        ..SyntheticCube::default()
    };
    let (zarr, _, enc) = zarr_and_encoder(&spec, tmp.path());
    let sits_data::open::Opened::ZarrCube(z) = sits_data::open::open(&zarr).expect("open") else {
        panic!("not a Zarr cube")
    };
    let opts = |shard| StreamOptions {
        block: 4,
        if_exists: IfExists::Refuse,
        rgb_max_pixels: 0,
        shard,
    };
    let run = |path: &std::path::Path, shard| {
        embed_to_zarr(
            &enc,
            &CubeSource::Zarr(&z),
            "region",
            path,
            opts(shard),
            &dev,
            &mut |_, _| {},
        )
        .expect("embed")
    };
    let one = tmp.path().join("one.zarr");
    run(&one, None);
    let shared = tmp.path().join("shared.zarr");
    let mut written = 0;
    for i in 0..3 {
        let s = run(&shared, Some(Shard::new(i, 3).expect("shard")));
        assert_eq!(s.blocks, 3 * 4);
        written += s.pixel_periods;
    }
    assert_eq!(written, 3 * 10 * 14);
    let read_all = |p: &std::path::Path| {
        sits_data::zarr::ZarrCube::open_path(p)
            .expect("open")
            .read_all()
            .expect("read")
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<u32>>()
    };
    assert_eq!(
        read_all(&one),
        read_all(&shared),
        "3 shards differ from one process"
    );

    let w = sits_data::zarr::SharedCubeWriter::open(&shared).expect("open shared");
    assert!(w.missing().expect("missing").is_empty());
    // a worker killed before its marker: the block is missing, and a rerun of that
    // shard writes it and nothing else
    let (r, col) = w.blocks()[4];
    std::fs::remove_file(
        shared
            .join(sits_data::zarr::DONE_DIR)
            .join(format!("{r}_{col}.stored")),
    )
    .expect("rm marker");
    assert_eq!(w.missing().expect("missing"), vec![(r, col)]);
    let again = run(&shared, Some(Shard::new(4 % 3, 3).expect("shard")));
    assert_eq!(
        again.blocks_done_before, 3,
        "the shard's other done blocks are skipped"
    );
    assert!(w.missing().expect("missing").is_empty());
    assert_eq!(read_all(&one), read_all(&shared));
    // a deleted chunk of a done block is caught
    let chunk = shared.join("values/c/0/0/0/1");
    std::fs::remove_file(&chunk).expect("rm chunk");
    assert_eq!(w.missing().expect("missing"), vec![(0, 4)]);
    // another layout into the same store is refused
    let err = embed_to_zarr(
        &enc,
        &CubeSource::Zarr(&z),
        "region",
        &shared,
        StreamOptions {
            block: 5,
            ..opts(Some(Shard::new(0, 2).expect("shard")))
        },
        &dev,
        &mut |_, _| {},
    )
    .expect_err("other chunks");
    assert!(err.to_string().contains("another layout"), "{err}");
}

#[test]
fn shards_come_from_the_flag_or_the_scheduler() {
    use sits_tasks::shard::Shard;
    assert_eq!(
        Shard::parse("2/5").expect("parse"),
        Shard { index: 2, count: 5 }
    );
    assert!(
        Shard::parse("5/5").is_err()
            && Shard::parse("1-4").is_err()
            && Shard::parse("0/0").is_err()
    );
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let slurm = Shard::from_vars(env(&[
        ("SLURM_ARRAY_TASK_ID", "7"),
        ("SLURM_ARRAY_TASK_MIN", "5"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ]))
    .expect("slurm");
    assert_eq!(slurm, Some(Shard { index: 2, count: 4 }));
    let k8s = Shard::from_vars(env(&[
        ("JOB_COMPLETION_INDEX", "1"),
        ("SITS_SHARD_COUNT", "3"),
    ]))
    .expect("k8s");
    assert_eq!(k8s, Some(Shard { index: 1, count: 3 }));
    assert!(
        Shard::from_vars(env(&[("JOB_COMPLETION_INDEX", "1")])).is_err(),
        "a count is needed"
    );
    assert_eq!(Shard::from_vars(env(&[])).expect("none"), None);
}

#[test]
fn an_alise_encoder_saves_its_projector_and_embeds_aligned_vectors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dev = Device::Cpu;
    let folder = write_folder(&SyntheticCube::default(), tmp.path());
    let input = read(&folder, None).expect("read the cube folder");
    let mut cfg = tiny();
    cfg.experiment.method = sits_tasks::experiment::Method::Alise;
    cfg.experiment.epochs = 1;
    let pre = pretrain(&input, &cfg, "synthetic", "test", &dev).expect("pretrain alise");
    let aligner = pre
        .card
        .aligner
        .clone()
        .expect("the card records the aligner");
    assert_eq!(pre.card.embedding_len(), aligner.repr_dim());
    assert_eq!(pre.card.objective, "alise");
    let enc_dir = tmp.path().join("alise");
    SavedEncoder::save(&enc_dir, &pre.card, &pre.pretrained.vars, IfExists::Refuse).expect("save");
    let enc = SavedEncoder::load(&enc_dir, &dev).expect("load");
    assert!(enc.projector.is_some());
    let (e, _) = embed_cube(&enc, &input, "synthetic", &dev).expect("embed");
    let direct = pre.embed_training_series(&dev).expect("embed in memory");
    assert_eq!(e.rows, direct, "the reloaded projector embeds differently");
    assert_eq!(e.rows[0].len(), 10 * 16);
    // a card whose aligner disagrees with the model is refused with the file named
    let mut bad = pre.card.clone();
    bad.aligner = Some(sits_models::alise::AliseConfig::published(8));
    let bad_dir = tmp.path().join("bad");
    SavedEncoder::save(&bad_dir, &bad, &pre.pretrained.vars, IfExists::Refuse).expect("save");
    let err = SavedEncoder::load(&bad_dir, &dev).expect_err("aligner width");
    assert!(err.to_string().contains("encoder.json"), "{err}");
}

#[test]
fn an_alise_encoder_embeds_a_cube_on_another_calendar() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dev = Device::Cpu;
    let input = read(&write_folder(&SyntheticCube::default(), tmp.path()), None).expect("read");
    let mut cfg = tiny();
    cfg.experiment.method = sits_tasks::experiment::Method::Alise;
    cfg.experiment.epochs = 1;
    let pre = pretrain(&input, &cfg, "synthetic", "test", &dev).expect("pretrain alise");
    assert_eq!(pre.card.periods.dates, Some(15));
    let dir = tmp.path().join("alise");
    SavedEncoder::save(&dir, &pre.card, &pre.pretrained.vars, IfExists::Refuse).expect("save");
    let enc = SavedEncoder::load(&dir, &dev).expect("load");
    // the same land seen 9 times a year for 2 years: periods of 9 dates
    let other = SyntheticCube {
        dates_per_year: 9,
        years: 2,
        seed: 4,
        ..SyntheticCube::default()
    };
    let sub = tmp.path().join("other");
    std::fs::create_dir(&sub).expect("mkdir");
    let other_input = read(&write_folder(&other, &sub), None).expect("read other");
    let (e, pp) = embed_cube(&enc, &other_input, "other", &dev).expect("aligned vectors");
    assert_eq!(e.grid.periods, [2019, 2020]);
    assert_eq!(e.rows.len(), pp.set.len());
    assert!(e
        .rows
        .iter()
        .all(|r| r.len() == 10 * 16 && r.iter().all(|v| v.is_finite())));
    // a per-date encoder with the flatten pooling cannot read that calendar
    let bert = pretrain(&input, &tiny(), "synthetic", "test", &dev).expect("pretrain bert");
    let bdir = tmp.path().join("bert");
    SavedEncoder::save(&bdir, &bert.card, &bert.pretrained.vars, IfExists::Refuse).expect("save");
    let benc = SavedEncoder::load(&bdir, &dev).expect("load");
    let err = embed_cube(&benc, &other_input, "other", &dev).expect_err("15 vs 9 dates");
    assert!(matches!(err, TaskError::Mismatch { .. }), "{err}");
}
