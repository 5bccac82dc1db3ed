//! ALISE's temporal projector and date-queried decoder against a loop-by-loop
//! computation of their definitions, and the property that makes the
//! representation aligned: padded dates, however many and whatever they hold, do
//! not change it.
#![allow(clippy::unwrap_used)]

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sits_models::alise::{AliseConfig, DateQueryDecoder, TemporalProjector};
use sits_models::nn::seeded_init;

fn cfg() -> AliseConfig {
    AliseConfig {
        d_model: 6,
        n_queries: 3,
        heads: 2,
        d_k: 4,
        d_query: 4,
        period: 1000.0,
    }
}

fn var(vm: &VarMap, name: &str) -> Vec<f32> {
    vm.data().lock().unwrap()[name]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Within 1e-5 (the values are of order 1; both sides add the same terms in
/// different orders).
fn near(ours: &[f32], reference: &[f32], what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: lengths");
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{what}[{i}]: {a} vs {b}"
        );
    }
}

fn softmax(s: &[f32]) -> Vec<f32> {
    let m = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = s.iter().map(|v| (v - m).exp()).collect();
    let z: f32 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

/// `w` `(out, in)` row-major times `x`.
fn matvec(w: &[f32], x: &[f32], out: usize) -> Vec<f32> {
    let n = x.len();
    (0..out)
        .map(|o| (0..n).map(|i| w[o * n + i] * x[i]).sum())
        .collect()
}

#[test]
fn projector_matches_its_definition_and_ignores_padded_dates() {
    let dev = Device::Cpu;
    let c = cfg();
    let vm = VarMap::new();
    let proj =
        TemporalProjector::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), c.clone()).unwrap();
    seeded_init(&vm, 3).unwrap();
    let (n, t, d) = (2, 5, c.d_model);
    let seq = common::pattern_tensor(&[n, t, d], 1, 1.0, 0.0);
    // sequence 0 keeps all dates, sequence 1 drops dates 1 and 4
    let pad_rows = [[0u8, 0, 0, 0, 0], [0, 1, 0, 0, 1]];
    let pad = Tensor::new(&pad_rows, &dev).unwrap();
    let out: Vec<f32> = proj
        .forward(&seq, Some(&pad))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();

    let q = var(&vm, "queries"); // (H, nq, dk)
    let wk = var(&vm, "key.weight"); // (H·dk, d)
    let x: Vec<f32> = seq.flatten_all().unwrap().to_vec1().unwrap();
    let (h, nq, dk, dv) = (c.heads, c.n_queries, c.d_k, d / c.heads);
    let mut expected = vec![0f32; n * nq * d];
    for s in 0..n {
        let keys: Vec<Vec<f32>> = (0..t)
            .map(|j| matvec(&wk, &x[(s * t + j) * d..(s * t + j + 1) * d], h * dk))
            .collect();
        let kept: Vec<usize> = (0..t).filter(|&j| pad_rows[s][j] == 0).collect();
        for hh in 0..h {
            for qi in 0..nq {
                let qv = &q[(hh * nq + qi) * dk..(hh * nq + qi + 1) * dk];
                let scores: Vec<f32> = kept
                    .iter()
                    .map(|&j| {
                        (0..dk).map(|e| qv[e] * keys[j][hh * dk + e]).sum::<f32>()
                            / (dk as f32).sqrt()
                    })
                    .collect();
                let w = softmax(&scores);
                for e in 0..dv {
                    let v: f32 = kept
                        .iter()
                        .zip(&w)
                        .map(|(&j, wj)| wj * x[(s * t + j) * d + hh * dv + e])
                        .sum();
                    expected[(s * nq + qi) * d + hh * dv + e] = v;
                }
            }
        }
    }
    near(&out, &expected, "projector");

    // the same sequence with its padded dates removed, or holding other values,
    // gives the same aligned vectors
    let s1 = seq.get(1).unwrap();
    let short = Tensor::cat(
        &[s1.narrow(0, 0, 1).unwrap(), s1.narrow(0, 2, 2).unwrap()],
        0,
    )
    .unwrap()
    .unsqueeze(0)
    .unwrap();
    let alone: Vec<f32> = proj
        .forward(&short, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    near(&alone, &out[nq * d..], "without the padded dates");
    let noisy = seq
        .broadcast_add(
            &(Tensor::new(&[[0f32, 100., 0., 0., -50.]], &dev)
                .unwrap()
                .reshape((1, t, 1))
                .unwrap()),
        )
        .unwrap();
    let other: Vec<f32> = proj
        .forward(
            &noisy.narrow(0, 1, 1).unwrap(),
            Some(&pad.narrow(0, 1, 1).unwrap()),
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    near(&other, &out[nq * d..], "other values on padded dates");

    assert!(proj.forward(&seq.narrow(2, 0, 4).unwrap(), None).is_err());
    assert!(proj
        .forward(&seq, Some(&pad.narrow(1, 0, 4).unwrap()))
        .is_err());
}

#[test]
fn decoder_matches_its_definition() {
    let dev = Device::Cpu;
    let c = cfg();
    let vm = VarMap::new();
    let dec = DateQueryDecoder::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), c.clone(), 3)
        .unwrap();
    seeded_init(&vm, 5).unwrap();
    let (n, nq, d, t2) = (2, c.n_queries, c.d_model, 4);
    let aligned = common::pattern_tensor(&[n, nq, d], 2, 1.5, 0.1);
    let doy_rows = [[10f32, 100., 200., 365.], [1., 50., 51., 300.]];
    let doy = Tensor::new(&doy_rows, &dev).unwrap();
    let out: Vec<f32> = dec
        .forward(&aligned, &doy)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();

    let (wq, wk) = (var(&vm, "query.weight"), var(&vm, "key.weight"));
    let (wo, bo) = (var(&vm, "out.weight"), var(&vm, "out.bias"));
    let a: Vec<f32> = aligned.flatten_all().unwrap().to_vec1().unwrap();
    let (h, dk, dv, dq) = (c.heads, c.d_k, d / c.heads, c.d_query);
    let mut expected = Vec::new();
    for s in 0..n {
        let keys: Vec<Vec<f32>> = (0..nq)
            .map(|j| matvec(&wk, &a[(s * nq + j) * d..(s * nq + j + 1) * d], h * dk))
            .collect();
        for &day in &doy_rows[s] {
            let pe: Vec<f32> = (0..dq)
                .map(|i| {
                    let ang = day / c.period.powf((2 * (i / 2)) as f32 / dq as f32);
                    if i % 2 == 0 {
                        ang.sin()
                    } else {
                        ang.cos()
                    }
                })
                .collect();
            let qv = matvec(&wq, &pe, h * dk);
            let mut attended = vec![0f32; d];
            for hh in 0..h {
                let scores: Vec<f32> = keys
                    .iter()
                    .map(|k| {
                        (0..dk)
                            .map(|e| qv[hh * dk + e] * k[hh * dk + e])
                            .sum::<f32>()
                            / (dk as f32).sqrt()
                    })
                    .collect();
                let w = softmax(&scores);
                for e in 0..dv {
                    attended[hh * dv + e] = (0..nq)
                        .map(|j| w[j] * a[(s * nq + j) * d + hh * dv + e])
                        .sum();
                }
            }
            let y = matvec(&wo, &attended, 3);
            expected.extend(y.iter().zip(&bo).map(|(v, b)| v + b));
        }
    }
    assert_eq!(out.len(), n * t2 * 3);
    near(&out, &expected, "decoder");
    assert!(dec
        .forward(&aligned, &doy.narrow(0, 0, 1).unwrap())
        .is_err());
}

#[test]
fn configs_are_checked() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let bad = AliseConfig { heads: 4, ..cfg() };
    assert!(TemporalProjector::new(vb.clone(), bad).is_err());
    assert!(DateQueryDecoder::new(vb, cfg(), 0).is_err());
    assert_eq!(AliseConfig::published(64).repr_dim(), 640);
}
