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

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Parser;
use ndarray::Array2;
use sits::experiment::{dtwsat_cube_years, ExperimentConfig};
use sits::sits_data::datasets;
use sits::sits_repr::render::{Colormap, RgbImage};
use sits::sits_ssl::metrics::roc_auc;

/// Change detection between consecutive years of the dtwSat cube.
#[derive(Parser, Debug)]
struct Args {
    /// Pretraining epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/changes")]
    out: PathBuf,
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    1.0 - dot / (na * nb).max(1e-12)
}

fn euclidean(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let cfg = ExperimentConfig {
        epochs: args.epochs,
        seed: args.seed,
        ..ExperimentConfig::default()
    };
    let dir = sits::bundled_data_dir().join(datasets::DTWSAT_CUBE);
    let cy = dtwsat_cube_years(&dir, &cfg, &candle_core::Device::Cpu)?;
    let (h, w) = cy.size;
    println!(
        "dtwsat cube: {h} x {w} pixels, years {:?}, {} pixel-years; pretrained {} epochs in {:.1} s",
        cy.years,
        cy.index.len(),
        cfg.epochs,
        cy.pretrain_seconds
    );
    let at: HashMap<(usize, usize, i32), usize> = cy
        .index
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.row, p.col, p.year), i))
        .collect();
    sits::sits_data::io_util::prepare_run_dir(&args.out)?;
    let (mut ssl_scores, mut raw_scores, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for pair in cy.years.windows(2) {
        let (y0, y1) = (pair[0], pair[1]);
        let mut ssl_map = Array2::<f32>::zeros((h, w));
        let mut raw_map = Array2::<f32>::zeros((h, w));
        let mut labelled = 0;
        for r in 0..h {
            for c in 0..w {
                let (Some(&i), Some(&j)) = (at.get(&(r, c, y0)), at.get(&(r, c, y1))) else {
                    continue;
                };
                let s = cosine_distance(&cy.ssl[i], &cy.ssl[j]);
                let q = euclidean(&cy.raw[i], &cy.raw[j]);
                ssl_map[[r, c]] = s as f32;
                raw_map[[r, c]] = q as f32;
                if let (Some(a), Some(b)) = (cy.index[i].label, cy.index[j].label) {
                    ssl_scores.push(s);
                    raw_scores.push(q);
                    truth.push(a != b);
                    labelled += 1;
                }
            }
        }
        let png = args.out.join(format!("change_{y0}-{y1}.png"));
        RgbImage::hstack(
            &[
                RgbImage::from_array(ssl_map.view(), Colormap::Viridis, None).upscale(8),
                RgbImage::from_array(raw_map.view(), Colormap::Viridis, None).upscale(8),
            ],
            8,
        )
        .write_png(&png)?;
        println!(
            "{y0}-{}: {labelled} labelled pixels in both years -> {} (left: SSL score, right: raw score)",
            y1 % 100,
            png.display()
        );
    }
    let changed = truth.iter().filter(|&&t| t).count();
    println!(
        "{} labelled pixel pairs, {changed} with a class change",
        truth.len()
    );
    let ssl_auc = roc_auc(&ssl_scores, &truth)?;
    let raw_auc = roc_auc(&raw_scores, &truth)?;
    println!("ROC AUC: SSL embedding distance {ssl_auc:.3}, raw series distance {raw_auc:.3}");
    println!("maps: {}", args.out.display());
    println!("result: change_auc={ssl_auc:.4} raw_change_auc={raw_auc:.4}");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
