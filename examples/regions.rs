//! Unsupervised regional analysis of the bundled dtwSat MODIS cube, in the spirit
//! of Echegoyen et al.: a pixel transformer pretrained with masked reconstruction
//! (no label) embeds every pixel in every complete agricultural year; k-means on
//! all pixel-years gives one taxonomy shared by all years, drawn as a map per year;
//! k-means on the per-pixel trajectories (a pixel's yearly embeddings concatenated,
//! so the distance is the Euclidean distance summed over years) gives one map of
//! land-use dynamics. The agreement of the clusters with the labelled pixel-years
//! (adjusted Rand index) is compared with k-means on the raw series.
//!
//! ```text
//! cargo run --release --example regions [-- --clusters K --epochs N --seed S --out DIR]
//! ```

use std::path::PathBuf;

use clap::Parser;
use ndarray::Array2;
use sits::experiment::{dtwsat_cube_years, ExperimentConfig};
use sits::sits_data::datasets;
use sits::sits_repr::render::RgbImage;
use sits::sits_ssl::cluster::{adjusted_rand_index, kmeans, trajectories};

/// Clusters of the dtwSat cube's pixel-years.
#[derive(Parser, Debug)]
struct Args {
    /// Number of clusters.
    #[arg(long, default_value_t = 6)]
    clusters: usize,
    /// Pretraining epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed of pretraining and k-means.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/regions")]
    out: PathBuf,
}

/// Each column scaled to zero mean and unit variance.
fn standardise(rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let d = rows.first().map_or(0, Vec::len);
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for r in rows {
        for (j, &v) in r.iter().enumerate() {
            mean[j] += v as f64 / n;
            sq[j] += (v as f64).powi(2) / n;
        }
    }
    let sd: Vec<f64> = (0..d)
        .map(|j| (sq[j] - mean[j].powi(2)).max(0.0).sqrt().max(1e-8))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(j, &v)| ((v as f64 - mean[j]) / sd[j]) as f32)
                .collect()
        })
        .collect()
}

/// ARI between clusters and labels over the labelled rows.
fn ari_on_labelled(
    assign: &[usize],
    labels: &[Option<usize>],
) -> Result<f64, sits::sits_ssl::SslError> {
    let (a, b): (Vec<usize>, Vec<usize>) = assign
        .iter()
        .zip(labels)
        .filter_map(|(&c, l)| l.map(|l| (c, l)))
        .unzip();
    adjusted_rand_index(&a, &b)
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
    let labels: Vec<Option<usize>> = cy.index.iter().map(|p| p.label).collect();
    let k = args.clusters;
    // every feature standardised over the pixel-years, so no dimension dominates the
    // Euclidean distance of k-means
    let (ssl_x, raw_x) = (standardise(&cy.ssl), standardise(&cy.raw));
    let ssl = kmeans(&ssl_x, k, 100, args.seed)?;
    let raw = kmeans(&raw_x, k, 100, args.seed)?;
    let ssl_ari = ari_on_labelled(&ssl.assignment, &labels)?;
    let raw_ari = ari_on_labelled(&raw.assignment, &labels)?;
    println!(
        "k-means (k = {k}) on all pixel-years: ARI with the {} labelled pixel-years ({} classes): SSL {ssl_ari:.3}, raw {raw_ari:.3}",
        labels.iter().flatten().count(),
        cy.class_names.len()
    );

    // one map per year, in the shared taxonomy
    sits::sits_data::io_util::prepare_run_dir(&args.out)?;
    let mut maps = Vec::new();
    for &year in &cy.years {
        let mut m = Array2::<i64>::from_elem((h, w), -1);
        for (i, p) in cy.index.iter().enumerate() {
            if p.year == year {
                m[[p.row, p.col]] = ssl.assignment[i] as i64;
            }
        }
        let img = RgbImage::from_labels(m.view()).upscale(8);
        let path = args.out.join(format!("clusters_{year}.png"));
        img.write_png(&path)?;
        maps.push(img);
    }
    let panel = args.out.join("clusters_all_years.png");
    RgbImage::hstack(&maps, 6).write_png(&panel)?;
    println!(
        "cluster maps per year: {}/clusters_<year>.png and {}",
        args.out.display(),
        panel.display()
    );

    // trajectories over the years: one cluster per pixel
    let per_year: Vec<Vec<Vec<f32>>> = cy
        .years
        .iter()
        .map(|&y| {
            let mut rows: Vec<(usize, usize, Vec<f32>)> = cy
                .index
                .iter()
                .zip(&ssl_x)
                .filter(|(p, _)| p.year == y)
                .map(|(p, e)| (p.row, p.col, e.clone()))
                .collect();
            rows.sort_by_key(|r| (r.0, r.1));
            rows.into_iter().map(|r| r.2).collect()
        })
        .collect();
    let traj = trajectories(&per_year)?;
    let tk = kmeans(&traj, k, 100, args.seed)?;
    let mut m = Array2::<i64>::zeros((h, w));
    for (p, &c) in tk.assignment.iter().enumerate() {
        m[[p / w, p % w]] = c as i64;
    }
    let tpath = args.out.join("trajectory_clusters.png");
    RgbImage::from_labels(m.view())
        .upscale(8)
        .write_png(&tpath)?;
    let mut sizes = vec![0usize; k];
    tk.assignment.iter().for_each(|&c| sizes[c] += 1);
    println!(
        "trajectory clusters ({} years per pixel): sizes {sizes:?} -> {}",
        cy.years.len(),
        tpath.display()
    );
    println!("result: ssl_cluster_ari={ssl_ari:.4} raw_cluster_ari={raw_ari:.4}");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
