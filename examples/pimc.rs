//! PIMC-style multimodal contrastive pretraining on the bundled Mato Grosso series:
//! a small ResNet encodes the unthresholded recurrence plots of each pixel's NDVI,
//! EVI and SAVI (3 channels, computed on the batch), a pixel transformer encodes the
//! pixel's series, and a symmetric InfoNCE (learnable temperature) pulls the two
//! views of the same pixel together. No label is used for pretraining.
//!
//! Downstream, as in PIMC:
//! - classification: linear probes on each frozen encoder (all training labels),
//!   evaluated on the held-out split;
//! - forecasting: ridge regression from the embedding of the first 19 dates to the
//!   NDVI of the last 4 dates, against the same regression on the raw 19 dates
//!   (RMSE on the held-out split, NDVI units).
//!
//! ```text
//! cargo run --release --example pimc [-- --epochs N --seed S]
//! ```

use clap::Parser;
use sits::sits_data::{datasets, Split};
use sits::tasks::pimc::{pimc_study, PimcConfig};

/// PIMC pretraining and its two downstream tasks.
#[derive(Parser, Debug)]
struct Args {
    /// Pretraining epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let set = datasets::mato_grosso(&sits::bundled_data_dir()?.join(datasets::MATO_GROSSO))?;
    // values are reflectances and indices already near [0, 1]: the recurrence plots
    // need the physical values, so the series are not standardised here
    let (train, test) = (set.split(Split::Train)?, set.split(Split::Test)?);
    let cfg = PimcConfig {
        epochs: args.epochs,
        seed: args.seed,
        ..PimcConfig::default()
    };
    let s = pimc_study(&train, &test, &cfg, &candle_core::Device::Cpu)?;
    println!(
        "PIMC pretraining: {} epochs in {:.0} s, InfoNCE {:.3} (first epoch) -> {:.3} (last)",
        args.epochs, s.pretrain_seconds, s.losses.0, s.losses.1
    );
    println!(
        "linear probes (100 % labels, test OA): recurrence-plot encoder {:.3}, series encoder {:.3}, raw series {:.3}",
        s.rp_oa, s.series_oa, s.raw_oa
    );
    println!(
        "NDVI forecast of dates 20-23 from dates 1-19 (ridge, λ = 0.01), test RMSE: recurrence-plot embedding {:.4}, raw series {:.4}, persistence of date 19 {:.4}",
        s.rp_rmse, s.raw_rmse, s.persistence_rmse
    );
    println!("{}", s.result_line());
    Ok(())
}

fn main() {
    sits::sits_core::memory::reuse_large_allocations();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
