//! The few-label experiment on a slice of the bundled Mato Grosso series: every
//! setting reports sane metrics, a seed reproduces the run exactly, bad input is
//! refused with a message naming the problem.

use sits_data::{datasets, SampleSet, Split};
use sits_tasks::experiment::{few_label_experiment, ExperimentConfig, ExperimentError, Method};

fn slice() -> (SampleSet, SampleSet) {
    let set = datasets::mato_grosso(
        &sits_tasks::bundled_data_dir()
            .expect("the bundled data (SITS_DATA or the checkout)")
            .join(datasets::MATO_GROSSO),
    )
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
        probe: sits_ssl::probe::ProbeConfig {
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
    let losses = |o: &sits_tasks::experiment::ExperimentOutput| -> Vec<f64> {
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
    assert_eq!("DINO".parse::<Method>().unwrap(), Method::Dino);
    let e = "byol".parse::<Method>().unwrap_err();
    assert!(
        matches!(&e, ExperimentError::Settings(m) if m.contains("bert, simclr, dino or alise")),
        "{e}"
    );
}

#[test]
fn too_few_classes_or_test_series_are_refused_before_training() {
    let (train, test) = slice();
    let cfg = tiny(Method::Bert);
    // one class in the training labels (every OA would be 1.0)
    let labels = train.labels().expect("labelled");
    let one: Vec<usize> = (0..train.len())
        .filter(|&i| labels[i] == labels[0])
        .collect();
    let e = few_label_experiment(
        &train.subset(&one).expect("subset"),
        &test,
        &cfg,
        &candle_core::Device::Cpu,
    )
    .expect_err("one class");
    assert!(e.to_string().contains("at least 2"), "{e}");
    // a single test series (PCA and the metrics need more)
    let e = few_label_experiment(
        &train,
        &test.subset(&[0]).expect("subset"),
        &cfg,
        &candle_core::Device::Cpu,
    )
    .expect_err("one test series");
    assert!(
        e.to_string().contains("the test split holds 1 series"),
        "{e}"
    );
}

#[test]
fn missing_values_never_reach_the_raw_probe() {
    let (train, _) = slice();
    let mut set = train.subset(&[0, 1]).expect("subset");
    set.series_mut()[0].values[[3, 2]] = f32::NAN;
    let rows = sits_tasks::experiment::raw_rows(&set);
    assert!(rows.iter().flatten().all(|v| v.is_finite()));
    assert_eq!(rows[0][3 * set.bands().len() + 2], 0.0);
}

#[test]
fn a_resumed_experiment_equals_an_uninterrupted_one() {
    let (train, test) = slice();
    let dir = tempfile::tempdir().expect("tempdir");
    let full_dir = dir.path().join("full");
    let cfg = ExperimentConfig {
        epochs: 4,
        checkpoint_every: 2,
        finetune_fractions: vec![],
        checkpoint_dir: Some(full_dir.join("checkpoints")),
        ..tiny(Method::Bert)
    };
    let full = few_label_experiment(&train, &test, &cfg, &candle_core::Device::Cpu).expect("run");
    // the same run killed during epoch 4: its folder holds the epoch-2 checkpoint as the
    // latest one, and a log that goes past it
    let cut = dir.path().join("cut/checkpoints");
    std::fs::create_dir_all(&cut).expect("mkdir");
    for name in ["ckpt-epoch2.json", "ckpt-epoch2.safetensors", "log.jsonl"] {
        std::fs::copy(full_dir.join("checkpoints").join(name), cut.join(name)).expect("copy");
    }
    std::fs::copy(cut.join("ckpt-epoch2.json"), cut.join("latest.json")).expect("copy");
    let resumed_cfg = ExperimentConfig {
        checkpoint_dir: Some(cut.clone()),
        resume: true,
        ..cfg.clone()
    };
    let resumed = few_label_experiment(&train, &test, &resumed_cfg, &candle_core::Device::Cpu)
        .expect("resume");
    assert_eq!(resumed.ssl, full.ssl, "same probes on the SSL encoder");
    assert_eq!(resumed.raw, full.raw);
    assert_eq!(resumed.random, full.random);
    let losses = |o: &sits_tasks::experiment::ExperimentOutput| -> Vec<(u64, f64)> {
        o.history.iter().map(|r| (r.step, r.loss)).collect()
    };
    assert_eq!(
        losses(&resumed),
        losses(&full),
        "the log has every step once"
    );
    // a rerun from scratch into the same folder replaces the log instead of appending
    let again =
        few_label_experiment(&train, &test, &cfg, &candle_core::Device::Cpu).expect("rerun");
    let log = std::fs::read_to_string(full_dir.join("checkpoints/log.jsonl")).expect("log");
    assert_eq!(log.lines().count(), again.history.len());
    // other settings cannot resume this checkpoint
    let other = ExperimentConfig {
        lr: 5e-3,
        ..resumed_cfg
    };
    let e = few_label_experiment(&train, &test, &other, &candle_core::Device::Cpu)
        .expect_err("other settings");
    assert!(e.to_string().contains("lr"), "{e}");
}

#[test]
fn alise_probes_the_aligned_vectors_and_pretrains_on_unlabelled_pixels() {
    use sits_tasks::experiment::few_label_experiment_with;
    use sits_tasks::few_label::{unlabelled_series, validation_split};
    let (train, test) = slice();
    let cube = sits_tasks::bundled_data_dir()
        .expect("the bundled data (SITS_DATA or the checkout)")
        .join(datasets::DTWSAT_CUBE);
    let extra = unlabelled_series(&cube, 23, 9, 0.02, 1).expect("cube pixel-years");
    // 999 pixels x 5 complete agricultural years of 23 composites, 2 % of them
    assert_eq!(extra.len(), 100);
    assert!(extra.labels().is_none());
    assert!(extra.series().iter().all(|s| s.len() == 23));
    assert_eq!(extra.bands(), train.bands());
    assert!(unlabelled_series(&cube, 23, 9, 0.0, 1).is_err());
    assert!(
        unlabelled_series(&cube, 40, 9, 1.0, 1).is_err(),
        "no period of 40 dates"
    );

    let cfg = ExperimentConfig {
        finetune_fractions: vec![1.0],
        ..tiny(Method::Alise)
    };
    let dev = candle_core::Device::Cpu;
    let out = few_label_experiment_with(&train, &test, Some(&extra), &cfg, &dev).expect("alise");
    assert!(out.history.iter().all(|r| r.loss.is_finite()));
    // the pretraining loader saw the extra series: more batches per epoch
    let base = few_label_experiment(&train, &test, &cfg, &dev).expect("alise, labelled only");
    assert!(out.history.len() > base.history.len());
    // the representation is the 10 aligned vectors of width 16
    assert_eq!(out.test_embeddings[0].len(), 10 * 16);
    assert_eq!(out.ssl.len(), 2);
    assert_eq!(out.finetune.len(), 1);

    // other bands are refused before any training
    let renamed = SampleSet::new(
        extra.series().to_vec(),
        vec![
            "a".into(),
            "b".into(),
            "c".into(),
            "d".into(),
            "e".into(),
            "f".into(),
        ],
        None,
        Vec::new(),
        None,
    )
    .expect("renamed");
    let e = few_label_experiment_with(&train, &test, Some(&renamed), &cfg, &dev)
        .expect_err("other bands");
    assert!(e.to_string().contains("bands"), "{e}");

    // a validation split holds out a stratified share of the training series
    let (fit, val) = validation_split(&train, 0.2, 0).expect("split");
    assert_eq!(fit.len() + val.len(), train.len());
    assert!(val.len() * 10 >= train.len() * 15 / 10 && val.len() * 10 <= train.len() * 25 / 10);
    assert!(validation_split(&train, 1.0, 0).is_err());
}
