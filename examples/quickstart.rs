//! The main job: self-supervised pretraining on the bundled Mato Grosso MODIS
//! series, then the few-label comparison.
//!
//! 1. Pretrain a pixel transformer without labels on the training series (masked
//!    reconstruction by default; `--method simclr|dino` for the contrastive and
//!    self-distillation objectives).
//! 2. Freeze it and train linear probes on 1 %, 5 %, 10 % and 100 % of the training
//!    labels, evaluated on the held-out split, against probes on the raw series and
//!    on the same encoder at its random initialisation.
//! 3. Fine-tune the pretrained encoder with a linear head at 10 % and 100 %.
//! 4. Write a report folder: `report.md`, `results.json`, `loss.png`,
//!    `confusion.png`, `embeddings.png`.
//!
//! ```text
//! cargo run --release --example quickstart
//! cargo run --release --example quickstart -- --method dino --epochs 20 --seed 1 --out out/dino
//! cargo run --release --example quickstart -- --data my_samples/ --out out/mine
//! cargo run --release --example quickstart -- --data my_samples/ --out out/mine --resume
//! ```
//!
//! Pretraining writes a checkpoint every 5 epochs to OUT/checkpoints; after an
//! interruption, the same command with `--resume` continues from the latest one and
//! prints the same result line as an uninterrupted run (masked reconstruction and
//! SimCLR; DINO runs start over).
//!
//! The last line printed is machine-readable (`result: method=... ssl_probe_oa@10=...`).

use std::path::PathBuf;

use clap::Parser;
use sits::experiment::{ExperimentConfig, Method};
use sits::sits_data::datasets;
use sits::sits_data::io_util::prepare_run_dir;
use sits::sits_ssl::alise::AliseWeights;
use sits::tasks::few_label;

/// Self-supervised pretraining and the few-label comparison on labelled pixel series.
#[derive(Parser, Debug)]
struct Args {
    /// A sample-set folder (metadata.json, samples.csv, timeseries.csv, optional
    /// values.npy) or a sample-set Zarr store; defaults to the bundled Mato Grosso
    /// MODIS series.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Pretraining objective: bert (masked reconstruction), simclr or dino.
    #[arg(long, default_value = "bert")]
    method: Method,
    /// Pretraining epochs.
    /// Weight of ALISE's VICReg variance term (0 in the public configuration).
    #[arg(long, default_value_t = 0.0)]
    alise_variance: f64,
    /// Model choices: hold out a stratified 20 % of the training series and report
    /// on it instead of the test split (the test split is not read).
    #[arg(long)]
    validation: bool,
    /// Unlabelled data added to the pretraining set (a cube folder or Zarr cube, cut
    /// into periods of the training series' length; or a sample-set folder), e.g.
    /// data/dtwsat_mato_grosso_mod13q1_cube. Same bands and units as the series.
    #[arg(long)]
    unlabelled: Option<PathBuf>,
    /// Share of the unlabelled series used (a seeded random subset).
    #[arg(long, default_value_t = 1.0)]
    unlabelled_fraction: f64,
    /// Month on whose first day the periods of an unlabelled cube start (9: the
    /// September-to-August agricultural year of the bundled Mato Grosso data).
    #[arg(long, default_value_t = 9)]
    unlabelled_start_month: u32,
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Seed of weights, batches, masks and label subsets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Report folder: created if missing; an existing folder must be empty or made by
    /// an earlier run (it holds `.sits-run`), so that no file of yours is replaced.
    #[arg(long, default_value = "out/quickstart")]
    out: PathBuf,
    /// Resume pretraining from the latest checkpoint in OUT/checkpoints (written every
    /// `--checkpoint-every` epochs), with the same settings; the result line is the one
    /// of an uninterrupted run. Starts from scratch when there is no checkpoint.
    #[arg(long)]
    resume: bool,
    /// Pretraining checkpoint interval in epochs.
    #[arg(long, default_value_t = 5)]
    checkpoint_every: usize,
    /// cpu, or cuda / metal when built with that feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = sits::tasks::device(&args.device)?;
    let data = match args.data.clone() {
        Some(d) => d,
        None => sits::bundled_data_dir()?.join(datasets::MATO_GROSSO),
    };
    // everything that can be checked before the long work: the output folder (made
    // and probed for writing), the kind of input, the splits and classes
    prepare_run_dir(&args.out)?;
    let (train, test) = few_label::labelled_splits(&data)?;
    let (train, test) = if args.validation {
        few_label::validation_split(&train, 0.2, args.seed)?
    } else {
        (train, test)
    };
    println!(
        "data: {} ({} train, {} {} series, {} dates x {} bands, {} classes)",
        data.display(),
        train.len(),
        test.len(),
        if args.validation {
            "validation"
        } else {
            "test"
        },
        train.max_len().max(test.max_len()),
        train.bands().len(),
        train.class_names().len()
    );
    let unlabelled = match &args.unlabelled {
        Some(path) => {
            let set = few_label::unlabelled_series(
                path,
                train.max_len(),
                args.unlabelled_start_month,
                args.unlabelled_fraction,
                args.seed,
            )?;
            println!(
                "unlabelled: {} ({} series added to pretraining)",
                path.display(),
                set.len()
            );
            Some(set)
        }
        None => None,
    };
    let cfg = ExperimentConfig {
        method: args.method,
        epochs: args.epochs,
        seed: args.seed,
        checkpoint_dir: Some(args.out.join("checkpoints")),
        checkpoint_every: args.checkpoint_every,
        resume: args.resume,
        alise: AliseWeights {
            variance: args.alise_variance,
            ..AliseWeights::default()
        },
        ..ExperimentConfig::default()
    };
    println!(
        "pretraining a pixel transformer ({} layers, width {}) with {} for {} epochs, then probes and fine-tuning",
        cfg.layers, cfg.d_model, cfg.method, cfg.epochs
    );
    let out = match &unlabelled {
        Some(extra) => few_label::run_with_unlabelled(&train, &test, extra, &cfg, &device)?,
        None => few_label::run(&train, &test, &cfg, &device)?,
    };
    println!("\n{}", few_label::table(&out));
    let stages: Vec<String> = out
        .stage_seconds
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect();
    println!("time: {}", stages.join(", "));
    few_label::write_report(&args.out, &args.device, &data, &cfg, &out)?;
    println!(
        "report: {} (report.md, results.json, loss.png, confusion.png, embeddings.png); {:.0} s in all",
        args.out.display(),
        out.total_seconds
    );
    println!("{}", few_label::result_line(&cfg, &out));
    Ok(())
}

fn main() {
    sits::sits_core::memory::reuse_large_allocations();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
