//! Published foundation models against the raw series on the bundled Mato Grosso
//! samples: Presto and Galileo nano frozen, the same cross-validated linear probe as
//! the few-label experiment at 1 %, 5 %, 10 % and 100 % of the training labels,
//! several seeds (the seed draws the labelled subset).
//!
//! ```text
//! cargo run --release --example published_probe -- \
//!     --presto ../shared/weights/presto/default_model.pt --galileo ../shared/weights/galileo_nano
//! ```
//!
//! Both read the MODIS blue, red, NIR and MIR bands as Sentinel-2 B2, B4, B8/B8A
//! and B12 (see `sits_models::presto::input`), composited by calendar month, with
//! each sample's longitude and latitude from `samples.csv`. The last line is
//! machine-readable (`result: ...`).

use std::path::PathBuf;

use clap::Parser;
use sits::sits_data::norm::NormStats;
use sits::sits_data::points::sample_locations;
use sits::sits_data::{datasets, SampleSet, Split};
use sits::sits_ssl::probe::{features, label_fraction_probes, FractionResult, ProbeConfig};
use sits::tasks::experiment::raw_rows;
use sits::tasks::published::PublishedEncoder;

/// Presto and Galileo frozen against the raw series.
#[derive(Parser, Debug)]
struct Args {
    /// Presto's published `default_model.pt` (or a folder holding it).
    #[arg(long, default_value = "../shared/weights/presto/default_model.pt")]
    presto: PathBuf,
    /// The folder of Galileo nano's published `encoder.pt`, `config.json` and
    /// `normalization.json` (`none` to leave Galileo out).
    #[arg(long, default_value = "../shared/weights/galileo_nano")]
    galileo: PathBuf,
    /// Number of seeds (0, 1, ...).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Also continue Presto's pretraining on the pixels of this unlabelled cube
    /// (agricultural years from September) and probe the result.
    #[arg(long)]
    continue_on: Option<PathBuf>,
    /// Epochs of continued pretraining.
    #[arg(long, default_value_t = 10)]
    continue_epochs: usize,
    /// Learning rate of continued pretraining.
    #[arg(long, default_value_t = 1e-4)]
    continue_lr: f64,
    /// Folder for the continued model and its checkpoints.
    #[arg(long, default_value = "out/presto_continued")]
    continue_out: PathBuf,
    /// Seed of continued pretraining (the batches and the hidden tokens).
    #[arg(long, default_value_t = 0)]
    continue_seed: u64,
}

fn stat(v: &[f64]) -> String {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    format!("{m:.3} ± {sd:.3}")
}

fn locations(
    dir: &std::path::Path,
    set: &SampleSet,
) -> Result<Vec<[f64; 2]>, Box<dyn std::error::Error>> {
    sample_locations(dir, set.ids())?
        .ok_or_else(|| format!("{}: samples.csv has no longitude/latitude", dir.display()).into())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dev = candle_core::Device::Cpu;
    let dir = sits::bundled_data_dir()?.join(datasets::MATO_GROSSO);
    let set = datasets::mato_grosso(&dir)?;
    let (train, test) = (set.split(Split::Train)?, set.split(Split::Test)?);
    let classes = set.class_names().len();
    let (ytr, yte) = (
        train.labels().ok_or("no labels")?.to_vec(),
        test.labels().ok_or("no labels")?.to_vec(),
    );

    let t0 = std::time::Instant::now();
    let mut presto = PublishedEncoder::presto(&args.presto, &dev)?;
    presto.start_month = 9;
    let ptr = presto.embed_samples("train", &train, &locations(&dir, &train)?, &dev)?;
    let pte = presto.embed_samples("test", &test, &locations(&dir, &test)?, &dev)?;
    println!(
        "Presto: {} + {} series embedded ({} values each) in {:.1} s",
        ptr.len(),
        pte.len(),
        presto.embedding_len(),
        t0.elapsed().as_secs_f64()
    );

    let mut galileo = None;
    if args.galileo.as_os_str() != "none" {
        let t0 = std::time::Instant::now();
        let mut g = PublishedEncoder::galileo(&args.galileo, &dev)?;
        g.start_month = 9;
        let gtr = g.embed_samples("train", &train, &locations(&dir, &train)?, &dev)?;
        let gte = g.embed_samples("test", &test, &locations(&dir, &test)?, &dev)?;
        println!(
            "Galileo: {} + {} series embedded ({} values each) in {:.1} s",
            gtr.len(),
            gte.len(),
            g.embedding_len(),
            t0.elapsed().as_secs_f64()
        );
        galileo = Some((gtr, gte));
    }

    let mut continued = None;
    if let Some(cube_path) = &args.continue_on {
        use sits::tasks::embed::grid_locations;
        use sits::tasks::input::{pixel_periods, read, Input};
        let Input::Cube { cube, .. } = read(cube_path, None)? else {
            return Err(format!("{}: not a cube", cube_path.display()).into());
        };
        let periods = sits::tasks::input::Periods {
            start_month: 9,
            ..presto.periods()
        };
        let pp = pixel_periods(&cube, &[], &[], periods, "unlabelled cube")?;
        let locs = grid_locations(&pp.grid)?.ok_or("the cube has no georeference")?;
        let cfg = sits::tasks::published::ContinuedPretraining {
            train: sits::sits_ssl::train::TrainConfig {
                epochs: args.continue_epochs,
                lr: args.continue_lr,
                min_lr: args.continue_lr / 100.0,
                seed: args.continue_seed,
                progress: false,
                ..sits::tasks::published::ContinuedPretraining::default().train
            },
            if_exists: sits::sits_core::io::IfExists::Replace,
            ..Default::default()
        };
        let t1 = std::time::Instant::now();
        let log = presto.continue_pretraining(
            "unlabelled cube",
            &pp.set,
            &locs,
            &cfg,
            &args.continue_out,
            &dev,
        )?;
        let epoch_loss = |e: usize| sits::sits_ssl::train::epoch_mean_loss(&log, e);
        println!(
            "continued pretraining on {} pixel-years, {} epochs in {:.0} s: loss {:.4} -> {:.4}",
            pp.set.len(),
            args.continue_epochs,
            t1.elapsed().as_secs_f64(),
            epoch_loss(0),
            epoch_loss(args.continue_epochs.saturating_sub(1))
        );
        continued = Some((
            presto.embed_samples("train", &train, &locations(&dir, &train)?, &dev)?,
            presto.embed_samples("test", &test, &locations(&dir, &test)?, &dev)?,
        ));
    }

    let stats = NormStats::of_samples(&train, 1e-4)?;
    let (mut ntr, mut nte) = (train.clone(), test.clone());
    stats.apply_samples(&mut ntr)?;
    stats.apply_samples(&mut nte)?;
    let mut inputs = vec![
        ("raw", raw_rows(&ntr), raw_rows(&nte)),
        ("presto", ptr, pte),
    ];
    if let Some((gtr, gte)) = galileo {
        inputs.push(("galileo", gtr, gte));
    }
    if let Some((ctr, cte)) = continued {
        inputs.push(("presto_continued", ctr, cte));
    }
    let fractions = [0.01, 0.05, 0.1, 1.0];
    let mut results: Vec<Vec<Vec<FractionResult>>> = Vec::new();
    for (_, tr, te) in &inputs {
        let (xtr, xte) = (features(tr, &dev)?, features(te, &dev)?);
        let mut per_seed = Vec::new();
        for seed in 0..args.seeds {
            per_seed.push(label_fraction_probes(
                &xtr,
                &ytr,
                &xte,
                &yte,
                classes,
                &fractions,
                seed,
                ProbeConfig::default(),
            )?);
        }
        results.push(per_seed);
    }
    println!("\n{} seeds (mean ± standard deviation)\n", args.seeds);
    let names: Vec<&str> = inputs.iter().map(|i| i.0).collect();
    println!(
        "| labels | {} | {} |",
        names
            .iter()
            .map(|n| format!("{n} OA"))
            .collect::<Vec<_>>()
            .join(" | "),
        names
            .iter()
            .map(|n| format!("{n} F1"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|{}", " --- |".repeat(1 + 2 * names.len()));
    let col = |k: usize, i: usize, f: fn(&FractionResult) -> f64| {
        stat(&results[k].iter().map(|r| f(&r[i])).collect::<Vec<_>>())
    };
    let mut line = format!("result: seeds={}", args.seeds);
    for (i, f) in fractions.iter().enumerate() {
        let oa: Vec<String> = (0..names.len()).map(|k| col(k, i, |r| r.oa)).collect();
        let f1: Vec<String> = (0..names.len())
            .map(|k| col(k, i, |r| r.macro_f1))
            .collect();
        println!(
            "| {:.0} % | {} | {} |",
            f * 100.0,
            oa.join(" | "),
            f1.join(" | ")
        );
        for (k, (name, _, _)) in inputs.iter().enumerate() {
            line.push_str(&format!(
                " {name}_oa@{:.0}={}",
                f * 100.0,
                col(k, i, |r| r.oa).replace(" ± ", "±")
            ));
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
