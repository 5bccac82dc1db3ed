//! Dropout with a seedable generator: same seed, same mask; the mask keeps about
//! 1 - p of the elements scaled by 1 / (1 - p); gradients flow through the kept ones.
#![allow(clippy::unwrap_used)]

use candle_core::{Device, Tensor, Var};
use sits_models::nn::{dropout, seed_dropout};

fn mask(seed: u64, p: f32, n: usize) -> Vec<f32> {
    seed_dropout(seed);
    let ones = Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap();
    dropout(&ones, p).unwrap().to_vec1().unwrap()
}

#[test]
fn seeded_scaled_and_checked() {
    let (p, n) = (0.3f32, 20_000);
    let a = mask(7, p, n);
    assert_eq!(a, mask(7, p, n), "same seed, same mask");
    assert_ne!(a, mask(8, p, n), "another seed, another mask");
    // the stream continues between calls: two draws after one seed differ
    seed_dropout(7);
    let ones = Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap();
    let first: Vec<f32> = dropout(&ones, p).unwrap().to_vec1().unwrap();
    let second: Vec<f32> = dropout(&ones, p).unwrap().to_vec1().unwrap();
    assert_eq!(first, a);
    assert_ne!(first, second);

    let keep = 1.0 / (1.0 - p);
    assert!(a.iter().all(|&v| v == 0.0 || v == keep));
    let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    // binomial standard deviation sqrt(0.3 * 0.7 / 20000) = 0.0032: 6 sd
    assert!((dropped - 0.3).abs() < 0.02, "dropped fraction {dropped}");

    // p = 0 is the identity; p outside [0, 1) is refused
    let x = Tensor::new(&[1f32, -2.0, 3.0], &Device::Cpu).unwrap();
    assert_eq!(
        dropout(&x, 0.0).unwrap().to_vec1::<f32>().unwrap(),
        [1.0, -2.0, 3.0]
    );
    for bad in [1.0f32, -0.1, f32::NAN] {
        let err = dropout(&x, bad).unwrap_err().to_string();
        assert!(err.contains("dropout probability"), "{err}");
    }

    // the gradient of sum(dropout(x)) is the mask itself
    let v = Var::from_tensor(&Tensor::ones(64, candle_core::DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    seed_dropout(3);
    let y = dropout(v.as_tensor(), 0.5).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let grad: Vec<f32> = g.get(v.as_tensor()).unwrap().to_vec1().unwrap();
    assert_eq!(grad, y.to_vec1::<f32>().unwrap());
    assert!(grad.contains(&0.0) && grad.contains(&2.0));
}
