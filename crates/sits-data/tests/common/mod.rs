//! Helpers of the bad-input tests: broken copies of the bundled datasets.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// A bundled dataset folder.
pub(crate) fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// Copies a bundled dataset folder into a scratch folder we can break.
pub(crate) fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(data(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    (dir, dst)
}

/// Rewrites a text file.
pub(crate) fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(text)).unwrap();
}

/// Rewrites a JSON file.
pub(crate) fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

/// The STAC fixture folder (`tests/fixtures/stac`, made by `make_stac.py`).
pub(crate) fn stac_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stac")
}

/// Band B04 of the STAC fixture on the target grid GDAL's cube was made on.
pub(crate) fn stac_options() -> sits_data::stac::StacCubeOptions {
    let text = std::fs::read_to_string(stac_dir().join("expected.json")).unwrap();
    let e: serde_json::Value = serde_json::from_str(&text).unwrap();
    let b: Vec<f64> = e["bounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    sits_data::stac::StacCubeOptions {
        bands: vec!["B04".into()],
        cloud: None,
        grid: sits_data::stac::StacGrid {
            crs: Some(e["crs"].as_str().unwrap().into()),
            resolution: Some(e["resolution"].as_f64().unwrap()),
            bounds: Some([b[0], b[1], b[2], b[3]]),
            ..Default::default()
        },
    }
}
