//! The NT-Xent op (`sits_models::ops::contrastive::nt_xent_per_anchor`) against the
//! same loss composed from candle's operations: per-anchor losses and the gradients
//! of both views, for 2 to 512 samples, 1 to 128 values, sharp and soft
//! temperatures, a zero row (its norm clamped), one view frozen, and a second
//! backward pass through the same graph (the op then recomputes what it kept).
//!
//! Tolerance: 1e-5 relative to the largest value of the reference (f32 on both
//! sides, sums in different orders). The PyTorch fixtures of the loss itself are in
//! `sits-ssl`'s `losses` test.

#![allow(clippy::unwrap_used)]

mod common;
use common::{close, pattern_tensor};

use candle_core::{Tensor, Var};
use sits_models::ops::contrastive::{nt_xent_per_anchor, nt_xent_per_anchor_candle};

fn tensor(dims: (usize, usize), seed: u64) -> Tensor {
    pattern_tensor(&[dims.0, dims.1], seed, 2.0, 0.0)
}

fn check(n: usize, d: usize, t: f64, zero_row: bool) {
    let what = format!("N{n} d{d} T{t} zero row {zero_row}");
    let mut a = tensor((n, d), n as u64);
    if zero_row {
        a = a
            .slice_assign(
                &[0..1, 0..d],
                &Tensor::zeros((1, d), a.dtype(), a.device()).unwrap(),
            )
            .unwrap();
    }
    let (v1, v2) = (
        Var::from_tensor(&a).unwrap(),
        Var::from_tensor(&tensor((n, d), n as u64 + 1)).unwrap(),
    );
    let ours = nt_xent_per_anchor(v1.as_tensor(), v2.as_tensor(), t).unwrap();
    let reference = nt_xent_per_anchor_candle(v1.as_tensor(), v2.as_tensor(), t).unwrap();
    close(&ours, &reference, &format!("{what}: losses"));
    let w = tensor((2 * n, 1), 3).squeeze(1).unwrap();
    let ga = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (reference * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (v, name) in [(&v1, "first"), (&v2, "second")] {
        let (a, b) = (ga.get(v).unwrap(), gb.get(v).unwrap());
        if zero_row && name == "first" {
            // candle's composed norm has an infinite derivative at 0 (sqrt), so its
            // gradient of the zero row is NaN; PyTorch's norm gives 0 there, and the
            // row's gradient is the clamped division's: finite (the op does this)
            let a0 = a.narrow(0, 0, 1).unwrap().flatten_all().unwrap();
            assert!(a0.to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite()));
            close(
                &a.narrow(0, 1, n - 1).unwrap(),
                &b.narrow(0, 1, n - 1).unwrap(),
                &format!("{what}: {name} view gradient, other rows"),
            );
        } else {
            close(a, b, &format!("{what}: {name} view gradient"));
        }
    }
    // a second backward pass through the same graph recomputes the kept values
    let again = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
    close(
        again.get(&v1).unwrap(),
        ga.get(&v1).unwrap(),
        &format!("{what}: second backward pass"),
    );
}

#[test]
fn nt_xent_matches_candle() {
    for (n, d) in [(2, 1), (3, 5), (17, 7), (64, 128), (512, 128)] {
        for t in [0.07, 0.5, 1.0] {
            check(n, d, t, false);
        }
    }
    check(5, 4, 0.5, true);
}

#[test]
fn a_frozen_view_gets_no_gradient() {
    let v1 = Var::from_tensor(&tensor((6, 3), 1)).unwrap();
    let z2 = tensor((6, 3), 2);
    let l = nt_xent_per_anchor(v1.as_tensor(), &z2, 0.5).unwrap();
    let g = l.sum_all().unwrap().backward().unwrap();
    let r = nt_xent_per_anchor_candle(v1.as_tensor(), &z2, 0.5).unwrap();
    let gr = r.sum_all().unwrap().backward().unwrap();
    close(
        g.get(&v1).unwrap(),
        gr.get(&v1).unwrap(),
        "frozen second view",
    );
    assert!(g.get(&z2).is_none());
}

#[test]
fn bad_views_are_errors_that_say_why() {
    let a = tensor((4, 3), 1);
    for (b, t) in [
        (tensor((3, 3), 2), 0.5),
        (tensor((4, 2), 2), 0.5),
        (a.clone(), 0.0),
        (a.clone(), f64::NAN),
    ] {
        let e = nt_xent_per_anchor(&a, &b, t).unwrap_err().to_string();
        assert!(e.contains("NT-Xent"), "{e}");
    }
    let one = tensor((1, 3), 1);
    assert!(nt_xent_per_anchor(&one, &one, 0.5).is_err());
}
