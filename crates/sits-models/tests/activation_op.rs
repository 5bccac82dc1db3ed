//! The GELU op (`sits_models::ops::activation::gelu`) against candle's `gelu_erf`
//! (the `libm` crate's `erf`): every value of a dense grid over [-12, 12] and some
//! far values, pointwise within 3e-7 · max(1, |x|) (the approximation of `erfc` is
//! within 1.5e-7), and the input gradient of a model-sized tensor within 1e-5
//! relative to its largest value.

#![allow(clippy::unwrap_used)]

mod common;
use common::close;

use candle_core::{Device, Tensor, Var};
use sits_models::ops::activation::gelu;

#[test]
fn gelu_matches_candle_pointwise() {
    let mut xs: Vec<f32> = (0..240_001).map(|i| -12.0 + i as f32 * 1e-4).collect();
    xs.extend([
        -1e4, -100.0, -30.0, 30.0, 100.0, 1e4, 0.0, -0.0, 1e-30, -1e-30,
    ]);
    let x = Tensor::from_vec(xs.clone(), xs.len(), &Device::Cpu).unwrap();
    let ours = gelu(&x).unwrap().to_vec1::<f32>().unwrap();
    let reference = x.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
    for ((&v, &a), &b) in xs.iter().zip(&ours).zip(&reference) {
        assert!(
            (a - b).abs() <= 3e-7 * v.abs().max(1.0),
            "gelu({v}) = {a}, candle {b}"
        );
    }
}

#[test]
fn gelu_gradient_matches_candle() {
    for dims in [&[7][..], &[3, 5, 11], &[64, 23, 512]] {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * 2654435761 % 1000) as f32 / 500.0 - 1.0) * 4.0)
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(v, dims, &Device::Cpu).unwrap()).unwrap();
        let w = (x.as_tensor().cos().unwrap() + 0.5).unwrap();
        let a = gelu(x.as_tensor()).unwrap();
        let b = x.as_tensor().gelu_erf().unwrap();
        close(&a, &b, &format!("{dims:?}: values"));
        let ga = (a * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &w).unwrap().sum_all().unwrap().backward().unwrap();
        close(
            ga.get(&x).unwrap(),
            gb.get(&x).unwrap(),
            &format!("{dims:?}: input gradient"),
        );
    }
}
