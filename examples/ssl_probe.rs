//! The few-label experiment of the quickstart repeated over several seeds, for the
//! mean and spread of every number: probes on the raw series, on the encoder at its
//! random initialisation and on the pretrained encoder at 1 %, 5 %, 10 % and 100 %
//! of the training labels (held-out split of the bundled Mato Grosso series).
//!
//! ```text
//! cargo run --release --example ssl_probe [-- --epochs N --seeds K --method bert|simclr|dino|alise]
//! cargo run --release --example ssl_probe -- --method alise --unlabelled data/dtwsat_mato_grosso_mod13q1_cube
//! ```
//!
//! `--unlabelled` adds unlabelled series (a cube cut into agricultural years, or a
//! sample set) to pretraining; the probes still see the labelled training series
//! only. The last line is machine-readable (`result: ...`).

use clap::Parser;
use sits::experiment::{few_label_experiment_with, ExperimentConfig, ExperimentOutput, Method};
use sits::sits_data::{datasets, Split};
use sits::sits_ssl::probe::FractionResult;

/// Mean and spread over seeds of the few-label experiment.
#[derive(Parser, Debug)]
struct Args {
    /// Pretraining epochs.
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Number of seeds (0, 1, ...).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Pretraining objective.
    #[arg(long, default_value = "bert")]
    method: Method,
    /// Fraction of dates masked (bert).
    #[arg(long, default_value_t = 0.3)]
    mask_ratio: f64,
    /// Unlabelled data added to pretraining (see the quickstart's `--unlabelled`).
    #[arg(long)]
    unlabelled: Option<std::path::PathBuf>,
    /// Share of the unlabelled series used (a random subset, seeded per run).
    #[arg(long, default_value_t = 1.0)]
    unlabelled_fraction: f64,
}

fn stat(
    runs: &[ExperimentOutput],
    pick: impl Fn(&ExperimentOutput) -> &FractionResult,
    f: fn(&FractionResult) -> f64,
) -> String {
    let v: Vec<f64> = runs.iter().map(|r| f(pick(r))).collect();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    format!("{m:.3} ± {sd:.3}")
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let set = datasets::mato_grosso(&sits::bundled_data_dir()?.join(datasets::MATO_GROSSO))?;
    let (train, test) = (set.split(Split::Train)?, set.split(Split::Test)?);
    let mut runs = Vec::new();
    for seed in 0..args.seeds {
        let cfg = ExperimentConfig {
            method: args.method,
            epochs: args.epochs,
            seed,
            mask_ratio: args.mask_ratio,
            finetune_fractions: Vec::new(),
            ..ExperimentConfig::default()
        };
        let extra = match &args.unlabelled {
            Some(path) => Some(sits::tasks::few_label::unlabelled_series(
                path,
                train.max_len(),
                9,
                args.unlabelled_fraction,
                seed,
            )?),
            None => None,
        };
        let out = few_label_experiment_with(
            &train,
            &test,
            extra.as_ref(),
            &cfg,
            &candle_core::Device::Cpu,
        )?;
        println!(
            "seed {seed}: {} epochs in {:.0} s, last epoch mean loss {:.4}",
            args.epochs,
            out.pretrain_seconds,
            {
                let last = out.history.last().map_or(0, |r| r.epoch);
                let l: Vec<f64> = out
                    .history
                    .iter()
                    .filter(|r| r.epoch == last)
                    .map(|r| r.loss)
                    .collect();
                l.iter().sum::<f64>() / l.len().max(1) as f64
            }
        );
        runs.push(out);
    }
    if runs.is_empty() {
        return Err("--seeds must be at least 1".into());
    }
    println!(
        "\n{} pretraining, {} epochs, {} seeds (mean ± standard deviation)\n",
        args.method, args.epochs, args.seeds
    );
    println!("| labels | raw OA | random-init OA | SSL OA | raw F1 | random-init F1 | SSL F1 |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (i, r) in runs[0].raw.iter().enumerate() {
        println!(
            "| {:.0} % | {} | {} | {} | {} | {} | {} |",
            r.fraction * 100.0,
            stat(&runs, |o| &o.raw[i], |r| r.oa),
            stat(&runs, |o| &o.random[i], |r| r.oa),
            stat(&runs, |o| &o.ssl[i], |r| r.oa),
            stat(&runs, |o| &o.raw[i], |r| r.macro_f1),
            stat(&runs, |o| &o.random[i], |r| r.macro_f1),
            stat(&runs, |o| &o.ssl[i], |r| r.macro_f1),
        );
    }
    let mut line = format!(
        "result: method={} seeds={} unlabelled={}",
        args.method,
        args.seeds,
        args.unlabelled
            .as_ref()
            .map_or("none".to_string(), |_| format!(
                "{}",
                args.unlabelled_fraction
            ))
    );
    for (i, r) in runs[0].raw.iter().enumerate() {
        let pct = (r.fraction * 100.0).round();
        for (name, pick) in [
            (
                "ssl",
                (|o: &ExperimentOutput, i: usize| &o.ssl[i]) as fn(&_, _) -> &_,
            ),
            ("random", |o, i| &o.random[i]),
            ("raw", |o, i| &o.raw[i]),
        ] {
            let s = stat(&runs, |o| pick(o, i), |r| r.oa).replace(" ± ", "±");
            line.push_str(&format!(" {name}_oa@{pct}={s}"));
        }
    }
    println!("{line}");
    Ok(())
}

fn main() {
    sits::sits_core::memory::reuse_large_allocations();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
