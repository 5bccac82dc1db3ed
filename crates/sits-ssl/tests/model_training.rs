//! Training mode of the sits-models models (here, beside the optimiser they are
//! trained with, so sits-models needs no dev-dependency on sits-ssl): gradients reach every parameter of every model, an AdamW step
//! lowers a loss, BatchNorm running statistics move only in training, and U-BARN
//! ignores what padded dates contain.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sits_models::heads::{ForecastHead, MlpHead, SegmentationHead, TemporalAttentionPooling};
use sits_models::nn::seeded_init;
use sits_models::utae::{AggregationMode, Norm};
use sits_models::{
    Ctx, Ltae2d, LtaeConfig, PixelTransformer, PixelTransformerConfig, SmallResNet, SmallVit,
    Tsvit, TsvitConfig, Ubarn, UbarnConfig, Utae, UtaeConfig,
};
use sits_ssl::optim::AdamW;
use sits_testing::{assert_finite, max_abs, max_abs_diff};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    // Deterministic pseudo-random values without relying on candle's global RNG.
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn dates(b: usize, t: usize) -> Tensor {
    let v: Vec<f32> = (0..b * t).map(|i| (10 + 12 * (i % t)) as f32).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

/// Every variable gets a finite gradient, and not all of them are zero.
fn check_grads(vm: &VarMap, loss: &Tensor, what: &str) {
    let grads = loss.backward().unwrap();
    let vars = vm.all_vars();
    assert!(!vars.is_empty(), "{what}: no parameters");
    let mut nonzero = 0;
    for (name, var) in vm.data().lock().unwrap().iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        // infinite when any element is NaN or infinite
        let a = max_abs(g);
        assert!(a.is_finite(), "{what}: non-finite gradient for {name}");
        nonzero += usize::from(a > 0.0);
    }
    assert!(
        nonzero * 10 >= vars.len() * 9,
        "{what}: only {nonzero} of {} gradients are non-zero",
        vars.len()
    );
}

fn new_vm() -> (VarMap, Ctx<'static>) {
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu));
    (vm, ctx)
}

fn small_utae(agg: AggregationMode) -> UtaeConfig {
    UtaeConfig {
        input_dim: 3,
        encoder_widths: vec![16, 16, 32],
        decoder_widths: vec![16, 16, 32],
        out_conv: vec![16, 5],
        agg_mode: agg,
        encoder_norm: Norm::Group,
        n_head: 4,
        d_model: 32,
        d_k: 4,
        ..UtaeConfig::pastis()
    }
}

#[test]
fn utae_trains_and_updates_batchnorm_statistics() {
    for agg in [
        AggregationMode::AttGroup,
        AggregationMode::AttMean,
        AggregationMode::Mean,
    ] {
        let (vm, ctx) = new_vm();
        let m = Utae::new(&ctx, small_utae(agg)).unwrap();
        let x = randn(&[2, 4, 3, 16, 16], 1);
        // a padded date in the second sample
        let mask = Tensor::from_vec(
            vec![1f32, 1., 1., 1., 1., 1., 1., 0.],
            (2, 4, 1, 1, 1),
            &Device::Cpu,
        )
        .unwrap();
        let x = x.broadcast_mul(&mask).unwrap();
        // deep copies: the buffers are updated in place
        let before: Vec<(String, Tensor)> = ctx
            .buffers
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.copy().unwrap()))
            .collect();
        let (logits, _) = m.forward(&x, &dates(2, 4), true).unwrap();
        assert_eq!(logits.dims(), &[2, 5, 16, 16]);
        let after = ctx.buffers.tensors();
        let moved = before.iter().zip(&after).filter(|((_, a), (_, b))| {
            assert_finite(b, "running statistic after a training step");
            max_abs_diff(a, b) > 0.0
        });
        assert_eq!(
            moved.count(),
            before.len(),
            "every running statistic moves in training"
        );
        check_grads(
            &vm,
            &logits.sqr().unwrap().mean_all().unwrap(),
            &format!("U-TAE {agg:?}"),
        );
        // eval does not touch the buffers
        let snap: Vec<(String, Tensor)> = ctx
            .buffers
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.copy().unwrap()))
            .collect();
        m.forward(&x, &dates(2, 4), false).unwrap();
        for ((_, a), (_, b)) in snap.iter().zip(ctx.buffers.tensors().iter()) {
            assert_eq!(
                a.to_dtype(DType::F32).unwrap().to_vec1::<f32>().ok(),
                b.to_dtype(DType::F32).unwrap().to_vec1::<f32>().ok()
            );
        }
    }
}

#[test]
fn adamw_lowers_the_loss_of_the_pixel_transformer() {
    let (vm, _) = new_vm();
    let cfg = PixelTransformerConfig {
        d_model: 32,
        heads: 4,
        d_ff: 64,
        layers: 2,
        dropout: 0.0,
        ..PixelTransformerConfig::small(3)
    };
    let m = PixelTransformer::new(
        &Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)),
        cfg,
    )
    .unwrap();
    let head = MlpHead::new(
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu).pp("head"),
        32,
        16,
        2,
        0.0,
    )
    .unwrap();
    // candle's initialisers are unseeded, and from some starts 20 steps do not
    // halve the loss (2 runs in 200 failed before this seeding). Over seeds 0..30
    // the loss falls to 1.5-51 % of its start; the test uses seed 0.
    seeded_init(&vm, 0).unwrap();
    let x = randn(&[8, 6, 3], 2);
    let y = randn(&[8, 2], 3);
    let masked = Tensor::from_vec(
        (0..48u8).map(|i| u8::from(i % 5 == 0)).collect::<Vec<_>>(),
        (8, 6),
        &Device::Cpu,
    )
    .unwrap();
    let pad = Tensor::zeros((8, 6), DType::U8, &Device::Cpu).unwrap();
    let loss_of = || {
        let o = m
            .forward(&x, &dates(8, 6), Some(&pad), Some(&masked), true)
            .unwrap();
        (head.forward(&o.pooled, true).unwrap() - &y)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
    };
    check_grads(&vm, &loss_of(), "pixel transformer");
    let mut opt = AdamW::from_varmap(&vm, 0.01).unwrap();
    let first = loss_of().to_scalar::<f32>().unwrap();
    for _ in 0..20 {
        opt.backward_step(&loss_of(), 1e-2).unwrap();
    }
    let last = loss_of().to_scalar::<f32>().unwrap();
    assert!(last < 0.5 * first, "loss {first} -> {last}");
}

#[test]
fn gradients_reach_every_parameter() {
    // L-TAE2d with a pad mask
    let (vm, ctx) = new_vm();
    let m = Ltae2d::new(
        &ctx,
        LtaeConfig {
            in_channels: 16,
            n_head: 4,
            d_k: 4,
            mlp: vec![32, 16],
            d_model: 32,
            ..LtaeConfig::default()
        },
    )
    .unwrap();
    let pad = Tensor::from_vec(vec![0u8, 0, 0, 1, 0, 0, 0, 0], (2, 4), &Device::Cpu).unwrap();
    let o = m
        .forward(&randn(&[2, 4, 16, 3, 3], 4), &dates(2, 4), Some(&pad), true)
        .unwrap();
    check_grads(&vm, &o.out.sqr().unwrap().mean_all().unwrap(), "L-TAE2d");

    // TSViT, masked variant
    let (vm, _) = new_vm();
    let cfg = TsvitConfig {
        img_res: 8,
        patch_size: 2,
        num_classes: 3,
        bands: 4,
        dim: 16,
        temporal_depth: 1,
        spatial_depth: 1,
        heads: 2,
        dim_head: 8,
        scale_dim: 2,
        mask_padding: true,
    };
    let m = Tsvit::new(
        &Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)),
        cfg,
    )
    .unwrap();
    let day = Tensor::from_vec(
        (0..12u32).map(|i| i * 20).collect::<Vec<_>>(),
        (2, 6),
        &Device::Cpu,
    )
    .unwrap();
    let pad = Tensor::from_vec(
        vec![0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        (2, 6),
        &Device::Cpu,
    )
    .unwrap();
    let y = m
        .forward(&randn(&[2, 6, 4, 8, 8], 5), &day, Some(&pad))
        .unwrap();
    assert_eq!(y.dims(), &[2, 3, 8, 8]);
    check_grads(&vm, &y.sqr().unwrap().mean_all().unwrap(), "TSViT");

    // ResNet and ViT on 3-channel 24x24 images (a recurrence-plot size), with heads
    let (vm, ctx) = new_vm();
    let r = SmallResNet::new(&ctx, 3, 8).unwrap();
    let f = r.forward(&randn(&[4, 3, 24, 24], 6), true).unwrap();
    assert_eq!(f.dims(), &[4, 32]);
    let fc = ForecastHead::new(ctx.vb.pp("forecast"), 32, 4, 2).unwrap();
    check_grads(
        &vm,
        &fc.forward(&f).unwrap().sqr().unwrap().mean_all().unwrap(),
        "ResNet + forecast head",
    );

    let (vm, ctx) = new_vm();
    let v = SmallVit::new(ctx.vb.clone(), 3, 24, 4, 32, 2, 4).unwrap();
    let f = v.forward(&randn(&[4, 3, 24, 24], 7)).unwrap();
    assert_eq!(f.dims(), &[4, 32]);
    check_grads(&vm, &f.sqr().unwrap().mean_all().unwrap(), "ViT");
    assert!(v.forward(&randn(&[1, 3, 23, 23], 7)).is_err());

    // Segmentation head and temporal pooling on maps
    let (vm, ctx) = new_vm();
    let pool = TemporalAttentionPooling::new(ctx.vb.pp("pool"), 8, 2, 4).unwrap();
    let seg = SegmentationHead::new(&ctx.pp("seg"), 8, Some(8), 3).unwrap();
    let pooled = pool
        .forward_maps(&randn(&[2, 5, 8, 4, 4], 8), None)
        .unwrap();
    let y = seg.forward(&pooled, true).unwrap();
    assert_eq!(y.dims(), &[2, 3, 4, 4]);
    check_grads(
        &vm,
        &y.sqr().unwrap().mean_all().unwrap(),
        "pooling + segmentation head",
    );
}

fn small_ubarn() -> UbarnConfig {
    UbarnConfig {
        encoder_widths: vec![8, 8, 16],
        decoder_widths: vec![8, 8, 16],
        d_model: 16,
        layers: 1,
        heads: 2,
        d_ff: 32,
        dropout: 0.0,
        pool_heads: 2,
        ..UbarnConfig::preset(3)
    }
}

#[test]
fn ubarn_shapes_padding_and_gradients() {
    let (vm, ctx) = new_vm();
    let m = Ubarn::new(&ctx, small_ubarn()).unwrap();
    let x = randn(&[2, 5, 3, 8, 8], 9);
    let doy = dates(2, 5);
    let pad = Tensor::from_vec(vec![0u8, 0, 0, 0, 0, 0, 0, 0, 1, 1], (2, 5), &Device::Cpu).unwrap();
    let o = m.forward(&x, &doy, &pad, false).unwrap();
    assert_eq!(o.per_date.dims(), &[2, 5, 16, 8, 8]);
    assert_eq!(o.pooled.dims(), &[2, 16, 8, 8]);
    // Whatever the padded dates hold, nothing else changes.
    let keep = (1.0 - pad.to_dtype(DType::F32).unwrap())
        .unwrap()
        .reshape((2, 5, 1, 1, 1))
        .unwrap();
    let x2 = (x.broadcast_mul(&keep).unwrap()
        + (1.0 - keep.clone())
            .unwrap()
            .broadcast_mul(&randn(&[2, 5, 3, 8, 8], 10))
            .unwrap())
    .unwrap();
    let o2 = m.forward(&x2, &doy, &pad, false).unwrap();
    let d = max_abs_diff(&o.pooled, &o2.pooled);
    assert!(
        d < 1e-5,
        "pooled output moved by {d} when padded values changed"
    );
    let kd = keep.reshape((2, 5, 1, 1, 1)).unwrap();
    let d = max_abs_diff(
        &o.per_date.broadcast_mul(&kd).unwrap(),
        &o2.per_date.broadcast_mul(&kd).unwrap(),
    );
    assert!(d < 1e-5, "per-date output at real dates moved by {d}");
    let o = m.forward(&x, &doy, &pad, true).unwrap();
    check_grads(&vm, &o.pooled.sqr().unwrap().mean_all().unwrap(), "U-BARN");
}

/// A U-BARN whose BatchNorm statistics moved in training, saved and loaded into a
/// model built afresh, gives the same evaluation-mode output bit for bit; loading
/// the variables alone (`VarMap::load`) does not, which is the mistake
/// `load_weights` exists to prevent. Missing and misshapen tensors are errors naming
/// the file and the tensor.
#[test]
fn ubarn_saved_and_loaded_with_running_statistics() {
    use sits_models::io::{load_weights, save_safetensors};
    let x = randn(&[2, 4, 3, 8, 8], 21);
    let doy = dates(2, 4);
    let pad = Tensor::zeros((2, 4), DType::U8, &Device::Cpu).unwrap();
    let (vm, ctx) = new_vm();
    let m = Ubarn::new(&ctx, small_ubarn()).unwrap();
    for _ in 0..3 {
        m.forward(&x, &doy, &pad, true).unwrap();
    }
    let want = m.forward(&x, &doy, &pad, false).unwrap().per_date;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ubarn.safetensors");
    save_safetensors(&path, &vm, &ctx.buffers, sits_core::io::IfExists::Refuse).unwrap();

    let (vm2, ctx2) = new_vm();
    let m2 = Ubarn::new(&ctx2, small_ubarn()).unwrap();
    let n = load_weights(&path, &vm2, &ctx2.buffers).unwrap();
    assert_eq!(n, vm.all_vars().len() + ctx.buffers.names().len());
    let got = m2.forward(&x, &doy, &pad, false).unwrap().per_date;
    assert_eq!(max_abs_diff(&got, &want), 0.0);

    let (mut vm3, ctx3) = new_vm();
    let m3 = Ubarn::new(&ctx3, small_ubarn()).unwrap();
    vm3.load(&path).unwrap();
    let vars_only = m3.forward(&x, &doy, &pad, false).unwrap().per_date;
    assert!(
        max_abs_diff(&vars_only, &want) > 1e-3,
        "the running statistics should matter in this test"
    );

    // The error of loading the file into a model built with `cfg`.
    let load_into = |cfg: UbarnConfig| -> String {
        let (vm, ctx) = new_vm();
        let _m = Ubarn::new(&ctx, cfg).unwrap();
        load_weights(&path, &vm, &ctx.buffers)
            .unwrap_err()
            .to_string()
    };
    // One more layer: the file lacks its tensors.
    let e = load_into(UbarnConfig {
        layers: 2,
        ..small_ubarn()
    });
    assert!(
        e.contains("ubarn.safetensors") && e.contains("transformer.layers.1"),
        "{e}"
    );
    // Wider: same names, other shapes.
    let e = load_into(UbarnConfig {
        d_model: 32,
        ..small_ubarn()
    });
    assert!(
        e.contains("ubarn.safetensors") && e.contains("shape"),
        "{e}"
    );
}

/// `Ubarn::infer` (dates and pixels in chunks, no graph) gives what `forward` gives
/// in evaluation mode, with chunk sizes that do not divide the sizes, a date chunk
/// that holds only padded dates, and trained BatchNorm statistics; its outputs carry
/// no gradient, and zero chunk sizes are errors.
#[test]
fn ubarn_infer_in_chunks_matches_forward() {
    let (_vm, ctx) = new_vm();
    let m = Ubarn::new(&ctx, small_ubarn()).unwrap();
    let x = randn(&[2, 5, 3, 8, 8], 31);
    let doy = dates(2, 5);
    let nopad = Tensor::zeros((2, 5), DType::U8, &Device::Cpu).unwrap();
    // Move the running statistics away from their initial values.
    m.forward(&x, &doy, &nopad, true).unwrap();
    // Sample 0 pads its last two dates, sample 1 its last one: with 2 dates per
    // chunk the chunk {4} is all padding.
    let pad = Tensor::from_vec(vec![0u8, 0, 0, 1, 1, 0, 0, 0, 0, 1], (2, 5), &Device::Cpu).unwrap();
    for (p, what) in [(&nopad, "no padding"), (&pad, "padding")] {
        let want = m.forward(&x, &doy, p, false).unwrap();
        let got = m.infer(&x, &doy, p, 2, 37).unwrap();
        assert!(!got.pooled.track_op() && !got.per_date.track_op());
        assert_eq!(got.per_date.dims(), want.per_date.dims());
        let pooled = max_abs_diff(&got.pooled, &want.pooled);
        assert!(pooled < 1e-5, "{what}: pooled differs by {pooled}");
        // Per-date vectors of unpadded dates.
        let keep = (1.0 - p.to_dtype(DType::F32).unwrap())
            .unwrap()
            .reshape((2, 5, 1, 1, 1))
            .unwrap();
        let per_date = max_abs_diff(
            &got.per_date.broadcast_mul(&keep).unwrap(),
            &want.per_date.broadcast_mul(&keep).unwrap(),
        );
        assert!(per_date < 1e-5, "{what}: per-date differs by {per_date}");
    }
    assert!(m.infer(&x, &doy, &pad, 0, 10).is_err());
    assert!(m.infer(&x, &doy, &pad, 1, 0).is_err());
}
