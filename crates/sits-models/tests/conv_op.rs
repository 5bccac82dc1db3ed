//! The CPU convolution op (`sits_models::ops::conv2d`) against candle's own
//! operations (`conv2d_candle`): outputs, input gradients and weight gradients, for
//! odd sizes, batch 1, strides 1 and 2, kernels 1 to 4, zero and reflect padding,
//! and an image large enough to be processed in several bands of rows.
//!
//! Tolerance: 1e-5 relative to the largest value of the reference, in f32. Both
//! sides sum the same products in different orders (im2col + gemm blocks against
//! candle's direct loops), so they agree to a few ulps of the largest term, not
//! bit for bit.

#![allow(clippy::unwrap_used)]

mod common;
use common::close;

use candle_core::{DType, Device, Tensor, Var};
use sits_models::nn::PaddingMode;
use sits_models::ops::{conv2d, conv2d_candle};

struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    mode: PaddingMode,
}

fn check(case: &Case, seed: u64) {
    let dev = Device::Cpu;
    let Case {
        n,
        c,
        h,
        w,
        o,
        k,
        stride,
        pad,
        mode,
    } = *case;
    let what = format!("n{n} c{c} {h}x{w} o{o} k{k} s{stride} p{pad} {mode:?} (seed {seed})");
    // values from a fixed formula so that the case is reproducible without an RNG
    let fill = |len: usize, a: f32| -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0 - 1.0) * a)
            .collect()
    };
    let x =
        Var::from_tensor(&Tensor::from_vec(fill(n * c * h * w, 1.0), (n, c, h, w), &dev).unwrap())
            .unwrap();
    let wt =
        Var::from_tensor(&Tensor::from_vec(fill(o * c * k * k, 0.3), (o, c, k, k), &dev).unwrap())
            .unwrap();
    let ours = conv2d(x.as_tensor(), wt.as_tensor(), stride, pad, mode).unwrap();
    let reference = conv2d_candle(x.as_tensor(), wt.as_tensor(), stride, pad, mode).unwrap();
    close(&ours, &reference, &format!("{what}: output"));
    // a loss whose gradient differs at every output position
    let r = Tensor::from_vec(fill(ours.elem_count(), 1.0), ours.dims(), &dev).unwrap();
    let g_ours = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g_ref = (reference * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    close(
        g_ours.get(&x).unwrap(),
        g_ref.get(&x).unwrap(),
        &format!("{what}: input gradient"),
    );
    close(
        g_ours.get(&wt).unwrap(),
        g_ref.get(&wt).unwrap(),
        &format!("{what}: weight gradient"),
    );
}

#[test]
fn matches_candle_forward_and_backward() {
    let mut seed = 0;
    for mode in [PaddingMode::Zeros, PaddingMode::Reflect] {
        for (k, stride, pad) in [
            (1, 1, 0),
            (3, 1, 1),
            (3, 1, 0),
            (3, 2, 1),
            (4, 2, 1),
            (2, 2, 0),
            (5, 1, 2),
            (1, 2, 0),
        ] {
            for (n, c, h, w, o) in [(1, 1, 5, 7, 1), (2, 3, 9, 11, 4), (3, 5, 8, 8, 6)] {
                seed += 1;
                check(
                    &Case {
                        n,
                        c,
                        h,
                        w,
                        o,
                        k,
                        stride,
                        pad,
                        mode,
                    },
                    seed,
                );
            }
        }
    }
}

#[test]
fn large_images_are_processed_in_bands() {
    // 64 channels x 3 x 3 taps x 128 output columns: a band holds 28 of the 128
    // output rows, so the image is done in 5 bands
    for mode in [PaddingMode::Reflect, PaddingMode::Zeros] {
        check(
            &Case {
                n: 1,
                c: 64,
                h: 128,
                w: 128,
                o: 8,
                k: 3,
                stride: 1,
                pad: 1,
                mode,
            },
            7,
        );
    }
}

#[test]
fn more_images_than_threads_and_fewer() {
    for n in [1, 2, 3, 7] {
        check(
            &Case {
                n,
                c: 4,
                h: 12,
                w: 10,
                o: 5,
                k: 3,
                stride: 1,
                pad: 1,
                mode: PaddingMode::Reflect,
            },
            n as u64,
        );
    }
}

#[test]
fn a_frozen_weight_gets_no_gradient_and_the_input_still_does() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::ones((2, 3, 6, 6), DType::F32, &dev).unwrap()).unwrap();
    let w = Tensor::ones((4, 3, 3, 3), DType::F32, &dev).unwrap();
    let y = conv2d(x.as_tensor(), &w, 1, 1, PaddingMode::Zeros).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let dx = g.get(&x).unwrap();
    // a corner pixel is read by 4 taps of each of the 4 output channels
    let corner = dx
        .get(0)
        .unwrap()
        .get(0)
        .unwrap()
        .get(0)
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(corner.to_scalar::<f32>().unwrap(), 16.0);
    assert!(g.get(&w).is_none());
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
    let w = Tensor::zeros((2, 4, 3, 3), DType::F32, &dev).unwrap();
    let e = conv2d(&x, &w, 1, 1, PaddingMode::Zeros)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
    let w = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
    let e = conv2d(&x, &w, 1, 4, PaddingMode::Reflect)
        .unwrap_err()
        .to_string();
    assert!(e.contains("reflect padding 4"), "{e}");
    let e = conv2d(&x, &w, 0, 1, PaddingMode::Zeros)
        .unwrap_err()
        .to_string();
    assert!(e.contains("stride 0"), "{e}");
    let small = Tensor::zeros((1, 3, 2, 2), DType::F32, &dev).unwrap();
    let e = conv2d(&small, &w, 1, 0, PaddingMode::Zeros)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
}

#[test]
fn other_dtypes_run_candles_path() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f64, 1.0, (2, 3, 7, 5), &dev).unwrap();
    let w = Tensor::randn(0f64, 1.0, (4, 3, 3, 3), &dev).unwrap();
    let a = conv2d(&x, &w, 2, 1, PaddingMode::Reflect).unwrap();
    let b = conv2d(
        &x.to_dtype(DType::F32).unwrap(),
        &w.to_dtype(DType::F32).unwrap(),
        2,
        1,
        PaddingMode::Reflect,
    )
    .unwrap();
    assert_eq!(a.dtype(), DType::F64);
    close(&a.to_dtype(DType::F32).unwrap(), &b, "f64 against f32");
}
