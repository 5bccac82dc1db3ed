//! Stream a Zarr cube block by block through a frozen encoder and write an
//! embedding cube back to Zarr, with memory bounded by the block, not the cube.
//!
//! 1. Builds a large input: the bundled dtwSat MODIS cube (137 dates x 6 bands x
//!    27 x 37) tiled `--tile` x `--tile` times in space, written to Zarr window by
//!    window (`CubeWriter`), so the full cube never sits in memory.
//! 2. Pretrains a pixel transformer (masked reconstruction, a few epochs) on the
//!    bundled cube's pixel-years and saves it as an encoder folder
//!    (`sits_tasks::pretrain`).
//! 3. Streams the tiled store through it with `sits_tasks::embed::embed_to_zarr`
//!    (what `sits embed` does): `--block` x `--block` pixels at a time (all dates),
//!    every pixel cut into its complete agricultural years, gap-filled, normalised,
//!    embedded (mean over dates, 64 values) into the embedding cube
//!    `(years, 64, H, W)` `embeddings.zarr`, a block at a time.
//! 4. Prints the input size, the block size and the peak resident memory (VmHWM of
//!    /proc/self/status) after pretraining and at the end.
//!
//! ```text
//! cargo run --release --example embed_zarr [-- --tile 5 --block 32 --epochs 3 --out DIR]
//! ```

use std::path::PathBuf;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sits::experiment::ExperimentConfig;
use sits::sits_core::io::IfExists;
use sits::sits_data::datasets::{self, DtwsatCube};
use sits::sits_data::io_util::prepare_run_dir;
use sits::sits_data::zarr::{CubeChunks, CubeWriter, ZarrCube};
use sits::tasks::embed::{embed_to_zarr, CubeSource, StreamOptions};
use sits::tasks::encoder::SavedEncoder;
use sits::tasks::input::{Input, Periods};
use sits::tasks::pretrain::{pretrain, PoolingChoice, PretrainConfig};

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
    let d = DtwsatCube::load(&sits::bundled_data_dir()?.join(datasets::DTWSAT_CUBE))?;
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
    let bundled = Input::Cube {
        cube: Box::new(d.cube),
        labels: Vec::new(),
        class_names: Vec::new(),
    };
    let cfg = PretrainConfig {
        periods: Periods::MOD13Q1_SEPTEMBER,
        pooling: PoolingChoice::Mean,
        experiment: ExperimentConfig {
            epochs: args.epochs,
            progress: true,
            ..ExperimentConfig::default()
        },
        max_series: None,
    };
    let device = candle_core::Device::Cpu;
    let pre = pretrain(&bundled, &cfg, "dtwsat cube", "embed_zarr example", &device)?;
    let enc_dir = args.out.join("encoder");
    SavedEncoder::save(&enc_dir, &pre.card, &pre.pretrained.vars, IfExists::Replace)?;
    let seconds = pre.pretrained.seconds;
    drop((pre, bundled));
    let enc = SavedEncoder::load(&enc_dir, &device)?;
    let rss_after_pretraining = peak_rss_mib();
    println!(
        "encoder: pretrained {} epochs in {seconds:.1} s, saved to {}; peak memory so far {:.0} MiB",
        args.epochs,
        enc_dir.display(),
        rss_after_pretraining.unwrap_or(f64::NAN)
    );

    // 3. stream blocks through the encoder
    let src = ZarrCube::open_path(&input)?;
    let output = args.out.join("embeddings.zarr");
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} blocks {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let block_bytes = t * c * args.block * args.block * 4;
    let done = embed_to_zarr(
        &enc,
        &CubeSource::Zarr(&src),
        &input.display().to_string(),
        &output,
        StreamOptions {
            block: args.block,
            if_exists: IfExists::Replace,
            rgb_max_pixels: 0,
            shard: None,
        },
        &device,
        &mut |i, n| {
            bar.set_length(n as u64);
            bar.set_position(i as u64);
        },
    )?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let back = ZarrCube::open_path(&output)?;
    let pixel_years = done.periods.len() * h * w;
    println!(
        "output: {} ({} years x {} x {h} x {w}), {} blocks of {}x{} pixels in {secs:.1} s ({:.0} pixel-years/s)",
        output.display(),
        back.shape()[0],
        done.dims,
        done.blocks,
        args.block,
        args.block,
        pixel_years as f64 / secs
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
        pixel_years
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
