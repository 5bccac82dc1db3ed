//! Losses against the reference formulas run in PyTorch (float64) by
//! `fixtures/make_loss_fixtures.py`: values and gradients with respect to the
//! inputs within 1e-5 (we compute in float32: rounding of values of order 1 is
//! 1e-7, and the sharpest case, temperature 0.01, amplifies it a hundredfold).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use sits_data::npy::read_npy;
use sits_ssl::bert::masked_mse;
use sits_ssl::cscl::cscl_loss;
use sits_ssl::dino::{teacher_momentum, teacher_temperature, DinoLoss};
use sits_ssl::pimc::symmetric_info_nce;
use sits_ssl::simclr::{nt_xent, NtXentReduction};

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/losses")
        .join(name)
}

fn npy(name: &str) -> Tensor {
    let a = read_npy(&fx(&format!("{name}.npy"))).unwrap();
    let shape = a.shape().to_vec();
    Tensor::from_vec(
        a.to_f32().iter().copied().collect::<Vec<f32>>(),
        shape,
        &Device::Cpu,
    )
    .unwrap()
}

fn scalar(name: &str) -> f64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx("scalars.json")).unwrap()).unwrap();
    v[name].as_f64().unwrap()
}

fn val(t: &Tensor) -> f64 {
    t.to_scalar::<f32>().unwrap() as f64
}

#[test]
fn nt_xent_matches_both_references() {
    // The small case run through the reference code: sthalles/SimCLR `info_nce_loss`
    // (mean over the 2N anchors) gives 2.313941, google-research/simclr
    // `add_contrastive_loss` (sum of the two directions) 4.627881.
    assert!((scalar("ntxent_small_mean") - 2.313941).abs() < 1e-6);
    for case in ["small", "large", "sharp"] {
        let tau = scalar(&format!("ntxent_{case}_tau"));
        for (kind, red) in [
            ("mean", NtXentReduction::MeanOverAnchors),
            ("sum", NtXentReduction::SumOfDirections),
        ] {
            let z1 = Var::from_tensor(&npy(&format!("ntxent_{case}_z1"))).unwrap();
            let z2 = Var::from_tensor(&npy(&format!("ntxent_{case}_z2"))).unwrap();
            let loss = nt_xent(z1.as_tensor(), z2.as_tensor(), tau, red).unwrap();
            let want = scalar(&format!("ntxent_{case}_{kind}"));
            assert!(
                (val(&loss) - want).abs() < 1e-5 * want.abs().max(1.0),
                "{case}/{kind}: {} vs {want}",
                val(&loss)
            );
            let g = loss.backward().unwrap();
            for (v, w) in [(&z1, "g1"), (&z2, "g2")] {
                let d = common::max_diff(
                    g.get(v.as_tensor()).unwrap(),
                    &npy(&format!("ntxent_{case}_{kind}_{w}")),
                );
                assert!(d < 1e-5, "{case}/{kind} gradient {w}: {d:e}");
            }
        }
    }
}

#[test]
fn nt_xent_is_stable_and_accepts_half_precision() {
    // Huge inputs (normalisation makes the scale irrelevant) and a tiny temperature.
    let z1 = (npy("ntxent_large_z1") * 1e6).unwrap();
    let z2 = (npy("ntxent_large_z2") * 1e6).unwrap();
    let a = val(&nt_xent(&z1, &z2, 0.001, NtXentReduction::MeanOverAnchors).unwrap());
    assert!(a.is_finite(), "{a}");
    // bf16 and f16 inputs give the float32 loss of the rounded inputs.
    let z1 = npy("ntxent_small_z1");
    let z2 = npy("ntxent_small_z2");
    for dt in [DType::BF16, DType::F16] {
        let (h1, h2) = (z1.to_dtype(dt).unwrap(), z2.to_dtype(dt).unwrap());
        let l = val(&nt_xent(&h1, &h2, 0.5, NtXentReduction::MeanOverAnchors).unwrap());
        let r = val(&nt_xent(
            &h1.to_dtype(DType::F32).unwrap(),
            &h2.to_dtype(DType::F32).unwrap(),
            0.5,
            NtXentReduction::MeanOverAnchors,
        )
        .unwrap());
        assert!(
            (l - r).abs() < 1e-6 && (l - scalar("ntxent_small_mean")).abs() < 0.05,
            "{dt:?}: {l} vs {r}"
        );
    }
    assert!(nt_xent(
        &z1,
        &z2.narrow(0, 0, 3).unwrap(),
        0.5,
        NtXentReduction::MeanOverAnchors
    )
    .is_err());
}

#[test]
fn dino_loss_center_and_health_match_the_reference() {
    let mut loss = DinoLoss::new(32, &Device::Cpu).unwrap();
    for step in 0..2 {
        let s = Var::from_tensor(&npy(&format!("dino_student{step}"))).unwrap();
        let t = npy(&format!("dino_teacher{step}"));
        let (l, health) = loss
            .forward(s.as_tensor(), &t, scalar(&format!("dino_temp{step}")))
            .unwrap();
        let want = scalar(&format!("dino_loss{step}"));
        assert!(
            (val(&l) - want).abs() < 1e-5 * want.abs().max(1.0),
            "step {step}: {} vs {want}",
            val(&l)
        );
        let g = l.backward().unwrap();
        let d = common::max_diff(
            g.get(s.as_tensor()).unwrap(),
            &npy(&format!("dino_grad{step}")),
        );
        assert!(d < 1e-5, "step {step} gradient {d:e}");
        let d = common::max_diff(loss.center(), &npy(&format!("dino_center{step}")));
        assert!(d < 1e-6, "step {step} center {d:e}");
        // entropy in [0, ln K], KL >= 0, and the loss is entropy + KL on average
        assert!(health.teacher_entropy >= 0.0 && health.teacher_entropy <= (32f64).ln() + 1e-6);
        assert!(health.kl >= -1e-6);
        assert!(
            (health.teacher_entropy + health.kl - val(&l)).abs() < 1e-4,
            "{health:?} vs {}",
            val(&l)
        );
    }
    assert!((teacher_temperature(0, 0.04, 0.07, 30) - 0.04).abs() < 1e-12);
    assert!((teacher_temperature(29, 0.04, 0.07, 30) - 0.07).abs() < 1e-12);
    assert!((teacher_temperature(100, 0.04, 0.07, 30) - 0.07).abs() < 1e-12);
    assert!((teacher_momentum(0, 100, 0.996) - 0.996).abs() < 1e-12);
    assert!((teacher_momentum(100, 100, 0.996) - 1.0).abs() < 1e-12);
}

#[test]
fn infonce_mse_and_cscl_match_the_reference() {
    let a = Var::from_tensor(&npy("infonce_a")).unwrap();
    let b = Var::from_tensor(&npy("infonce_b")).unwrap();
    let tau = Tensor::new(0.07f32, &Device::Cpu).unwrap();
    let l = symmetric_info_nce(a.as_tensor(), b.as_tensor(), &tau).unwrap();
    assert!(
        (val(&l) - scalar("infonce")).abs() < 1e-5,
        "{} vs {}",
        val(&l),
        scalar("infonce")
    );
    let g = l.backward().unwrap();
    assert!(common::max_diff(g.get(a.as_tensor()).unwrap(), &npy("infonce_ga")) < 1e-5);
    assert!(common::max_diff(g.get(b.as_tensor()).unwrap(), &npy("infonce_gb")) < 1e-5);

    let p = Var::from_tensor(&npy("mse_pred")).unwrap();
    let l = masked_mse(p.as_tensor(), &npy("mse_target"), &npy("mse_mask")).unwrap();
    assert!((val(&l) - scalar("mse")).abs() < 1e-5);
    let g = l.backward().unwrap();
    assert!(common::max_diff(g.get(p.as_tensor()).unwrap(), &npy("mse_grad")) < 1e-5);
    assert!(masked_mse(
        p.as_tensor(),
        &npy("mse_target"),
        &npy("mse_mask").zeros_like().unwrap()
    )
    .is_err());

    let s = Var::from_tensor(&npy("cscl_s")).unwrap();
    let l = cscl_loss(s.as_tensor(), &npy("cscl_y"), &npy("cscl_valid"), 0.125).unwrap();
    assert!((val(&l) - scalar("cscl")).abs() < 1e-5);
    let g = l.backward().unwrap();
    assert!(common::max_diff(g.get(s.as_tensor()).unwrap(), &npy("cscl_grad")) < 1e-5);
}

/// The DINO head loads from both PyTorch weight-norm spellings and gives the
/// reference output; its gain is frozen with `norm_last_layer`.
#[test]
fn dino_head_loads_both_weight_norm_spellings() {
    use candle_nn::VarBuilder;
    use sits_ssl::dino::DinoHead;
    let x = npy("dino_head_x");
    let want = npy("dino_head_y");
    for file in [
        "dino_head_weight_g.safetensors",
        "dino_head_parametrizations.safetensors",
    ] {
        let t = candle_core::safetensors::load(fx(file), &Device::Cpu).unwrap();
        let vb = VarBuilder::from_tensors(t, DType::F32, &Device::Cpu);
        let head = DinoHead::new(vb, 6, 10, 3, 16, 8, false).unwrap();
        let d = common::max_diff(&head.forward(&x).unwrap(), &want);
        assert!(d < 1e-5, "{file}: {d:e}");
    }
    // Built fresh on a VarMap with norm_last_layer: the gain gets no gradient.
    let vm = candle_nn::VarMap::new();
    let head = DinoHead::new(
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        6,
        10,
        3,
        16,
        8,
        true,
    )
    .unwrap();
    let g = head
        .forward(&x)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let data = vm.data().lock().unwrap();
    let gain = data.get("last_layer.weight_g").unwrap();
    assert!(
        g.get(gain.as_tensor()).is_none(),
        "frozen gain must not get a gradient"
    );
    assert!(g
        .get(data.get("last_layer.weight_v").unwrap().as_tensor())
        .is_some());
}

/// CSCL similarity against the official ContextSelfSimilarity (norm_emb, 2 groups,
/// window 3); targets by hand; the objective has gradients.
#[test]
fn cscl_similarity_and_targets() {
    use candle_nn::VarBuilder;
    use sits_ssl::cscl::{cscl_objective, cscl_targets, ContextSelfSimilarity};
    let t = candle_core::safetensors::load(fx("cscl_sim.safetensors"), &Device::Cpu).unwrap();
    let sim = ContextSelfSimilarity::new(
        VarBuilder::from_tensors(t, DType::F32, &Device::Cpu),
        5,
        8,
        3,
        2,
    )
    .unwrap();
    let out = sim.forward(&npy("cscl_sim_x")).unwrap();
    let d = common::max_diff(&out, &npy("cscl_sim_out"));
    assert!(d < 1e-5, "similarity differs by {d:e}");

    // labels [[0, 0], [1, -1]] with ignore -1, window 3
    let labels = Tensor::new(&[[[0i64, 0], [1, -1]]], &Device::Cpu).unwrap();
    let (same, valid) = cscl_targets(&labels, 3, Some(-1)).unwrap();
    let same: Vec<f32> = same.flatten_all().unwrap().to_vec1().unwrap();
    let valid: Vec<f32> = valid.flatten_all().unwrap().to_vec1().unwrap();
    // centre (0,0): neighbours (0,0) same, (0,1) same, (1,0) different, (1,1) ignored
    let at = |i: usize, j: usize, u: usize, v: usize| ((i * 2 + j) * 3 + u) * 3 + v;
    assert_eq!((same[at(0, 0, 1, 1)], valid[at(0, 0, 1, 1)]), (1.0, 1.0));
    assert_eq!((same[at(0, 0, 1, 2)], valid[at(0, 0, 1, 2)]), (1.0, 1.0));
    assert_eq!((same[at(0, 0, 2, 1)], valid[at(0, 0, 2, 1)]), (0.0, 1.0));
    assert_eq!(valid[at(0, 0, 2, 2)], 0.0, "ignored neighbour");
    assert_eq!(valid[at(0, 0, 0, 0)], 0.0, "outside the image");
    assert!(valid[at(1, 1, 1, 1)] == 0.0, "ignored centre");

    let vm = candle_nn::VarMap::new();
    let s = ContextSelfSimilarity::new(
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        5,
        8,
        3,
        2,
    )
    .unwrap();
    let lab = Tensor::new(&[[[0i64, 0, 1], [1, 1, 0]]], &Device::Cpu).unwrap();
    let feats = npy("cscl_sim_x")
        .narrow(0, 0, 1)
        .unwrap()
        .narrow(2, 0, 2)
        .unwrap()
        .narrow(3, 0, 3)
        .unwrap();
    let loss = cscl_objective(&s, &feats, &lab, None, 0.125).unwrap();
    let g = loss.backward().unwrap();
    for (name, v) in vm.data().lock().unwrap().iter() {
        assert!(g.get(v.as_tensor()).is_some(), "no gradient for {name}");
    }
}
