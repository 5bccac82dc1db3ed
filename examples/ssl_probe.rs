//! The few-label experiment on the bundled Mato Grosso MODIS series: pretrain the
//! pixel transformer with masked reconstruction on the training split (labels
//! unused), then train linear probes on 1 %, 5 %, 10 % and 100 % of the training
//! labels and evaluate on the held-out split, against probes on the raw series and
//! on the same encoder left at its random initialisation. Mean and spread over
//! seeds.
//!
//! ```text
//! cargo run --release --example ssl_probe [-- --epochs N --seeds K]
//! ```

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sits::sits_data::augment::DateMasking;
use sits::sits_data::norm::NormStats;
use sits::sits_data::{datasets, Loader, LoaderConfig, SampleSet, Split};
use sits::sits_models::{Buffers, PixelTransformer, PixelTransformerConfig};
use sits::sits_ssl::objectives::{embed, Corruption, MaskedReconstruction};
use sits::sits_ssl::probe::{label_fraction_probes, FractionResult, ProbeConfig};
use sits::sits_ssl::train::{TrainConfig, Trainer};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn arg(name: &str, default: usize) -> Res<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

fn raw_features(set: &SampleSet) -> Res<Tensor> {
    let rows: Vec<Vec<f32>> = set
        .series()
        .iter()
        .map(|s| s.values.iter().copied().collect())
        .collect();
    Ok(sits::sits_ssl::probe::features(&rows, &Device::Cpu)?)
}

fn loader(set: &Arc<SampleSet>, shuffle: bool, seed: u64) -> Res<Loader> {
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle,
        seed,
        ..LoaderConfig::default()
    };
    Ok(Loader::new(set.clone(), cfg, Device::Cpu)?)
}

fn run() -> Res<()> {
    let epochs = arg("--epochs", 15)?;
    let seeds = arg("--seeds", 3)? as u64;
    let set = datasets::mato_grosso(&sits::bundled_data_dir().join(datasets::MATO_GROSSO))?;
    let (mut train, mut test) = (set.split(Split::Train)?, set.split(Split::Test)?);
    let stats = NormStats::of_samples(&train, 1e-4)?;
    stats.apply_samples(&mut train)?;
    stats.apply_samples(&mut test)?;
    let classes = set.class_names().len();
    let (ytr, yte) = (
        train.labels().ok_or("labels")?.to_vec(),
        test.labels().ok_or("labels")?.to_vec(),
    );
    let (train, test) = (Arc::new(train), Arc::new(test));
    let fractions = [0.01, 0.05, 0.1, 1.0];
    let probe = ProbeConfig::default();
    let raw = label_fraction_probes(
        &raw_features(&train)?,
        &ytr,
        &raw_features(&test)?,
        &yte,
        classes,
        &fractions,
        0,
        probe,
    )?;
    let mut random: Vec<Vec<FractionResult>> = Vec::new();
    let mut ssl: Vec<Vec<FractionResult>> = Vec::new();
    let mut raw_runs: Vec<Vec<FractionResult>> = vec![raw];
    for seed in 0..seeds {
        if seed > 0 {
            raw_runs.push(label_fraction_probes(
                &raw_features(&train)?,
                &ytr,
                &raw_features(&test)?,
                &yte,
                classes,
                &fractions,
                seed,
                probe,
            )?);
        }
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let cfg = PixelTransformerConfig {
            d_model: 64,
            heads: 4,
            d_ff: 128,
            layers: 2,
            dropout: 0.0,
            ..PixelTransformerConfig::small(train.bands().len())
        };
        let model = PixelTransformer::new(vb.pp("encoder"), cfg)?;
        let obj = MaskedReconstruction::new(
            &model,
            vb.pp("head"),
            DateMasking {
                ratio: 0.3,
                contiguous: false,
            },
            Corruption::MaskToken,
        )?;
        let (tr_plain, te_plain) = (loader(&train, false, 0)?, loader(&test, false, 0)?);
        random.push(label_fraction_probes(
            &embed(&model, &tr_plain)?,
            &ytr,
            &embed(&model, &te_plain)?,
            &yte,
            classes,
            &fractions,
            seed,
            probe,
        )?);
        let tcfg = TrainConfig {
            epochs,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 20,
            seed,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(tcfg, &vm, &Buffers::new(), None)?;
        trainer.fit(&loader(&train, true, seed)?, |b, rng| {
            obj.loss(b, rng, true)
        })?;
        let last = trainer.history().last().map_or(f64::NAN, |r| r.loss);
        println!("seed {seed}: pretrained {epochs} epochs, last loss {last:.4}");
        ssl.push(label_fraction_probes(
            &embed(&model, &tr_plain)?,
            &ytr,
            &embed(&model, &te_plain)?,
            &yte,
            classes,
            &fractions,
            seed,
            probe,
        )?);
    }
    println!("\n| labels | raw OA | random-init OA | SSL OA | raw F1 | random-init F1 | SSL F1 |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let stat = |runs: &[Vec<FractionResult>], i: usize, f: fn(&FractionResult) -> f64| {
        let v: Vec<f64> = runs.iter().map(|r| f(&r[i])).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        format!("{m:.3} ± {sd:.3}")
    };
    for (i, f) in fractions.iter().enumerate() {
        println!(
            "| {:.0} % | {} | {} | {} | {} | {} | {} |",
            f * 100.0,
            stat(&raw_runs, i, |r| r.oa),
            stat(&random, i, |r| r.oa),
            stat(&ssl, i, |r| r.oa),
            stat(&raw_runs, i, |r| r.macro_f1),
            stat(&random, i, |r| r.macro_f1),
            stat(&ssl, i, |r| r.macro_f1)
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
