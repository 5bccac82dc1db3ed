//! Stream a Zarr cube block by block through a frozen encoder and write an
//! embedding cube back to Zarr, with memory bounded by the block, not the cube.
//!
//! 1. Builds a large input: the bundled dtwSat MODIS cube (137 dates x 6 bands x
//!    27 x 37) tiled `--tile` x `--tile` times in space, written to Zarr window by
//!    window (`CubeWriter`), so the full cube never sits in memory.
//! 2. Pretrains a pixel transformer (masked reconstruction, a few epochs) on the
//!    bundled cube's pixel-years and freezes it.
//! 3. Reads the tiled store `--block` x `--block` pixels at a time (all dates),
//!    cuts every pixel into its complete agricultural years, gap-fills, normalises,
//!    embeds (mean over dates, 64 values) and writes the embedding cube
//!    `(years, 64, H, W)` to `embeddings.zarr`, a block at a time.
//! 4. Prints the input size, the block size and the peak resident memory (VmHWM of
//!    /proc/self/status) after pretraining and at the end.
//!
//! ```text
//! cargo run --release --example embed_zarr [-- --tile 5 --block 32 --epochs 3 --out DIR]
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array4;
use sits::experiment::{embed_rows, pretrain_encoder, ExperimentConfig};
use sits::sits_core::io::IfExists;
use sits::sits_data::datasets::{self, agricultural_years, DtwsatCube};
use sits::sits_data::gapfill::fill_series;
use sits::sits_data::io_util::prepare_run_dir;
use sits::sits_data::norm::NormStats;
use sits::sits_data::samples::Series;
use sits::sits_data::zarr::{CubeChunks, CubeWriter, ZarrCube};
use sits::sits_data::SampleSet;
use sits::sits_ssl::embed::Pooling;

/// Embed a tiled Zarr cube block by block.
#[derive(Parser, Debug)]
struct Args {
    /// Tiles per side: the input is tile^2 times the bundled cube.
    #[arg(long, default_value_t = 5)]
    tile: usize,
    /// Pixels per side of a processing block.
    #[arg(long, default_value_t = 32)]
    block: usize,
    /// Pretraining epochs.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Output folder.
    #[arg(long, default_value = "out/embed_zarr")]
    out: PathBuf,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Peak resident memory of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn run() -> Res<()> {
    let args = Args::parse();
    if args.tile == 0 || args.block == 0 {
        return Err("--tile and --block must be at least 1".into());
    }
    prepare_run_dir(&args.out)?;
    let d = DtwsatCube::load(&sits::bundled_data_dir().join(datasets::DTWSAT_CUBE))?;
    let (t, c, h0, w0) = d.cube.shape();
    let (h, w) = (h0 * args.tile, w0 * args.tile);

    // 1. the tiled input, written tile by tile
    let input = args.out.join("tiled_input.zarr");
    let chunks = CubeChunks {
        t: 64,
        c,
        y: args.block,
        x: args.block,
    };
    let writer = CubeWriter::create(
        &input,
        d.cube.times(),
        d.cube.bands().to_vec(),
        [h, w],
        chunks,
        None,
        IfExists::Replace,
    )?;
    for i in 0..args.tile {
        for j in 0..args.tile {
            writer.write_window(i * h0, j * w0, d.cube.values())?;
        }
    }
    writer.finish()?;
    let input_bytes = t * c * h * w * 4;
    println!(
        "input: {} ({t} dates x {c} bands x {h} x {w} = {:.0} MiB of f32, {}x the bundled cube)",
        input.display(),
        mib(input_bytes),
        args.tile * args.tile
    );

    // 2. a frozen encoder pretrained on the bundled cube's pixel-years
    let (mut train, _) = d.pixel_years(23)?;
    for s in train.series_mut() {
        fill_series(s)?;
    }
    let stats = NormStats::of_samples(&train, 1e-4)?;
    stats.apply_samples(&mut train)?;
    let cfg = ExperimentConfig {
        epochs: args.epochs,
        progress: true,
        ..ExperimentConfig::default()
    };
    let device = candle_core::Device::Cpu;
    let pre = pretrain_encoder(&Arc::new(train), &cfg, &device)?;
    let dim = cfg.d_model;
    drop(d);
    let rss_after_pretraining = peak_rss_mib();
    println!(
        "encoder: pretrained {} epochs in {:.1} s; peak memory so far {:.0} MiB",
        args.epochs,
        pre.seconds,
        rss_after_pretraining.unwrap_or(f64::NAN)
    );

    // 3. stream blocks through the encoder
    let src = ZarrCube::open_path(&input)?;
    let years = agricultural_years(src.times(), 9, 23);
    if years.is_empty() {
        return Err("the input has no complete agricultural year of 23 dates".into());
    }
    let firsts: Vec<usize> = years.iter().map(|(_, idx)| idx[0]).collect();
    let out_times = src.times().select(&firsts);
    let bands: Vec<String> = (0..dim).map(|k| format!("emb{k}")).collect();
    let output = args.out.join("embeddings.zarr");
    let out_writer = CubeWriter::create(
        &output,
        &out_times,
        bands.clone(),
        [h, w],
        CubeChunks {
            t: years.len(),
            c: dim,
            y: args.block,
            x: args.block,
        },
        None,
        IfExists::Replace,
    )?;
    let blocks: Vec<(usize, usize)> = (0..h)
        .step_by(args.block)
        .flat_map(|r| (0..w).step_by(args.block).map(move |c| (r, c)))
        .collect();
    let bar = ProgressBar::new(blocks.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} blocks {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let block_bytes = t * c * args.block * args.block * 4;
    for &(r, col) in &blocks {
        let (bh, bw) = (args.block.min(h - r), args.block.min(w - col));
        let win = src.read(0..t, r..r + bh, col..col + bw)?;
        let mut series = Vec::with_capacity(years.len() * bh * bw);
        for (_, idx) in &years {
            for y in 0..bh {
                for x in 0..bw {
                    let px = win.pixel_series(y, x)?;
                    let values = px.values.select(ndarray::Axis(0), idx);
                    let valid = idx.iter().map(|&k| px.valid[k]).collect();
                    let mut s = Series::new(values, px.times.select(idx), Some(valid))?;
                    fill_series(&mut s)?;
                    series.push(s);
                }
            }
        }
        let mut set = SampleSet::new(series, src.bands().to_vec(), None, Vec::new(), None)?;
        stats.apply_samples(&mut set)?;
        let z = embed_rows(&pre.model, &Arc::new(set), Pooling::Mean, &device)?;
        let mut out = Array4::<f32>::zeros((years.len(), dim, bh, bw));
        for (k, row) in z.iter().enumerate() {
            let (yi, p) = (k / (bh * bw), k % (bh * bw));
            for (e, &v) in row.iter().enumerate() {
                out[[yi, e, p / bw, p % bw]] = v;
            }
        }
        out_writer.write_window(r, col, out.view())?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    out_writer.finish()?;
    let secs = start.elapsed().as_secs_f64();
    let back = ZarrCube::open_path(&output)?;
    println!(
        "output: {} ({} years x {dim} x {h} x {w}), {} blocks of {}x{} pixels in {secs:.1} s ({:.0} pixel-years/s)",
        output.display(),
        back.shape()[0],
        blocks.len(),
        args.block,
        args.block,
        (years.len() * h * w) as f64 / secs
    );
    let peak = peak_rss_mib();
    println!(
        "memory: input cube {:.0} MiB, one input block {:.1} MiB; peak resident {:.0} MiB after pretraining, {:.0} MiB at the end",
        mib(input_bytes),
        mib(block_bytes),
        rss_after_pretraining.unwrap_or(f64::NAN),
        peak.unwrap_or(f64::NAN)
    );
    println!(
        "result: input_mib={:.0} block_mib={:.1} peak_rss_mib={:.0} pixel_years={}",
        mib(input_bytes),
        mib(block_bytes),
        peak.unwrap_or(f64::NAN),
        years.len() * h * w
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
