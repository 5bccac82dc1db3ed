//! Model throughput on CPU, sizes of `../shared/peers/bench_utae.py`.
//!
//! ```text
//! cargo bench --bench models
//! MODEL_SIZES=64 cargo bench --bench models -- utae   # only 64x64
//! ```
//! - `utae_fwd/B2xT30xC10xHxW`: U-TAE (PASTIS config), eval, no gradient; the peer's
//!   `no-pad-path` rows are the comparable ones (no padded date, no dummy pass).
//! - `utae_train_step/...`: forward in training mode, pixel cross-entropy, backward,
//!   AdamW step (the peer uses Adam; the step costs the same).
//! - `ltae2d_fwd` / `ltae2d_fwd_bwd`: L-TAE2d alone on 1x30x128x64x64 (4096 pixel
//!   sequences).
//! - `pixel_transformer_fwd`: the pixel transformer (width 128, 3 layers) on 1024
//!   series of 23 dates with 6 bands (the Mato Grosso shape).
//! - `conv2d/{ops,candle}_{fwd,fwd_bwd}/...`: one 3x3 reflect-padded convolution of
//!   U-TAE's first encoder level (60 images of 64 channels, 64x64) by the CPU op of
//!   `sits_models::ops` and by candle's own operations.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion};
use sits::sits_models::{
    Ctx, Ltae2d, LtaeConfig, PixelTransformer, PixelTransformerConfig, Utae, UtaeConfig,
};
use sits::sits_ssl::optim::AdamW;

/// Plain (non-variable) copies of a model's parameters and buffers, to run it in
/// evaluation without gradient bookkeeping.
fn frozen(
    vm: &VarMap,
    buffers: &sits::sits_models::Buffers,
) -> std::collections::HashMap<String, Tensor> {
    vm.data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .chain(buffers.tensors())
        .collect()
}

fn dates(b: usize, t: usize) -> Tensor {
    let v: Vec<f32> = (0..b * t).map(|i| (5 + 11 * (i % t)) as f32).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

fn utae(c: &mut Criterion) {
    sits::sits_core::memory::reuse_large_allocations();
    let dev = Device::Cpu;
    let sizes: Vec<usize> = std::env::var("MODEL_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 128]);
    let mut g = c.benchmark_group("utae");
    g.sample_size(10);
    for hw in sizes {
        let (b, t, ch) = (2, 30, 10);
        let shape = format!("B{b}xT{t}xC{ch}xH{hw}xW{hw}");
        let x = Tensor::randn(0f32, 1.0, (b, t, ch, hw, hw), &dev).unwrap();
        let pos = dates(b, t);
        // eval model from plain tensors (no Var): no gradient bookkeeping
        let vm = VarMap::new();
        let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
        let model = Utae::new(&ctx, UtaeConfig::pastis()).unwrap();
        let frozen = frozen(&vm, &ctx.buffers);
        let eval = Utae::new(
            &Ctx::new(VarBuilder::from_tensors(frozen, DType::F32, &dev)),
            UtaeConfig::pastis(),
        )
        .unwrap();
        g.bench_function(format!("utae_fwd/{shape}"), |bch| {
            bch.iter(|| eval.forward(&x, &pos, false).unwrap())
        });

        let mut opt = AdamW::from_varmap(&vm, 0.01).unwrap();
        let y = Tensor::zeros((b * hw * hw,), DType::U32, &dev).unwrap();
        g.bench_function(format!("utae_train_step/{shape}"), |bch| {
            bch.iter(|| {
                let (logits, _) = model.forward(&x, &pos, true).unwrap();
                let l = logits
                    .permute((0, 2, 3, 1))
                    .unwrap()
                    .reshape((b * hw * hw, 20))
                    .unwrap();
                let loss = candle_nn::loss::cross_entropy(&l, &y).unwrap();
                opt.backward_step(&loss, 1e-3).unwrap();
            })
        });
    }
    g.finish();
}

fn ltae(c: &mut Criterion) {
    sits::sits_core::memory::reuse_large_allocations();
    let dev = Device::Cpu;
    let (b, t, d, h, w) = (1, 30, 128, 64, 64);
    let x = Tensor::randn(0f32, 1.0, (b, t, d, h, w), &dev).unwrap();
    let pos = dates(b, t);
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &dev));
    let train = Ltae2d::new(&ctx, LtaeConfig::default()).unwrap();
    let frozen = frozen(&vm, &ctx.buffers);
    let eval = Ltae2d::new(
        &Ctx::new(VarBuilder::from_tensors(frozen, DType::F32, &dev)),
        LtaeConfig::default(),
    )
    .unwrap();
    let mut g = c.benchmark_group("ltae2d");
    g.sample_size(10);
    g.bench_function("ltae2d_fwd/4096x30x128", |bch| {
        bch.iter(|| eval.forward(&x, &pos, None, false).unwrap())
    });
    g.bench_function("ltae2d_fwd_bwd/4096x30x128", |bch| {
        bch.iter(|| {
            let o = train.forward(&x, &pos, None, true).unwrap();
            o.out.sum_all().unwrap().backward().unwrap()
        })
    });
    g.finish();
}

fn pixel_transformer(c: &mut Criterion) {
    sits::sits_core::memory::reuse_large_allocations();
    let dev = Device::Cpu;
    let (n, t, bands) = (1024, 23, 6);
    let vm = VarMap::new();
    let m = PixelTransformer::new(
        &Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &dev)),
        PixelTransformerConfig::small(bands),
    )
    .unwrap();
    let frozen = frozen(&vm, &sits::sits_models::Buffers::new());
    let eval = PixelTransformer::new(
        &Ctx::new(VarBuilder::from_tensors(frozen, DType::F32, &dev)),
        PixelTransformerConfig::small(bands),
    )
    .unwrap();
    let x = Tensor::randn(0f32, 1.0, (n, t, bands), &dev).unwrap();
    let pos = dates(n, t);
    let mut g = c.benchmark_group("pixel_transformer");
    g.sample_size(10);
    g.bench_function("pixel_transformer_fwd/1024x23x6", |bch| {
        bch.iter(|| {
            eval.forward(&x, &pos, None, None, false)
                .unwrap()
                .pooled
                .mean(D::Minus1)
                .unwrap()
        })
    });
    g.bench_function("pixel_transformer_fwd_bwd/1024x23x6", |bch| {
        bch.iter(|| {
            let o = m.forward(&x, &pos, None, None, true).unwrap();
            o.pooled
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.finish();
}

fn conv(c: &mut Criterion) {
    sits::sits_core::memory::reuse_large_allocations();
    use sits::sits_models::nn::PaddingMode;
    use sits::sits_models::ops::{conv2d, conv2d_candle};
    let dev = Device::Cpu;
    let (n, ch, hw) = (60, 64, 64);
    let x =
        candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, ch, hw, hw), &dev).unwrap())
            .unwrap();
    let w =
        candle_core::Var::from_tensor(&Tensor::randn(0f32, 0.05, (ch, ch, 3, 3), &dev).unwrap())
            .unwrap();
    type Conv = fn(&Tensor, &Tensor, usize, usize, PaddingMode) -> candle_core::Result<Tensor>;
    let mut g = c.benchmark_group("conv2d");
    g.sample_size(10);
    let shape = format!("{n}x{ch}x{hw}x{hw}_k3_reflect");
    for (name, f) in [("ops", conv2d as Conv), ("candle", conv2d_candle as Conv)] {
        g.bench_function(format!("{name}_fwd/{shape}"), |bch| {
            let (x, w) = (x.as_tensor().detach(), w.as_tensor().detach());
            bch.iter(|| f(&x, &w, 1, 1, PaddingMode::Reflect).unwrap())
        });
        g.bench_function(format!("{name}_fwd_bwd/{shape}"), |bch| {
            bch.iter(|| {
                f(x.as_tensor(), w.as_tensor(), 1, 1, PaddingMode::Reflect)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, conv, ltae, pixel_transformer, utae);
criterion_main!(benches);
