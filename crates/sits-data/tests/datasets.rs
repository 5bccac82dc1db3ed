//! The three bundled real datasets load through the public API with the shapes, dates
//! and class counts their READMEs state.

#![allow(clippy::unwrap_used, clippy::identity_op, clippy::type_complexity)]

use std::path::PathBuf;

use chrono::NaiveDate;
use sits_data::datasets::{self, DtwsatCube, SloveniaNdvi};
use sits_data::Split;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

#[test]
fn mato_grosso_pixel_series() {
    let set = datasets::mato_grosso(&data(datasets::MATO_GROSSO)).unwrap();
    assert_eq!(set.len(), 2115);
    assert_eq!(set.bands(), ["blue", "red", "nir", "mir", "evi", "ndvi"]);
    assert!(set
        .series()
        .iter()
        .all(|s| s.len() == 23 && s.values.ncols() == 6));
    assert_eq!(
        set.class_counts(),
        vec![400, 34, 138, 370, 398, 399, 88, 235, 53]
    );
    assert_eq!(set.class_names()[8], "Soy_Sunflower");
    let train = set.split(Split::Train).unwrap();
    let test = set.split(Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (1723, 392));
    // sample 0: Pasture, 2013-09-14 .. 2014-08-29, first blue value 0.0538 (CSV)
    let s0 = &set.series()[0];
    assert_eq!(set.labels().unwrap()[0], 3);
    assert_eq!(
        s0.times.first().unwrap().date(),
        NaiveDate::from_ymd_opt(2013, 9, 14).unwrap()
    );
    assert_eq!(
        s0.times.last().unwrap().date(),
        NaiveDate::from_ymd_opt(2014, 8, 29).unwrap()
    );
    assert!((s0.values[[0, 0]] - 0.0538).abs() < 1e-6);
    // 16 distinct start dates
    let mut starts: Vec<_> = set
        .series()
        .iter()
        .map(|s| s.times.first().unwrap())
        .collect();
    starts.sort();
    starts.dedup();
    assert_eq!(starts.len(), 16);
}

#[test]
fn dtwsat_cube_and_labelled_pixels() {
    let d = DtwsatCube::load(&data(datasets::DTWSAT_CUBE)).unwrap();
    assert_eq!(d.cube.shape(), (137, 6, 27, 37));
    assert_eq!(
        d.cube.times().first().unwrap().date().to_string(),
        "2007-09-14"
    );
    assert_eq!(d.doy.dim(), (137, 27, 37));
    assert!(d.doy.iter().all(|&v| (1..=366).contains(&v)));
    assert_eq!(d.class_counts(), vec![68, 138, 79, 134, 184]);
    assert_eq!(d.samples.len(), 603);
    // NaN counts per band from the README: blue 52, evi 26
    let v = d.cube.values();
    let nan = |c: usize| {
        v.index_axis(ndarray::Axis(1), c)
            .iter()
            .filter(|x| x.is_nan())
            .count()
    };
    assert_eq!((nan(0), nan(4), nan(5)), (52, 26, 0));
    assert!(d.cube.geo().unwrap().crs.starts_with("+proj=sinu"));
    let set = d.labelled_series().unwrap();
    assert_eq!(set.len(), 603);
    assert!(set.series().iter().all(|s| s.len() == 23 || s.len() == 22));
    assert_eq!(set.split(Split::Test).unwrap().len(), 145);

    // every pixel in every complete agricultural year
    let (years, index) = d.pixel_years(23).unwrap();
    let full: Vec<i32> = {
        let mut y: Vec<i32> = index.iter().map(|p| p.year).collect();
        y.dedup();
        y
    };
    assert_eq!(
        full,
        vec![2007, 2008, 2009, 2010, 2011],
        "2012-13 has 22 dates"
    );
    assert_eq!(years.len(), 5 * 27 * 37);
    assert!(years.series().iter().all(|s| s.len() == 23));
    let labelled_23 = set.series().iter().filter(|s| s.len() == 23).count();
    assert_eq!(
        index.iter().filter(|p| p.label.is_some()).count(),
        labelled_23
    );
    // a labelled sample's series is the same whichever way it is cut
    let (i, s) = d
        .samples
        .iter()
        .enumerate()
        .find(|(_, s)| s.t_end - s.t_start == 22)
        .unwrap();
    let year: i32 = set.series()[i].times.as_slice()[0]
        .date()
        .format("%Y")
        .to_string()
        .parse()
        .unwrap();
    let j = index
        .iter()
        .position(|p| (p.row, p.col, p.year) == (s.row, s.col, year))
        .unwrap();
    assert_eq!(years.series()[j].values, set.series()[i].values);
    assert_eq!(index[j].label, s.label);
    assert!(d.pixel_years(30).is_err());
}

#[test]
fn slovenia_cube_clouds_and_labels() {
    let s = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    assert_eq!(s.cube.shape(), (68, 1, 101, 100));
    let times = s.cube.times().as_slice();
    // two acquisitions on 2015-12-08, 7 minutes 16 seconds apart, both kept
    assert_eq!(times[7].date(), times[8].date());
    assert_eq!((times[8] - times[7]).num_seconds(), 7 * 60 + 16);
    let valid = s.cube.valid_mask().unwrap();
    let cloudy_frac = |t: usize| {
        let f = valid.index_axis(ndarray::Axis(0), t);
        f.iter().filter(|v| !**v).count() as f64 / f.len() as f64
    };
    assert_eq!(cloudy_frac(0), 0.0);
    assert_eq!(cloudy_frac(1), 1.0);
    assert!((cloudy_frac(14) - 0.5043).abs() < 1e-4);
    let counts = s.class_counts();
    assert_eq!(
        (counts[0], counts[1], counts[2], counts[3], counts[4], counts[8]),
        (155, 11, 7601, 1777, 358, 198)
    );
    assert_eq!(s.class_names[8], "artificial surface");
    let test_forest = s
        .split
        .iter()
        .zip(&s.lulc)
        .filter(|(sp, c)| **sp == 2 && **c == 2)
        .count();
    assert_eq!(test_forest, 1575);
    let mut parcels: Vec<i64> = s.parcel_id.iter().copied().collect();
    parcels.sort();
    parcels.dedup();
    assert_eq!(parcels.len(), 81);
}
