//! Normalisation and gap filling on the bundled real data.

#![allow(clippy::unwrap_used, clippy::identity_op, clippy::type_complexity)]

use std::path::PathBuf;

use sits_data::datasets::{self, SloveniaNdvi};
use sits_data::gapfill::{fill_cube, fill_series, resample};
use sits_data::norm::NormStats;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

#[test]
fn band_statistics_match_a_direct_computation_and_invert() {
    let set = datasets::mato_grosso(&data(datasets::MATO_GROSSO)).unwrap();
    let stats = NormStats::of_samples(&set, 1e-4).unwrap();
    // direct two-pass computation for the ndvi band
    let xs: Vec<f64> = set
        .series()
        .iter()
        .flat_map(|s| s.values.column(5).to_vec())
        .map(f64::from)
        .collect();
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt();
    assert_eq!(stats.count[5], 2115 * 23);
    assert!((stats.mean[5] as f64 - mean).abs() < 1e-6);
    assert!((stats.std[5] as f64 - std).abs() < 1e-6);
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    let rank = 0.98 * (sorted.len() - 1) as f64;
    let exact = sorted[rank.floor() as usize]
        + (sorted[rank.ceil() as usize] - sorted[rank.floor() as usize]) * rank.fract();
    assert!(
        (stats.p98[5] as f64 - exact).abs() <= 1e-4,
        "{} vs {exact}",
        stats.p98[5]
    );

    let mut normed = set.clone();
    stats.apply_samples(&mut normed).unwrap();
    let after = NormStats::of_samples(&normed, 1e-4).unwrap();
    assert!(
        after.mean.iter().all(|m| m.abs() < 1e-4),
        "{:?}",
        after.mean
    );
    assert!(
        after.std.iter().all(|s| (s - 1.0).abs() < 1e-4),
        "{:?}",
        after.std
    );
    stats.invert_samples(&mut normed).unwrap();
    let max_err = normed
        .series()
        .iter()
        .zip(set.series())
        .flat_map(|(a, b)| {
            a.values
                .iter()
                .zip(b.values.iter())
                .map(|(x, y)| (x - y).abs())
                .collect::<Vec<_>>()
        })
        .collect::<Vec<f32>>();
    // infinite when any difference is NaN (a fold with f32::max would skip it)
    let max_err = sits_testing::max_abs_slice(&max_err);
    assert!(max_err < 1e-5, "{max_err}");
}

#[test]
fn cube_statistics_skip_clouds() {
    let s = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let stats = NormStats::of_cube(&s.cube, 1e-4).unwrap();
    let valid = s.cube.validity();
    assert_eq!(stats.count[0], valid.iter().filter(|v| **v).count() as u64);
    let vals = s.cube.values();
    let clear: Vec<f64> = vals
        .iter()
        .zip(valid.iter())
        .filter(|(_, v)| **v)
        .map(|(x, _)| *x as f64)
        .collect();
    let mean = clear.iter().sum::<f64>() / clear.len() as f64;
    assert!((stats.mean[0] as f64 - mean).abs() < 1e-5);
}

#[test]
fn gap_filling_real_cloudy_cube() {
    let s = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let mut cube = s.cube.clone();
    let before = cube.validity();
    let missing = before.iter().filter(|v| !**v).count();
    let report = fill_cube(&mut cube).unwrap();
    assert_eq!(report.empty_pixels, 0); // every pixel has clear dates
    assert_eq!(report.filled, missing);
    assert!(cube.validity().iter().all(|v| *v));
    // clear observations are untouched, filled ones lie between their neighbours
    let (a, b) = (s.cube.values(), cube.values());
    for ((idx, &ok), (x, y)) in before.indexed_iter().zip(a.iter().zip(b.iter())) {
        if ok {
            assert_eq!(x.to_bits(), y.to_bits(), "{idx:?}");
        }
    }
    let px = s.cube.pixel_series(50, 50).unwrap();
    let filled = cube.pixel_series(50, 50).unwrap();
    for t in 1..px.valid.len() - 1 {
        if !px.valid[t] {
            let prev = (0..t).rev().find(|&i| px.valid[i]);
            let next = (t + 1..px.valid.len()).find(|&i| px.valid[i]);
            if let (Some(p), Some(n)) = (prev, next) {
                let (lo, hi) = (
                    px.values[[p, 0]].min(px.values[[n, 0]]),
                    px.values[[p, 0]].max(px.values[[n, 0]]),
                );
                assert!(filled.values[[t, 0]] >= lo - 1e-6 && filled.values[[t, 0]] <= hi + 1e-6);
            }
        }
    }
}

#[test]
fn dtwsat_series_fill_and_resample() {
    let d = datasets::DtwsatCube::load(&data(datasets::DTWSAT_CUBE)).unwrap();
    let set = d.labelled_series().unwrap();
    let with_nan = set
        .series()
        .iter()
        .position(|s| s.validity().contains(&false))
        .unwrap();
    let mut s = set.series()[with_nan].clone();
    let n = fill_series(&mut s).unwrap();
    assert!(n >= 1);
    assert!(s.values.iter().all(|v| v.is_finite()));
    let r = resample(&s, 10).unwrap();
    let span = (s.times.last().unwrap() - s.times.first().unwrap()).num_days();
    assert_eq!(r.len() as i64, span / 10 + 1);
}
