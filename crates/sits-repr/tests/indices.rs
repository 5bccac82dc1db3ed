//! Spectral indices on the bundled MODIS data, on tensors and on scaled cubes.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ndarray::{Array3, Array4};
use sits_core::dates::Timestamps;
use sits_data::datasets::{self, DtwsatCube};
use sits_data::{Datacube, Radiometry};
use sits_repr::indices::{cube_indices, index_cube, sample_indices, tensor_indices, SpectralIndex};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// MOD13Q1 ships NDVI and EVI computed by NASA from the composite's reflectances,
/// all stored as int16 scaled by 1e-4, so recomputed values agree to about 1e-4
/// (rounding of three or four numbers). Not everywhere: the sample table has some
/// dates whose bands were not all taken from the same observation, and MOD13 falls
/// back to a two-band EVI when the blue band is poor. Measured on the 48,645 dates:
/// NDVI agrees to 1e-4 at the 99th percentile, EVI at the median (90th: 0.02).
#[test]
fn mato_grosso_ndvi_and_evi_match_the_modis_products() {
    let set = datasets::mato_grosso(&data().join(datasets::MATO_GROSSO)).unwrap();
    let bands = set.bands().to_vec();
    let ndvi_col = bands.iter().position(|b| b == "ndvi").unwrap();
    let evi_col = bands.iter().position(|b| b == "evi").unwrap();
    let out = sample_indices(
        &set,
        Radiometry::default(),
        &[SpectralIndex::Ndvi, SpectralIndex::evi()],
    )
    .unwrap();
    assert_eq!(out.bands(), &["NDVI".to_string(), "EVI".to_string()]);
    assert_eq!(out.labels(), set.labels());
    let (mut d_ndvi, mut d_evi) = (Vec::new(), Vec::new());
    for (s, o) in set.series().iter().zip(out.series()) {
        for t in 0..s.len() {
            d_ndvi.push((o.values[[t, 0]] - s.values[[t, ndvi_col]]).abs());
            d_evi.push((o.values[[t, 1]] - s.values[[t, evi_col]]).abs());
        }
    }
    let n = d_ndvi.len();
    assert_eq!(n, 48_645);
    d_ndvi.sort_by(f32::total_cmp);
    d_evi.sort_by(f32::total_cmp);
    let q = |v: &[f32], p: f64| v[(p * (n - 1) as f64) as usize];
    assert!(
        q(&d_ndvi, 0.99) < 1.1e-4,
        "NDVI p99 error {}",
        q(&d_ndvi, 0.99)
    );
    assert!(
        q(&d_evi, 0.5) < 1.1e-4,
        "EVI median error {}",
        q(&d_evi, 0.5)
    );
}

/// The cube has NaN in its blue band: EVI must be NaN and invalid there, NDVI not.
#[test]
fn dtwsat_cube_missing_blue_gives_invalid_evi_only() {
    let d = DtwsatCube::load(&data().join(datasets::DTWSAT_CUBE)).unwrap();
    let blue = d.cube.band_index("blue").unwrap();
    let (vals, _) = cube_indices(&d.cube, &[SpectralIndex::Ndvi]).unwrap();
    let (evi, evi_valid) = cube_indices(&d.cube, &[SpectralIndex::evi()]).unwrap();
    let values = d.cube.values();
    let mut nan_blue = 0;
    for ((t, y, x), ok) in evi_valid.indexed_iter() {
        if values[[t, blue, y, x]].is_nan() {
            nan_blue += 1;
            assert!(!ok && evi[[t, 0, y, x]].is_nan());
        }
    }
    assert_eq!(nan_blue, 52, "metadata says 52 missing blue values");
    // NDVI does not need blue: it is defined wherever red and nir are (cube validity
    // treats any NaN band as invalid, so compare only the values).
    let red = d.cube.band_index("red").unwrap();
    let nir = d.cube.band_index("nir").unwrap();
    let (t, y, x) = (3, 4, 5);
    let want = (values[[t, nir, y, x]] - values[[t, red, y, x]])
        / (values[[t, nir, y, x]] + values[[t, red, y, x]]);
    assert!((vals[[t, 0, y, x]] - want).abs() < 1e-6);
}

/// Sentinel-2 L2A digital numbers with the baseline-04.00 offset: the radiometry is
/// applied before EVI, which is not scale-free.
#[test]
fn radiometry_is_applied_before_the_formula() {
    let times = Timestamps::parse(&["2022-03-01"], "t").unwrap();
    let bands: Vec<String> = ["B02", "B04", "B08"].map(String::from).to_vec();
    // reflectances 0.05, 0.1, 0.5 as DN with the -1000 offset: (r + 0.1) * 1e4
    let mut v = Array4::<f32>::zeros((1, 3, 1, 2));
    for (b, r) in [0.05f32, 0.1, 0.5].iter().enumerate() {
        v[[0, b, 0, 0]] = (r + 0.1) * 1e4;
        v[[0, b, 0, 1]] = 0.0; // DN 0 = reflectance -0.1: undefined NDVI
    }
    let cube = Datacube::new(v, times, bands)
        .unwrap()
        .with_radiometry(Radiometry {
            scale: 1e-4,
            offset: -0.1,
        });
    let out = index_cube(&cube, &[SpectralIndex::evi(), SpectralIndex::Ndvi]).unwrap();
    let evi = out.values()[[0, 0, 0, 0]];
    assert!(
        (evi - 2.5 * 0.4 / (0.5 + 0.6 - 0.375 + 1.0)).abs() < 1e-4,
        "{evi}"
    );
    let valid = out.valid_mask().unwrap();
    assert!(valid[[0, 0, 0]]);
    assert!(!valid[[0, 0, 1]] && out.values()[[0, 1, 0, 1]].is_nan());
}

/// The candle path equals the ndarray path, NaN where undefined.
#[test]
fn tensor_path_matches_array_path() {
    let d = DtwsatCube::load(&data().join(datasets::DTWSAT_CUBE)).unwrap();
    let cube = d.cube.select_times(&[0, 1, 2, 3, 4, 5]).unwrap();
    let all = SpectralIndex::pimc();
    let (want, want_valid) = cube_indices(&cube, &all).unwrap();
    let x = Tensor::from_slice(
        cube.values().as_standard_layout().as_slice().unwrap(),
        cube.values().shape(),
        &Device::Cpu,
    )
    .unwrap();
    let (got, valid) = tensor_indices(&x, cube.bands(), 1, Radiometry::default(), &all).unwrap();
    let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    for (g, w) in got.iter().zip(want.iter()) {
        assert!(
            (g.is_nan() && w.is_nan()) || (g - w).abs() < 1e-6,
            "{g} vs {w}"
        );
    }
    let valid: Vec<u8> = valid.flatten_all().unwrap().to_vec1().unwrap();
    let want_valid: Array3<bool> = want_valid;
    // The tensor mask only knows about NaN values; the cube has no other mask here.
    for (g, w) in valid.iter().zip(want_valid.iter()) {
        assert_eq!(*g == 1, *w);
    }
    let e = tensor_indices(&x, &cube.bands()[..2], 1, Radiometry::default(), &all).unwrap_err();
    assert!(e.to_string().contains("bands on dimension 1"), "{e}");
}
