//! The linear op (`sits_models::ops::linear::linear`) against candle's matrix
//! product and broadcast add: outputs and the gradients of the input, weight and
//! bias, with and without bias, one row, one input or output, sizes around the
//! matrix kernels' blocks, and frozen parts (no gradient asked, none computed).
//!
//! Tolerance: 1e-5 relative to the largest value of the reference (f32 on both
//! sides, the same products in different block orders).

#![allow(clippy::unwrap_used)]

mod common;
use common::{close, pattern_tensor};

use candle_core::{Tensor, Var};
use sits_models::ops::linear::{linear, linear_candle};

fn tensor(dims: &[usize], seed: u64) -> Tensor {
    pattern_tensor(dims, seed, 1.0, 0.0)
}

fn check(r: usize, i: usize, o: usize, bias: bool) {
    let what = format!("{r}x{i} -> {o} bias {bias}");
    let x = Var::from_tensor(&tensor(&[r, i], 1)).unwrap();
    let w = Var::from_tensor(&tensor(&[o, i], 2)).unwrap();
    let b = Var::from_tensor(&tensor(&[o], 3)).unwrap();
    let bt = bias.then(|| b.as_tensor());
    let ours = linear(x.as_tensor(), w.as_tensor(), bt).unwrap();
    let reference = linear_candle(x.as_tensor(), w.as_tensor(), bt).unwrap();
    close(&ours, &reference, &format!("{what}: output"));
    let g = tensor(&[r, o], 4);
    let ga = (&ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (&reference * &g)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    close(
        ga.get(&x).unwrap(),
        gb.get(&x).unwrap(),
        &format!("{what}: dx"),
    );
    close(
        ga.get(&w).unwrap(),
        gb.get(&w).unwrap(),
        &format!("{what}: dW"),
    );
    if bias {
        close(
            ga.get(&b).unwrap(),
            gb.get(&b).unwrap(),
            &format!("{what}: db"),
        );
    } else {
        assert!(ga.get(&b).is_none());
    }
}

#[test]
fn linear_matches_candle() {
    for (r, i, o) in [
        (1, 1, 1),
        (1, 7, 3),
        (5, 1, 4),
        (9, 6, 1),
        (257, 33, 17),
        (600, 128, 384),
        (2000, 64, 5),
    ] {
        check(r, i, o, true);
        check(r, i, o, false);
    }
}

#[test]
fn tall_products_split_by_rows_match_candle() {
    // from 1024 rows per thread the product runs as one band of rows per thread:
    // 2, 3 and 4 threads, row counts that do not split evenly
    for threads in [2, 3, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            for (r, i, o) in [(4099, 33, 17), (3 * 1024 + 1, 128, 40)] {
                check(r, i, o, true);
                check(r, i, o, false);
            }
        });
    }
}

#[test]
fn frozen_input_or_weight_gets_no_gradient() {
    let x = tensor(&[12, 5], 1);
    let w = Var::from_tensor(&tensor(&[3, 5], 2)).unwrap();
    let g = linear(&x, w.as_tensor(), None)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(g.get(&x).is_none());
    let gr = linear_candle(&x, w.as_tensor(), None)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    close(
        g.get(&w).unwrap(),
        gr.get(&w).unwrap(),
        "dW with a frozen input",
    );
    let xv = Var::from_tensor(&x).unwrap();
    let wt = tensor(&[3, 5], 2);
    let g = linear(xv.as_tensor(), &wt, None)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(g.get(&wt).is_none());
    assert!(g.get(&xv).is_some());
}

#[test]
fn mismatched_shapes_are_errors() {
    let e = linear(&tensor(&[4, 5], 1), &tensor(&[3, 6], 2), None).unwrap_err();
    assert!(e.to_string().contains("linear layer"), "{e}");
    assert!(linear(
        &tensor(&[4, 5], 1),
        &tensor(&[3, 5], 2),
        Some(&tensor(&[4], 3))
    )
    .is_err());
    assert!(linear(&tensor(&[2, 4, 5], 1), &tensor(&[3, 5], 2), None).is_err());
}
