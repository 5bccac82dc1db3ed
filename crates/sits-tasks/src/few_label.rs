//! The few-label experiment as a job on a labelled sample set: the checks that can
//! be made before the long work, the run, its table, its report folder and its
//! machine-readable result line. The `sits experiment` command and the
//! `quickstart` example.

use std::path::Path;

use candle_core::Device;
use sits_data::open::open_samples;
use sits_data::{SampleSet, Split};
use sits_ssl::probe::FractionResult;

use crate::error::{Result, TaskError};
use crate::experiment::{
    few_label_experiment, few_label_experiment_with, ExperimentConfig, ExperimentOutput,
};
use crate::report::{markdown_table, write_atomic};

fn json_err(e: serde_json::Error) -> TaskError {
    TaskError::Settings(format!("serialising the results: {e}"))
}

/// The header of [`table_rows`].
pub const TABLE_HEADER: [&str; 6] = [
    "setting",
    "labels",
    "train series",
    "OA",
    "macro-F1",
    "kappa",
];

/// The training and test splits of the labelled sample set at `data` (a sample-table
/// folder or a sample-set Zarr store), refused with the fix when it has no labels or
/// no split column.
pub fn labelled_splits(data: &Path) -> Result<(SampleSet, SampleSet)> {
    let set = open_samples(data)?;
    if set.labels().is_none() {
        return Err(TaskError::input(
            data.display(),
            "the samples have no labels (no label or label_index column in samples.csv); \
             the few-label comparison needs labelled series",
        ));
    }
    if set.splits().is_none() {
        return Err(TaskError::input(
            data.display(),
            "samples.csv has no `split` column; mark each row train or test",
        ));
    }
    Ok((set.split(Split::Train)?, set.split(Split::Test)?))
}

/// Holds out a stratified `fraction` of `train` (seeded by `seed`) for model choices:
/// returns the rest and the held-out part, so that settings are compared without
/// reading the test split. Refused when either part would be empty.
pub fn validation_split(
    train: &SampleSet,
    fraction: f64,
    seed: u64,
) -> Result<(SampleSet, SampleSet)> {
    let labels = train.labels().ok_or_else(|| {
        TaskError::Settings("a validation split needs labelled training series".into())
    })?;
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(TaskError::Settings(format!(
            "the validation fraction must be in (0, 1), got {fraction}"
        )));
    }
    let keep = sits_ssl::probe::stratified_fraction(labels, 1.0 - fraction, seed);
    let mut held = vec![true; train.len()];
    for &i in &keep {
        held[i] = false;
    }
    let val: Vec<usize> = (0..train.len()).filter(|&i| held[i]).collect();
    if keep.is_empty() || val.is_empty() {
        return Err(TaskError::Settings(format!(
            "holding out {fraction} of {} training series leaves {} to train and {} to validate",
            train.len(),
            keep.len(),
            val.len()
        )));
    }
    Ok((train.subset(&keep)?, train.subset(&val)?))
}

/// Unlabelled series for pretraining from `path` (any input [`crate::input::read`]
/// accepts: a cube folder or Zarr cube is cut into periods of `dates` dates
/// starting on the first of `start_month`, every pixel a series; a sample set is
/// used as it is), gap-filled, labels dropped; then a seeded random `fraction` of
/// them (at least one). Nothing is normalised here.
pub fn unlabelled_series(
    path: &Path,
    dates: usize,
    start_month: u32,
    fraction: f64,
    seed: u64,
) -> Result<SampleSet> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(TaskError::Settings(format!(
            "the unlabelled fraction must be in (0, 1], got {fraction}"
        )));
    }
    let input = crate::input::read(path, None)?;
    let periods = crate::input::Periods {
        start_month,
        dates: Some(dates),
        any_length: false,
        keep_gaps: false,
    };
    let what = path.display().to_string();
    let (set, _, _) = crate::pretrain::training_series(&input, periods, true, &what)?;
    if set.is_empty() {
        return Err(TaskError::input(
            &what,
            format!("no series of {dates} dates (periods starting in month {start_month})"),
        ));
    }
    let n = set.len();
    let take = ((fraction * n as f64).round() as usize).clamp(1, n);
    let mut idx: Vec<usize> = (0..n).collect();
    {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    let mut idx = idx[..take].to_vec();
    idx.sort_unstable();
    let sub = set.subset(&idx)?;
    Ok(SampleSet::new(
        sub.series().to_vec(),
        sub.bands().to_vec(),
        None,
        Vec::new(),
        None,
    )?)
}

/// Runs the experiment on `train` and `test`.
pub fn run(
    train: &SampleSet,
    test: &SampleSet,
    cfg: &ExperimentConfig,
    device: &Device,
) -> Result<ExperimentOutput> {
    Ok(few_label_experiment(train, test, cfg, device)?)
}

/// Runs the experiment on `train` and `test` with `unlabelled` series added to the
/// pretraining set (see [`crate::experiment::few_label_experiment_with`]).
pub fn run_with_unlabelled(
    train: &SampleSet,
    test: &SampleSet,
    unlabelled: &SampleSet,
    cfg: &ExperimentConfig,
    device: &Device,
) -> Result<ExperimentOutput> {
    Ok(few_label_experiment_with(
        train,
        test,
        Some(unlabelled),
        cfg,
        device,
    )?)
}

/// The results table as Markdown.
pub fn table(out: &ExperimentOutput) -> String {
    markdown_table(&TABLE_HEADER, &table_rows(out))
}

/// The machine-readable last line of a run.
pub fn result_line(cfg: &ExperimentConfig, out: &ExperimentOutput) -> String {
    let ft100 = out
        .finetune
        .iter()
        .find(|r| (r.fraction - 1.0).abs() < 1e-9)
        .map_or(f64::NAN, |r| r.oa);
    format!(
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
    )
}

fn pct(f: f64) -> String {
    format!("{} %", (f * 100.0).round())
}

/// Rows of the results table: one per (setting, fraction): setting, labels, train
/// series, OA, macro-F1, kappa.
pub fn table_rows(out: &ExperimentOutput) -> Vec<Vec<String>> {
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

/// The overall accuracy at label fraction `f` (NaN if it was not run).
pub fn at(res: &[FractionResult], f: f64) -> f64 {
    res.iter()
        .find(|r| (r.fraction - f).abs() < 1e-9)
        .map_or(f64::NAN, |r| r.oa)
}

/// Writes the report of a run into `dir`: `loss.png` (pretraining curve),
/// `confusion.png` (the best model at 100 % labels), `embeddings.png` (PCA of the
/// SSL test embeddings), `report.md` and `results.json`. `device` is recorded.
pub fn write_report(
    dir: &Path,
    device: &str,
    data: &Path,
    cfg: &ExperimentConfig,
    out: &ExperimentOutput,
) -> Result<()> {
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
    #[cfg(feature = "plots")]
    write_charts(dir, cfg, out, &best)?;
    let charts = if crate::report::CHARTS {
        "![loss](loss.png)\n\n![confusion](confusion.png)\n\n![embeddings](embeddings.png)"
    } else {
        crate::report::NO_CHARTS
    };

    let table = markdown_table(&TABLE_HEADER, &table_rows(out));
    let md = format!(
        "# sits quickstart report\n\n\
         Data: `{}` ({} test series). Method: `{}`. Seed: {}. Device: {}.\n\n\
         Pretraining: {} epochs, {} steps, {:.1} s; whole run {:.1} s.\n\n\
         {table}\n\
         Best model at 100 % labels: {} (OA {:.3}).\n\n\
         {charts}\n\n\
         ## Configuration\n\n```json\n{}\n```\n",
        data.display(),
        out.test_labels.len(),
        cfg.method,
        cfg.seed,
        device,
        cfg.epochs,
        out.history.len(),
        out.pretrain_seconds,
        out.total_seconds,
        best.0,
        best.1,
        serde_json::to_string_pretty(cfg).map_err(json_err)?
    );
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    let json = serde_json::json!({
        "config": cfg,
        "raw": out.raw, "random": out.random, "ssl": out.ssl, "finetune": out.finetune,
        "pretrain_seconds": out.pretrain_seconds, "total_seconds": out.total_seconds,
    });
    write_atomic(
        &dir.join("results.json"),
        serde_json::to_string_pretty(&json)
            .map_err(json_err)?
            .as_bytes(),
    )?;
    Ok(())
}

/// The three charts of [`write_report`]; `best` is the best model at 100 % labels
/// (name, OA, fine-tuned predictions when it is the fine-tuned encoder).
#[cfg(feature = "plots")]
fn write_charts(
    dir: &Path,
    cfg: &ExperimentConfig,
    out: &ExperimentOutput,
    best: &(&str, f64, Option<Vec<usize>>),
) -> Result<()> {
    use crate::report::{confusion_chart, line_chart, scatter_chart};
    use sits_ssl::cluster::pca;
    use sits_ssl::metrics::ConfusionMatrix;

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

    Ok(())
}
