//! Every kind of bad input gets an error that names the file and the field.

#![allow(clippy::unwrap_used, clippy::identity_op, clippy::type_complexity)]

use sits_data::datasets::{self, SloveniaNdvi};
use sits_data::{CubeFolder, SampleSet};

mod common;
use common::{copy, data, edit, edit_json};

#[test]
fn missing_file() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    std::fs::remove_file(dir.join("timeseries.csv")).unwrap();
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("timeseries.csv") && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn truncated_cube_array() {
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    let p = dir.join("ndvi.npy");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(e.contains("ndvi.npy") && e.contains("truncated"), "{e}");
}

#[test]
fn unsupported_dtype_in_labels() {
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    // a float label layer where integer class ids are expected
    let lulc = sits_data::npy::read_npy(&dir.join("lulc.npy"))
        .unwrap()
        .to_f32();
    sits_data::npy::write_npy(
        &dir.join("lulc.npy"),
        &lulc.view(),
        sits_core::io::IfExists::Replace,
    )
    .unwrap();
    let e = SloveniaNdvi::load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("lulc.npy") && e.contains("unsupported dtype"),
        "{e}"
    );
}

#[test]
fn dates_count_differs_from_t() {
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    edit_json(&dir.join("metadata.json"), |m| {
        m["dates"].as_array_mut().unwrap().pop();
    });
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(
        e.contains("metadata.json") && e.contains("67 dates") && e.contains("T = 68"),
        "{e}"
    );
}

#[test]
fn unsorted_and_duplicate_timestamps() {
    let (_d, dir) = copy(datasets::SLOVENIA_NDVI);
    edit_json(&dir.join("metadata.json"), |m| {
        let d = m["dates"].as_array_mut().unwrap();
        d.swap(3, 4);
    });
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(
        e.contains("metadata.json") && e.contains("`dates`") && e.contains("not sorted"),
        "{e}"
    );
    edit_json(&dir.join("metadata.json"), |m| {
        let d = m["dates"].as_array_mut().unwrap();
        d.swap(3, 4);
        d[8] = d[7].clone();
    });
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(e.contains("duplicate timestamp 2015-12-08 10:04:09"), "{e}");

    // per-sample dates of a long table
    let (_d2, dir) = copy(datasets::MATO_GROSSO);
    edit(&dir.join("timeseries.csv"), |t| {
        t.replacen("0,1,2013-09-30", "0,1,2013-09-01", 1)
    });
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("timeseries.csv sample id 0") && e.contains("not sorted"),
        "{e}"
    );
}

#[test]
fn nan_where_a_label_is_expected() {
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    edit(&dir.join("samples.csv"), |t| {
        t.replacen("0,Pasture,3,", "0,Pasture,NaN,", 1)
    });
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(
        e.contains("samples.csv") && e.contains("label_index") && e.contains("line 2"),
        "{e}"
    );
    let (_d, dir) = copy(datasets::MATO_GROSSO);
    edit(&dir.join("samples.csv"), |t| {
        t.replacen("0,Pasture,3,", "0,Pasture,,", 1)
    });
    let e = SampleSet::read_folder(&dir).unwrap_err().to_string();
    assert!(e.contains("label_index") && e.contains("line 2"), "{e}");
}

#[test]
fn corrupt_metadata() {
    let (_d, dir) = copy(datasets::DTWSAT_CUBE);
    edit(&dir.join("metadata.json"), |t| t[..t.len() / 2].to_string());
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(
        e.contains("metadata.json") && e.contains("invalid JSON"),
        "{e}"
    );
    let (_d, dir) = copy(datasets::DTWSAT_CUBE);
    edit_json(&dir.join("metadata.json"), |m| {
        m["bands"] = serde_json::json!(["blue", "red"])
    });
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(e.contains("band names") && e.contains("6 names"), "{e}");
    let (_d, dir) = copy(datasets::DTWSAT_CUBE);
    edit_json(&dir.join("metadata.json"), |m| {
        m["files"]["doy.npy"]["shape"] = serde_json::json!([137, 27, 36])
    });
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(e.contains("doy.npy") && e.contains("[137, 27, 36]"), "{e}");
}

#[test]
fn sample_pixel_outside_the_cube() {
    let (_d, dir) = copy(datasets::DTWSAT_CUBE);
    edit(&dir.join("samples.csv"), |t| {
        t.replacen(",23,3,2011-09-01", ",27,3,2011-09-01", 1)
    });
    let e = CubeFolder::read(&dir).unwrap_err().to_string();
    assert!(
        e.contains("samples.csv line 2") && e.contains("pixel (27, 3)") && e.contains("27 rows"),
        "{e}"
    );
}

#[test]
fn window_and_band_errors_on_real_cube() {
    let s = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let e = s.cube.window(90, 90, 20, 5).unwrap_err().to_string();
    assert!(e.contains("rows 90..110") && e.contains("101 rows"), "{e}");
    let e = s.cube.select_bands(&["B08"]).unwrap_err().to_string();
    assert!(
        e.contains("band `B08` not found") && e.contains("ndvi"),
        "{e}"
    );
    let e = s.cube.pixel_series(0, 100).unwrap_err().to_string();
    assert!(e.contains("pixel (0, 100)"), "{e}");
}
