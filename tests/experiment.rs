//! The few-label experiment on a slice of the bundled Mato Grosso series: every
//! setting reports sane metrics, a seed reproduces the run exactly, bad input is
//! refused with a message naming the problem.

use sits::experiment::{few_label_experiment, ExperimentConfig, Method};
use sits::sits_data::{datasets, SampleSet, Split};

fn slice() -> (SampleSet, SampleSet) {
    let set = datasets::mato_grosso(&sits::bundled_data_dir().join(datasets::MATO_GROSSO))
        .expect("bundled data");
    let (train, test) = (
        set.split(Split::Train).expect("train"),
        set.split(Split::Test).expect("test"),
    );
    let every = |s: &SampleSet, k: usize| {
        let idx: Vec<usize> = (0..s.len()).step_by(k).collect();
        s.subset(&idx).expect("subset")
    };
    (every(&train, 6), every(&test, 4))
}

fn tiny(method: Method) -> ExperimentConfig {
    ExperimentConfig {
        method,
        epochs: 2,
        d_model: 16,
        heads: 2,
        layers: 1,
        batch_size: 32,
        fractions: vec![0.1, 1.0],
        finetune_fractions: vec![1.0],
        finetune_steps: 6,
        probe: sits::sits_ssl::probe::ProbeConfig {
            iterations: 100,
            ..Default::default()
        },
        progress: false,
        ..ExperimentConfig::default()
    }
}

#[test]
fn bert_experiment_is_complete_and_reproducible() {
    let (train, test) = slice();
    let cfg = tiny(Method::Bert);
    let a = few_label_experiment(&train, &test, &cfg, &candle_core::Device::Cpu).expect("run");
    for res in [&a.raw, &a.random, &a.ssl] {
        assert_eq!(res.len(), 2);
        assert!(res[0].n_train < res[1].n_train);
        assert_eq!(res[1].n_train, train.len());
        for r in res.iter() {
            assert!(r.oa > 1.0 / 9.0 && r.oa <= 1.0, "{r:?}");
            assert_eq!(r.predictions.len(), test.len());
        }
    }
    // linear probes on 100 % of the labels beat chance by far even on this slice
    assert!(a.raw[1].oa > 0.6, "raw probe {:?}", a.raw[1].oa);
    assert_eq!(a.finetune.len(), 1);
    assert!(
        a.finetune[0].steps >= 6,
        "{} fine-tuning steps",
        a.finetune[0].steps
    );
    assert_eq!(a.test_embeddings.len(), test.len());
    assert_eq!(a.test_embeddings[0].len(), 23 * 16);
    let steps_per_epoch = train.len().div_ceil(32);
    assert_eq!(a.history.len(), 2 * steps_per_epoch);
    assert!(a.history.iter().all(|r| r.loss.is_finite()));

    let b = few_label_experiment(&train, &test, &cfg, &candle_core::Device::Cpu).expect("rerun");
    let losses = |o: &sits::experiment::ExperimentOutput| -> Vec<f64> {
        o.history.iter().map(|r| r.loss).collect()
    };
    assert_eq!(losses(&a), losses(&b), "same seed, same pretraining losses");
    assert_eq!(a.ssl, b.ssl, "same seed, same probes");
    assert_eq!(a.random, b.random);
    assert_eq!(a.finetune, b.finetune);

    let c = few_label_experiment(
        &train,
        &test,
        &ExperimentConfig { seed: 1, ..cfg },
        &candle_core::Device::Cpu,
    )
    .expect("other seed");
    assert_ne!(losses(&a), losses(&c), "another seed changes the run");
}

#[test]
fn contrastive_methods_run() {
    let (train, test) = slice();
    for method in [Method::SimClr, Method::Dino] {
        let cfg = ExperimentConfig {
            finetune_fractions: vec![],
            ..tiny(method)
        };
        let out = few_label_experiment(&train, &test, &cfg, &candle_core::Device::Cpu)
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert!(out.history.iter().all(|r| r.loss.is_finite()), "{method}");
        assert_eq!(out.ssl.len(), 2);
    }
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let (train, test) = slice();
    let cfg = tiny(Method::Bert);
    let empty = test.subset(&[]).expect("empty subset");
    let e = few_label_experiment(&train, &empty, &cfg, &candle_core::Device::Cpu)
        .expect_err("empty test set");
    assert!(e.to_string().contains("training and test series"), "{e}");
    assert_eq!("DINO".parse::<Method>(), Ok(Method::Dino));
    assert!("byol"
        .parse::<Method>()
        .unwrap_err()
        .contains("bert, simclr or dino"));
}
