//! The CPU ops of `sits_models::ops` against PyTorch's own functions
//! (`tests/fixtures/make_op_fixtures.py`, float32, torch 2.15): convolution with
//! reflect and strided zero padding, GroupNorm, BatchNorm in training, LayerNorm, the
//! linear layer, softmax, log-softmax, GELU and masked multi-head attention; the
//! output and the gradient of `sum(output * g)` with respect to every input.
//!
//! Tolerance: 1e-5 relative to the largest value of PyTorch's (the same f32 terms
//! summed in other orders; the bound for gradients).

#![allow(clippy::unwrap_used)]

mod common;
use common::{close, npy_f32};

use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use sits_models::nn::PaddingMode;
use sits_models::ops::norm::{normalize, Stats};
use sits_models::ops::{activation, attention, conv2d, linear, softmax};

fn fx(name: &str) -> Tensor {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ops")
        .join(format!("{name}.npy"));
    npy_f32(&p)
}

/// Runs `f` on the fixture's inputs `names`, checks the output and the gradient of
/// every input against PyTorch's.
fn check(case: &str, names: &[&str], f: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>) {
    let vars: Vec<Var> = names
        .iter()
        .map(|n| Var::from_tensor(&fx(&format!("{case}_{n}"))).unwrap())
        .collect();
    let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&inputs).unwrap();
    close(
        &out,
        &fx(&format!("{case}_out")),
        &format!("{case}: output"),
    );
    let grads = (out * fx(&format!("{case}_g")))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (v, n) in vars.iter().zip(names) {
        close(
            grads.get(v).unwrap(),
            &fx(&format!("{case}_d{n}")),
            &format!("{case}: gradient of {n}"),
        );
    }
}

#[test]
fn convolutions_match_pytorch() {
    check("conv_reflect", &["x", "w"], |t| {
        conv2d(&t[0], &t[1], 1, 1, PaddingMode::Reflect)
    });
    check("conv_stride2", &["x", "w"], |t| {
        conv2d(&t[0], &t[1], 2, 1, PaddingMode::Zeros)
    });
}

#[test]
fn normalisations_match_pytorch() {
    check("group_norm", &["x", "w", "b"], |t| {
        normalize(&t[0], &t[1], &t[2], Stats::PerSample { groups: 3 }, 1e-5)
    });
    check("batch_norm", &["x", "w", "b"], |t| {
        normalize(&t[0], &t[1], &t[2], Stats::PerChannel, 1e-5)
    });
    // LayerNorm over the last dimension: rows as samples of one group
    check("layer_norm", &["x", "w", "b"], |t| {
        let dims = t[0].dims().to_vec();
        let rows = t[0].reshape((dims[0] * dims[1], dims[2], 1))?;
        normalize(&rows, &t[1], &t[2], Stats::PerSample { groups: 1 }, 1e-5)?.reshape(dims)
    });
}

#[test]
fn linear_softmax_gelu_and_attention_match_pytorch() {
    check("linear", &["x", "w", "b"], |t| {
        linear::linear(&t[0], &t[1], Some(&t[2]))
    });
    check("softmax", &["x"], |t| softmax::softmax_last(&t[0]));
    check("log_softmax", &["x"], |t| softmax::log_softmax_last(&t[0]));
    check("gelu", &["x"], |t| activation::gelu(&t[0]));
    check("attention", &["qkv"], |t| {
        let mut pad = vec![0u8; 10];
        pad[5 + 3] = 1; // sequence 1, key 3
        let pad = Tensor::from_vec(pad, (2, 5), &Device::Cpu)?;
        attention::self_attention(&t[0], 2, Some(&pad))
    });
}
