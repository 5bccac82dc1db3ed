//! The self-attention op (`sits_models::ops::attention::self_attention`) against
//! the same attention composed from candle's operations: outputs and the gradient
//! of the packed projections, for 1 to 9 heads, head widths 1 to 33, sequences of 1
//! to 40 positions, batch 1, padded keys, and a second backward pass through the
//! same graph (the op then recomputes what it kept).
//!
//! Tolerance: 1e-5 relative to the largest value of the reference (f32 on both
//! sides, sums in different orders). The transformer fixtures made with PyTorch
//! (`models_reference`) check the op inside the models.

#![allow(clippy::unwrap_used)]

mod common;
use common::{close, pattern_tensor};

use candle_core::{DType, Device, Tensor, Var};
use sits_models::ops::attention::{self_attention, self_attention_candle};

fn tensor(dims: &[usize], seed: u64, scale: f32) -> Tensor {
    pattern_tensor(dims, seed, scale, 0.0)
}

/// Key padding with at least one key kept per sequence.
fn padding(b: usize, n: usize) -> Tensor {
    let v: Vec<u8> = (0..b * n)
        .map(|i| u8::from(i % n != 0 && (i * 7) % 5 == 0))
        .collect();
    Tensor::from_vec(v, (b, n), &Device::Cpu).unwrap()
}

fn check(b: usize, n: usize, heads: usize, hd: usize, padded: bool) {
    let what = format!("B{b} N{n} heads {heads} hd {hd} padded {padded}");
    let d = heads * hd;
    let qkv = Var::from_tensor(&tensor(&[b, n, 3 * d], (b * n + d) as u64, 2.0)).unwrap();
    let pad = padded.then(|| padding(b, n));
    let ours = self_attention(qkv.as_tensor(), heads, pad.as_ref()).unwrap();
    let reference = self_attention_candle(qkv.as_tensor(), heads, pad.as_ref()).unwrap();
    close(&ours, &reference, &format!("{what}: output"));
    let w = tensor(&[b, n, d], 5, 1.0);
    let ga = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (reference * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    close(
        ga.get(&qkv).unwrap(),
        gb.get(&qkv).unwrap(),
        &format!("{what}: qkv gradient"),
    );
    let again = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
    close(
        again.get(&qkv).unwrap(),
        ga.get(&qkv).unwrap(),
        &format!("{what}: second backward pass"),
    );
}

#[test]
fn attention_matches_candle() {
    for (b, n, heads, hd) in [
        (1, 1, 1, 1),
        (1, 5, 1, 8),
        (2, 7, 3, 5),
        (3, 23, 4, 32),
        (2, 40, 9, 33),
        (64, 23, 4, 16),
    ] {
        for padded in [false, true] {
            check(b, n, heads, hd, padded);
        }
    }
}

#[test]
fn padded_keys_get_no_weight() {
    // a padded key's value must not reach the output: change it, output unchanged
    let (b, n, heads, hd) = (2, 6, 2, 4);
    let d = heads * hd;
    let qkv = tensor(&[b, n, 3 * d], 1, 1.0);
    let pad = Tensor::from_vec(
        vec![0u8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        (b, n),
        &Device::Cpu,
    )
    .unwrap();
    let before = self_attention(&qkv, heads, Some(&pad)).unwrap();
    let mut v = qkv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for c in 2 * d..3 * d {
        v[2 * 3 * d + c] += 100.0; // sequence 0, position 2: its value
    }
    let changed = Tensor::from_vec(v, (b, n, 3 * d), &Device::Cpu).unwrap();
    let after = self_attention(&changed, heads, Some(&pad)).unwrap();
    close(&after, &before, "padded key's value changed");
    let unpadded = self_attention(&changed, heads, None).unwrap();
    sits_testing::assert_finite(&unpadded, "unmasked attention");
    let d_unpadded = common::max_abs_diff(&unpadded, &before);
    assert!(d_unpadded > 1.0, "without the mask the change shows");
}

#[test]
fn bad_shapes_are_errors() {
    let qkv = tensor(&[2, 5, 12], 1, 1.0);
    assert!(self_attention(&qkv, 2, None).is_ok());
    assert!(self_attention(&qkv, 3, None).is_err()); // D = 4 is not 3 heads
    assert!(self_attention(&tensor(&[2, 5, 13], 1, 1.0), 1, None).is_err());
    assert!(self_attention(&tensor(&[10, 12], 1, 1.0), 1, None).is_err());
    let bad_pad = Tensor::zeros((2, 4), DType::U8, &Device::Cpu).unwrap();
    let e = self_attention(&qkv, 2, Some(&bad_pad)).unwrap_err();
    assert!(e.to_string().contains("key padding mask"), "{e}");
}

/// L-TAE's query attention and head mix against candle's operations: weights and
/// the key and query gradients; the mix's output and both gradients; padded dates.
#[test]
fn ltae_attention_matches_candle() {
    use sits_models::ops::attention::{
        head_mix, head_mix_candle, query_attention, query_attention_candle,
    };
    // (batches, pixels per batch, dates, heads, dk, dv)
    for (b, px, t, heads, dk, dv) in [
        (1, 1, 1, 1, 1, 1),
        (1, 3, 5, 2, 4, 3),
        (2, 4, 30, 16, 8, 8),
        (3, 70, 7, 4, 5, 16),
    ] {
        let n = b * px;
        let what = format!("B{b} px{px} T{t} heads {heads} dk {dk} dv {dv}");
        let k = Var::from_tensor(&tensor(&[n, t, heads * dk], 1, 2.0)).unwrap();
        let q = Var::from_tensor(&tensor(&[heads, dk], 2, 1.0)).unwrap();
        let pad: Vec<u8> = (0..b * t)
            .map(|i| u8::from(i % t != 0 && i % 3 == 1))
            .collect();
        let pad = Tensor::from_vec(pad, (b, t), &Device::Cpu).unwrap();
        for pad in [None, Some(&pad)] {
            let what = format!("{what} padded {}", pad.is_some());
            let a = query_attention(k.as_tensor(), q.as_tensor(), pad, px, -1000.0).unwrap();
            let r = query_attention_candle(k.as_tensor(), q.as_tensor(), pad, px, -1000.0).unwrap();
            close(&a, &r, &format!("{what}: weights"));
            let w = tensor(&[n, heads, t], 3, 1.0);
            let ga = (&a * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gr = (&r * &w).unwrap().sum_all().unwrap().backward().unwrap();
            for (v, name) in [(&k, "keys"), (&q, "queries")] {
                close(
                    ga.get(v).unwrap(),
                    gr.get(v).unwrap(),
                    &format!("{what}: {name} gradient"),
                );
            }
        }
        let a = Var::from_tensor(&tensor(&[n, heads, t], 4, 1.0)).unwrap();
        let v = Var::from_tensor(&tensor(&[n, t, heads * dv], 5, 1.0)).unwrap();
        let o = head_mix(a.as_tensor(), v.as_tensor()).unwrap();
        let r = head_mix_candle(a.as_tensor(), v.as_tensor()).unwrap();
        close(&o, &r, &format!("{what}: mix"));
        let w = tensor(&[n, heads * dv], 6, 1.0);
        let ga = (&o * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (&r * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for (x, name) in [(&a, "weights"), (&v, "values")] {
            close(
                ga.get(x).unwrap(),
                gr.get(x).unwrap(),
                &format!("{what}: mix {name} gradient"),
            );
        }
    }
}

#[test]
fn ltae_attention_rejects_shapes_that_do_not_fit() {
    use sits_models::ops::attention::{head_mix, query_attention};
    let k = tensor(&[6, 5, 8], 1, 1.0);
    let q = tensor(&[2, 4], 2, 1.0);
    assert!(query_attention(&k, &q, None, 3, -1000.0).is_ok());
    assert!(query_attention(&k, &tensor(&[2, 3], 2, 1.0), None, 3, -1000.0).is_err());
    let pad = Tensor::zeros((3, 5), DType::U8, &Device::Cpu).unwrap(); // 3 batches of 3 != 6
    let e = query_attention(&k, &q, Some(&pad), 3, -1000.0).unwrap_err();
    assert!(e.to_string().contains("pad mask"), "{e}");
    let a = tensor(&[6, 2, 5], 3, 1.0);
    assert!(head_mix(&a, &tensor(&[6, 5, 8], 4, 1.0)).is_ok());
    assert!(head_mix(&a, &tensor(&[6, 4, 8], 4, 1.0)).is_err());
    assert!(head_mix(&a, &tensor(&[6, 5, 7], 4, 1.0)).is_err());
}
