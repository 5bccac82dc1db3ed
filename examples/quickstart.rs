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

use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::Parser;
use sits::experiment::{few_label_experiment, ExperimentConfig, ExperimentOutput, Method};
use sits::report::{confusion_chart, line_chart, markdown_table, scatter_chart};
use sits::sits_data::io_util::prepare_run_dir;
use sits::sits_data::open::open_samples;
use sits::sits_data::{datasets, Split};
use sits::sits_ssl::cluster::pca;
use sits::sits_ssl::metrics::ConfusionMatrix;

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

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn device(name: &str) -> Res<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).map_err(|e| {
            format!("--device cuda: {e} (build with `--features cuda` on a machine with CUDA)")
                .into()
        }),
        "metal" => Device::new_metal(0).map_err(|e| {
            format!("--device metal: {e} (build with `--features metal` on macOS)").into()
        }),
        d => Err(format!("--device {d:?}: expected cpu, cuda or metal").into()),
    }
}

fn pct(f: f64) -> String {
    format!("{} %", (f * 100.0).round())
}

/// Rows of the results table: one per (setting, fraction).
fn table_rows(out: &ExperimentOutput) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let probe_rows = [
        ("linear probe, raw series", &out.raw),
        ("linear probe, random-init encoder", &out.random),
        ("linear probe, SSL encoder", &out.ssl),
    ];
    for (name, res) in probe_rows {
        for r in res.iter() {
            rows.push(vec![
                name.to_string(),
                pct(r.fraction),
                r.n_train.to_string(),
                format!("{:.3}", r.oa),
                format!("{:.3}", r.macro_f1),
                format!("{:.3}", r.kappa),
            ]);
        }
    }
    for r in &out.finetune {
        rows.push(vec![
            "fine-tuned SSL encoder".to_string(),
            pct(r.fraction),
            r.n_train.to_string(),
            format!("{:.3}", r.oa),
            format!("{:.3}", r.macro_f1),
            format!("{:.3}", r.kappa),
        ]);
    }
    rows
}

fn at(res: &[sits::sits_ssl::probe::FractionResult], f: f64) -> f64 {
    res.iter()
        .find(|r| (r.fraction - f).abs() < 1e-9)
        .map_or(f64::NAN, |r| r.oa)
}

fn write_report(
    dir: &Path,
    args: &Args,
    data: &Path,
    cfg: &ExperimentConfig,
    out: &ExperimentOutput,
) -> Res<()> {
    // training curve: every step and the mean per epoch
    let steps: Vec<(f64, f64)> = out
        .history
        .iter()
        .map(|r| (r.step as f64, r.loss))
        .collect();
    let mut epochs: Vec<(f64, f64)> = Vec::new();
    let per_epoch = out.history.iter().filter(|r| r.epoch == 0).count().max(1);
    for e in 0..=out.history.last().map_or(0, |r| r.epoch) {
        let l: Vec<f64> = out
            .history
            .iter()
            .filter(|r| r.epoch == e)
            .map(|r| r.loss)
            .collect();
        if !l.is_empty() {
            let x = (e * per_epoch + per_epoch / 2) as f64;
            epochs.push((x, l.iter().sum::<f64>() / l.len() as f64));
        }
    }
    line_chart(
        &dir.join("loss.png"),
        &format!("{} pretraining loss", cfg.method),
        "step",
        "loss",
        &[("per step", &steps), ("epoch mean", &epochs)],
    )?;

    // the best model at 100 % labels
    let mut best = ("linear probe, SSL encoder", at(&out.ssl, 1.0), None);
    for (name, res) in [
        ("linear probe, raw series", &out.raw),
        ("linear probe, random-init encoder", &out.random),
    ] {
        if at(res, 1.0) > best.1 {
            best = (name, at(res, 1.0), None);
        }
    }
    let ft_full = out
        .finetune
        .iter()
        .find(|r| (r.fraction - 1.0).abs() < 1e-9);
    if let Some(ft) = ft_full {
        if ft.oa > best.1 {
            best = (
                "fine-tuned SSL encoder",
                ft.oa,
                Some(ft.predictions.clone()),
            );
        }
    }
    let preds = match best.2.clone() {
        Some(p) => p,
        None => {
            let res = match best.0 {
                "linear probe, raw series" => &out.raw,
                "linear probe, random-init encoder" => &out.random,
                _ => &out.ssl,
            };
            res.iter()
                .find(|r| (r.fraction - 1.0).abs() < 1e-9)
                .map(|r| r.predictions.clone())
                .unwrap_or_default()
        }
    };
    let truth: Vec<i64> = out.test_labels.iter().map(|&c| c as i64).collect();
    let pred: Vec<i64> = preds.iter().map(|&c| c as i64).collect();
    if !pred.is_empty() {
        let cm = ConfusionMatrix::from_labels(out.class_names.len(), &truth, &pred, None)?;
        confusion_chart(
            &dir.join("confusion.png"),
            &format!("{}, 100 % labels (test split)", best.0),
            &cm,
            &out.class_names,
        )?;
    }

    // PCA of the SSL test embeddings
    let (proj, explained) = pca(&out.test_embeddings, 2)?;
    let pts: Vec<[f64; 2]> = proj.iter().map(|p| [p[0], p[1]]).collect();
    scatter_chart(
        &dir.join("embeddings.png"),
        &format!(
            "SSL embeddings of the test series, PCA ({:.0} % + {:.0} % of variance)",
            100.0 * explained[0],
            100.0 * explained[1]
        ),
        &pts,
        &out.test_labels,
        &out.class_names,
    )?;

    let header = [
        "setting",
        "labels",
        "train series",
        "OA",
        "macro-F1",
        "kappa",
    ];
    let table = markdown_table(&header, &table_rows(out));
    let md = format!(
        "# sits quickstart report\n\n\
         Data: `{}` ({} test series). Method: `{}`. Seed: {}. Device: {}.\n\n\
         Pretraining: {} epochs, {} steps, {:.1} s; whole run {:.1} s.\n\n\
         {table}\n\
         Best model at 100 % labels: {} (OA {:.3}), confusion matrix in `confusion.png`.\n\n\
         ![loss](loss.png)\n\n![confusion](confusion.png)\n\n![embeddings](embeddings.png)\n\n\
         ## Configuration\n\n```json\n{}\n```\n",
        data.display(),
        out.test_labels.len(),
        cfg.method,
        cfg.seed,
        args.device,
        cfg.epochs,
        out.history.len(),
        out.pretrain_seconds,
        out.total_seconds,
        best.0,
        best.1,
        serde_json::to_string_pretty(cfg)?
    );
    sits::report::write_atomic(&dir.join("report.md"), md.as_bytes())?;
    let json = serde_json::json!({
        "config": cfg,
        "raw": out.raw, "random": out.random, "ssl": out.ssl, "finetune": out.finetune,
        "pretrain_seconds": out.pretrain_seconds, "total_seconds": out.total_seconds,
    });
    sits::report::write_atomic(
        &dir.join("results.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    Ok(())
}

fn run() -> Res<()> {
    let args = Args::parse();
    let device = device(&args.device)?;
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| sits::bundled_data_dir().join(datasets::MATO_GROSSO));
    // everything that can be checked before the long work: the output folder (made
    // and probed for writing), the kind of input, the splits and classes
    prepare_run_dir(&args.out)?;
    let set = open_samples(&data)?;
    if set.labels().is_none() {
        return Err(format!(
            "{}: the samples have no labels (no label or label_index column in samples.csv); \
             the few-label comparison needs labelled series",
            data.display()
        )
        .into());
    }
    if set.splits().is_none() {
        return Err(format!(
            "{}: samples.csv has no `split` column; mark each row train or test",
            data.display()
        )
        .into());
    }
    let (train, test) = (set.split(Split::Train)?, set.split(Split::Test)?);
    println!(
        "data: {} ({} train, {} test series, {} dates x {} bands, {} classes)",
        data.display(),
        train.len(),
        test.len(),
        set.max_len(),
        set.bands().len(),
        set.class_names().len()
    );
    let cfg = ExperimentConfig {
        method: args.method,
        epochs: args.epochs,
        seed: args.seed,
        checkpoint_dir: Some(args.out.join("checkpoints")),
        checkpoint_every: args.checkpoint_every,
        resume: args.resume,
        ..ExperimentConfig::default()
    };
    println!(
        "pretraining a pixel transformer ({} layers, width {}) with {} for {} epochs, then probes and fine-tuning",
        cfg.layers, cfg.d_model, cfg.method, cfg.epochs
    );
    let out = few_label_experiment(&train, &test, &cfg, &device)?;
    let header = [
        "setting",
        "labels",
        "train series",
        "OA",
        "macro-F1",
        "kappa",
    ];
    println!("\n{}", markdown_table(&header, &table_rows(&out)));
    let stages: Vec<String> = out
        .stage_seconds
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect();
    println!("time: {}", stages.join(", "));
    write_report(&args.out, &args, &data, &cfg, &out)?;
    println!(
        "report: {} (report.md, results.json, loss.png, confusion.png, embeddings.png); {:.0} s in all",
        args.out.display(),
        out.total_seconds
    );
    let ft100 = out
        .finetune
        .iter()
        .find(|r| (r.fraction - 1.0).abs() < 1e-9)
        .map_or(f64::NAN, |r| r.oa);
    println!(
        "result: method={} ssl_probe_oa@10={:.4} random_probe_oa@10={:.4} raw_probe_oa@10={:.4} \
         ssl_probe_oa@100={:.4} random_probe_oa@100={:.4} raw_probe_oa@100={:.4} finetune_oa@100={:.4}",
        cfg.method,
        at(&out.ssl, 0.1),
        at(&out.random, 0.1),
        at(&out.raw, 0.1),
        at(&out.ssl, 1.0),
        at(&out.random, 1.0),
        at(&out.raw, 1.0),
        ft100
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
