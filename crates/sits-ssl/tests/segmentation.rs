//! Pieces of the segmentation pipeline: the per-pixel cross-entropy against PyTorch
//! (`fixtures/make_segmentation_fixtures.py`, loss and gradient within 1e-5: we
//! compute in float32 on logits of order 10, float64 on the PyTorch side), the
//! input corruption of masked reconstruction, and U-BARN's masked-reconstruction
//! loss recomputed by hand.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sits_core::{Objective, Step};
use sits_data::augment::DateMasking;

use sits_data::npy::read_npy;
use sits_data::Loader;
use sits_models::nn::seeded_init;
use sits_models::{Ctx, Ubarn, UbarnConfig};
use sits_ssl::bert::{corrupt, Corruption};
use sits_ssl::finetune::{
    balanced_class_weights, cross_entropy_ignore, weighted_cross_entropy_ignore,
};
use sits_ssl::train::{TrainConfig, Trainer};
use sits_ssl::ubarn::CubeMaskedReconstruction;

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/segmentation")
        .join(name)
}

fn npy_f32(name: &str) -> Tensor {
    let a = read_npy(&fx(name)).unwrap();
    let shape = a.shape().to_vec();
    Tensor::from_vec(
        a.to_f32().iter().copied().collect::<Vec<_>>(),
        shape,
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn pixel_cross_entropy_matches_pytorch_with_ignore_index() {
    let scalars: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx("scalars.json")).unwrap()).unwrap();
    let logits = Var::from_tensor(&npy_f32("ce_logits.npy")).unwrap();
    let target = read_npy(&fx("ce_target.npy")).unwrap();
    let shape = target.shape().to_vec();
    let y: Vec<i64> = target.to_f32().iter().map(|&v| v as i64).collect();
    let labels = Tensor::from_vec(y.clone(), shape, &Device::Cpu).unwrap();
    assert!(
        y.iter().any(|&v| v < 0),
        "the fixture must ignore some pixels"
    );

    let (loss, acc) = cross_entropy_ignore(logits.as_tensor(), &labels).unwrap();
    let want = scalars["ce"].as_f64().unwrap();
    assert!((loss.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-5);
    let grads = loss.backward().unwrap();
    let g = grads.get(logits.as_tensor()).unwrap();
    assert!(common::max_diff(g, &npy_f32("ce_grad.npy")) < 1e-5);
    // Ignored pixels get no gradient at all.
    let g_rows: Vec<Vec<f32>> = g
        .permute((0, 2, 3, 1))
        .unwrap()
        .reshape((y.len(), 4))
        .unwrap()
        .to_vec2()
        .unwrap();
    for (row, &l) in g_rows.iter().zip(&y) {
        if l < 0 {
            assert!(row.iter().all(|&v| v == 0.0));
        }
    }

    // Accuracy by hand over the labelled pixels.
    let am: Vec<u32> = logits
        .as_tensor()
        .argmax(1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let counted = scalars["counted"].as_u64().unwrap() as usize;
    let hits = am
        .iter()
        .zip(&y)
        .filter(|(p, &l)| l >= 0 && **p as i64 == l)
        .count();
    assert!((acc - hits as f64 / counted as f64).abs() < 1e-12);
}

#[test]
fn class_weighted_cross_entropy_matches_pytorch() {
    let scalars: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx("scalars.json")).unwrap()).unwrap();
    let target = read_npy(&fx("ce_target.npy")).unwrap();
    let shape = target.shape().to_vec();
    let y: Vec<i64> = target.to_f32().iter().map(|&v| v as i64).collect();
    let labels = Tensor::from_vec(y.clone(), shape, &Device::Cpu).unwrap();
    let weights = |name: &str| -> Vec<f64> {
        scalars["weighted"][name]["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    // the balanced weights computed here are PyTorch's fixture's
    let balanced = balanced_class_weights(y.iter().copied(), 4);
    for (a, b) in balanced.iter().zip(weights("balanced")) {
        assert!((a - b).abs() < 1e-12, "{balanced:?}");
    }
    let (plain, _) = cross_entropy_ignore(&npy_f32("ce_logits.npy"), &labels).unwrap();
    for name in ["fixed", "balanced"] {
        let logits = Var::from_tensor(&npy_f32("ce_logits.npy")).unwrap();
        let w = weights(name);
        let (loss, acc) =
            weighted_cross_entropy_ignore(logits.as_tensor(), &labels, Some(&w)).unwrap();
        let want = scalars["weighted"][name]["ce"].as_f64().unwrap();
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{name}: {got} vs {want}");
        // the weights change the loss (the fixture's weights are not uniform)
        assert!((got - plain.to_scalar::<f32>().unwrap() as f64).abs() > 1e-3);
        let grads = loss.backward().unwrap();
        let g = grads.get(logits.as_tensor()).unwrap();
        assert!(
            common::max_diff(g, &npy_f32(&format!("ce_{name}_grad.npy"))) < 1e-5,
            "{name}"
        );
        assert!(acc > 0.0 && acc < 1.0);
    }
    // weights of the wrong length or sign are refused, by name
    let logits = npy_f32("ce_logits.npy");
    let e = weighted_cross_entropy_ignore(&logits, &labels, Some(&[1.0; 3])).unwrap_err();
    assert!(
        e.to_string().contains("3 class weights for 4 classes"),
        "{e}"
    );
    let e =
        weighted_cross_entropy_ignore(&logits, &labels, Some(&[1.0, -1.0, 1.0, 1.0])).unwrap_err();
    assert!(e.to_string().contains("class 1"), "{e}");
    let e = weighted_cross_entropy_ignore(&logits, &labels, Some(&[0.0; 4])).unwrap_err();
    assert!(e.to_string().contains("sum to 0"), "{e}");
    // a class that never occurs gets weight 0; the others share the total equally
    let w = balanced_class_weights([0i64, 0, 0, 2, -1, 9], 3);
    assert_eq!(w, vec![4.0 / 6.0, 0.0, 4.0 / 2.0]);
}

#[test]
fn pixel_cross_entropy_refuses_bad_labels() {
    let logits = Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let all_ignored = Tensor::full(-1i64, (1, 2, 2), &Device::Cpu).unwrap();
    let e = cross_entropy_ignore(&logits, &all_ignored).unwrap_err();
    assert!(e.to_string().contains("no labelled entry"), "{e}");
    let too_big = Tensor::new(&[[[0i64, 1], [3, 2]]], &Device::Cpu).unwrap();
    let e = cross_entropy_ignore(&logits, &too_big).unwrap_err();
    assert!(e.to_string().contains("label 3 at entry 2"), "{e}");
    let wrong_shape = Tensor::zeros((1, 2, 3), DType::I64, &Device::Cpu).unwrap();
    let e = cross_entropy_ignore(&logits, &wrong_shape).unwrap_err();
    assert!(e.to_string().contains("(B, H, W)"), "{e}");
}

#[test]
fn corruption_touches_only_the_masked_dates() {
    let dev = Device::Cpu;
    let x = Tensor::arange(0f32, 2.0 * 4.0 * 2.0 * 3.0 * 3.0, &dev)
        .unwrap()
        .reshape((2, 4, 2, 3, 3))
        .unwrap();
    let mask = Tensor::new(&[[0u8, 1, 0, 1], [1, 0, 0, 0]], &dev).unwrap();
    // The last date of the second sample is padding: Permute must never copy it.
    let pad = Tensor::new(&[[0u8, 0, 0, 0], [0, 0, 0, 1]], &dev).unwrap();
    let frames = |t: &Tensor| -> Vec<Vec<f32>> { t.reshape((8, 18)).unwrap().to_vec2().unwrap() };
    let orig = frames(&x);
    let m = [0, 1, 0, 1, 1, 0, 0, 0];
    for corruption in [Corruption::Noise { amplitude: 0.5 }, Corruption::Permute] {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let y = frames(&corrupt(&x, &mask, &pad, corruption, &mut rng).unwrap());
        for k in 0..8 {
            if m[k] == 0 {
                assert_eq!(y[k], orig[k], "{corruption:?} changed unmasked date {k}");
            } else if let Corruption::Noise { amplitude } = corruption {
                assert!(y[k] != orig[k]);
                assert!(y[k]
                    .iter()
                    .zip(&orig[k])
                    .all(|(a, b)| (a - b).abs() <= amplitude as f32 + 1e-5));
            } else {
                let src = orig.iter().position(|f| *f == y[k]).unwrap();
                assert_ne!(src, 7, "copied a padded date");
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    assert!(corrupt(&x, &mask, &pad, Corruption::MaskToken, &mut rng).is_err());
    let bad_mask = Tensor::zeros((2, 3), DType::U8, &dev).unwrap();
    assert!(corrupt(&x, &bad_mask, &pad, Corruption::Permute, &mut rng).is_err());
}

fn tiny_ubarn(ctx: &Ctx) -> Ubarn {
    let cfg = UbarnConfig {
        input_dim: 1,
        encoder_widths: vec![4, 8],
        decoder_widths: vec![4, 8],
        d_model: 8,
        layers: 1,
        heads: 2,
        d_ff: 16,
        dropout: 0.0,
        period: 1000.0,
        pool_heads: 2,
        layer_style: sits_models::transformer::LayerStyle::PostNormRelu,
    };
    Ubarn::new(&ctx.pp("encoder"), cfg).unwrap()
}

fn slovenia_patches() -> Loader {
    // Dates 0..12 include partly cloudy ones, so validity varies within a date.
    common::loader(common::slovenia_patches(12, 8, 30), 4, 1)
}

#[test]
fn ubarn_masked_reconstruction_counts_hidden_clear_pixels_only() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let model = tiny_ubarn(&ctx);
    let masking = DateMasking {
        ratio: 0.4,
        contiguous: false,
    };
    let e = CubeMaskedReconstruction::new(&model, ctx.vb.pp("mr"), masking, Corruption::MaskToken);
    assert!(e.is_err());
    let mut obj =
        CubeMaskedReconstruction::new(&model, ctx.vb.pp("mr"), masking, Corruption::Permute)
            .unwrap();
    seeded_init(&vm, 7).unwrap();
    let ld = slovenia_patches();
    let batch = ld.epoch(0).next().unwrap().unwrap();
    let valid = batch.valid().unwrap();
    assert_eq!(valid.rank(), 4);
    let v: Vec<u8> = valid.flatten_all().unwrap().to_vec1().unwrap();
    assert!(
        v.contains(&0) && v.contains(&1),
        "the batch should be partly cloudy"
    );

    let out = obj
        .loss(&batch, &Step::eval(), &mut ChaCha8Rng::seed_from_u64(9))
        .unwrap();
    let loss = out.loss.to_scalar::<f32>().unwrap() as f64;

    // The same draws by hand: dates without a clear pixel become padding, then
    // mask, corruption, reconstruction, and the mean of the squared errors over
    // hidden dates x clear pixels.
    let converted = batch.clone().with_empty_dates_as_padding().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mask = masking.batch_mask(&converted, &mut rng).unwrap();
    let input = corrupt(
        batch.values(),
        &mask,
        converted.pad_mask(),
        Corruption::Permute,
        &mut rng,
    )
    .unwrap();
    let pred = obj.reconstruct(&input, &converted, false).unwrap();
    let (b, t, c, h, w) = batch.values().dims5().unwrap();
    assert_eq!(pred.dims(), &[b, t, c, h, w]);
    let p: Vec<f32> = pred.flatten_all().unwrap().to_vec1().unwrap();
    let x: Vec<f32> = batch.values().flatten_all().unwrap().to_vec1().unwrap();
    let m: Vec<u8> = mask.flatten_all().unwrap().to_vec1().unwrap();
    let (mut sum, mut n) = (0f64, 0usize);
    for bt in 0..b * t {
        for px in 0..h * w {
            if m[bt] == 1 && v[bt * h * w + px] == 1 {
                let k = bt * h * w + px; // c = 1
                sum += ((p[k] - x[k]) as f64).powi(2);
                n += 1;
            }
        }
    }
    assert!(n > 0 && n < b * t * h * w);
    assert!((loss - sum / n as f64).abs() < 1e-5 * (1.0 + loss));
    let frac = out.metrics[0].1;
    assert!((frac - n as f64 / (b * t * h * w) as f64).abs() < 1e-9);

    // A pixel-series batch is refused with the shape it got.
    let series = sits_core::SitsBatch::from_days(
        Tensor::zeros((2, 3, 1), DType::F32, &dev).unwrap(),
        &[vec![1i64, 2, 3], vec![1, 2, 3]],
        &[vec![false; 3], vec![false; 3]],
        batch.reference(),
        &dev,
    )
    .unwrap();
    let e = obj
        .loss(&series, &Step::eval(), &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap_err();
    assert!(e.to_string().contains("(B, T, C, H, W)"), "{e}");
}

#[test]
fn ubarn_pretraining_lowers_the_reconstruction_loss() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let model = tiny_ubarn(&ctx);
    let masking = DateMasking {
        ratio: 0.3,
        contiguous: false,
    };
    let mut obj = CubeMaskedReconstruction::new(
        &model,
        ctx.vb.pp("mr"),
        masking,
        Corruption::Noise { amplitude: 0.5 },
    )
    .unwrap();
    seeded_init(&vm, 3).unwrap();
    let ld = slovenia_patches();
    let mut tr = Trainer::new(
        TrainConfig {
            epochs: 6,
            lr: 1e-2,
            progress: false,
            ..TrainConfig::default()
        },
        &vm,
        &ctx.buffers,
        None,
    )
    .unwrap();
    tr.fit(&ld, &mut obj).unwrap();
    let per_epoch: Vec<f64> = tr
        .history()
        .chunks(ld.num_batches())
        .map(|c| c.iter().map(|r| r.loss).sum::<f64>() / c.len() as f64)
        .collect();
    assert_eq!(per_epoch.len(), 6);
    assert!(
        per_epoch[5] < 0.5 * per_epoch[0],
        "losses per epoch {per_epoch:?}"
    );
}

/// Dates without a clear pixel in a patch are constant (zero) images; through
/// U-BARN's GroupNorm layers they multiplied the gradient by about 300 per layer, and
/// the published preset's first step had an infinite gradient norm (4.8e15 for the
/// segmentation example's small U-BARN, so clipping erased every other gradient).
/// They now skip the U-Net as padding.
#[test]
fn ubarn_gradient_stays_finite_with_cloud_covered_dates() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let model = Ubarn::new(&ctx.pp("encoder"), UbarnConfig::preset(1)).unwrap();
    let masking = DateMasking {
        ratio: 0.3,
        contiguous: false,
    };
    let mut obj =
        CubeMaskedReconstruction::new(&model, ctx.vb.pp("pretext"), masking, Corruption::Permute)
            .unwrap();
    seeded_init(&vm, 0).unwrap();
    let ld = common::loader(common::slovenia_patches(16, 16, 8), 4, 0);
    let batch = ld.epoch(0).next().unwrap().unwrap();
    let per_date: Vec<u8> = batch
        .valid()
        .unwrap()
        .max(3)
        .unwrap()
        .max(2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let empty = per_date.iter().filter(|&&v| v == 0).count();
    assert!(empty > 0 && empty < per_date.len(), "{empty} empty dates");
    let step = Step {
        epoch: 0,
        step: 0,
        total_steps: 1,
        train: true,
    };
    let out = obj
        .loss(&batch, &step, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap();
    let grads = out.loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let mut total = 0f64;
    let mut with_grad = 0;
    for v in data.values() {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64;
            with_grad += 1;
        }
    }
    assert!(with_grad > 20, "{with_grad} variables with a gradient");
    let norm = total.sqrt();
    assert!(norm.is_finite() && norm < 100.0, "gradient norm {norm}");
}
