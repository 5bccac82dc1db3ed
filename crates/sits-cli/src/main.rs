//! `sits`: self-supervised learning on your own satellite image time series, from
//! the command line.
//!
//! ```text
//! sits inspect   INPUT
//! sits convert   INPUT OUTPUT
//! sits pretrain  INPUT --out ENCODER_DIR
//! sits embed     INPUT --encoder ENCODER_DIR --out DIR
//! sits cluster   INPUT [--encoder ENCODER_DIR] --out DIR
//! sits changes   INPUT [--encoder ENCODER_DIR] --out DIR
//! sits classify  INPUT --encoder ENCODER_DIR [--points LABELLED] --out DIR
//! sits segment   CUBE_FOLDER --labels LAYER --split LAYER --out DIR
//! sits experiment [--data LABELLED] --out DIR
//! ```
//!
//! INPUT is a sample-table folder, a cube folder, a cube or sample-set Zarr store,
//! or a PASTIS folder with `--patch ID`. Every command ends with one
//! machine-readable line, `result: key=value ...`. See `docs/cli.md`.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use clap::Parser;
use sits_core::io::IfExists;
use sits_tasks::blockwise;
use sits_tasks::changes::{changes, Distance};
use sits_tasks::classify::{class_map, classify, points_for, ClassifyConfig, Points};
use sits_tasks::cluster::{cluster, cluster_map, trajectory_map, ClusterConfig};
use sits_tasks::embed::{
    embed_cube, embed_to_zarr, read_embeddings, write_rgb_pngs, CubeSource, Embeddings,
    StreamOptions,
};
use sits_tasks::encoder::{SavedEncoder, TaskEncoder};
use sits_tasks::experiment::ExperimentConfig;
use sits_tasks::input::{
    is_point_table, labelled_pixel_series, output_dir, read_cube_with, read_with, with_points,
    Input, Periods,
};
use sits_tasks::maps::write_map;
use sits_tasks::pretrain::{pretrain, PretrainConfig};
use sits_tasks::shard::Shard;
use sits_tasks::{few_label, TaskError};

mod args;
mod train;

use args::{Cli, Command, MapIo};
use train::{pretrain_cmd, segment_cmd};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn if_exists(overwrite: bool) -> IfExists {
    if overwrite {
        IfExists::Replace
    } else {
        IfExists::Refuse
    }
}

/// The command as typed, with the program named `sits` whatever its path.
fn command_line() -> String {
    std::iter::once("sits".to_string())
        .chain(std::env::args().skip(1).filter(|a| a != "--quiet"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn spinner(quiet: bool, msg: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

fn main() {
    // large activation tensors reuse freed memory (see the function's docs)
    sits_core::memory::reuse_large_allocations();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Res<()> {
    let start = Instant::now();
    match cli.command {
        Command::Inspect { input, rasters } => {
            for line in sits_tasks::inspect::describe_with(&input, &rasters.options()?)? {
                println!("{line}");
            }
            println!("result: input={}", show(&input));
        }
        Command::Convert {
            input,
            output,
            patch,
            overwrite,
            rasters,
        } => {
            let c = sits_tasks::convert::convert_with(
                &input,
                &output,
                patch,
                if_exists(overwrite),
                &rasters.options()?,
            )?;
            if !c.not_converted.is_empty() {
                println!("note: extra layers {:?} are not converted", c.not_converted);
            }
            println!(
                "result: kind={} values={} to={} output={} seconds={:.1}",
                c.kind.replace(' ', "_"),
                c.values,
                c.to.replace(' ', "_"),
                show(&output),
                start.elapsed().as_secs_f64()
            );
        }
        Command::Pretrain(a) => pretrain_cmd(a, &cli.device, cli.quiet, start)?,
        Command::Search {
            api,
            collections,
            bbox,
            datetime,
            max_cloud_cover,
            max_items,
            out,
            overwrite,
        } => {
            let bbox = match bbox.as_deref() {
                None => None,
                Some(&[a, b, c, d]) => Some([a, b, c, d]),
                Some(v) => return Err(format!("--bbox takes 4 numbers, got {}", v.len()).into()),
            };
            sits_data::io_util::check_file_output(&out, if_exists(overwrite))?;
            let found = sits_data::stac::search(&sits_data::stac::StacSearch {
                api: api.clone(),
                collections,
                bbox,
                datetime,
                max_cloud_cover,
                limit: None,
                max_items: Some(max_items),
            })?;
            let n = found["features"].as_array().map_or(0, Vec::len);
            let bytes = serde_json::to_vec_pretty(&found)?;
            sits_data::io_util::write_new(&out, &bytes, if_exists(overwrite))?;
            println!("{n} items from {api} saved to {}", show(&out));
            println!("result: items={n} out={}", show(&out));
        }
        Command::Verify { store } => {
            let w = sits_data::zarr::SharedCubeWriter::open(&store)?;
            let missing = w.missing()?;
            let blocks = w.blocks().len();
            for (r, c) in missing.iter().take(20) {
                println!("missing: block at row {r}, col {c}");
            }
            if missing.len() > 20 {
                println!("... and {} more", missing.len() - 20);
            }
            println!(
                "result: store={} blocks={blocks} done={} missing={}",
                show(&store),
                blocks - missing.len(),
                missing.len()
            );
            if !missing.is_empty() {
                return Err(format!(
                    "{}: {} of {blocks} blocks are missing; rerun the shards that own them \
                     (done blocks are skipped)",
                    show(&store),
                    missing.len()
                )
                .into());
            }
        }
        Command::Embed {
            io,
            encoder,
            block,
            shard,
        } => {
            let shard = shard_of(shard.as_deref())?;
            let device = sits_tasks::device(&cli.device)?;
            let enc = TaskEncoder::load(&encoder, &device)?;
            let out = output_dir(&io.out, &[&io.input])?;
            let what = show(&io.input);
            let zarr = sits_data::zarr::store::join(&out, "embeddings.zarr");
            let remote = sits_data::zarr::is_remote(&out);
            let ow = if_exists(io.overwrite);
            let opts = StreamOptions {
                block,
                if_exists: ow,
                // images are written to a local run folder only
                rgb_max_pixels: if remote { 0 } else { 64 << 20 },
                shard,
            };
            let bar = if cli.quiet {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(0)
            };
            let mut tick = |i: usize, n: usize| {
                bar.set_length(n as u64);
                bar.set_position(i as u64);
            };
            // a Zarr cube is streamed a block at a time; other layouts are read whole
            let done = match sits_data::open::open_with(&io.input, &io.rasters.options()?)? {
                sits_data::open::Opened::ZarrCube(z) => {
                    let src = CubeSource::Zarr(&z);
                    embed_to_zarr(&enc, &src, &what, &zarr, opts, &device, &mut tick)?
                }
                sits_data::open::Opened::Rasters(r) => {
                    let src = CubeSource::Rasters(&r);
                    embed_to_zarr(&enc, &src, &what, &zarr, opts, &device, &mut tick)?
                }
                _ => {
                    let Input::Cube { cube, .. } =
                        read_cube_with(&io.input, io.patch, &io.rasters.options()?)?
                    else {
                        return Err("not a cube".into());
                    };
                    let src = CubeSource::Memory(&cube);
                    embed_to_zarr(&enc, &src, &what, &zarr, opts, &device, &mut tick)?
                }
            };
            bar.finish_and_clear();
            match &done.rgb {
                Some(images) => {
                    write_rgb_pngs(images, &done.periods, &out, ow)?;
                }
                None if shard.is_some() => println!("note: no PNG for a shard"),
                None if remote => println!("note: no PNG on object storage"),
                None => println!("note: no PNG (more than 64 M pixels in all periods)"),
            }
            // a GeoTIFF per period for a GIS, when one process wrote the whole local store
            if shard.is_none() && !remote {
                let tifs = sits_tasks::embed::embeddings_geotiffs(&zarr, &out, ow)?;
                let first = tifs.first().map(|p| show(p)).unwrap_or_default();
                println!(
                    "wrote {} GeoTIFF(s) of the embeddings, from {first}",
                    tifs.len()
                );
            }
            println!(
                "embedded {} pixel-periods (periods {:?}) in {} blocks with {}; wrote {}",
                done.pixel_periods,
                done.periods,
                done.blocks,
                show(&encoder),
                show(&zarr)
            );
            let shard_txt =
                shard.map_or("none".to_string(), |s| format!("{}/{}", s.index, s.count));
            println!(
                "result: pixel_periods={} periods={} dims={} skipped={} blocks={} shard={shard_txt} blocks_done_before={} seconds={:.1}",
                done.pixel_periods,
                done.periods.len(),
                done.dims,
                done.skipped,
                done.blocks,
                done.blocks_done_before,
                start.elapsed().as_secs_f64()
            );
        }
        Command::Cluster {
            io,
            encoder,
            k,
            seed,
            restarts,
            fit,
            sample,
            shard,
        } => {
            let cfg = ClusterConfig {
                k,
                seed,
                restarts,
                ..ClusterConfig::default()
            };
            if fit {
                let out = output_dir(&io.out, &[&io.input])?;
                no_encoder(encoder.as_deref(), "cluster --fit")?;
                let emb = blockwise::open_embeddings(&io.input)?;
                let pb = spinner(cli.quiet, "fitting");
                let m = blockwise::fit_clusters(&emb, &show(&io.input), &cfg, sample)?;
                pb.finish_and_clear();
                let p = blockwise::save_model(
                    &out,
                    blockwise::CLUSTER_MODEL,
                    &m,
                    if_exists(io.overwrite),
                )?;
                println!(
                    "k-means (k = {k}) fitted on {} pixel-periods of {}; the shards assign \
                     with {}",
                    m.sample_rows,
                    show(&io.input),
                    show(&p)
                );
                println!(
                    "result: k={k} sample_rows={} inertia={:.1} seconds={:.1}",
                    m.sample_rows,
                    m.inertia,
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if let Some(shard) = shard_of(shard.as_deref())? {
                no_encoder(encoder.as_deref(), "a cluster shard")?;
                return shard_pass(&io, "clusters.zarr", shard, cli.quiet, start, |p| {
                    let fit = format!(
                        "sits cluster {} --out {} --k {k} --fit",
                        p.what,
                        show(p.out)
                    );
                    let m: blockwise::ClusterModel =
                        blockwise::load_model(p.out, blockwise::CLUSTER_MODEL, &fit)?;
                    Ok(blockwise::cluster_pass(
                        p.emb, p.what, &m, p.store, shard, p.tick,
                    )?)
                });
            }
            let device = sits_tasks::device(&cli.device)?;
            let out = output_dir(&io.out, &[&io.input])?;
            let e = embeddings(&io, encoder.as_deref(), cli.quiet, &device)?;
            let c = cluster(&e.rows, &e.grid, &cfg)?;
            let ow = if_exists(io.overwrite);
            write_map(&out, &cluster_map(&c, &e.grid, "clusters")?, ow)?;
            if let Some(t) = &c.trajectory {
                write_map(
                    &out,
                    &trajectory_map(t, &e.grid, "trajectory_clusters")?,
                    ow,
                )?;
            }
            println!(
                "k-means (k = {k}) on {} pixel-periods: cluster sizes {:?}; maps in {}",
                e.rows.len(),
                c.sizes,
                show(&out)
            );
            let ari = c.ari.map_or("none".into(), |a| format!("{a:.4}"));
            // the same clusters on two halves of the labelled pixels: choose k on the
            // first, report the second
            let (first, second) = c
                .ari_halves
                .map_or(("none".into(), "none".into()), |(a, b)| {
                    (format!("{a:.4}"), format!("{b:.4}"))
                });
            println!(
                "result: k={k} pixel_periods={} inertia={:.1} ari={ari} ari_first_half={first} ari_second_half={second} trajectories={} seconds={:.1}",
                e.rows.len(),
                c.inertia,
                c.trajectory.as_ref().map_or(0, Vec::len),
                start.elapsed().as_secs_f64()
            );
        }
        Command::Changes { io, encoder, shard } => {
            if let Some(shard) = shard_of(shard.as_deref())? {
                no_encoder(encoder.as_deref(), "a changes shard")?;
                return shard_pass(&io, "changes.zarr", shard, cli.quiet, start, |p| {
                    Ok(blockwise::changes_pass(
                        p.emb, p.what, p.store, shard, p.tick,
                    )?)
                });
            }
            let device = sits_tasks::device(&cli.device)?;
            let out = output_dir(&io.out, &[&io.input])?;
            let e = embeddings(&io, encoder.as_deref(), cli.quiet, &device)?;
            let ch = changes(&e.rows, &e.grid, Distance::Cosine)?;
            write_map(&out, &ch.map(&e.grid, "changes")?, if_exists(io.overwrite))?;
            for ((a, b), n) in ch.pairs.iter().zip(&ch.labelled_per_pair) {
                println!("{a}-{b}: {n} labelled pixels in both periods");
            }
            let auc = ch.auc()?.map_or("none".into(), |a| format!("{a:.4}"));
            println!(
                "result: pairs={} mean_score={:.4} auc={auc} labelled_pairs={} seconds={:.1}",
                ch.pairs.len(),
                ch.mean_score(),
                ch.labelled.len(),
                start.elapsed().as_secs_f64()
            );
        }
        Command::Classify {
            io,
            encoder,
            points,
            fit,
            shard,
        } => {
            let device = sits_tasks::device(&cli.device)?;
            let shard = if fit {
                None
            } else {
                shard_of(shard.as_deref())?
            };
            if let Some(shard) = shard {
                return shard_pass(&io, "classes.zarr", shard, cli.quiet, start, |p| {
                    let fit = format!(
                        "sits classify {} --encoder ENC --points SET --out {} --fit",
                        p.what,
                        show(p.out)
                    );
                    let m: blockwise::ProbeModel =
                        blockwise::load_model(p.out, blockwise::PROBE_MODEL, &fit)?;
                    Ok(blockwise::classify_pass(
                        p.emb, p.what, &m, p.store, shard, &device, p.tick,
                    )?)
                });
            }
            let encoder = encoder.ok_or(
                "--encoder is needed to embed the cube and the points (only a shard reads the \
                 probe saved by --fit)",
            )?;
            let enc = TaskEncoder::load(&encoder, &device)?;
            let saved = || {
                enc.view().saved().ok_or_else(|| {
                    format!(
                        "{}: a published encoder reads labelled points given as a \
                         longitude/latitude table, placed on the cube (`sits classify CUBE \
                         --points TABLE --encoder {}`); a sample set or --fit needs an \
                         encoder folder",
                        show(&encoder),
                        show(&encoder)
                    )
                })
            };
            if fit {
                let points = points.ok_or(
                    "--fit needs --points: a labelled sample set with the encoder's bands",
                )?;
                if is_point_table(&points) {
                    return Err(format!(
                        "{}: --fit reads a labelled sample set; points in longitude/latitude \
                         are placed on a cube by `sits classify CUBE --points TABLE` without --fit",
                        show(&points)
                    )
                    .into());
                }
                let out = output_dir(&io.out, &[&io.input, &points])?;
                let emb = blockwise::open_embeddings(&io.input)?;
                let set = points_for(saved()?, &points)?;
                let pts = Points::from_samples(saved()?, &set, &device)?;
                if emb.shape()[1] != enc.view().embedding_len() {
                    return Err(format!(
                        "{}: embeddings of {} dimensions, but the encoder {} makes {}: give \
                         the encoder that made the store",
                        show(&io.input),
                        emb.shape()[1],
                        show(&encoder),
                        enc.view().embedding_len()
                    )
                    .into());
                }
                let m = blockwise::ProbeModel::train(
                    &pts,
                    &ClassifyConfig::default(),
                    &show(&encoder),
                    &show(&points),
                    &device,
                )?;
                let p = blockwise::save_model(
                    &out,
                    blockwise::PROBE_MODEL,
                    &m,
                    if_exists(io.overwrite),
                )?;
                let f = |x: Option<f64>| x.map_or("none".into(), |v| format!("{v:.4}"));
                println!(
                    "probe trained on {} points, scored on {} test points; the shards \
                     predict with {}",
                    m.n_train,
                    m.n_test,
                    show(&p)
                );
                println!(
                    "result: train_points={} test_points={} test_oa={} test_macro_f1={} seconds={:.1}",
                    m.n_train,
                    m.n_test,
                    f(m.test_oa),
                    f(m.test_macro_f1),
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            let out = output_dir(&io.out, &[&io.input])?;
            // the labelled points are checked before the cube is embedded
            let table = points.as_deref().filter(|p| is_point_table(p));
            let pts_set = match &points {
                Some(p) if table.is_none() => Some(points_for(saved()?, p)?),
                _ => None,
            };
            let mut input = read_cube_with(&io.input, io.patch, &io.rasters.options()?)?;
            if let Some(table) = table {
                let (labelled, refused) = with_points(input, table)?;
                print_refused(&refused);
                input = labelled;
            }
            let pb = spinner(cli.quiet, "embedding");
            let (e, _) = embed_cube(&enc, &input, &show(&io.input), &device)?;
            let pts = match pts_set {
                Some(set) => Points::from_samples(saved()?, &set, &device)?,
                None => Points::from_grid(&e.rows, &e.grid),
            };
            pb.finish_and_clear();
            let c = classify(&e.rows, &pts, &ClassifyConfig::default(), &device)?;
            write_map(
                &out,
                &class_map(&c, &e.grid, "classes")?,
                if_exists(io.overwrite),
            )?;
            println!(
                "probe trained on {} points, scored on {} test points; class maps in {}",
                c.n_train,
                c.n_test,
                show(&out)
            );
            let f = |x: Option<f64>| x.map_or("none".into(), |v| format!("{v:.4}"));
            println!(
                "result: train_points={} test_points={} test_oa={} test_macro_f1={} pixel_periods={} seconds={:.1}",
                c.n_train,
                c.n_test,
                f(c.test_oa),
                f(c.test_macro_f1),
                e.rows.len(),
                start.elapsed().as_secs_f64()
            );
        }
        Command::Segment(a) => segment_cmd(a, &cli.device)?,
        Command::Experiment {
            data,
            points,
            method,
            epochs,
            seed,
            out,
        } => {
            let device = sits_tasks::device(&cli.device)?;
            let data = match data {
                Some(d) => d,
                None => sits_tasks::bundled_data_dir()?.join(sits_data::datasets::MATO_GROSSO),
            };
            let out = output_dir(&out, &[&data])?;
            let (train, test) = match &points {
                None => few_label::labelled_splits(&data)?,
                Some(p) => {
                    let (labelled, refused) =
                        with_points(read_cube_with(&data, None, &Default::default())?, p)?;
                    print_refused(&refused);
                    let Input::Cube {
                        cube,
                        labels,
                        class_names,
                    } = labelled
                    else {
                        return Err("not a cube".into());
                    };
                    let set = labelled_pixel_series(&cube, &labels, &class_names)?;
                    (
                        set.split(sits_data::Split::Train)?,
                        set.split(sits_data::Split::Test)?,
                    )
                }
            };
            let cfg = ExperimentConfig {
                method,
                epochs,
                seed,
                progress: !cli.quiet,
                checkpoint_dir: Some(out.join("checkpoints")),
                checkpoint_every: 5,
                ..ExperimentConfig::default()
            };
            let r = few_label::run(&train, &test, &cfg, &device)?;
            println!("{}", few_label::table(&r));
            few_label::write_report(&out, &cli.device, &data, &cfg, &r)?;
            println!("report: {}", show(&out));
            println!("{}", few_label::result_line(&cfg, &r));
        }
    }
    Ok(())
}

/// Lists the points that could not be placed on the cube (never dropped silently).
fn print_refused(refused: &[(String, String)]) {
    if refused.is_empty() {
        return;
    }
    println!("note: {} point(s) not placed on the cube:", refused.len());
    for (id, why) in refused.iter().take(20) {
        println!("  {id}: {why}");
    }
    if refused.len() > 20 {
        println!("  ... and {} more", refused.len() - 20);
    }
}

/// The shard `--shard` names, or the scheduler's (see [`Shard::from_env`]).
fn shard_of(flag: Option<&str>) -> Res<Option<Shard>> {
    Ok(match flag {
        Some(s) => Some(Shard::parse(s)?),
        None => Shard::from_env()?,
    })
}

/// Refuses `--encoder` where the input must be an embeddings store.
fn no_encoder(encoder: Option<&Path>, what: &str) -> Res<()> {
    match encoder {
        Some(e) => Err(format!(
            "{what} reads an embeddings store, not a cube: drop --encoder {} and give the \
             store `sits embed --encoder {}` wrote (OUT/embeddings.zarr)",
            show(e),
            show(e)
        )
        .into()),
        None => Ok(()),
    }
}

/// What a shard of a map pass works with.
struct PassIo<'a> {
    /// The embeddings store INPUT, opened.
    emb: &'a sits_data::zarr::ZarrCube<sits_data::zarr::DynStore>,
    /// INPUT, for messages.
    what: &'a str,
    /// The output folder or prefix, where the fitted models are.
    out: &'a Path,
    /// The shared output store.
    store: &'a Path,
    /// The progress bar's tick.
    tick: &'a mut dyn FnMut(usize, usize),
}

/// Runs one shard of a map pass over the embeddings store INPUT into OUT/`name`
/// (`run` does the pass), with a progress bar, and prints its result line.
fn shard_pass(
    io: &MapIo,
    name: &str,
    shard: Shard,
    quiet: bool,
    start: Instant,
    run: impl FnOnce(PassIo<'_>) -> Res<blockwise::Pass>,
) -> Res<()> {
    let out = output_dir(&io.out, &[&io.input])?;
    let emb = blockwise::open_embeddings(&io.input)?;
    let store = sits_data::zarr::store::join(&out, name);
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    let mut tick = |i: usize, n: usize| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
    };
    let pass = run(PassIo {
        emb: &emb,
        what: &show(&io.input),
        out: &out,
        store: &store,
        tick: &mut tick,
    })?;
    bar.finish_and_clear();
    println!(
        "wrote {} blocks of shard {}/{} into {} ({} done before)",
        pass.blocks_written,
        shard.index,
        shard.count,
        show(&pass.store),
        pass.blocks_done_before
    );
    println!(
        "result: blocks={} shard={}/{} blocks_written={} blocks_done_before={} values={} seconds={:.1}",
        pass.blocks,
        shard.index,
        shard.count,
        pass.blocks_written,
        pass.blocks_done_before,
        pass.values,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The embeddings a map command works on: INPUT embedded with `encoder`, or INPUT
/// read as an embeddings store.
fn embeddings(io: &MapIo, encoder: Option<&Path>, quiet: bool, device: &Device) -> Res<Embeddings> {
    Ok(match encoder {
        Some(dir) => {
            let enc = TaskEncoder::load(dir, device)?;
            let input = read_cube_with(&io.input, io.patch, &io.rasters.options()?)?;
            let pb = spinner(quiet, "embedding");
            let (e, _) = embed_cube(&enc, &input, &show(&io.input), device)?;
            pb.finish_and_clear();
            e
        }
        None => read_embeddings(&io.input).map_err(|e| match e {
            TaskError::Input { input, reason } => TaskError::Input {
                input,
                reason: format!(
                    "{reason} (without --encoder, INPUT must be an embeddings store written by \
                     `sits embed`)"
                ),
            },
            other => other,
        })?,
    })
}
