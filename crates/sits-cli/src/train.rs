//! The commands that train a model: `pretrain` and `segment`.

use std::time::Instant;

use crate::args::{PretrainArgs, SegmentArgs};
use crate::*;

pub(crate) fn pretrain_cmd(a: PretrainArgs, device: &str, quiet: bool, start: Instant) -> Res<()> {
    let device = sits_tasks::device(device)?;
    if let Some(from) = a.from.clone() {
        // the model is loaded and checked before OUT is created
        let enc = published_to_continue(&from, &device)?;
        let out = output_dir(&a.out, &[&a.input])?;
        return continue_published(a, *enc, &from, &out, &device, start);
    }
    let out = output_dir(&a.out, &[&a.input])?;
    if !a.overwrite && out.join(sits_tasks::encoder::CARD_FILE).exists() {
        return Err(format!(
            "{}: an encoder is already saved here; choose another --out or add --overwrite",
            show(&out)
        )
        .into());
    }
    let input = read_with(&a.input, a.patch, &a.rasters.options()?)?;
    let cfg = PretrainConfig {
        periods: Periods {
            start_month: a.start_month,
            dates: a.dates,
            any_length: a.any_length,
            keep_gaps: false,
        },
        pooling: a.pooling,
        experiment: ExperimentConfig {
            method: a.method,
            epochs: a.epochs,
            seed: a.seed,
            d_model: a.d_model,
            layers: a.layers,
            heads: a.heads,
            batch_size: a.batch_size,
            lr: a.lr,
            progress: !quiet,
            ..ExperimentConfig::default()
        },
        max_series: a.max_series,
    };
    let pre = pretrain(&input, &cfg, &show(&a.input), &command_line(), &device)?;
    SavedEncoder::save(
        &out,
        &pre.card,
        &pre.pretrained.vars,
        if_exists(a.overwrite),
    )?;
    let h = pre.history();
    let first = h.first().map_or(f64::NAN, |r| r.loss);
    let last = h.last().map_or(f64::NAN, |r| r.loss);
    println!(
        "pretrained on {}; {}; saved to {}",
        pre.card.trained_on,
        pre.card.date_convention(),
        show(&out)
    );
    println!(
        "result: encoder={} series={} dates={} bands={} objective={} first_loss={first:.4} last_loss={last:.4} seconds={:.1}",
        show(&out),
        pre.series.len(),
        pre.card.dates(),
        pre.card.bands.join(","),
        pre.card.objective,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) fn segment_cmd(a: SegmentArgs, device: &str) -> Res<()> {
    use sits_tasks::segment::{segment, table, write_outputs, SegmentConfig, SegmentationInput};
    let device = sits_tasks::device(device)?;
    let out = output_dir(&a.out, &[&a.input])?;
    let folder = sits_data::folder::CubeFolder::read(&a.input)?;
    let layer = |name: &str| -> Res<ndarray::Array2<i64>> {
        let path = a.input.join(format!("{name}.npy"));
        let arr = folder.layer(name)?.to_i64(&path)?;
        let (_, _, h, w) = folder.cube.shape();
        if arr.shape() != [h, w] {
            return Err(format!(
                "{}: shape {:?}, expected the cube's (height, width) = ({h}, {w})",
                path.display(),
                arr.shape()
            )
            .into());
        }
        Ok(arr.into_shape_with_order((h, w))?)
    };
    let ids = layer(&a.labels)?;
    let split = layer(&a.split)?.mapv(|s| u8::try_from(s).unwrap_or(0));
    let (labels, class_names) = match &a.classes {
        Some(list) => (
            ids.mapv(|id| list.iter().position(|&c| c == id).map_or(-1, |i| i as i64)),
            list.iter()
                .map(|&id| {
                    usize::try_from(id)
                        .ok()
                        .and_then(|i| folder.class_names.get(i))
                        .filter(|n| !n.is_empty())
                        .cloned()
                        .unwrap_or_else(|| format!("class {id}"))
                })
                .collect(),
        ),
        None => (ids.mapv(|id| id.max(-1)), folder.class_names.clone()),
    };
    let cfg = SegmentConfig {
        epochs: a.epochs,
        utae_epochs: a.utae_epochs,
        finetune_epochs: a.finetune_epochs,
        min_clear: a.min_clear,
        class_balanced: a.class_balanced,
        seed: a.seed,
        save_encoder: Some(out.join("ubarn_pretrained.safetensors")),
        ..SegmentConfig::default()
    };
    let mut cfg = cfg;
    cfg.ubarn.input_dim = folder.cube.bands().len();
    let input = SegmentationInput {
        cube: folder.cube,
        labels,
        split,
        class_names,
        colors: Vec::new(),
    };
    let s = segment(&input, &cfg, &device)?;
    println!("{}", table(&s, &input.class_names));
    write_outputs(
        &out,
        &input,
        &cfg,
        &s,
        &format!("Command: `{}`", command_line()),
    )?;
    println!(
        "{} of {} dates kept, {} train and {} test pixels; outputs in {}",
        s.dates_kept.0,
        s.dates_kept.1,
        s.pixels.0,
        s.pixels.1,
        show(&out)
    );
    println!("{} seconds={:.1}", s.result_line(), s.seconds);
    Ok(())
}

/// `sits pretrain --from presto:PATH`: continued pretraining of a published model.
/// The published model `--from` names, if it can continue its pretraining.
fn published_to_continue(
    from: &Path,
    device: &Device,
) -> Res<Box<sits_tasks::published::PublishedEncoder>> {
    use sits_tasks::encoder::TaskEncoder;
    let TaskEncoder::Published(enc) = TaskEncoder::load(from, device)? else {
        return Err(format!(
            "--from {}: give a published model (presto:PATH); to train an encoder of this \
             library from scratch, leave --from out",
            show(from)
        )
        .into());
    };
    if !matches!(
        enc.model,
        sits_tasks::published::PublishedModel::Presto { .. }
    ) {
        return Err(format!(
            "--from {}: continued pretraining is available for Presto (presto:PATH); {} is \
             used frozen (sits embed --encoder {})",
            show(from),
            enc.model.name(),
            show(from)
        )
        .into());
    }
    Ok(enc)
}

fn continue_published(
    a: PretrainArgs,
    enc: sits_tasks::published::PublishedEncoder,
    from: &Path,
    out: &Path,
    device: &Device,
    start: Instant,
) -> Res<()> {
    use sits_tasks::published::{ContinuedPretraining, CONTINUED_WEIGHTS};
    let what = show(&a.input);
    let input = read_with(&a.input, a.patch, &a.rasters.options()?)?;
    let (set, locations) = match &input {
        sits_tasks::input::Input::Cube { cube, .. } => {
            enc.check_bands(&what, cube.bands())?;
            let pp = sits_tasks::input::pixel_periods(cube, &[], &[], enc.periods(), &what)?;
            let locs = sits_tasks::embed::grid_locations(&pp.grid)?.ok_or_else(|| {
                format!(
                    "{what}: Presto reads each pixel's location; the cube has no CRS and \
                     geotransform"
                )
            })?;
            (pp.set, locs)
        }
        sits_tasks::input::Input::Samples(set) => {
            let locs = sits_data::points::sample_locations(&a.input, set.ids())?.ok_or_else(
                || format!("{what}: Presto reads each series' location; samples.csv has no longitude/latitude columns"),
            )?;
            ((**set).clone(), locs)
        }
    };
    let set = match a.max_series {
        Some(n) if n < set.len() => {
            let step = set.len() as f64 / n as f64;
            let idx: Vec<usize> = (0..n).map(|i| (i as f64 * step) as usize).collect();
            let locs: Vec<[f64; 2]> = idx.iter().map(|&i| locations[i]).collect();
            (set.subset(&idx)?, locs)
        }
        _ => (set, locations),
    };
    let defaults = ContinuedPretraining::default();
    let cfg = ContinuedPretraining {
        train: sits_ssl::train::TrainConfig {
            epochs: a.epochs,
            lr: a.lr,
            min_lr: a.lr / 100.0,
            seed: a.seed,
            progress: false,
            ..defaults.train
        },
        batch_size: a.batch_size,
        resume: a.resume,
        if_exists: if_exists(a.overwrite),
        ..defaults
    };
    let log = enc.continue_pretraining(&what, &set.0, &set.1, &cfg, out, device)?;
    let epoch_loss = |e: usize| sits_ssl::train::epoch_mean_loss(&log, e);
    let last = log.last().map_or(0, |r| r.epoch);
    let first = log.first().map_or(0, |r| r.epoch);
    let weights = out.join(CONTINUED_WEIGHTS);
    println!(
        "continued pretraining of {} on {} series; use it as presto:{}",
        show(from),
        set.0.len(),
        show(&weights)
    );
    println!(
        "result: weights={} series={} epochs={} first_loss={:.4} last_loss={:.4} seconds={:.1}",
        show(&weights),
        set.0.len(),
        a.epochs,
        epoch_loss(first),
        epoch_loss(last),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
