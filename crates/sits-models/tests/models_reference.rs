//! BatchNorm training steps, the pixel transformer and TSViT against PyTorch
//! (`tests/fixtures/make_fixtures.py`; TSViT is the official DeepSatModels code).
//! Tolerance 1e-4 absolute (float32 on both sides, different summation orders);
//! running statistics 1e-5.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::{max_abs_diff as diff, npy_f32};
use sits_models::nn::BatchNorm;
use sits_models::{Ctx, PixelTransformer, PixelTransformerConfig, Tsvit, TsvitConfig};

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn npy(name: &str) -> Tensor {
    npy_f32(&fx(&format!("{name}.npy")))
}

fn weights(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fx(&format!("{name}.safetensors")), &Device::Cpu).unwrap()
}

fn keys(name: &str) -> Vec<(String, Vec<usize>)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx(&format!("{name}.keys.json"))).unwrap())
            .unwrap();
    let mut out: Vec<_> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, s)| {
            (
                k.clone(),
                s.as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    out.sort();
    out
}

fn varmap_keys(vm: &VarMap) -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<_> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn batchnorm_training_steps_match_pytorch() {
    let vb = VarBuilder::from_tensors(weights("bn_init"), DType::F32, &Device::Cpu);
    let ctx = Ctx::new(vb);
    let bn = BatchNorm::new(&ctx, 3).unwrap();
    for step in 0..3 {
        let y = bn.forward_t(&npy(&format!("bn_x{step}")), true).unwrap();
        let d = diff(&y, &npy(&format!("bn_y{step}")));
        assert!(d < 1e-4, "train step {step}: {d:e}");
    }
    let bufs: HashMap<String, Tensor> = ctx.buffers.tensors().into_iter().collect();
    let d_mean = diff(&bufs["running_mean"], &npy("bn_running_mean"));
    let d_var = diff(&bufs["running_var"], &npy("bn_running_var"));
    assert!(
        d_mean < 1e-5 && d_var < 1e-5,
        "running mean {d_mean:e}, var {d_var:e}"
    );
    assert_eq!(bufs["num_batches_tracked"].to_scalar::<i64>().unwrap(), 3);
    let d = diff(
        &bn.forward_t(&npy("bn_xeval"), false).unwrap(),
        &npy("bn_yeval"),
    );
    assert!(d < 1e-4, "eval after training: {d:e}");
}

fn pt_config() -> PixelTransformerConfig {
    PixelTransformerConfig {
        in_bands: 4,
        d_model: 32,
        heads: 4,
        d_ff: 64,
        layers: 2,
        dropout: 0.0,
        ..PixelTransformerConfig::small(4)
    }
}

#[test]
fn pixel_transformer_matches_pytorch_encoder() {
    let vb = VarBuilder::from_tensors(weights("pixel_transformer"), DType::F32, &Device::Cpu);
    let m = PixelTransformer::new(&Ctx::new(vb), pt_config()).unwrap();
    let pad = npy("pt_pad").to_dtype(DType::U8).unwrap();
    let masked = npy("pt_masked").to_dtype(DType::U8).unwrap();
    let o = m
        .forward(
            &npy("pt_x"),
            &npy("pt_doy"),
            Some(&pad),
            Some(&masked),
            false,
        )
        .unwrap();
    // Compare per-date outputs at non-padded dates only (padded ones are undefined).
    let want = npy("pt_out");
    let keep = (1.0 - pad.to_dtype(DType::F32).unwrap())
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    let d = diff(
        &o.per_date.broadcast_mul(&keep).unwrap(),
        &want.broadcast_mul(&keep).unwrap(),
    );
    assert!(d < 1e-4, "per-date {d:e}");
    let d = diff(&o.pooled, &npy("pt_pooled"));
    assert!(d < 1e-4, "pooled {d:e}");
    // Names and shapes equal the PyTorch state_dict.
    let vm = VarMap::new();
    PixelTransformer::new(
        &Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)),
        pt_config(),
    )
    .unwrap();
    assert_eq!(varmap_keys(&vm), keys("pixel_transformer"));
}

#[test]
fn padded_dates_do_not_change_the_pixel_transformer() {
    let vb = VarBuilder::from_tensors(weights("pixel_transformer"), DType::F32, &Device::Cpu);
    let m = PixelTransformer::new(&Ctx::new(vb), pt_config()).unwrap();
    let x = npy("pt_x");
    let doy = npy("pt_doy");
    let pad = npy("pt_pad").to_dtype(DType::U8).unwrap();
    let a = m.forward(&x, &doy, Some(&pad), None, false).unwrap().pooled;
    // Change the padded values of sample 2 (dates 5, 6): the output must not move.
    let noise = (Tensor::ones(x.shape(), DType::F32, &Device::Cpu).unwrap() * 7.0).unwrap();
    let x2 = pad
        .to_dtype(DType::U8)
        .unwrap()
        .unsqueeze(2)
        .unwrap()
        .broadcast_as(x.shape())
        .unwrap()
        .where_cond(&noise, &x)
        .unwrap();
    let b = m
        .forward(&x2, &doy, Some(&pad), None, false)
        .unwrap()
        .pooled;
    assert!(diff(&a, &b) < 1e-6);
}

fn tsvit_config() -> TsvitConfig {
    TsvitConfig {
        img_res: 8,
        patch_size: 2,
        num_classes: 3,
        bands: 4,
        dim: 16,
        temporal_depth: 2,
        spatial_depth: 1,
        heads: 2,
        dim_head: 8,
        scale_dim: 2,
        mask_padding: false,
    }
}

#[test]
fn tsvit_matches_the_official_code() {
    let vb = VarBuilder::from_tensors(weights("tsvit_tiny"), DType::F32, &Device::Cpu);
    let m = Tsvit::new(&Ctx::new(vb), tsvit_config()).unwrap();
    let x = npy("tsvit_x"); // (B, T, H, W, C + 1), channels last, date channel last
    let c = x.dim(4).unwrap();
    let bands = x
        .narrow(4, 0, c - 1)
        .unwrap()
        .permute((0, 1, 4, 2, 3))
        .unwrap()
        .contiguous()
        .unwrap();
    let doy_norm = x
        .narrow(4, c - 1, 1)
        .unwrap()
        .squeeze(4)
        .unwrap()
        .narrow(2, 0, 1)
        .unwrap()
        .narrow(3, 0, 1)
        .unwrap()
        .squeeze(3)
        .unwrap()
        .squeeze(2)
        .unwrap();
    let day = Tsvit::day_index_from_normalised(&doy_norm).unwrap();
    let want_day = npy("tsvit_doy_index").to_dtype(DType::U32).unwrap();
    assert_eq!(
        day.to_vec2::<u32>().unwrap(),
        want_day.to_vec2::<u32>().unwrap()
    );
    let y = m.forward(&bands, &day, None).unwrap();
    let d = diff(&y, &npy("tsvit_out"));
    assert!(d < 1e-4, "logits {d:e}");
    let vm = VarMap::new();
    Tsvit::new(
        &Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)),
        tsvit_config(),
    )
    .unwrap();
    assert_eq!(varmap_keys(&vm), keys("tsvit_tiny"));
}

#[test]
fn tsvit_presets_have_the_published_sizes() {
    for (cfg, want) in [
        (TsvitConfig::pastis24(), 1_657_476usize),
        (TsvitConfig::pastis24_small(), 435_524),
    ] {
        let vm = VarMap::new();
        Tsvit::new(
            &Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)),
            cfg,
        )
        .unwrap();
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n, want);
    }
}

/// The same TSViT weights from a bare `.pth` state_dict and from a training
/// checkpoint (`{"epoch", "state_dict", "optimizer"}`) give the reference output;
/// saving and reloading as safetensors keeps every tensor, buffers included.
#[test]
fn pytorch_files_load_and_safetensors_roundtrip() {
    use sits_models::io::{load_tensors, save_safetensors, var_builder};
    let x = npy("tsvit_x");
    let c = x.dim(4).unwrap();
    let bands = x
        .narrow(4, 0, c - 1)
        .unwrap()
        .permute((0, 1, 4, 2, 3))
        .unwrap()
        .contiguous()
        .unwrap();
    let day = npy("tsvit_doy_index").to_dtype(DType::U32).unwrap();
    for file in [
        "tsvit_tiny.pth",
        "tsvit_tiny_checkpoint.pth.tar",
        "tsvit_tiny.safetensors",
    ] {
        let vb = var_builder(&fx(file), DType::F32, &Device::Cpu).unwrap();
        let y = Tsvit::new(&Ctx::new(vb), tsvit_config())
            .unwrap()
            .forward(&bands, &day, None)
            .unwrap();
        assert!(diff(&y, &npy("tsvit_out")) < 1e-4, "{file}");
    }
    let e = load_tensors(&fx("tsvit_out.npy"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tsvit_out.npy"), "{e}");

    // U-TAE-style model with buffers: save, reload, same names and values.
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu));
    let bn = BatchNorm::new(&ctx.pp("bn"), 3).unwrap();
    bn.forward_t(&npy("bn_x0"), true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    save_safetensors(&path, &vm, &ctx.buffers, sits_core::io::IfExists::Refuse).unwrap();
    let back = load_tensors(&path, &Device::Cpu).unwrap();
    let mut names: Vec<_> = back.keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bn.bias",
            "bn.num_batches_tracked",
            "bn.running_mean",
            "bn.running_var",
            "bn.weight"
        ]
    );
    let rm: HashMap<String, Tensor> = ctx.buffers.tensors().into_iter().collect();
    assert!(diff(&back["bn.running_mean"], &rm["bn.running_mean"]) == 0.0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

/// U-BARN's layers: PyTorch's default `nn.TransformerEncoder` (post-norm, ReLU) with
/// a key padding mask (`tests/fixtures/make_postnorm_fixture.py`).
#[test]
fn post_norm_layers_match_pytorch_default_encoder() {
    use sits_models::transformer::{EncoderLayer, LayerStyle};
    let vb = VarBuilder::from_tensors(weights("postnorm_layers"), DType::F32, &Device::Cpu);
    let pad = npy("postnorm_pad").to_dtype(DType::U8).unwrap();
    let mut h = npy("postnorm_x");
    for i in 0..2 {
        let layer = EncoderLayer::with_style(
            vb.pp("layers").pp(i),
            16,
            4,
            32,
            0.0,
            LayerStyle::PostNormRelu,
        )
        .unwrap();
        h = layer.forward(&h, Some(&pad), false).unwrap();
    }
    let keep = (1.0 - pad.to_dtype(DType::F32).unwrap())
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    let want = npy("postnorm_out");
    let d = diff(
        &h.broadcast_mul(&keep).unwrap(),
        &want.broadcast_mul(&keep).unwrap(),
    );
    assert!(d < 1e-4, "post-norm layers {d:e}");
    // the pre-norm wiring of the same weights is a different function
    let mut g = npy("postnorm_x");
    for i in 0..2 {
        let layer = EncoderLayer::new(vb.pp("layers").pp(i), 16, 4, 32, 0.0).unwrap();
        g = layer.forward(&g, Some(&pad), false).unwrap();
    }
    assert!(
        diff(
            &g.broadcast_mul(&keep).unwrap(),
            &want.broadcast_mul(&keep).unwrap()
        ) > 1e-2
    );
}
