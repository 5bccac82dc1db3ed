//! The fused normalisation op (`sits_models::ops::norm::normalize`) against candle's
//! composed operations (`normalize_candle`): outputs and the gradients of the input,
//! the scale and the shift, for GroupNorm-, LayerNorm- and BatchNorm-shaped
//! statistics, batch 1, odd sizes, inputs of rank 2 to 5.
//!
//! Tolerance: 1e-5 relative to the largest value of the reference (f32; the fused op
//! sums in f64, the composed one in f32, so they differ by float noise only).

#![allow(clippy::unwrap_used)]

mod common;
use common::{close, pattern as values};

use candle_core::{DType, Device, Tensor, Var};
use sits_models::ops::norm::{channel_moments, normalize, normalize_candle, Stats};

fn check(dims: &[usize], stats: Stats, seed: u64) {
    let dev = Device::Cpu;
    let what = format!("{dims:?} {stats:?}");
    let n: usize = dims.iter().product();
    let c = dims[1];
    // an offset and a scale far from 0 and 1, as activations have
    let x = Var::from_tensor(&Tensor::from_vec(values(n, seed, 3.0, 2.0), dims, &dev).unwrap())
        .unwrap();
    let g = Var::from_tensor(&Tensor::from_vec(values(c, seed + 1, 1.0, 1.0), c, &dev).unwrap())
        .unwrap();
    let b = Var::from_tensor(&Tensor::from_vec(values(c, seed + 2, 1.0, 0.0), c, &dev).unwrap())
        .unwrap();
    let ours = normalize(x.as_tensor(), g.as_tensor(), b.as_tensor(), stats, 1e-5).unwrap();
    let reference =
        normalize_candle(x.as_tensor(), g.as_tensor(), b.as_tensor(), stats, 1e-5).unwrap();
    close(&ours, &reference, &format!("{what}: output"));
    let r = Tensor::from_vec(values(n, seed + 3, 1.0, 0.1), dims, &dev).unwrap();
    let go = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (reference * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (v, name) in [(&x, "input"), (&g, "weight"), (&b, "bias")] {
        close(
            go.get(v).unwrap(),
            gr.get(v).unwrap(),
            &format!("{what}: {name} gradient"),
        );
    }
}

#[test]
fn matches_the_composed_operations() {
    let mut seed = 0;
    for dims in [
        vec![2, 8, 5, 7],
        vec![1, 4, 3, 3],
        vec![3, 6],
        vec![2, 12, 2, 3, 5],
        vec![5, 4, 1],
    ] {
        let c = dims[1];
        for groups in [1, 2, 4] {
            if c % groups == 0 {
                seed += 1;
                check(&dims, Stats::PerSample { groups }, seed);
            }
        }
        seed += 1;
        check(&dims, Stats::PerChannel, seed);
    }
}

#[test]
fn layer_norm_rows_as_one_group() {
    // LayerNorm over 64 features of 37 rows, as nn::LayerNorm runs it
    check(&[37, 64, 1], Stats::PerSample { groups: 1 }, 11);
}

#[test]
fn channel_moments_are_the_batch_statistics() {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(values(2 * 3 * 4, 5, 2.0, 1.0), (2, 3, 4), &dev).unwrap();
    let (mean, var) = channel_moments(&x).unwrap();
    let rows = x.transpose(0, 1).unwrap().flatten_from(1).unwrap();
    let m = rows.mean_keepdim(1).unwrap();
    let v = rows
        .broadcast_sub(&m)
        .unwrap()
        .sqr()
        .unwrap()
        .mean(1)
        .unwrap();
    close(&mean, &m.squeeze(1).unwrap(), "mean");
    close(&var, &v, "variance");
    // the fallback (f64) agrees too
    let (m64, v64) = channel_moments(&x.to_dtype(DType::F64).unwrap()).unwrap();
    close(&m64.to_dtype(DType::F32).unwrap(), &mean, "f64 mean");
    close(&v64.to_dtype(DType::F32).unwrap(), &var, "f64 variance");
}

#[test]
fn bad_groups_are_errors() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((2, 6, 3), DType::F32, &dev).unwrap();
    let g = Tensor::ones(6, DType::F32, &dev).unwrap();
    let e = normalize(&x, &g, &g, Stats::PerSample { groups: 4 }, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("6 channels cannot be split into 4 groups"),
        "{e}"
    );
    let short = Tensor::ones(5, DType::F32, &dev).unwrap();
    let e = normalize(&x, &short, &short, Stats::PerChannel, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("need 6 values"), "{e}");
}

#[test]
fn channel_bias_matches_broadcast_add() {
    use sits_models::ops::norm::add_channel_bias;
    let dev = Device::Cpu;
    for dims in [vec![2, 5, 3, 4], vec![1, 3], vec![3, 4, 7]] {
        let n: usize = dims.iter().product();
        let c = dims[1];
        let y = Var::from_tensor(
            &Tensor::from_vec(values(n, 3, 2.0, 0.5), dims.as_slice(), &dev).unwrap(),
        )
        .unwrap();
        let b =
            Var::from_tensor(&Tensor::from_vec(values(c, 4, 1.0, 0.0), c, &dev).unwrap()).unwrap();
        let mut shape = vec![1; dims.len()];
        shape[1] = c;
        let ours = add_channel_bias(y.as_tensor(), b.as_tensor()).unwrap();
        let reference = y
            .as_tensor()
            .broadcast_add(&b.as_tensor().reshape(shape).unwrap())
            .unwrap();
        close(&ours, &reference, &format!("{dims:?}: output"));
        let r = Tensor::from_vec(values(n, 5, 1.0, 0.2), dims.as_slice(), &dev).unwrap();
        let go = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (reference * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (v, name) in [(&y, "input"), (&b, "bias")] {
            close(
                go.get(v).unwrap(),
                gr.get(v).unwrap(),
                &format!("{dims:?}: {name} gradient"),
            );
        }
    }
}

#[test]
fn layer_norm_with_trainable_weights_equals_candles_fused_kernel() {
    // nn::LayerNorm over a VarMap (weights tracked) runs the op of ops::norm; over
    // plain tensors, without gradient, candle's fused layer_norm kernel
    use candle_nn::{Module, VarBuilder, VarMap};
    use sits_models::nn::LayerNorm;
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let trained = LayerNorm::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), 24, 1e-5).unwrap();
    for (name, var) in vm.data().lock().unwrap().iter() {
        let n = var.elem_count();
        let seed = if name.contains("weight") { 1 } else { 2 };
        var.set(&Tensor::from_vec(values(n, seed, 0.5, 1.0), n, &dev).unwrap())
            .unwrap();
    }
    let plain: std::collections::HashMap<String, Tensor> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    let frozen =
        LayerNorm::new(VarBuilder::from_tensors(plain, DType::F32, &dev), 24, 1e-5).unwrap();
    let x = Tensor::from_vec(values(5 * 7 * 24, 9, 4.0, 3.0), (5, 7, 24), &dev).unwrap();
    close(
        &trained.forward(&x).unwrap(),
        &frozen.forward(&x).unwrap(),
        "LayerNorm op vs candle's kernel",
    );
}
