//! Published encoders through the tasks: `presto:PATH` and `galileo:DIR` on the
//! bundled cubes. The reference numbers are upstream's forward passes on the same
//! pixel (`crates/sits-models/tests/fixtures/make_presto_fixtures.py`, which reads
//! the cube with numpy and turns its grid into longitude/latitude with GDAL, and
//! `make_galileo_fixtures.py` on the same series).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use candle_core::Device;
use sits_tasks::embed::embed_cube;
use sits_tasks::encoder::TaskEncoder;
use sits_tasks::input::{read, Input};

fn weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/weights/presto/default_model.pt")
}

fn galileo_weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/weights/galileo_nano")
}

fn fixture(name: &str) -> Vec<f32> {
    fixture_of("presto", name)
}

fn fixture_of(model: &str, name: &str) -> Vec<f32> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sits-models/tests/fixtures")
        .join(model)
        .join(name);
    sits_data::npy::read_npy(&p)
        .unwrap()
        .to_f32()
        .iter()
        .copied()
        .collect()
}

#[test]
fn presto_on_the_slovenia_cube_matches_upstream_on_the_fixture_pixel() {
    // periods from July: 2015-07 to 2016-06 is the fixture's twelve months
    let arg = format!("presto:{}?start-month=7", weights().display());
    slovenia_pixel_matches(&arg, &fixture("slovenia_ndvi_embedding.npy"));
}

#[test]
fn galileo_on_the_slovenia_cube_matches_upstream_on_the_fixture_pixel() {
    let arg = format!("galileo:{}?start-month=7", galileo_weights().display());
    slovenia_pixel_matches(&arg, &fixture_of("galileo", "slovenia_ndvi_embedding.npy"));
}

fn slovenia_pixel_matches(arg: &str, want: &[f32]) {
    let data = sits_tasks::bundled_data_dir().unwrap();
    let dev = Device::Cpu;
    let enc = TaskEncoder::load(Path::new(arg), &dev).unwrap();
    assert_eq!(enc.view().embedding_len(), 128);
    let Input::Cube { cube, .. } =
        read(&data.join(sits_data::datasets::SLOVENIA_NDVI), None).unwrap()
    else {
        panic!("not a cube")
    };
    let window = Input::Cube {
        cube: Box::new(cube.window(48, 48, 4, 4).unwrap()),
        labels: Vec::new(),
        class_names: Vec::new(),
    };
    let (e, _) = embed_cube(&enc, &window, "slovenia window", &dev).unwrap();
    let at = e
        .grid
        .index
        .iter()
        .position(|p| (p.row, p.col, p.period) == (2, 2, 2015))
        .unwrap();
    let scale = sits_testing::max_abs_slice(want).max(1.0);
    let diff = sits_testing::max_abs_diff_slices(&e.rows[at], want);
    assert!(
        diff <= 1e-5 * scale,
        "{arg}: embedding differs from upstream by {diff}"
    );
}

#[test]
fn a_cube_without_any_band_presto_reads_is_refused_before_embedding() {
    let data = sits_tasks::bundled_data_dir().unwrap();
    let dev = Device::Cpu;
    let arg = format!("presto:{}", weights().display());
    let enc = TaskEncoder::load(Path::new(&arg), &dev).unwrap();
    let Input::Cube { cube, .. } =
        read(&data.join(sits_data::datasets::DTWSAT_CUBE), None).unwrap()
    else {
        panic!("not a cube")
    };
    let evi = cube
        .window(0, 0, 2, 2)
        .unwrap()
        .select_bands(&["evi"])
        .unwrap();
    let input = Input::Cube {
        cube: Box::new(evi),
        labels: Vec::new(),
        class_names: Vec::new(),
    };
    let msg = embed_cube(&enc, &input, "evi only", &dev)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("evi only") && msg.contains("S2_RGB (B2, B3, B4)"),
        "{msg}"
    );
}

#[test]
fn published_options_are_checked() {
    let dev = Device::Cpu;
    for (opt, want) in [
        ("sensor=modis", "unknown sensor"),
        ("start-month=13", "a month from 1 to 12"),
        ("colour=red", "unknown option"),
    ] {
        let arg = format!("presto:{}?{opt}", weights().display());
        let msg = TaskEncoder::load(Path::new(&arg), &dev)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(want), "{opt}: {msg}");
    }
    let msg = TaskEncoder::load(Path::new("presto:/nowhere/default_model.pt"), &dev)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("nasaharvest/presto"), "{msg}");
    let msg = TaskEncoder::load(Path::new("galileo:/nowhere"), &dev)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("encoder.pt") && msg.contains("nasaharvest/galileo"),
        "{msg}"
    );
    let arg = format!("galileo:{}?scale=0", galileo_weights().display());
    let enc = TaskEncoder::load(Path::new(&arg), &dev).unwrap();
    let bands: Vec<String> = ["B2", "B3", "B4"].map(String::from).to_vec();
    let msg = enc
        .view()
        .check_input("tile.tif", &bands, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("tile.tif") && msg.contains("reflectance scale 0"),
        "{msg}"
    );
}

#[test]
fn continued_pretraining_lowers_the_reconstruction_loss_and_reloads() {
    use sits_tasks::published::{ContinuedPretraining, PublishedEncoder, CONTINUED_WEIGHTS};
    let data = sits_tasks::bundled_data_dir().unwrap();
    let dir = data.join(sits_data::datasets::MATO_GROSSO);
    let all = sits_data::datasets::mato_grosso(&dir).unwrap();
    let set = all.subset(&(0..48).collect::<Vec<_>>()).unwrap();
    let locs = sits_data::points::sample_locations(&dir, set.ids())
        .unwrap()
        .unwrap();
    let dev = Device::Cpu;
    let enc = PublishedEncoder::presto(&weights(), &dev).unwrap();
    let before = enc.embed_samples("mato grosso", &set, &locs, &dev).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = ContinuedPretraining {
        batch_size: 16,
        ..ContinuedPretraining::default()
    };
    cfg.train.epochs = 4;
    cfg.train.lr = 1e-3;
    cfg.train.warmup_steps = 0;
    let log = enc
        .continue_pretraining("mato grosso", &set, &locs, &cfg, tmp.path(), &dev)
        .unwrap();
    let mean = |e: usize| {
        let l: Vec<f64> = log
            .iter()
            .filter(|r| r.epoch == e)
            .map(|r| r.loss)
            .collect();
        assert!(
            !l.is_empty() && l.iter().all(|v| v.is_finite()),
            "epoch {e}: {l:?}"
        );
        l.iter().sum::<f64>() / l.len() as f64
    };
    assert!(mean(3) < 0.9 * mean(0), "loss {} -> {}", mean(0), mean(3));
    // the result loads as presto:OUT/presto.safetensors and embeds differently
    let arg = format!("presto:{}", tmp.path().join(CONTINUED_WEIGHTS).display());
    let TaskEncoder::Published(again) = TaskEncoder::load(Path::new(&arg), &dev).unwrap() else {
        panic!("not a published encoder")
    };
    let after = again
        .embed_samples("mato grosso", &set, &locs, &dev)
        .unwrap();
    let moved = sits_testing::max_abs_diff_slices(&after[0], &before[0]);
    assert!(
        moved.is_finite() && moved > 1e-3,
        "embedding moved by {moved}"
    );
    // a second run into the same folder is refused unless it resumes or replaces
    let err = enc
        .continue_pretraining("mato grosso", &set, &locs, &cfg, tmp.path(), &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains(CONTINUED_WEIGHTS), "{err}");
}
