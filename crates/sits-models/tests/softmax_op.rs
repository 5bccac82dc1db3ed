//! The softmax ops (`sits_models::ops::softmax`) against candle's composed
//! operations: softmax and log-softmax over the last dimension (values and input
//! gradients under a non-uniform output gradient) and DINO's multi-crop
//! cross-entropy (values and the student gradient), on rows of 1 to 65,537 values,
//! batch 1, masked entries, large logits.
//!
//! Tolerance: 1e-5 relative to the largest value of the reference (f32 on both
//! sides; the ops sum in f64 and use a polynomial `exp` within 2 ulp, candle sums in
//! f32 with the C library's `expf`).

#![allow(clippy::unwrap_used)]

mod common;
use common::{close, pattern as values, pattern_tensor as tensor};

use candle_core::{Device, Tensor, Var};
use sits_models::ops::softmax::{
    log_softmax_last, log_softmax_last_candle, multi_crop_cross_entropy,
    multi_crop_cross_entropy_candle, softmax_last, softmax_last_candle,
};

/// Values and input gradients of `ours` and `reference` on `x`, weighted by a fixed
/// non-uniform output gradient.
fn check_rows(
    x: &Tensor,
    ours: fn(&Tensor) -> candle_core::Result<Tensor>,
    reference: fn(&Tensor) -> candle_core::Result<Tensor>,
    what: &str,
) {
    let xv = Var::from_tensor(x).unwrap();
    let w = tensor(x.dims(), 99, 1.0, 0.3);
    let a = ours(xv.as_tensor()).unwrap();
    let b = reference(xv.as_tensor()).unwrap();
    close(&a, &b, &format!("{what}: values"));
    let ga = (a * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (b * &w).unwrap().sum_all().unwrap().backward().unwrap();
    close(
        ga.get(&xv).unwrap(),
        gb.get(&xv).unwrap(),
        &format!("{what}: input gradient"),
    );
}

#[test]
fn softmax_and_log_softmax_match_candle() {
    let shapes: &[&[usize]] = &[
        &[1, 1],
        &[1, 7],
        &[3, 7],
        &[2, 5, 33],
        &[4, 3, 2, 23],
        &[513, 30],
        &[2, 65_537],
    ];
    for (s, dims) in shapes.iter().enumerate() {
        for (scale, offset) in [(1.0, 0.0), (30.0, 50.0), (0.01, -3.0)] {
            let x = tensor(dims, s as u64, scale, offset);
            let what = format!("{dims:?} x{scale}+{offset}");
            check_rows(
                &x,
                softmax_last,
                softmax_last_candle,
                &format!("softmax {what}"),
            );
            check_rows(
                &x,
                log_softmax_last,
                log_softmax_last_candle,
                &format!("log-softmax {what}"),
            );
        }
    }
}

#[test]
fn masked_entries_get_zero_probability() {
    // NT-Xent masks the diagonal with -1e9; attention masks with -inf
    let mut v = values(4 * 9, 3, 2.0, 0.0);
    v[0] = -1e9;
    v[10] = f32::NEG_INFINITY;
    let x = Tensor::from_vec(v, (4, 9), &Device::Cpu).unwrap();
    let p = softmax_last(&x).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(p[0][0], 0.0);
    assert_eq!(p[1][1], 0.0);
    for row in &p {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-6, "row sums to {s}");
    }
    let lp = log_softmax_last(&x).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(lp[1][1], f32::NEG_INFINITY);
    let r = log_softmax_last_candle(&x)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert!((lp[0][0] - r[0][0]).abs() <= 1e-5 * r[0][0].abs());
    check_rows(
        &x.narrow(0, 0, 1).unwrap(),
        log_softmax_last,
        log_softmax_last_candle,
        "masked log-softmax row",
    );
}

#[test]
fn nan_in_a_row_makes_that_row_nan_and_no_other() {
    let mut v = values(3 * 40, 4, 2.0, 0.0);
    v[45] = f32::NAN;
    let x = Tensor::from_vec(v, (3, 40), &Device::Cpu).unwrap();
    for y in [softmax_last(&x).unwrap(), log_softmax_last(&x).unwrap()] {
        let y = y.to_vec2::<f32>().unwrap();
        assert!(y[1].iter().all(|v| v.is_nan()));
        assert!(y[0].iter().chain(&y[2]).all(|v| v.is_finite()));
    }
}

#[test]
fn non_contiguous_input_is_handled() {
    let x = tensor(&[6, 11], 5, 2.0, 0.0).t().unwrap();
    close(
        &softmax_last(&x).unwrap(),
        &softmax_last_candle(&x).unwrap(),
        "softmax of a transposed input",
    );
}

/// Teacher-like targets: each row a softmax, or (`normalised = false`) positive
/// rows of any mass.
fn targets(rows: usize, k: usize, seed: u64, normalised: bool) -> Tensor {
    let t = tensor(&[rows, k], seed, 3.0, 0.0);
    if normalised {
        softmax_last_candle(&t).unwrap()
    } else {
        t.exp().unwrap()
    }
}

#[test]
fn multi_crop_cross_entropy_matches_candle() {
    // (B, student crops, teacher crops, K, scale)
    let cases = [
        (1, 2, 2, 5, 10.0),
        (3, 8, 2, 37, 10.0),
        (4, 3, 1, 16, 1.0),
        (2, 2, 1, 9, 0.5),
        (5, 4, 3, 33, 10.0),
        (2, 8, 2, 65_536, 10.0),
    ];
    for (case, &(b, v, g, k, scale)) in cases.iter().enumerate() {
        for normalised in [true, false] {
            let what = format!("B{b} V{v} G{g} K{k} scale {scale} normalised {normalised}");
            let s = Var::from_tensor(&tensor(&[v * b, k], case as u64, 2.0, 0.5)).unwrap();
            let q = targets(g * b, k, case as u64 + 10, normalised);
            let ours = multi_crop_cross_entropy(s.as_tensor(), &q, g, scale).unwrap();
            let reference = multi_crop_cross_entropy_candle(s.as_tensor(), &q, g, scale).unwrap();
            close(&ours, &reference, &format!("{what}: loss"));
            let w = tensor(&[b], 7, 1.0, 0.5);
            let ga = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (reference * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            close(
                ga.get(&s).unwrap(),
                gb.get(&s).unwrap(),
                &format!("{what}: student gradient"),
            );
        }
    }
}

#[test]
fn multi_crop_cross_entropy_rejects_shapes_that_do_not_fit() {
    let s = tensor(&[6, 5], 1, 1.0, 0.0);
    let q = targets(4, 5, 2, true);
    // 4 target rows are 2 crops of B = 2; 6 student rows are 3 crops: fits
    assert!(multi_crop_cross_entropy(&s, &q, 2, 10.0).is_ok());
    for (s, q, g, scale) in [
        (s.clone(), q.clone(), 3, 10.0), // 4 rows are not 3 crops
        (s.clone(), targets(4, 6, 2, true), 2, 10.0), // K differs
        (tensor(&[5, 5], 1, 1.0, 0.0), q.clone(), 2, 10.0), // 5 rows are not crops of B = 2
        (tensor(&[2, 5], 1, 1.0, 0.0), q.clone(), 2, 10.0), // one student crop
        (s.clone(), q.clone(), 2, 0.0),  // scale
        (s.flatten_all().unwrap(), q.clone(), 2, 10.0), // rank
    ] {
        let e = multi_crop_cross_entropy(&s, &q, g, scale).unwrap_err();
        assert!(
            e.to_string().contains("multi-crop cross-entropy"),
            "unexpected error: {e}"
        );
    }
}
