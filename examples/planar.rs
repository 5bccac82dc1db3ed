//! Deep-STaR planar images on the bundled dtwSat MODIS cube: the 5 x 5
//! neighbourhood of every labelled pixel-year, its 25 pixels laid out along a
//! Hilbert curve as the rows of a `(6 bands, 25 pixels, 23 dates)` image, and a
//! small CNN trained on those images, against a pixel transformer trained on the
//! centre pixel's series alone and a linear probe on the raw centre series (same
//! train/test split, grouped by pixel). Writes PNGs of a few planar images.
//!
//! ```text
//! cargo run --release --example planar [-- --epochs N --seed S --out DIR]
//! ```

use std::path::PathBuf;

use clap::Parser;
use sits::sits_data::datasets::{self, DtwsatCube};
use sits::sits_repr::render::RgbImage;
use sits::tasks::planar::{planar_study, PlanarConfig};

/// Planar images of labelled neighbourhoods: CNN vs pixel-series models.
#[derive(Parser, Debug)]
struct Args {
    /// Training epochs of both models.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/planar")]
    out: PathBuf,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let d = DtwsatCube::load(&sits::bundled_data_dir()?.join(datasets::DTWSAT_CUBE))?;
    let cfg = PlanarConfig {
        epochs: args.epochs,
        seed: args.seed,
        ..PlanarConfig::default()
    };
    sits::sits_data::io_util::prepare_run_dir(&args.out)?;
    let s = planar_study(
        &d.cube,
        &d.samples,
        &d.class_names,
        &cfg,
        &candle_core::Device::Cpu,
    )?;
    println!(
        "{} labelled pixel-years with 23 dates ({} train, {} test); planar images (C, N, T) = {:?}",
        s.images.len(),
        s.train,
        s.test,
        s.images[0].dim()
    );
    // PNGs: NDVI plane of one example per class
    let ndvi = d.cube.band_index("ndvi")?;
    let mut panels = Vec::new();
    for (k, img) in s.class_images(ndvi, d.class_names.len()) {
        img.write_png(&args.out.join(format!("planar_{}.png", d.class_names[k])))?;
        panels.push(img);
    }
    let panel = args.out.join("planar_per_class.png");
    RgbImage::hstack(&panels, 8).write_png(&panel)?;
    println!(
        "planar NDVI images (rows: 25 pixels in Hilbert order, columns: 23 dates), one per class: {}",
        panel.display()
    );
    println!(
        "planar CNN: {} epochs in {:.0} s, test OA {:.3}; pixel transformer on the centre series: {:.0} s, test OA {:.3}; linear probe on the raw centre series: test OA {:.3}",
        args.epochs, s.seconds.0, s.cnn_oa, s.seconds.1, s.series_oa, s.raw_oa
    );
    println!("outputs: {}", args.out.display());
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
