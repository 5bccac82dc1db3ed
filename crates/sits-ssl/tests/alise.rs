//! ALISE: the date split, the VICReg terms against hand computations, training on
//! pixel series (the reconstruction falls) and on cube patches with U-BARN, and
//! the aligned encoder's shapes.
#![allow(clippy::unwrap_used)]

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use sits_core::Encoder;
use sits_data::Loader;
use sits_models::alise::{AliseConfig, TemporalProjector};
use sits_models::nn::seeded_init;
use sits_models::{Buffers, Ctx, PixelTransformer, Ubarn, UbarnConfig};
use sits_ssl::alise::{
    covariance_penalty, sequence_pad, sequences, split_dates, variance_penalty, AlignedEncoder,
    Alise,
};

#[test]
fn date_split_gives_two_disjoint_nonempty_views_of_the_observed_dates() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let pad = vec![
        vec![0, 0, 0, 0, 0, 0, 1, 1],
        vec![0, 1, 0, 1, 0, 1, 0, 1],
        vec![1, 1, 1, 0, 1, 1, 1, 1], // one observed date
        vec![0, 0, 1, 1, 1, 1, 1, 1],
    ];
    for _ in 0..50 {
        let (a, b) = split_dates(&pad, 0.5, &mut rng);
        for (i, row) in pad.iter().enumerate() {
            let ra = &a[i * 8..(i + 1) * 8];
            let rb = &b[i * 8..(i + 1) * 8];
            let observed = row.iter().filter(|&&p| p == 0).count();
            let (na, nb) = (
                ra.iter().filter(|&&p| p == 0).count(),
                rb.iter().filter(|&&p| p == 0).count(),
            );
            assert!(na >= 1 && nb >= 1, "row {i}: views of {na} and {nb} dates");
            for j in 0..8 {
                if row[j] == 1 {
                    assert!(ra[j] == 1 && rb[j] == 1, "row {i}: padding came back");
                } else if observed > 1 {
                    assert!(
                        ra[j] + rb[j] == 1,
                        "row {i} date {j} in both or neither view"
                    );
                }
            }
            if observed > 1 {
                assert_eq!(na, observed / 2, "row {i}: half the dates in view a");
            }
        }
    }
}

#[test]
fn vicreg_terms_match_a_hand_computation() {
    let dev = Device::Cpu;
    // 4 rows, 1 query, 2 features: covariance by hand
    let rows = [[1.0f32, 2.0], [2.0, 1.0], [3.0, 5.0], [6.0, 0.0]];
    let z = Tensor::new(&rows, &dev)
        .unwrap()
        .reshape((4, 1, 2))
        .unwrap();
    let mean: Vec<f32> = (0..2)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f32>() / 4.0)
        .collect();
    let cov01: f32 = rows
        .iter()
        .map(|r| (r[0] - mean[0]) * (r[1] - mean[1]))
        .sum::<f32>()
        / 3.0;
    // two off-diagonal entries, divided by p = 2
    let expected = 2.0 * cov01 * cov01 / 2.0;
    let got = covariance_penalty(&z).unwrap().to_scalar::<f32>().unwrap();
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    // variance: feature 0 has std > 1 (no penalty); a constant feature costs ~1
    let var: Vec<f32> = (0..2)
        .map(|j| rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f32>() / 3.0)
        .collect();
    let hinge = |v: f32| (1.0 - (v + 1e-4).sqrt()).max(0.0);
    let expected_var = (hinge(var[0]) + hinge(var[1])) / 2.0;
    let got_var = variance_penalty(&z).unwrap().to_scalar::<f32>().unwrap();
    assert!(
        (got_var - expected_var).abs() < 1e-6,
        "{got_var} vs {expected_var}"
    );
    let flat = Tensor::ones((5, 3, 4), DType::F32, &dev).unwrap();
    let v = variance_penalty(&flat).unwrap().to_scalar::<f32>().unwrap();
    assert!(
        (v - 0.99).abs() < 1e-4,
        "a collapsed batch costs 1 - 0.01, got {v}"
    );
    assert_eq!(
        covariance_penalty(&flat)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    assert!(covariance_penalty(&flat.narrow(0, 0, 1).unwrap()).is_err());
}

fn pixel_loader(n: usize, bs: usize) -> Loader {
    common::loader(common::mato_grosso(n), bs, 3)
}

#[test]
fn alise_on_pixel_series_learns_to_reconstruct_unseen_dates() {
    let ld = pixel_loader(64, 16);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = common::tiny_pixel_transformer(0.0);
    let model = PixelTransformer::new(&Ctx::new(vb.pp("encoder")), cfg).unwrap();
    let acfg = AliseConfig {
        n_queries: 4,
        d_k: 8,
        d_query: 8,
        ..AliseConfig::published(16)
    };
    let projector = TemporalProjector::new(vb.pp("encoder").pp("aligner"), acfg).unwrap();
    let mut obj = Alise::new(&model, &projector, vb.pp("head"), 6).unwrap();
    obj.weights.variance = 1.0;
    seeded_init(&vm, 7).unwrap();
    let history = common::fit(&vm, &Buffers::new(), &ld, &mut obj, 8, Some(3e-3));
    let h = &history;
    assert_eq!(h.len(), 32);
    let rec = |r: &sits_ssl::train::StepRecord| {
        r.metrics
            .iter()
            .find(|(n, _)| n == "reconstruction")
            .unwrap()
            .1
    };
    let first: f64 = h[..4].iter().map(rec).sum();
    let last: f64 = h[28..].iter().map(rec).sum();
    assert!(
        last < 0.8 * first,
        "reconstruction of the other view should fall: {first} -> {last}"
    );
    let names: Vec<&str> = h[0].metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["reconstruction", "invariance", "covariance", "variance"]
    );
    assert!(h.iter().all(|r| r.loss.is_finite()));

    // the aligned representation: n_q x d per series, whatever the padding
    let enc = AlignedEncoder::new(&model, &projector);
    assert_eq!(enc.output_dim(), 4 * 16);
    let batch = ld.epoch(0).next().unwrap().unwrap();
    let z = enc.encode(&batch, false).unwrap();
    assert_eq!(z.dims(), &[16, 64]);
}

/// A small U-BARN (widths 8 / 16, d_model 16) on one band and a 3-query projector.
fn small_ubarn_and_projector(ctx: &Ctx) -> (Ubarn, TemporalProjector) {
    let ucfg = UbarnConfig {
        encoder_widths: vec![8, 16],
        decoder_widths: vec![8, 16],
        d_model: 16,
        layers: 1,
        heads: 2,
        d_ff: 32,
        pool_heads: 2,
        ..UbarnConfig::preset(1)
    };
    let model = Ubarn::new(&ctx.pp("encoder"), ucfg).unwrap();
    let acfg = AliseConfig {
        n_queries: 3,
        ..AliseConfig::published(16)
    };
    let projector = TemporalProjector::new(ctx.vb.pp("aligner"), acfg).unwrap();
    (model, projector)
}

#[test]
fn alise_trains_ubarn_on_cube_patches() {
    let ld = common::loader(common::slovenia_patches(12, 8, 40), 2, 2);
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu));
    let (model, projector) = small_ubarn_and_projector(&ctx);
    let mut obj = Alise::new(&model, &projector, ctx.vb.pp("head"), 1).unwrap();
    let batch = ld.epoch(0).next().unwrap().unwrap();
    let seq = sequences(&batch).unwrap();
    assert_eq!(seq.values.dims(), &[2 * 64, 12, 1]);
    assert_eq!(seq.pad.dims(), &[2 * 64, 12]);
    let pad_only: Vec<Vec<u8>> = sequence_pad(&batch).unwrap().to_vec2().unwrap();
    assert_eq!(pad_only, seq.pad.to_vec2::<u8>().unwrap());
    // pixel-major: sequence (b, y, x) holds pixel (y, x) of item b
    let x = batch.values().to_dtype(DType::F32).unwrap();
    let direct: Vec<f32> = x
        .narrow(0, 1, 1)
        .unwrap()
        .narrow(3, 2, 1)
        .unwrap()
        .narrow(4, 5, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let via: Vec<f32> = seq
        .values
        .get(64 + 2 * 8 + 5)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(direct, via);

    // behaviour, not only shapes: over a few epochs on real patches the
    // reconstruction of the other view's dates falls (the first steps against the
    // last, each a mean over one epoch's worth of batches)
    seeded_init(&vm, 3).unwrap();
    let history = common::fit(&vm, &ctx.buffers, &ld, &mut obj, 4, Some(3e-3));
    assert!(history.iter().all(|r| r.loss.is_finite()));
    let rec = |r: &sits_ssl::train::StepRecord| {
        r.metrics
            .iter()
            .find(|(n, _)| n == "reconstruction")
            .unwrap()
            .1
    };
    let per_epoch = history.len() / 4;
    let first: f64 = history[..per_epoch].iter().map(rec).sum();
    let last: f64 = history[history.len() - per_epoch..].iter().map(rec).sum();
    assert!(
        last.is_finite() && last < 0.8 * first,
        "reconstruction on patches should fall: {first} -> {last}"
    );
    let enc = AlignedEncoder::new(&model, &projector);
    assert_eq!(enc.encode(&batch, false).unwrap().dims(), &[2, 48, 8, 8]);
}

#[test]
fn aligned_encoder_skips_empty_patch_dates_as_training_does() {
    let ld = common::loader(common::slovenia_patches(12, 8, 40), 2, 2);
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu));
    let (model, projector) = small_ubarn_and_projector(&ctx);
    // every pixel valid except date 3 of sample 0, which has no valid pixel at all
    let batch = ld.epoch(0).next().unwrap().unwrap();
    let (b, t, _, h, w) = batch.values().dims5().unwrap();
    let keep: Vec<u8> = (0..b * t).map(|i| u8::from(i != 3)).collect();
    let valid = Tensor::from_vec(keep, (b, t, 1, 1), &Device::Cpu)
        .unwrap()
        .repeat((1, 1, h, w))
        .unwrap();
    assert_eq!(batch.pad_mask().to_vec2::<u8>().unwrap()[0][3], 0);
    let batch = batch.with_valid(valid).unwrap();

    let enc = AlignedEncoder::new(&model, &projector);
    // (B, n_q·d, H, W)
    let got = enc.encode(&batch, false).unwrap();
    // what the ALISE objective trains: the projector attends only to the dates
    // that passed the U-Net
    let converted = batch.clone().with_empty_dates_as_padding().unwrap();
    assert_eq!(converted.pad_mask().to_vec2::<u8>().unwrap()[0][3], 1);
    let aligned = |pad_from: &sits_core::SitsBatch| {
        let z = sits_ssl::alise::DateEncoder::date_vectors(&model, &converted, false).unwrap();
        let r = projector
            .forward(&z, Some(&sequence_pad(pad_from).unwrap()))
            .unwrap()
            .flatten_from(1)
            .unwrap();
        sits_models::nn::pixels_to_maps(&r, b, h, w).unwrap()
    };
    let want = aligned(&converted);
    assert!(common::max_diff(&got, &want) < 1e-6);
    // attending to the empty date's zero-filled vectors gives other numbers for
    // sample 0, so the check above can fail
    let unconverted = aligned(&batch);
    sits_testing::assert_finite(&unconverted, "aligned vectors with the empty date attended");
    assert!(common::max_diff(&unconverted, &want) > 1e-4);
}
