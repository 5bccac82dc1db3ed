//! The pretraining loop: a run interrupted after a checkpoint and resumed computes
//! exactly the losses of the uninterrupted run; NaN stops training with the step;
//! checkpoints are complete files.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use sits_data::augment::DateMasking;
use sits_data::{datasets, Loader, LoaderConfig, SampleSet};
use sits_models::{Buffers, Ctx, PixelTransformer, PixelTransformerConfig};
use sits_ssl::bert::{Corruption, MaskedReconstruction};
use sits_ssl::train::{FnObjective, TrainConfig, Trainer};

fn data() -> Arc<SampleSet> {
    common::mato_grosso(48)
}

fn loader(set: Arc<SampleSet>) -> Loader {
    common::loader(set, 16, 3)
}

/// Same starting weights in every run (candle's own init is not seeded).
fn deterministic_init(vm: &VarMap) {
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for n in names {
        let v = &data[n];
        let vals: Vec<f32> = (0..v.elem_count())
            .map(|_| rng.random_range(-0.2f32..0.2))
            .collect();
        v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        lr: 3e-3,
        min_lr: 1e-4,
        warmup_steps: 2,
        seed: 5,
        progress: false,
        ..TrainConfig::default()
    }
}

/// Builds model + objective, trains (optionally resuming, optionally stopping
/// early) and returns the losses this process computed.
fn run(dir: Option<&Path>, resume: bool, stop: usize) -> Vec<f64> {
    run_with_dropout(dir, resume, stop, 0.0)
}

/// [`run`] with dropout `p` in the transformer layers.
fn run_with_dropout(dir: Option<&Path>, resume: bool, stop: usize, p: f32) -> Vec<f64> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let model = PixelTransformer::new(
        &Ctx::new(vb.pp("encoder")),
        common::tiny_pixel_transformer(p),
    )
    .unwrap();
    let mut obj = MaskedReconstruction::new(
        &model,
        vb.pp("head"),
        DateMasking {
            ratio: 0.3,
            contiguous: false,
        },
        Corruption::MaskToken,
    )
    .unwrap();
    deterministic_init(&vm);
    let mut tr = Trainer::new(config(), &vm, &Buffers::new(), dir).unwrap();
    if resume {
        assert!(tr.resume(&mut obj).unwrap(), "a checkpoint should be there");
    }
    tr.fit_until(&loader(data()), stop, &mut obj).unwrap();
    tr.history().iter().map(|r| r.loss).collect()
}

#[test]
fn training_with_dropout_repeats_and_resumes_exactly() {
    let full = run_with_dropout(None, false, 3, 0.3);
    assert_eq!(
        full,
        run_with_dropout(None, false, 3, 0.3),
        "same seed, same run"
    );
    assert_ne!(
        full,
        run(None, false, 3),
        "dropout 0.3 must change the losses"
    );
    let dir = tempfile::tempdir().unwrap();
    let first = run_with_dropout(Some(dir.path()), false, 1, 0.3);
    assert_eq!(first, full[..3].to_vec());
    let rest = run_with_dropout(Some(dir.path()), true, 3, 0.3);
    assert_eq!(rest, full[3..].to_vec(), "resumed with dropout");
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let full = run(None, false, 3);
    assert_eq!(full.len(), 9);
    let dir = tempfile::tempdir().unwrap();
    let first = run(Some(dir.path()), false, 1);
    assert_eq!(first, full[..3].to_vec(), "same start, same first epoch");
    let rest = run(Some(dir.path()), true, 3);
    assert_eq!(
        rest,
        full[3..].to_vec(),
        "resumed losses must equal the uninterrupted ones"
    );
    assert!(full[8] < full[0], "the loss goes down: {full:?}");
    // Files: complete checkpoints, a pointer, a log with one line per step, no temporaries.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ckpt-epoch1.json",
            "ckpt-epoch1.safetensors",
            "ckpt-epoch2.json",
            "ckpt-epoch2.safetensors",
            "ckpt-epoch3.json",
            "ckpt-epoch3.safetensors",
            "latest.json",
            "log.jsonl"
        ]
    );
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 9);
    let w =
        candle_core::safetensors::load(dir.path().join("ckpt-epoch3.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(
        w.contains_key("encoder.embedding.weight")
            && w.contains_key("optim.m.encoder.embedding.weight")
            && w.contains_key("head.decoder.weight")
    );
}

#[test]
fn nan_loss_stops_training_with_the_step() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let w = vb.get((1,), "w").unwrap();
    let mut tr = Trainer::new(
        TrainConfig {
            epochs: 2,
            progress: false,
            ..TrainConfig::default()
        },
        &vm,
        &Buffers::new(),
        None,
    )
    .unwrap();
    let mut calls = 0;
    let err = tr
        .fit(
            &loader(data()),
            &mut FnObjective::new("nan-at-step-2", |_, _, _| {
                calls += 1;
                let scale = if calls == 3 { f32::NAN } else { 1.0 };
                let loss = (w.sqr()?.sum_all()? * scale as f64)?;
                Ok(sits_core::ObjectiveOutput {
                    loss,
                    metrics: vec![],
                })
            }),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("step 2"), "{err}");
    assert!(Trainer::new(
        TrainConfig {
            frozen_prefixes: vec!["w".into()],
            ..TrainConfig::default()
        },
        &vm,
        &Buffers::new(),
        None
    )
    .is_err());
}

#[test]
fn simclr_views_and_training() {
    use sits_data::augment::SeriesViews;
    use sits_ssl::simclr::SimClr;
    let set = data();
    let ld = loader(set);
    let batch = ld.epoch(0).next().unwrap().unwrap();
    let views = SeriesViews {
        crop_min: 0.3,
        crop_max: 1.0,
        drop: 0.5,
        noise: 0.1,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let pad0: Vec<Vec<u8>> = batch.pad_mask().to_vec2().unwrap();
    for _ in 0..20 {
        let v = sits_core::Augmentation::apply(&views, &batch, &mut rng).unwrap();
        let pad: Vec<Vec<u8>> = v.pad_mask().to_vec2().unwrap();
        for (row, row0) in pad.iter().zip(&pad0) {
            assert!(row.contains(&0), "a view keeps at least one date");
            assert!(
                row.iter().zip(row0).all(|(p, p0)| *p0 == 0 || *p == 1),
                "padding never comes back"
            );
        }
    }
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = common::tiny_pixel_transformer(0.0);
    let model = PixelTransformer::new(&Ctx::new(vb.pp("encoder")), cfg).unwrap();
    let mut obj = SimClr::new(&model, vb.pp("head"), 8, views, 0.5).unwrap();
    deterministic_init(&vm); // candle's own init is unseeded: fix the start so the test cannot flake
    let history = common::fit(&vm, &Buffers::new(), &ld, &mut obj, 4, Some(3e-3));
    let h = &history;
    assert_eq!(h.len(), 12);
    let first: f64 = h[..3].iter().map(|r| r.loss).sum::<f64>();
    let last: f64 = h[9..].iter().map(|r| r.loss).sum::<f64>();
    assert!(last < first, "SimCLR loss should fall: {first} -> {last}");
    assert!(h.iter().all(|r| r.metrics[0].0 == "positive_cosine"));
}

#[test]
fn dino_trains_with_an_ema_teacher() {
    use sits_ssl::dino::Dino;
    let ld = loader(data());
    let cfg = common::tiny_pixel_transformer(0.0);
    let (svm, tvm) = (VarMap::new(), VarMap::new());
    let student = PixelTransformer::new(
        &Ctx::new(VarBuilder::from_varmap(&svm, DType::F32, &Device::Cpu).pp("encoder")),
        cfg.clone(),
    )
    .unwrap();
    let teacher = PixelTransformer::new(
        &Ctx::new(VarBuilder::from_varmap(&tvm, DType::F32, &Device::Cpu).pp("encoder")),
        cfg,
    )
    .unwrap();
    let epochs = 3;
    let mut dino = Dino::new(&student, &teacher, &svm, &tvm, 32, &Device::Cpu).unwrap();
    dino.momentum = 0.9; // move the teacher visibly in a short test
    let t0: Vec<Tensor> = dino
        .teacher_vars()
        .iter()
        .map(|v| v.as_tensor().copy().unwrap())
        .collect();
    let history = common::fit(&svm, &Buffers::new(), &ld, &mut dino, epochs, Some(1e-3));
    let h = &history;
    assert_eq!(h.len(), 9);
    for r in h {
        assert!(r.loss.is_finite());
        let ent = r
            .metrics
            .iter()
            .find(|(k, _)| k == "teacher_entropy")
            .unwrap()
            .1;
        assert!(ent >= 0.0 && ent <= (32f64).ln() + 1e-6, "entropy {ent}");
    }
    // The teacher moved (EMA), and it is not the student.
    let moved: f32 = dino
        .teacher_vars()
        .iter()
        .zip(&t0)
        .map(|(v, t)| {
            (v.as_tensor() - t)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        })
        .sum();
    assert!(moved > 0.0, "teacher did not move");
    let data = svm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let gap: f32 = names
        .iter()
        .zip(dino.teacher_vars())
        .map(|(n, t)| {
            (data[*n].as_tensor() - t.as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        })
        .sum();
    assert!(gap > 0.0, "teacher equals student");
}

#[test]
fn the_dino_teacher_update_follows_the_ema_formula() {
    // teacher_after = m * teacher_before + (1 - m) * student, with m the cosine
    // momentum of the step: computed here by hand from both sides' values
    use sits_core::{Objective, Step};
    use sits_ssl::dino::{teacher_momentum, Dino};
    let cfg = common::tiny_pixel_transformer(0.0);
    let (svm, tvm) = (VarMap::new(), VarMap::new());
    let ctx =
        |vm: &VarMap| Ctx::new(VarBuilder::from_varmap(vm, DType::F32, &Device::Cpu).pp("encoder"));
    let student = PixelTransformer::new(&ctx(&svm), cfg.clone()).unwrap();
    let teacher = PixelTransformer::new(&ctx(&tvm), cfg).unwrap();
    let mut dino = Dino::new(&student, &teacher, &svm, &tvm, 32, &Device::Cpu).unwrap();
    dino.momentum = 0.9;
    // make the student differ from the teacher (which starts as its copy)
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for v in svm.all_vars() {
        let n = v.as_tensor().elem_count();
        let vals: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        v.set(&Tensor::from_vec(vals, v.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let before: Vec<Vec<f32>> = dino
        .teacher_vars()
        .iter()
        .map(|v| values(v.as_tensor()))
        .collect();
    let step = Step {
        epoch: 0,
        step: 3,
        total_steps: 10,
        train: true,
    };
    dino.after_step(&step).unwrap();
    let m = teacher_momentum(3, 10, 0.9);
    assert!(m > 0.9 && m < 1.0, "momentum {m}");
    // the student's variables in the teacher's order (both sorted by name)
    let sdata = svm.data().lock().unwrap();
    let mut names: Vec<&String> = sdata.keys().collect();
    names.sort();
    assert_eq!(names.len(), before.len());
    let mut worst = 0f32;
    let mut moved = 0f32;
    for ((name, t0), t1) in names.iter().zip(&before).zip(dino.teacher_vars()) {
        let s = values(sdata[*name].as_tensor());
        let want: Vec<f32> = t0
            .iter()
            .zip(&s)
            .map(|(a, b)| (m * f64::from(*a) + (1.0 - m) * f64::from(*b)) as f32)
            .collect();
        let got = values(t1.as_tensor());
        worst = worst.max(sits_testing::max_abs_diff_slices(&got, &want));
        moved = moved.max(sits_testing::max_abs_diff_slices(&got, t0));
    }
    // f32 arithmetic on values below 1 in magnitude
    assert!(
        worst < 1e-6,
        "teacher differs from the EMA formula by {worst}"
    );
    assert!(moved > 1e-3, "the teacher did not move ({moved})");
}

#[test]
fn pimc_learns_and_embeddings_keep_order() {
    use sits_models::{Ctx, SmallResNet};
    use sits_ssl::embed::embed;
    use sits_ssl::pimc::Pimc;
    let set = data();
    let bands = set.bands().to_vec();
    let ld = loader(set.clone());
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = common::tiny_pixel_transformer(0.0);
    let series = PixelTransformer::new(&Ctx::new(vb.pp("series")), cfg).unwrap();
    let ctx = Ctx {
        vb: vb.pp("images"),
        buffers: Buffers::new(),
    };
    let images = SmallResNet::new(&ctx, 3, 4).unwrap();
    let mut obj = Pimc::new(
        &series,
        &images,
        vb.pp("pimc"),
        8,
        bands,
        sits_data::Radiometry::default(),
        0.1,
        true,
    )
    .unwrap();
    // The recurrence image of the first series equals |NDVI_i - NDVI_j| computed by hand.
    let batch = ld.epoch(0).next().unwrap().unwrap();
    let rp = obj.recurrence_images(&batch).unwrap();
    assert_eq!(rp.dims(), &[16, 3, 23, 23]);
    let v: Vec<Vec<f32>> = batch.values().get(0).unwrap().to_vec2().unwrap();
    let (red, nir) = (1, 2); // blue, red, nir, mir, evi, ndvi
    let ndvi: Vec<f32> = v
        .iter()
        .map(|r| (r[nir] - r[red]) / (r[nir] + r[red]))
        .collect();
    let got: Vec<Vec<f32>> = rp.get(0).unwrap().get(0).unwrap().to_vec2().unwrap();
    assert!((got[2][7] - (ndvi[2] - ndvi[7]).abs()).abs() < 1e-5);
    let history = common::fit(&vm, &ctx.buffers, &ld, &mut obj, 4, Some(3e-3));
    let h = &history;
    let first: f64 = h[..3].iter().map(|r| r.loss).sum();
    let last: f64 = h[h.len() - 3..].iter().map(|r| r.loss).sum();
    assert!(last < first, "PIMC loss should fall: {first} -> {last}");
    let tau_first = h[0].metrics[0].1;
    let tau_last = h[h.len() - 1].metrics[0].1;
    assert!(tau_first != tau_last, "the temperature is learnable");
    // Embeddings in source order with a non-shuffling loader.
    let plain = Loader::new(
        set.clone(),
        LoaderConfig {
            batch_size: 10,
            shuffle: false,
            ..LoaderConfig::default()
        },
        Device::Cpu,
    )
    .unwrap();
    let e = embed(&series, &plain).unwrap();
    assert_eq!(e.dims(), &[48, 16]);
    // Row 17 is sample 17 encoded alone.
    let reference = LoaderConfig::default().reference;
    let one = sits_data::collate(
        &[sits_data::Sample::from_series(&set.series()[17], None)],
        reference,
        &Device::Cpu,
    )
    .unwrap();
    use sits_core::Encoder;
    let alone = series.encode(&one, false).unwrap();
    let d = sits_testing::max_abs_diff(&e.get(17).unwrap(), &alone.get(0).unwrap());
    assert!(
        d < 1e-5,
        "embedding row 17 differs from the sample encoded alone by {d}"
    );
}

#[test]
fn fine_tuning_a_classifier_learns_the_labels() {
    use sits_ssl::finetune::Classification;
    // every 40th series: several classes (the first 48 series are all pasture, on
    // which any classifier is right from the first step), and seeded weights
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(datasets::MATO_GROSSO);
    let all = datasets::mato_grosso(&dir).unwrap();
    let set = all
        .subset(&(0..all.len()).step_by(40).collect::<Vec<_>>())
        .unwrap();
    let classes = set.class_counts().iter().filter(|&&n| n > 0).count();
    assert!(classes >= 4, "{classes} classes");
    let ld = loader(Arc::new(set));
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = common::tiny_pixel_transformer(0.0);
    let model = PixelTransformer::new(&Ctx::new(vb.pp("encoder")), cfg).unwrap();
    let head = sits_models::nn::linear(16, 9, vb.pp("head")).unwrap();
    sits_models::nn::seeded_init(&vm, 7).unwrap();
    let history = common::fit(
        &vm,
        &Buffers::new(),
        &ld,
        &mut Classification::new(&model, &head),
        40,
        Some(5e-3),
    );
    let h = &history;
    let acc = |r: &sits_ssl::train::StepRecord| r.metrics[0].1;
    let first: f64 = h[..3].iter().map(acc).sum::<f64>() / 3.0;
    let last: f64 = h[h.len() - 3..].iter().map(acc).sum::<f64>() / 3.0;
    assert!(
        last > first && last > 0.5,
        "training accuracy {first} -> {last}"
    );
}

#[test]
fn simclr_on_cube_patches_with_spatial_views() {
    use sits_data::augment::CubeViews;
    use sits_models::utae::{Norm, UtaeConfig};
    use sits_models::{Ctx, Utae};
    use sits_ssl::simclr::SimClr;
    let ld = common::loader(common::slovenia_patches(20, 16, 28), 4, 2);
    let views = CubeViews {
        scale: (0.3, 1.0),
        size: (8, 8),
        drop: 0.3,
        noise: 0.01,
    };
    let batch = ld.epoch(0).next().unwrap().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let v = sits_core::Augmentation::apply(&views, &batch, &mut rng).unwrap();
    assert_eq!(v.values().dims(), &[4, 20, 1, 8, 8]);
    let pad: Vec<Vec<u8>> = v.pad_mask().to_vec2().unwrap();
    assert!(pad.iter().all(|r| r.contains(&0)));

    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu));
    let ucfg = UtaeConfig {
        input_dim: 1,
        encoder_widths: vec![8, 8, 16],
        decoder_widths: vec![8, 8, 16],
        out_conv: vec![8, 4],
        encoder_norm: Norm::Group,
        n_head: 4,
        d_model: 16,
        d_k: 4,
        ..UtaeConfig::pastis()
    };
    let model = Utae::new(&ctx.pp("encoder"), ucfg).unwrap();
    let mut obj = SimClr::new(&model, ctx.vb.pp("head"), 8, views, 0.5).unwrap();
    let history = common::fit(&vm, &ctx.buffers, &ld, &mut obj, 2, None);
    assert!(history.iter().all(|r| r.loss.is_finite()));
    assert_eq!(history.len(), 2 * ld.num_batches());
}

#[test]
fn seeded_init_is_reproducible_and_follows_the_layer_kinds() {
    use sits_models::nn::seeded_init;
    let cfg = common::tiny_pixel_transformer(0.0);
    let build = || {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let m = PixelTransformer::new(&Ctx::new(vb.pp("encoder")), cfg.clone()).unwrap();
        (vm, m)
    };
    let values = |vm: &VarMap| -> Vec<(String, Vec<f32>)> {
        let data = vm.data().lock().unwrap();
        let mut v: Vec<(String, Vec<f32>)> = data
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let ((a, _), (b, _), (c, _)) = (build(), build(), build());
    seeded_init(&a, 7).unwrap();
    seeded_init(&b, 7).unwrap();
    seeded_init(&c, 8).unwrap();
    assert_eq!(values(&a), values(&b));
    assert_ne!(values(&a), values(&c));
    for (name, v) in values(&a) {
        if name.ends_with("norm.weight") || name.ends_with("norm1.weight") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
        } else if name.ends_with("bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        } else if name.ends_with("embedding.weight") {
            // fan_in = 6 bands
            let bound = 1.0 / 6f32.sqrt();
            assert!(v.iter().all(|x| x.abs() <= bound), "{name}");
            assert!(v.iter().any(|x| x.abs() > 0.5 * bound), "{name}");
        }
    }
}

#[test]
fn pooled_pixel_encoder_flattens_dates_and_checks_their_number() {
    use sits_core::Encoder;
    use sits_ssl::embed::{PooledPixelEncoder, Pooling};
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = PixelTransformerConfig {
        d_model: 8,
        heads: 2,
        d_ff: 16,
        layers: 1,
        dropout: 0.0,
        ..PixelTransformerConfig::small(6)
    };
    let model = PixelTransformer::new(&Ctx::new(vb), cfg).unwrap();
    let batch = loader(data()).epoch(0).next().unwrap().unwrap();
    let (b, t) = (batch.batch_size(), batch.values().dims()[1]);
    let flat = PooledPixelEncoder::new(&model, Pooling::Flatten { dates: t });
    let z = flat.encode(&batch, false).unwrap();
    assert_eq!(z.dims(), &[b, t * 8]);
    assert_eq!(flat.output_dim(), t * 8);
    let per_date = model.encode_dates(&batch, None, false).unwrap().per_date;
    let diff = sits_testing::max_abs_diff(&z, &per_date.flatten_from(1).unwrap());
    assert_eq!(
        diff, 0.0,
        "no padded date in this batch, so nothing is zeroed"
    );
    let mean = PooledPixelEncoder::new(&model, Pooling::Mean);
    assert_eq!(mean.encode(&batch, false).unwrap().dims(), &[b, 8]);
    let wrong = PooledPixelEncoder::new(&model, Pooling::Flatten { dates: 5 });
    let e = wrong.encode(&batch, false).unwrap_err().to_string();
    assert!(
        e.contains("expects 5 dates") && e.contains(&format!("has {t}")),
        "{e}"
    );
}

/// DINO run: losses of this process and the final teacher weights.
fn run_dino(
    dir: Option<&Path>,
    resume: bool,
    stop: usize,
) -> Result<(Vec<f64>, Vec<Vec<f32>>), String> {
    use sits_ssl::dino::Dino;
    let (svm, tvm) = (VarMap::new(), VarMap::new());
    let build = |vm: &VarMap| {
        let vb = VarBuilder::from_varmap(vm, DType::F32, &Device::Cpu);
        PixelTransformer::new(
            &Ctx::new(vb.pp("encoder")),
            common::tiny_pixel_transformer(0.0),
        )
        .unwrap()
    };
    let (student, teacher) = (build(&svm), build(&tvm));
    let mut dino = Dino::new(&student, &teacher, &svm, &tvm, 32, &Device::Cpu).unwrap();
    // the heads too: the same values for student and teacher (same names)
    deterministic_init(&svm);
    deterministic_init(&tvm);
    dino.momentum = 0.9;
    dino.n_local = 2;
    let mut tr = Trainer::new(config(), &svm, &Buffers::new(), dir).unwrap();
    if resume {
        let found = tr.resume(&mut dino).map_err(|e| e.to_string())?;
        assert!(found, "a checkpoint should be there");
    }
    tr.fit_until(&loader(data()), stop, &mut dino).unwrap();
    let teacher: Vec<Vec<f32>> = dino
        .teacher_vars()
        .iter()
        .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    Ok((tr.history().iter().map(|r| r.loss).collect(), teacher))
}

#[test]
fn dino_resumes_exactly_with_its_teacher_and_centre() {
    let (full, teacher) = run_dino(None, false, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = run_dino(Some(dir.path()), false, 1).unwrap();
    assert_eq!(first, full[..first.len()].to_vec());
    let (rest, resumed_teacher) = run_dino(Some(dir.path()), true, 3).unwrap();
    assert_eq!(rest, full[first.len()..].to_vec(), "resumed DINO losses");
    assert_eq!(
        resumed_teacher, teacher,
        "the teacher ends where it would have"
    );
    let w =
        candle_core::safetensors::load(dir.path().join("ckpt-epoch1.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(w.contains_key("objective.center"));
    assert!(w
        .keys()
        .any(|k| k.starts_with("objective.teacher.encoder.")));
}

#[test]
fn dino_refuses_a_checkpoint_without_its_state() {
    // a checkpoint of another objective lacks the DINO heads
    let other = tempfile::tempdir().unwrap();
    run(Some(other.path()), false, 1);
    let e = run_dino(Some(other.path()), true, 3).unwrap_err();
    assert!(e.contains("no tensor `head."), "{e}");
    // a DINO checkpoint whose teacher and centre were stripped
    let dir = tempfile::tempdir().unwrap();
    run_dino(Some(dir.path()), false, 1).unwrap();
    let path = dir.path().join("ckpt-epoch1.safetensors");
    let mut w = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    w.retain(|k, _| !k.starts_with("objective."));
    candle_core::safetensors::save(&w, &path).unwrap();
    let e = run_dino(Some(dir.path()), true, 3).unwrap_err();
    assert!(e.contains("DINO state: no `teacher."), "{e}");
}

/// A seventh objective, written outside the crate: the loop hands it every step in
/// order, calls `after_step` once per optimiser step, and checkpoints its state.
#[test]
fn an_objective_from_outside_the_crate_gets_the_loop_contract() {
    use sits_core::{Objective, ObjectiveOutput, SitsBatch, Step};
    struct Probe {
        w: candle_core::Tensor,
        seen: Vec<Step>,
        after: Vec<u64>,
        restored: Option<f32>,
    }
    impl Objective for Probe {
        fn loss(
            &mut self,
            batch: &SitsBatch,
            step: &Step,
            _rng: &mut dyn rand::RngCore,
        ) -> candle_core::Result<ObjectiveOutput> {
            self.seen.push(*step);
            let m = batch.values().mean_all()?;
            let loss = self.w.broadcast_sub(&m)?.sqr()?.sum_all()?;
            Ok(ObjectiveOutput {
                loss,
                metrics: vec![],
            })
        }
        fn after_step(&mut self, step: &Step) -> candle_core::Result<()> {
            self.after.push(step.step);
            Ok(())
        }
        fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
            Ok(vec![(
                "calls".into(),
                Tensor::new(self.after.len() as f32, &Device::Cpu)?,
            )])
        }
        fn load_state(
            &mut self,
            tensors: &std::collections::HashMap<String, Tensor>,
        ) -> candle_core::Result<()> {
            self.restored = Some(tensors["calls"].to_scalar::<f32>()?);
            Ok(())
        }
        fn name(&self) -> &str {
            "probe"
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let vm = VarMap::new();
    let w = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)
        .get(1, "w")
        .unwrap();
    let mut obj = Probe {
        w,
        seen: vec![],
        after: vec![],
        restored: None,
    };
    let ld = loader(data());
    let per_epoch = ld.num_batches() as u64;
    let mut tr = Trainer::new(config(), &vm, &Buffers::new(), Some(dir.path())).unwrap();
    tr.fit_until(&ld, 2, &mut obj).unwrap();
    let steps: Vec<u64> = obj.seen.iter().map(|s| s.step).collect();
    assert_eq!(steps, (0..2 * per_epoch).collect::<Vec<_>>());
    assert_eq!(obj.after, steps, "after_step once per step, after its loss");
    assert!(obj.seen.iter().all(|s| s.train
        && s.total_steps == 3 * per_epoch
        && s.epoch as u64 == s.step / per_epoch));
    // the state of epoch 2 is in the checkpoint and comes back on resume
    let mut again = Probe {
        w: obj.w.clone(),
        seen: vec![],
        after: vec![],
        restored: None,
    };
    let mut tr = Trainer::new(config(), &vm, &Buffers::new(), Some(dir.path())).unwrap();
    assert!(tr.resume(&mut again).unwrap());
    assert_eq!(again.restored, Some((2 * per_epoch) as f32));
    tr.fit(&ld, &mut again).unwrap();
    assert_eq!(again.seen.first().map(|s| s.step), Some(2 * per_epoch));
}
