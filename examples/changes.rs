//! Unsupervised change detection on the bundled dtwSat MODIS cube (27 x 37 pixels,
//! 5 complete agricultural years): a pixel transformer is pretrained with masked
//! reconstruction on every pixel-year (no label), and the change score of a pixel
//! between two consecutive years is the cosine distance between its two yearly
//! embeddings. The baseline is the Euclidean distance between the two normalised
//! raw series.
//!
//! Evaluation: the labelled pixels whose class is known in both years of a pair;
//! a change is a class that differs. ROC AUC of both scores. One PNG per pair of
//! years: the SSL score map and the raw score map side by side.
//!
//! ```text
//! cargo run --release --example changes [-- --epochs N --seed S --out DIR]
//! ```

use std::path::PathBuf;

use clap::Parser;
use sits::sits_core::io::IfExists;
use sits::sits_data::datasets;
use sits::tasks::changes::{changes, Distance};
use sits::tasks::input::{output_dir, Periods};
use sits::tasks::maps::write_map;
use sits::tasks::pretrain::{pretrain, PretrainConfig};

/// Change detection between consecutive years of the dtwSat cube.
#[derive(Parser, Debug)]
struct Args {
    /// Pretraining epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Pretraining objective: bert, simclr, dino or alise (ALISE's aligned
    /// vectors become the embedding).
    #[arg(long, default_value = "bert")]
    method: sits::experiment::Method,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/changes")]
    out: PathBuf,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = sits::bundled_data_dir()?.join(datasets::DTWSAT_CUBE);
    let out = output_dir(&args.out, &[&dir])?;
    let input = sits::tasks::input::read(&dir, None)?;
    let mut cfg = PretrainConfig {
        periods: Periods::MOD13Q1_SEPTEMBER,
        ..PretrainConfig::default()
    };
    cfg.experiment.epochs = args.epochs;
    cfg.experiment.seed = args.seed;
    cfg.experiment.method = args.method;
    let dev = candle_core::Device::Cpu;
    let pre = pretrain(
        &input,
        &cfg,
        &dir.display().to_string(),
        "changes example",
        &dev,
    )?;
    let grid = pre.grid.clone().ok_or("the dtwSat cube gave no grid")?;
    let (h, w) = grid.size;
    println!(
        "dtwsat cube: {h} x {w} pixels, years {:?}, {} pixel-years; pretrained {} epochs in {:.1} s",
        grid.periods,
        grid.index.len(),
        cfg.experiment.epochs,
        pre.pretrained.seconds
    );
    let ssl = changes(&pre.embed_training_series(&dev)?, &grid, Distance::Cosine)?;
    let raw = changes(&pre.raw_rows(), &grid, Distance::Euclidean)?;
    // the control: the same encoder at its seeded random initialisation
    let mut rcfg = cfg.clone();
    rcfg.experiment.epochs = 0;
    let untrained = pretrain(
        &input,
        &rcfg,
        &dir.display().to_string(),
        "changes example (random init)",
        &dev,
    )?;
    let random = changes(
        &untrained.embed_training_series(&dev)?,
        &grid,
        Distance::Cosine,
    )?;
    for ((y0, y1), n) in ssl.pairs.iter().zip(&ssl.labelled_per_pair) {
        println!("{y0}-{}: {n} labelled pixels in both years", y1 % 100);
    }
    write_map(&out, &ssl.map(&grid, "changes")?, IfExists::Replace)?;
    write_map(&out, &raw.map(&grid, "raw_changes")?, IfExists::Replace)?;
    let changed = ssl.labelled.iter().filter(|l| l.1).count();
    println!(
        "{} labelled pixel pairs, {changed} with a class change",
        ssl.labelled.len()
    );
    let ssl_auc = ssl.auc()?.unwrap_or(f64::NAN);
    let raw_auc = raw.auc()?.unwrap_or(f64::NAN);
    let random_auc = random.auc()?.unwrap_or(f64::NAN);
    println!(
        "ROC AUC: SSL embedding distance {ssl_auc:.3}, random-init embedding distance \
         {random_auc:.3}, raw series distance {raw_auc:.3}"
    );
    println!(
        "maps: {}/changes_<y0>-<y1>.png (SSL), raw_changes_<y0>-<y1>.png (raw), and .zarr stores",
        out.display()
    );
    println!(
        "result: method={} change_auc={ssl_auc:.4} random_change_auc={random_auc:.4} raw_change_auc={raw_auc:.4}",
        args.method
    );
    Ok(())
}

fn main() {
    sits::sits_core::memory::reuse_large_allocations();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
