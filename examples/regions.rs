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
use sits::sits_core::io::IfExists;
use sits::sits_data::datasets;
use sits::tasks::cluster::{
    cluster, cluster_map, labels_by_pixel_halves, trajectory_map, ClusterConfig, Clusters,
};
use sits::tasks::input::{output_dir, Periods};
use sits::tasks::maps::write_map;
use sits::tasks::pretrain::{pretrain, PretrainConfig};

/// Clusters of the dtwSat cube's pixel-years.
#[derive(Parser, Debug)]
struct Args {
    /// Number of clusters.
    #[arg(long, default_value_t = 6)]
    clusters: usize,
    /// Pretraining epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Pretraining objective: bert, simclr, dino or alise (ALISE's aligned
    /// vectors become the embedding).
    #[arg(long, default_value = "bert")]
    method: sits::experiment::Method,
    /// Seed of pretraining and k-means.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/regions")]
    out: PathBuf,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = sits::bundled_data_dir()?.join(datasets::DTWSAT_CUBE);
    let out = output_dir(&args.out, &[&dir])?;
    let input = sits::tasks::input::read(&dir, None)?;
    // MOD13Q1 agricultural years: September to August, 23 composites
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
        "regions example",
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
    let ccfg = ClusterConfig {
        k: args.clusters,
        seed: args.seed,
        ..ClusterConfig::default()
    };
    // every feature standardised over the pixel-years, so no dimension dominates the
    // Euclidean distance of k-means
    let ssl = cluster(&pre.embed_training_series(&dev)?, &grid, &ccfg)?;
    let raw = cluster(
        &pre.raw_rows(),
        &grid,
        &ClusterConfig {
            trajectories: false,
            ..ccfg
        },
    )?;
    // the control: the same encoder (and projector, for ALISE) at its seeded random
    // initialisation, embedded and clustered the same way
    let mut rcfg = cfg.clone();
    rcfg.experiment.epochs = 0;
    let untrained = pretrain(
        &input,
        &rcfg,
        &dir.display().to_string(),
        "regions example (random init)",
        &dev,
    )?;
    let random = cluster(
        &untrained.embed_training_series(&dev)?,
        &grid,
        &ClusterConfig {
            trajectories: false,
            ..ccfg
        },
    )?;
    let (ssl_ari, raw_ari) = (ssl.ari.unwrap_or(f64::NAN), raw.ari.unwrap_or(f64::NAN));
    let random_ari = random.ari.unwrap_or(f64::NAN);
    println!(
        "k-means (k = {}) on all pixel-years: ARI with the {} labelled pixel-years ({} classes): SSL {ssl_ari:.3}, random init {random_ari:.3}, raw {raw_ari:.3}",
        ccfg.k,
        grid.labels().iter().flatten().count(),
        grid.class_names.len()
    );
    // the same clusters scored on two halves of the labelled pixels: settings (the
    // number of clusters, the method, its epochs) are chosen on the first half and
    // reported on the second
    let (val_labels, test_labels) = labels_by_pixel_halves(&grid);
    let halves = |c: &Clusters| {
        c.ari_halves
            .map_or("none".to_string(), |(a, b)| format!("{a:.4} / {b:.4}"))
    };
    println!(
        "ARI on the halves of the labelled pixels ({} / {} pixel-years; choose on the first): SSL {}, random init {}, raw {}",
        val_labels.iter().flatten().count(),
        test_labels.iter().flatten().count(),
        halves(&ssl),
        halves(&random),
        halves(&raw)
    );
    // one map per year in the shared taxonomy, and the trajectories over the years
    write_map(
        &out,
        &cluster_map(&ssl, &grid, "clusters")?,
        IfExists::Replace,
    )?;
    if let Some(traj) = &ssl.trajectory {
        write_map(
            &out,
            &trajectory_map(traj, &grid, "trajectory_clusters")?,
            IfExists::Replace,
        )?;
        let mut sizes = vec![0usize; ccfg.k];
        traj.iter().for_each(|&(_, _, c)| sizes[c] += 1);
        println!(
            "trajectory clusters ({} years per pixel): sizes {sizes:?}",
            grid.periods.len()
        );
    }
    println!(
        "maps: {}/clusters_<year>.png, clusters.png (all years), trajectory_clusters.png, and .zarr stores",
        out.display()
    );
    println!(
        "result: method={} ssl_cluster_ari={ssl_ari:.4} random_cluster_ari={random_ari:.4} raw_cluster_ari={raw_ari:.4}",
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
