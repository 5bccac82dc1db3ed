//! The segmentation job on a small synthetic cube with per-pixel classes (three
//! vegetation types in stripes) and a block split: every model is trained and
//! scored, a seed repeats the run exactly, and bad labels are refused.

use candle_core::Device;
use ndarray::Array2;
use sits_tasks::segment::{
    segment, segment_with, write_outputs, SegmentConfig, SegmentationInput, RAW, UBARN,
    UBARN_FINETUNED, UTAE,
};
use sits_tasks::synthetic::{cube, SyntheticCube};

fn input() -> SegmentationInput {
    let spec = SyntheticCube {
        years: 1,
        dates_per_year: 10,
        size: (16, 16),
        bands: vec!["ndvi".into(), "nir".into()],
        ..SyntheticCube::default()
    };
    let c = cube(&spec)
        .expect("cube")
        .select_bands(&["ndvi"])
        .expect("one band");
    let labels = Array2::from_shape_fn((16, 16), |(r, col)| spec.kind(r, col, 0) as i64);
    // test: the 4 x 4 blocks on the diagonal
    let split = Array2::from_shape_fn((16, 16), |(r, col)| if r / 4 == col / 4 { 2 } else { 1 });
    SegmentationInput {
        cube: c,
        labels,
        split,
        class_names: vec!["a".into(), "b".into(), "c".into()],
        colors: Vec::new(),
    }
}

fn small() -> SegmentConfig {
    SegmentConfig {
        epochs: 1,
        utae_epochs: 1,
        finetune_epochs: 1,
        head_steps: 10,
        pretrain_patch: 8,
        patch: 16,
        train_dates: 6,
        ..SegmentConfig::default()
    }
}

#[test]
fn every_model_is_trained_scored_and_written() {
    let dev = Device::Cpu;
    let inp = input();
    let s = segment(&inp, &small(), &dev).expect("segment");
    assert_eq!(s.dates_kept, (10, 10));
    assert_eq!(s.pixels, (256 - 64, 64));
    assert_eq!(s.models.len(), 5);
    for m in &s.models {
        assert_eq!(m.prediction.dim(), (16, 16));
        assert_eq!(
            m.confusion.total(),
            64,
            "{} scored on the test pixels only",
            m.name
        );
    }
    // the raw probe separates the three stripes of clean synthetic phenologies
    let raw = s.model(RAW).expect("raw").confusion.overall_accuracy();
    assert!(raw > 0.9, "raw probe OA {raw}");
    assert!(s.result_line().starts_with("result: ubarn_miou="));
    assert!(s.model(UBARN).is_some() && s.model(UTAE).is_some());
    assert_eq!(s.pretrain_curve.len(), 1);
    assert_eq!(s.head_losses.len(), 10);
    assert!(s.utae_val_curve.is_empty(), "no validation unless asked");
    assert!(
        s.finetune_val_curve.is_empty(),
        "no validation unless asked"
    );
    assert_eq!(s.finetune_curve.len(), 1);
    assert!(s.result_line().contains(" ubarn_finetuned_miou=0."));

    let again = segment(&inp, &small(), &dev).expect("segment again");
    for (a, b) in s.models.iter().zip(&again.models) {
        assert_eq!(a.prediction, b.prediction, "{} is not repeatable", a.name);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    write_outputs(dir.path(), &inp, &small(), &s, "test").expect("outputs");
    for f in [
        "maps.png",
        "report.md",
        "results.json",
        "raw_probe.zarr",
        "ubarn_finetuned.zarr",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("report.md");
    // the chart link appears exactly when the chart is drawn
    assert_eq!(md.contains("![loss](loss.png)"), sits_tasks::report::CHARTS);
    assert_eq!(
        dir.path().join("loss.png").exists(),
        sits_tasks::report::CHARTS
    );
}

#[test]
fn labels_of_another_size_or_without_a_test_split_are_refused() {
    let dev = Device::Cpu;
    let mut inp = input();
    inp.labels = Array2::zeros((8, 8));
    let err = segment(&inp, &small(), &dev).expect_err("size");
    assert!(err.to_string().contains("cube's size (16, 16)"), "{err}");
    let mut inp = input();
    inp.split.fill(1);
    let err = segment(&inp, &small(), &dev).expect_err("no test pixel");
    assert!(err.to_string().contains("0 test"), "{err}");
    let mut cfg = small();
    cfg.patch = 12;
    assert!(segment(&input(), &cfg, &dev).is_err());
}

/// Extra per-pixel features get their own probe, aligned with the pixels: one-hot
/// features of the true class separate every test pixel, the same features shifted
/// by one column do not; a row count that does not match the cube is refused.
#[test]
fn per_pixel_features_get_their_own_probe_on_the_same_split() {
    let dev = Device::Cpu;
    let inp = input();
    let one_hot = |shift: usize| -> Vec<Vec<f32>> {
        (0..256)
            .map(|k| {
                let (r, c) = (k / 16, (k % 16 + shift) % 16);
                let mut v = vec![0f32; 3];
                v[inp.labels[[r, c]] as usize] = 1.0;
                v
            })
            .collect()
    };
    let cfg = SegmentConfig {
        finetune_epochs: 0,
        ..small()
    };
    let extra = vec![
        ("truth".to_string(), one_hot(0)),
        ("shifted".to_string(), one_hot(5)),
    ];
    let s = segment_with(&inp, &cfg, &extra, &dev).expect("segment");
    let oa = |n: &str| s.model(n).expect(n).confusion.overall_accuracy();
    assert_eq!(oa("truth"), 1.0);
    assert!(
        oa("shifted") < 0.9,
        "shifted features scored {}",
        oa("shifted")
    );
    assert_eq!(s.model("truth").expect("truth").confusion.total(), 64);
    let bad = vec![("short".to_string(), one_hot(0)[..100].to_vec())];
    let err = segment_with(&inp, &cfg, &bad, &dev).expect_err("row count");
    assert!(err.to_string().contains("100 feature rows"), "{err}");
}

#[test]
fn validation_scores_every_epoch_of_both_supervised_models_on_held_out_training_cells() {
    let dev = Device::Cpu;
    let cfg = SegmentConfig {
        utae_epochs: 2,
        finetune_epochs: 3,
        utae_validation: true,
        ..small()
    };
    let s = segment(&input(), &cfg, &dev).expect("segment");
    assert_eq!(s.utae_val_curve.len(), 2);
    assert_eq!(s.finetune_val_curve.len(), 4, "epoch 0 (frozen) to 3");
    for (curve, first) in [(&s.utae_val_curve, 1), (&s.finetune_val_curve, 0)] {
        for (i, &(epoch, miou)) in curve.iter().enumerate() {
            assert_eq!(epoch, (i + first) as f64);
            assert!((0.0..=1.0).contains(&miou), "validation mIoU {miou}");
        }
    }
    // every model scored once on the validation cells, in the models' order; the
    // fine-tuned model's score is the last point of its curve
    let names: Vec<&str> = s.validation.iter().map(|(n, _)| n.as_str()).collect();
    let models: Vec<&str> = s.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, models);
    let ft_val = s
        .validation
        .iter()
        .find(|(n, _)| n == UBARN_FINETUNED)
        .unwrap()
        .1;
    assert_eq!(ft_val, s.finetune_val_curve[3].1);
    let ft = s.model(UBARN_FINETUNED).expect("fine-tuned U-BARN");
    assert_eq!(ft.confusion.total(), 64);
    // the test pixels are still the split's test pixels
    assert_eq!(s.pixels, (256 - 64, 64));
    assert_eq!(s.model(UTAE).expect("U-TAE").confusion.total(), 64);
}

#[test]
fn no_fine_tuned_model_when_its_epochs_are_zero() {
    let cfg = SegmentConfig {
        finetune_epochs: 0,
        ..small()
    };
    let s = segment(&input(), &cfg, &Device::Cpu).expect("segment");
    assert_eq!(s.models.len(), 4);
    assert!(s.validation.is_empty(), "no validation cells held out");
    assert!(s.model(UBARN_FINETUNED).is_none());
    assert!(s.finetune_curve.is_empty());
    assert!(
        s.result_line().ends_with("ubarn_finetuned_miou=NaN"),
        "{}",
        s.result_line()
    );
}

#[test]
fn the_trained_head_beats_chance_and_training_it_lowers_its_loss() {
    // behaviour on a fixed small problem, not shapes: three stripes of clean
    // synthetic phenologies, 64 test pixels. Chance OA is about 1/3; the head on
    // the pretrained encoder must clear it by a wide margin, its loss must fall,
    // and it must not trail the raw probe by more than a little.
    let dev = Device::Cpu;
    let cfg = SegmentConfig {
        epochs: 3,
        head_steps: 40,
        finetune_epochs: 0,
        ..small()
    };
    let s = segment(&input(), &cfg, &dev).expect("segment");
    let oa = |name: &str| s.model(name).expect(name).confusion.overall_accuracy();
    let (ssl, random, raw) = (oa(UBARN), oa(sits_tasks::segment::UBARN_RANDOM), oa(RAW));
    eprintln!("head OA: ssl {ssl:.3}, random-init {random:.3}, raw {raw:.3}");
    assert!(
        ssl.is_finite() && ssl >= 1.0 / 3.0 + 0.3,
        "SSL head OA {ssl}"
    );
    let first = s.head_losses.first().copied().expect("head losses");
    let last = s.head_losses.last().copied().expect("head losses");
    assert!(
        last.is_finite() && last < 0.5 * first,
        "head loss {first} -> {last}"
    );
}
