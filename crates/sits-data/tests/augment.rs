//! Property tests of the augmentations over many seeds: shapes, masks and labels
//! stay consistent, dates stay sorted, nothing reads outside the sample, and the
//! same seed gives the same view.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::NaiveDate;
use ndarray::{Array1, Array2, Array3, Array4};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sits_core::dates::Timestamps;
use sits_core::Augmentation;
use sits_data::augment::*;
use sits_data::{collate, Label, Sample};

fn times(t: usize, gap: &[u8]) -> Timestamps {
    let mut d = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let mut v = Vec::new();
    for i in 0..t {
        v.push(d);
        d += chrono::TimeDelta::days(1 + gap[i % gap.len()] as i64 % 20);
    }
    Timestamps::from_dates(&v, "test").unwrap()
}

/// Pixel series whose value encodes (date, band): 1000 * t + c.
fn series(t: usize, c: usize, valid_bits: u64, gap: &[u8]) -> Sample {
    Sample {
        values: Array2::from_shape_fn((t, c), |(a, b)| (1000 * a + b) as f32).into_dyn(),
        times: times(t, gap),
        valid: Some(Array1::from_shape_fn(t, |i| (valid_bits >> (i % 64)) & 1 == 1).into_dyn()),
        label: Some(Label::Class(3)),
    }
}

/// Patch whose values encode (date, band, row, col) and whose label map encodes
/// (row, col) the same way, so that any misalignment is visible.
fn patch(t: usize, c: usize, h: usize, w: usize) -> Sample {
    Sample {
        values: Array4::from_shape_fn((t, c, h, w), |(a, b, y, x)| {
            (100_000 * a + 10_000 * b + 100 * y + x) as f32
        })
        .into_dyn(),
        times: times(t, &[5, 9, 2]),
        valid: Some(Array3::from_shape_fn((t, h, w), |(a, y, x)| (a + y + x) % 3 != 0).into_dyn()),
        label: Some(Label::Map(Array2::from_shape_fn((h, w), |(y, x)| {
            (100 * y + x) as i64
        }))),
    }
}

fn check_consistent(s: &Sample) {
    let sh = s.values.shape();
    assert_eq!(sh[0], s.times.len(), "one timestamp per date");
    assert!(sh[0] >= 1, "no empty view");
    let ts = s.times.as_slice();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "dates sorted");
    if let Some(v) = &s.valid {
        let mut want = vec![sh[0]];
        want.extend_from_slice(&sh[2..]);
        assert_eq!(v.shape(), &want[..], "mask shape");
    }
    if let Some(Label::Map(m)) = &s.label {
        assert_eq!(m.shape(), &sh[2..], "label map shape");
    }
}

fn all_series_augs() -> Vec<(&'static str, Arc<dyn Augmentation<Sample>>)> {
    vec![
        (
            "crop",
            Arc::new(TemporalCrop {
                min_len: 3,
                max_len: 12,
            }),
        ),
        (
            "drop",
            Arc::new(DropDates {
                p: 0.4,
                min_keep: 2,
            }),
        ),
        ("resample", Arc::new(ResampleDates { len: 8 })),
        (
            "shift",
            Arc::new(DateShift {
                shift_days: 10.0,
                jitter_days: 4.0,
            }),
        ),
        ("noise", Arc::new(GaussianNoise { std: 0.1 })),
        (
            "jitter",
            Arc::new(BandJitter {
                gain_std: 0.05,
                offset_std: 0.02,
            }),
        ),
        ("bands", Arc::new(BandDropout { p: 0.5, fill: 0.0 })),
        ("clouds", Arc::new(CloudBlobs::default())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn series_augmentations_keep_samples_consistent(
        t in 1usize..40, c in 1usize..5, bits in any::<u64>(), gap in proptest::collection::vec(any::<u8>(), 1..6), seed in any::<u64>()
    ) {
        let s = series(t, c, bits, &gap);
        let src_times = s.times.as_slice().to_vec();
        let augs = all_series_augs();
        for (name, aug) in &augs {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let out = aug.apply(&s, &mut rng).unwrap();
            check_consistent(&out);
            prop_assert_eq!(&out.label, &s.label, "{}", name);
            let mut rng2 = ChaCha8Rng::seed_from_u64(seed);
            prop_assert_eq!(&out, &aug.apply(&s, &mut rng2).unwrap(), "{}: same seed, same view", name);
            if matches!(*name, "crop" | "drop" | "resample") {
                // Dates are a subset of the source; each row is its source row.
                for (k, ts) in out.times.as_slice().iter().enumerate() {
                    let i = src_times.iter().position(|x| x == ts).unwrap();
                    prop_assert_eq!(out.values.index_axis(ndarray::Axis(0), k), s.values.index_axis(ndarray::Axis(0), i));
                    prop_assert_eq!(out.valid.as_ref().unwrap()[[k]], s.valid.as_ref().unwrap()[[i]]);
                }
            }
            if *name == "crop" {
                prop_assert!(out.len() >= 3.min(t) && out.len() <= 12.min(t));
            }
            if *name == "drop" {
                prop_assert!(out.len() >= 2.min(t));
            }
            if *name == "resample" {
                prop_assert_eq!(out.len(), t.min(8));
            }
            if *name == "shift" {
                for (a, b) in out.times.as_slice().iter().zip(&src_times) {
                    prop_assert!((*a - *b).num_seconds().abs() <= 14 * 86_400);
                }
            }
            if *name == "clouds" {
                // Clouds only ever invalidate, and only change invalidated dates.
                let (vi, vo) = (s.validity(), out.validity());
                for i in 0..t {
                    prop_assert!(!vo[[i]] || vi[[i]]);
                    if vo[[i]] {
                        prop_assert_eq!(out.values.index_axis(ndarray::Axis(0), i), s.values.index_axis(ndarray::Axis(0), i));
                    }
                }
            }
        }
        let all = Compose::new(augs.into_iter().map(|(_, a)| a).collect());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (a, b) = two_views(&all, &s, &mut rng).unwrap();
        check_consistent(&a);
        check_consistent(&b);
    }

    #[test]
    fn spatial_augmentations_keep_values_masks_and_labels_aligned(
        t in 1usize..5, c in 1usize..3, h in 1usize..11, w in 1usize..11, seed in any::<u64>()
    ) {
        let s = patch(t, c, h, w);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let out = FlipRotate.apply(&s, &mut rng).unwrap();
        check_consistent(&out);
        let (oh, ow) = (out.values.shape()[2], out.values.shape()[3]);
        let Some(Label::Map(m)) = &out.label else { panic!("label map lost") };
        for y in 0..oh {
            for x in 0..ow {
                let code = m[[y, x]];
                let (sy, sx) = ((code / 100) as usize, (code % 100) as usize);
                for a in 0..t {
                    for b in 0..c {
                        prop_assert_eq!(out.values[[a, b, y, x]], s.values[[a, b, sy, sx]]);
                    }
                    prop_assert_eq!(out.valid.as_ref().unwrap()[[a, y, x]], s.valid.as_ref().unwrap()[[a, sy, sx]]);
                }
            }
        }

        let crop = RandomResizedCrop { scale: (0.3, 1.0), size: (6, 5) };
        let out = crop.apply(&s, &mut rng).unwrap();
        check_consistent(&out);
        prop_assert_eq!(&out.values.shape()[2..], &[6, 5]);
        let Some(Label::Map(m)) = &out.label else { panic!("label map lost") };
        // Labels are nearest-neighbour copies of input labels; the value of band 0 at
        // date 0 is the bilinear blend of the neighbours of the labelled pixel.
        for y in 0..6 {
            for x in 0..5 {
                let code = m[[y, x]];
                let (ly, lx) = (code / 100, code % 100);
                prop_assert!((ly as usize) < h && (lx as usize) < w);
                // value = 100 * y' + x' with y', x' blends of neighbouring rows/cols
                let v = out.values[[0, 0, y, x]] as f64;
                prop_assert!((v - code as f64).abs() <= 101.0 + 1e-3, "value {} label {}", v, code);
            }
        }

        let clouds = CloudBlobs { p_date: 0.7, ..CloudBlobs::default() };
        let out = clouds.apply(&s, &mut rng).unwrap();
        check_consistent(&out);
        let (vi, vo) = (s.validity(), out.validity());
        for (idx, &ok) in vo.indexed_iter() {
            prop_assert!(!ok || vi[&idx]);
            if ok {
                let (a, y, x) = (idx[0], idx[1], idx[2]);
                for b in 0..c {
                    prop_assert_eq!(out.values[[a, b, y, x]], s.values[[a, b, y, x]]);
                }
            }
        }
    }

    #[test]
    fn date_masks_hide_only_valid_dates(valid in proptest::collection::vec(any::<bool>(), 1..50), ratio in 0.05f64..0.95, contiguous in any::<bool>(), seed in any::<u64>()) {
        let m = DateMasking { ratio, contiguous };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mask = m.sample(&valid, &mut rng);
        let n = valid.iter().filter(|&&v| v).count();
        let k = mask.iter().filter(|&&v| v).count();
        prop_assert!(mask.iter().zip(&valid).all(|(m, v)| !m || *v));
        if n == 0 {
            prop_assert_eq!(k, 0);
        } else {
            let mut want = ((ratio * n as f64).round() as usize).max(1);
            if n >= 2 { want = want.min(n - 1); }
            prop_assert_eq!(k, want);
        }
        if contiguous && k > 0 {
            // The masked dates are consecutive among the valid dates.
            let valid_idx: Vec<usize> = (0..valid.len()).filter(|&i| valid[i]).collect();
            let pos: Vec<usize> = valid_idx.iter().enumerate().filter(|(_, &i)| mask[i]).map(|(p, _)| p).collect();
            prop_assert_eq!(pos.last().unwrap() - pos[0] + 1, pos.len());
        }
    }
}

#[test]
fn batch_masks_skip_padding_and_invalid_dates() {
    let items = vec![
        series(10, 2, 0b1111111011, &[3]),
        series(4, 2, 0b1111, &[7]),
    ];
    let batch = collate(
        &items,
        NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let m = DateMasking {
        ratio: 0.5,
        contiguous: false,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mask: Vec<Vec<u8>> = m.batch_mask(&batch, &mut rng).unwrap().to_vec2().unwrap();
    let pad: Vec<Vec<u8>> = batch.pad_mask().to_vec2().unwrap();
    assert_eq!(mask[0].iter().map(|&v| v as usize).sum::<usize>(), 5); // 9 valid dates
    assert_eq!(mask[0][2], 0, "date 2 is invalid");
    assert_eq!(mask[1].iter().map(|&v| v as usize).sum::<usize>(), 2);
    for (mr, pr) in mask.iter().zip(&pad) {
        for (a, b) in mr.iter().zip(pr) {
            assert!(!(*a == 1 && *b == 1), "a padded date was masked");
        }
    }
    assert!(DateMasking {
        ratio: 1.0,
        contiguous: true
    }
    .batch_mask(&batch, &mut rng)
    .is_err());
}

#[test]
fn multicrop_and_bad_parameters() {
    let s = series(23, 3, u64::MAX, &[15]);
    let mc = MultiCrop {
        global: Arc::new(TemporalCrop {
            min_len: 18,
            max_len: 23,
        }),
        n_global: 2,
        local: Arc::new(TemporalCrop {
            min_len: 5,
            max_len: 8,
        }),
        n_local: 4,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let views = mc.views(&s, &mut rng).unwrap();
    assert_eq!(views.len(), 6);
    assert!(views[..2].iter().all(|v| v.len() >= 18));
    assert!(views[2..].iter().all(|v| v.len() <= 8));
    let e = TemporalCrop {
        min_len: 5,
        max_len: 2,
    }
    .apply(&s, &mut rng)
    .unwrap_err();
    assert!(e.to_string().contains("TemporalCrop"), "{e}");
    assert!(DropDates {
        p: 1.5,
        min_keep: 1
    }
    .apply(&s, &mut rng)
    .is_err());
    assert!(RandomResizedCrop {
        scale: (0.0, 1.0),
        size: (4, 4)
    }
    .apply(&patch(2, 1, 5, 5), &mut rng)
    .is_err());
}

fn batch_of(items: &[Sample]) -> sits_core::SitsBatch {
    collate(
        items,
        NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        &candle_core::Device::Cpu,
    )
    .unwrap()
}

fn rows_u8(t: &candle_core::Tensor) -> Vec<Vec<u8>> {
    t.to_dtype(candle_core::DType::U8)
        .unwrap()
        .to_vec2()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The views of collated batches SimCLR and DINO use: same shape, same dates,
    /// padding never comes back, every series keeps at least one real date, a
    /// kept date keeps its values (no noise), and the same seed gives the same view.
    #[test]
    fn series_views_of_batches_keep_dates_and_padding(
        lens in proptest::collection::vec(1usize..30, 1..6), c in 1usize..4,
        crop_min in 0.0f64..1.0, drop in 0.0f64..1.0, seed in any::<u64>()
    ) {
        let items: Vec<Sample> = lens.iter().map(|&t| series(t, c, u64::MAX, &[5])).collect();
        let batch = batch_of(&items);
        let views = SeriesViews { crop_min, crop_max: 1.0, drop, noise: 0.0 };
        let v = views.apply(&batch, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        prop_assert_eq!(v.values().dims(), batch.values().dims());
        let (p0, p1) = (rows_u8(batch.pad_mask()), rows_u8(v.pad_mask()));
        let x0: Vec<Vec<Vec<f32>>> = batch.values().to_vec3().unwrap();
        let x1: Vec<Vec<Vec<f32>>> = v.values().to_vec3().unwrap();
        for i in 0..lens.len() {
            prop_assert!(p1[i].contains(&0), "series {} lost every date", i);
            for j in 0..p0[i].len() {
                prop_assert!(p0[i][j] == 0 || p1[i][j] == 1, "padding came back");
                if p1[i][j] == 0 {
                    prop_assert_eq!(&x1[i][j], &x0[i][j]);
                }
            }
        }
        let days = |b: &sits_core::SitsBatch| -> Vec<Vec<f64>> {
            b.days().to_dtype(candle_core::DType::F64).unwrap().to_vec2().unwrap()
        };
        let (d0, d1) = (days(&batch), days(&v));
        prop_assert_eq!(d0, d1);
        let again = views.apply(&batch, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        prop_assert_eq!(rows_u8(again.pad_mask()), p1);
    }

    /// Spatial views of patch batches: the output size, at least one real date per
    /// patch, values inside the range of the source (bilinear weights are convex,
    /// flips permute), and the same seed gives the same view.
    #[test]
    fn cube_views_of_batches_resize_within_the_source_range(
        t in 1usize..6, c in 1usize..3, h in 1usize..9, w in 1usize..9,
        oh in 1usize..9, ow in 1usize..9, lo in 0.05f64..1.0, drop in 0.0f64..1.0, seed in any::<u64>()
    ) {
        let items = vec![patch(t, c, h, w), patch(t, c, h, w)];
        let batch = batch_of(&items);
        let views = CubeViews { scale: (lo, 1.0), size: (oh, ow), drop, noise: 0.0 };
        let v = views.apply(&batch, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        prop_assert_eq!(v.values().dims(), &[2, t, c, oh, ow]);
        prop_assert!(rows_u8(v.pad_mask()).iter().all(|r| r.contains(&0)));
        let all = |x: &candle_core::Tensor| -> Vec<f32> { x.flatten_all().unwrap().to_vec1().unwrap() };
        let src = all(batch.values());
        let (mn, mx) = src.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        prop_assert!(all(v.values()).iter().all(|&x| x >= mn - 1e-4 && x <= mx + 1e-4));
        let again = views.apply(&batch, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        prop_assert_eq!(all(again.values()), all(v.values()));
    }
}

#[test]
fn batch_views_refuse_the_wrong_layout_with_a_pointer() {
    let series_batch = batch_of(&[series(5, 2, u64::MAX, &[3])]);
    let patch_batch = batch_of(&[patch(3, 1, 4, 4)]);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let e = CubeViews {
        scale: (0.5, 1.0),
        size: (2, 2),
        drop: 0.0,
        noise: 0.0,
    }
    .apply(&series_batch, &mut rng)
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("(B, T, C, H, W)") && e.contains("SeriesViews"),
        "{e}"
    );
    let e = SeriesViews::default()
        .apply(&patch_batch, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("(B, T, C)") && e.contains("CubeViews"), "{e}");
    assert!(CubeViews {
        scale: (0.5, 1.0),
        size: (0, 2),
        drop: 0.0,
        noise: 0.0
    }
    .apply(&patch_batch, &mut rng)
    .is_err());
}
