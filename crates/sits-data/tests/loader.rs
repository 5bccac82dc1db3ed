//! The loader: padding, masks, labels, determinism across thread counts.

#![allow(clippy::unwrap_used, clippy::identity_op, clippy::type_complexity)]

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Device;
use chrono::NaiveDate;
use ndarray::Array2;
use proptest::prelude::*;
use rand::RngCore;
use sits_core::dates::Timestamps;
use sits_data::datasets::{self, SloveniaNdvi};
use sits_data::loader::CubePatches;
use sits_data::{collate, Loader, LoaderConfig, Sample, SampleSet, Series};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn flat(b: &sits_core::SitsBatch) -> (Vec<f32>, Vec<f32>, Vec<u8>, Vec<i64>) {
    (
        b.values().flatten_all().unwrap().to_vec1().unwrap(),
        b.days().flatten_all().unwrap().to_vec1().unwrap(),
        b.pad_mask().flatten_all().unwrap().to_vec1().unwrap(),
        b.labels()
            .map(|l| l.flatten_all().unwrap().to_vec1().unwrap())
            .unwrap_or_default(),
    )
}

/// Drops each date with probability 0.3 (keeps at least one): a real, rng-driven view.
struct DropDates;

impl sits_core::Augmentation<Sample> for DropDates {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> candle_core::Result<Sample> {
        let keep: Vec<usize> = (0..s.len()).filter(|_| rng.next_u32() % 10 >= 3).collect();
        let keep = if keep.is_empty() { vec![0] } else { keep };
        Ok(Sample {
            values: s.values.select(ndarray::Axis(0), &keep),
            times: s.times.select(&keep),
            valid: s.valid.as_ref().map(|v| v.select(ndarray::Axis(0), &keep)),
            label: s.label.clone(),
        })
    }
}

#[test]
fn same_seed_same_batches_whatever_the_thread_count() {
    let set = Arc::new(datasets::mato_grosso(&data(datasets::MATO_GROSSO)).unwrap());
    let run = |threads: usize, seed: u64| {
        let cfg = LoaderConfig {
            batch_size: 100,
            seed,
            num_threads: Some(threads),
            ..LoaderConfig::default()
        };
        let loader = Loader::new(set.clone(), cfg, Device::Cpu)
            .unwrap()
            .with_augmentation(Arc::new(DropDates));
        loader
            .epoch(3)
            .map(|b| flat(&b.unwrap()))
            .collect::<Vec<_>>()
    };
    let one = run(1, 7);
    let two = run(2, 7);
    assert_eq!(one.len(), 22);
    assert_eq!(one, two);
    assert_ne!(one, run(2, 8));
    // dropping dates makes the batches ragged: padding must appear
    assert!(one.iter().any(|b| b.2.contains(&1)));
}

#[test]
fn epoch_covers_every_sample_once() {
    let set = Arc::new(datasets::mato_grosso(&data(datasets::MATO_GROSSO)).unwrap());
    let cfg = LoaderConfig {
        batch_size: 500,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(set.clone(), cfg, Device::Cpu).unwrap();
    let mut order = loader.order(0);
    assert_ne!(order, (0..set.len()).collect::<Vec<_>>());
    order.sort();
    assert_eq!(order, (0..set.len()).collect::<Vec<_>>());
    let sizes: Vec<usize> = loader.epoch(0).map(|b| b.unwrap().batch_size()).collect();
    assert_eq!(sizes, vec![500, 500, 500, 500, 115]);
    assert_eq!(loader.num_batches(), 5);
}

#[test]
fn cube_patches_with_clouds_and_label_maps() {
    let slo = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let src = CubePatches::new(slo.cube.clone(), Some(slo.lulc.clone()), 32, 32).unwrap();
    assert_eq!(src.origins().len(), 9);
    let cfg = LoaderConfig {
        batch_size: 4,
        shuffle: false,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(Arc::new(src), cfg, Device::Cpu).unwrap();
    let b = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(b.values().dims(), &[4, 68, 1, 32, 32]);
    assert_eq!(b.labels().unwrap().dims(), &[4, 32, 32]);
    let valid: Vec<u8> = b.valid().unwrap().flatten_all().unwrap().to_vec1().unwrap();
    // date 1 is fully cloudy, date 0 fully clear, in every patch
    assert!(valid[32 * 32..2 * 32 * 32].iter().all(|&v| v == 0));
    assert!(valid[..32 * 32].iter().all(|&v| v == 1));
    let lab: Vec<i64> = b
        .labels()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(lab[32 * 32 + 5], slo.lulc[[5, 32 + 5]]); // patch 1 starts at column 32
}

fn series(len: usize, start_day: u32, nan_at: Option<usize>) -> Series {
    let d0 = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let dates: Vec<NaiveDate> = (0..len)
        .map(|i| d0 + chrono::Days::new((start_day + 5 * i as u32) as u64))
        .collect();
    let mut v = Array2::from_shape_fn((len, 2), |(t, c)| (t * 10 + c) as f32 + 1.0);
    if let Some(t) = nan_at {
        v[[t, 1]] = f32::NAN;
    }
    Series::new(v, Timestamps::from_dates(&dates, "s").unwrap(), None).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn collate_pads_and_masks(lens in proptest::collection::vec(1usize..12, 1..8), nan in 0usize..12) {
        let reference = NaiveDate::from_ymd_opt(2019, 12, 31).unwrap();
        let items: Vec<Sample> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| Sample::from_series(&series(l, i as u32, (nan < l).then_some(nan)), Some(i % 3)))
            .collect();
        let b = collate(&items, reference, &Device::Cpu).unwrap();
        let t_max = *lens.iter().max().unwrap();
        prop_assert_eq!(b.values().dims(), &[lens.len(), t_max, 2]);
        let pad: Vec<Vec<u8>> = b.pad_mask().to_vec2().unwrap();
        let valid: Vec<Vec<u8>> = b.valid().unwrap().to_vec2().unwrap();
        let days: Vec<Vec<f32>> = b.days().to_vec2().unwrap();
        let vals: Vec<f32> = b.values().flatten_all().unwrap().to_vec1().unwrap();
        prop_assert!(vals.iter().all(|v| v.is_finite()));
        for (i, &l) in lens.iter().enumerate() {
            for t in 0..t_max {
                prop_assert_eq!(pad[i][t], u8::from(t >= l));
                let expect_valid = t < l && t != nan;
                prop_assert_eq!(valid[i][t], u8::from(expect_valid));
                if t < l {
                    prop_assert_eq!(days[i][t], (1 + i + 5 * t) as f32);
                    if t > 0 { prop_assert!(days[i][t] > days[i][t - 1]); }
                } else {
                    prop_assert_eq!(vals[(i * t_max + t) * 2], 0.0);
                }
            }
        }
    }
}

#[test]
fn collate_refuses_mixed_items() {
    let r = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let a = Sample::from_series(&series(3, 0, None), Some(1));
    let b = Sample::from_series(&series(3, 0, None), None);
    let e = collate(&[a.clone(), b], r, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 labelled and 1 unlabelled"), "{e}");
    let mut c = a.clone();
    c.values = ndarray::Array2::<f32>::zeros((3, 5)).into_dyn();
    let e = collate(&[a, c], r, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("batch item 1"), "{e}");
    assert!(collate(&[], r, &Device::Cpu).is_err());
    let empty = SampleSet::new(vec![], vec!["a".into()], None, vec![], None).unwrap();
    assert!(Loader::new(Arc::new(empty), LoaderConfig::default(), Device::Cpu).is_err());
}
