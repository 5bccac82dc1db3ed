//! SSL inputs: PIMC recurrence images of the bundled MODIS series, planar pairs.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ndarray::{s, Array2, Array4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sits_core::dates::Timestamps;
use sits_data::{datasets, Radiometry, SampleSet, Series};
use sits_repr::inputs::{index_recurrence_images, planar_pair, PlanarSlice};
use sits_repr::planar::Curve;
use sits_repr::recurrence::RecurrencePlot;
use sits_repr::SpectralIndex;

#[test]
fn pimc_images_of_mato_grosso() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(datasets::MATO_GROSSO);
    let set = datasets::mato_grosso(&dir).unwrap();
    let sub = set.subset(&(0..64).collect::<Vec<_>>()).unwrap();
    let img = index_recurrence_images(
        &sub,
        Radiometry::default(),
        &SpectralIndex::pimc(),
        &RecurrencePlot::default(),
    )
    .unwrap();
    assert_eq!(img.dim(), (64, 3, 23, 23));
    // Channel 0 of sample 5 is |NDVI_i - NDVI_j| computed from red and nir.
    let bands = sub.bands();
    let (red, nir) = (
        bands.iter().position(|b| b == "red").unwrap(),
        bands.iter().position(|b| b == "nir").unwrap(),
    );
    let v = &sub.series()[5].values;
    let ndvi: Vec<f32> = (0..23)
        .map(|t| (v[[t, nir]] - v[[t, red]]) / (v[[t, nir]] + v[[t, red]]))
        .collect();
    for i in 0..23 {
        for j in 0..23 {
            assert!((img[[5, 0, i, j]] - (ndvi[i] - ndvi[j]).abs()).abs() < 1e-6);
        }
    }
}

#[test]
fn invalid_dates_are_gap_filled_and_empty_series_refused() {
    let times = Timestamps::parse(&["2020-01-01", "2020-01-11", "2020-01-31"], "t").unwrap();
    let bands: Vec<String> = ["red", "nir"].map(String::from).to_vec();
    // NDVI 0.5 at day 0, invalid at day 10, 0.0 at day 30 -> filled with 0.5 * 2/3
    let values = Array2::from_shape_vec((3, 2), vec![0.1, 0.3, 9.0, 9.0, 0.2, 0.2]).unwrap();
    let s = Series::new(values, times.clone(), Some(vec![true, false, true])).unwrap();
    let set = SampleSet::new(vec![s], bands.clone(), None, vec![], None).unwrap();
    let img = index_recurrence_images(
        &set,
        Radiometry::default(),
        &[SpectralIndex::Ndvi],
        &RecurrencePlot::default(),
    )
    .unwrap();
    assert!(
        (img[[0, 0, 0, 1]] - (0.5 - 0.5 * 2.0 / 3.0)).abs() < 1e-6,
        "{}",
        img[[0, 0, 0, 1]]
    );
    let dead = Series::new(Array2::zeros((3, 2)), times, Some(vec![false; 3])).unwrap();
    let set = SampleSet::new(vec![dead], bands, None, vec![], None).unwrap();
    let e = index_recurrence_images(
        &set,
        Radiometry::default(),
        &[SpectralIndex::Ndvi],
        &RecurrencePlot::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("sample 0"), "{e}");
}

#[test]
fn planar_pairs_are_two_views_of_one_region() {
    let region = Array4::from_shape_fn((7, 2, 6, 6), |(t, c, y, x)| {
        (t * 1000 + c * 100 + y * 10 + x) as f32
    });
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (a, b) = planar_pair(
        region.view(),
        (PlanarSlice::Curve(Curve::Hilbert), PlanarSlice::RandomRow),
        &mut rng,
    )
    .unwrap();
    assert_eq!(a.dim(), (2, 36, 7));
    assert_eq!(b.dim(), (2, 6, 7));
    // Every row of the x-t view is also a row of the Hilbert view.
    for k in 0..6 {
        let row = b.slice(s![.., k, ..]);
        assert!((0..36).any(|j| a.slice(s![.., j, ..]) == row));
    }
    let (c, d) = planar_pair(
        region.view(),
        (
            PlanarSlice::RandomOblique,
            PlanarSlice::RandomWalk { walks: 2, steps: 4 },
        ),
        &mut rng,
    )
    .unwrap();
    assert_eq!(c.dim().0, 2);
    assert_eq!(d.dim(), (2, 8, 7));
}
