//! A STAC ItemCollection of COGs in two UTM zones and two resolutions, read as one
//! cube, against the cube GDAL makes of the same items (`tests/fixtures/stac/
//! make_stac.py`: rasterio.warp.reproject with the exact transformation, bilinear
//! for B04 and nearest for SCL, scale and offset, same-day fusion, SCL validity).

#![allow(clippy::unwrap_used)]

use ndarray::{Array3, Array4, Ix3, Ix4};
use sits_data::npy::{read_npy, NpyArray};
use sits_data::stac::{read_item_collection, stac_cube, StacCubeOptions, StacGrid};

mod common;
use common::{stac_dir as dir, stac_options as options};

#[test]
fn items_in_two_utm_zones_make_the_cube_gdal_makes() {
    let items = read_item_collection(&dir().join("items.json")).unwrap();
    assert_eq!(items.len(), 5);
    // the processing-baseline rule: b gives no offset but baseline 04.00
    assert!((items[1].assets["B04"].offset + 0.1).abs() < 1e-12);
    assert_eq!(items[2].assets["B04"].offset, 0.0);

    let cube = stac_cube(&dir().join("items.json"), &options()).unwrap();
    let NpyArray::F64(v) = read_npy(&dir().join("expected_values.npy")).unwrap() else {
        panic!()
    };
    let want: Array4<f64> = v.into_dimensionality::<Ix4>().unwrap();
    let NpyArray::Bool(m) = read_npy(&dir().join("expected_valid.npy")).unwrap() else {
        panic!()
    };
    let want_valid: Array3<bool> = m.into_dimensionality::<Ix3>().unwrap();
    assert_eq!(cube.shape(), (4, 1, 60, 80));
    assert_eq!(cube.times().to_iso()[0].get(..10), Some("2020-07-01"));

    // validity (nearest SCL): the same on every pixel
    let valid = cube.valid_mask().unwrap();
    let same = valid
        .iter()
        .zip(want_valid.iter())
        .filter(|(a, b)| a == b)
        .count();
    assert_eq!(
        same,
        valid.len(),
        "validity agrees on {same} of {}",
        valid.len()
    );

    // values (bilinear B04): present on the same pixels; equal to 1e-4 reflectance
    // (one digital number; the two bilinear kernels round differently, 3.5e-5 apart
    // at most on this fixture)
    let ours = cube.values();
    let (mut both, mut only_one, mut worst) = (0usize, 0usize, 0.0f64);
    for (a, b) in ours.iter().zip(want.iter()) {
        match (a.is_nan(), b.is_nan()) {
            (false, false) => {
                both += 1;
                worst = worst.max((f64::from(*a) - b).abs());
            }
            (true, true) => {}
            _ => only_one += 1,
        }
    }
    assert!(both > 5000, "{both} pixels with values");
    assert!(worst <= 1e-4, "largest difference {worst}");
    assert_eq!(only_one, 0, "pixels with a value on one side only");
    eprintln!("stac: {both} values compared, largest difference {worst:.2e}, {only_one} on one side only, validity {same}/{}", valid.len());
}

#[test]
fn an_item_without_a_band_is_named_and_a_bad_collection_refused() {
    let mut o = options();
    o.bands = vec!["B04".into(), "B08".into()];
    let e = stac_cube(&dir().join("items.json"), &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("item a") && e.contains("B08"), "{e}");
    // an area no item covers: refused before any pixel is read
    let o = StacCubeOptions {
        bands: vec!["B04".into()],
        grid: StacGrid {
            bbox: Some([-54.3, -12.1, -54.2, -12.0]),
            ..StacGrid::default()
        },
        ..StacCubeOptions::default()
    };
    let e = stac_cube(&dir().join("items.json"), &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none of the 5 items"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.json");
    std::fs::write(&p, r#"{"type": "Catalog"}"#).unwrap();
    assert!(read_item_collection(&p)
        .unwrap_err()
        .to_string()
        .contains("x.json"));
}

#[test]
fn regular_16_day_steps_are_the_median_of_the_clear_values() {
    let mut o = options();
    o.grid.step_days = Some(16);
    let cube = stac_cube(&dir().join("items.json"), &o).unwrap();
    let NpyArray::F64(v) = read_npy(&dir().join("expected_composite16.npy")).unwrap() else {
        panic!()
    };
    let want: Array4<f64> = v.into_dimensionality::<Ix4>().unwrap();
    let NpyArray::Bool(m) = read_npy(&dir().join("expected_composite16_valid.npy")).unwrap() else {
        panic!()
    };
    let want_valid: Array3<bool> = m.into_dimensionality::<Ix3>().unwrap();
    // 2020-07-01 + 16-day steps up to 2021-07-11: 24 steps, dated at their first day
    assert_eq!(cube.shape(), (24, 1, 60, 80));
    assert_eq!(cube.times().to_iso()[1].get(..10), Some("2020-07-17"));
    assert_eq!(cube.valid_mask().unwrap(), &want_valid);
    let mut compared = 0;
    for (a, b) in cube.values().iter().zip(want.iter()) {
        assert_eq!(a.is_nan(), b.is_nan());
        if !b.is_nan() {
            assert!((f64::from(*a) - b).abs() <= 1e-4, "{a} vs {b}");
            compared += 1;
        }
    }
    assert!(compared > 5000, "{compared}");
}

#[test]
fn average_resampling_onto_a_coarser_grid_is_gdals() {
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap())
            .unwrap();
    let b: Vec<f64> = e["average_bounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut o = options();
    o.grid.resolution = Some(20.0);
    o.grid.bounds = Some([b[0], b[1], b[2], b[3]]);
    o.grid.resampling = sits_data::stac::Resampling::Average;
    let cube = stac_cube(&dir().join("items.json"), &o).unwrap();
    let NpyArray::F64(v) = read_npy(&dir().join("expected_average20.npy")).unwrap() else {
        panic!()
    };
    let want: Array4<f64> = v.into_dimensionality::<Ix4>().unwrap();
    assert_eq!(cube.shape(), (4, 1, 20, 8));
    let mut compared = 0;
    for (a, b) in cube.values().iter().zip(want.iter()) {
        assert_eq!(a.is_nan(), b.is_nan(), "{a} vs {b}");
        if !b.is_nan() {
            // the mean of four 10 m pixels, up to f32 rounding
            assert!((f64::from(*a) - b).abs() <= 1e-6, "{a} vs {b}");
            compared += 1;
        }
    }
    assert!(compared > 300, "{compared}");
}
