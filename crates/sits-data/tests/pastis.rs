//! The PASTIS layout on a small fixture made by tests/fixtures/make_fixtures.py.

#![allow(clippy::unwrap_used, clippy::identity_op, clippy::type_complexity)]

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Device;
use sits_data::npy::read_npy;
use sits_data::pastis::Pastis;
use sits_data::{Loader, LoaderConfig, SampleSource};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pastis")
}

#[test]
fn reads_metadata_patches_targets_and_norm() {
    let p = Pastis::open(&root()).unwrap();
    let ids: Vec<u64> = p.patches().iter().map(|x| x.id).collect();
    assert_eq!(ids, vec![10000, 10001, 20002]);
    assert_eq!(p.patches_in_folds(&[1]).len(), 2);
    let cube = p.read_patch(10000).unwrap();
    assert_eq!(cube.shape(), (4, 10, 16, 16));
    assert_eq!(cube.bands()[7], "B8A");
    // days since 2018-09-01, as the reference dataset computes them
    assert_eq!(
        cube.times()
            .days_since(sits_core::dates::pastis_reference()),
        vec![23, 33, 48, 63]
    );
    let raw = read_npy(&root().join("DATA_S2/S2_10000.npy"))
        .unwrap()
        .to_f32();
    assert_eq!(cube.values().into_dyn(), raw.view());
    assert_eq!(p.read_target(10001).unwrap().dim(), (16, 16));
    // mean over folds 1 and 2 of the per-fold statistics
    let (m, s) = p.norm(&[1, 2]).unwrap();
    assert_eq!(m[0], 1015.0);
    assert_eq!(s[3], 504.5);
}

#[test]
fn source_normalises_and_batches_variable_lengths() {
    let p = Pastis::open(&root()).unwrap();
    let src = p.source(&[1, 2], true).unwrap();
    assert_eq!(src.len(), 3);
    let s = src.get(1).unwrap(); // patch 10001, fold 2
    let raw = read_npy(&root().join("DATA_S2/S2_10001.npy"))
        .unwrap()
        .to_f32();
    let expect = (raw[[2, 4, 3, 5]] - 1019.0) / 505.5;
    assert!((s.values[[2, 4, 3, 5]] - expect).abs() < 1e-5);
    let cfg = LoaderConfig {
        batch_size: 3,
        shuffle: false,
        ..LoaderConfig::default()
    };
    let b = Loader::new(Arc::new(src), cfg, Device::Cpu)
        .unwrap()
        .epoch(0)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(b.values().dims(), &[3, 4, 10, 16, 16]);
    assert_eq!(b.pad_mask().to_vec2::<u8>().unwrap()[1], vec![0, 0, 0, 1]);
    assert_eq!(b.labels().unwrap().dims(), &[3, 16, 16]);
}

#[test]
fn bad_pastis_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let e = Pastis::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("metadata.geojson"), "{e}");
    std::fs::write(
        dir.path().join("metadata.geojson"),
        r#"{"features": [{"properties": {"ID_PATCH": 1, "Fold": 1, "dates-S2": {"0": 20181004, "1": 20180924}}}]}"#,
    )
    .unwrap();
    let e = Pastis::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not sorted") && e.contains("patch 1"), "{e}");
    std::fs::write(
        dir.path().join("metadata.geojson"),
        r#"{"features": [{"properties": {"ID_PATCH": 1, "Fold": 7, "dates-S2": {}}}]}"#,
    )
    .unwrap();
    let e = Pastis::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("features[0].properties.Fold"), "{e}");
    let p = Pastis::open(&root()).unwrap();
    assert!(p
        .read_patch(999)
        .unwrap_err()
        .to_string()
        .contains("PASTIS patch 999"));
}
