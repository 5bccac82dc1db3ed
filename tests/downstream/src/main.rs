//! Embeds a window of the bundled Sentinel-2 NDVI cube with the shipped encoder,
//! through the public API only, and prints one result line.
//!
//! `cargo run -- [DATA_DIR]`: the data folder is the argument, else `SITS_DATA`,
//! else the sits checkout.

use std::path::PathBuf;
use std::process::ExitCode;

// everything through sits-tasks and its re-exports: no direct candle dependency
use sits_tasks::candle_core::Device;
use sits_tasks::embed::embed_cube;
use sits_tasks::encoder::SavedEncoder;
use sits_tasks::input::{read, Input};
use sits_tasks::sits_data::datasets;

fn run() -> Result<String, Box<dyn std::error::Error>> {
    let explicit = std::env::args_os().nth(1).map(PathBuf::from);
    let data = datasets::data_dir(explicit.as_deref())?;
    let dev = Device::Cpu;
    let enc = SavedEncoder::load(&data.join("encoders/s2_ndvi_pixel"), &dev)?;
    let Input::Cube { cube, .. } = read(&data.join(datasets::SLOVENIA_NDVI), None)? else {
        return Err("the Slovenia folder is not read as a cube".into());
    };
    let window = Input::Cube {
        cube: Box::new(cube.window(40, 40, 16, 16)?),
        labels: Vec::new(),
        class_names: Vec::new(),
    };
    let (e, skipped) = embed_cube(&enc, &window, "slovenia window", &dev)?;
    let dim = e.rows.first().map_or(0, Vec::len);
    if e.rows.is_empty() || dim != enc.card.embedding_len() {
        return Err(format!("{} rows of {dim} values", e.rows.len()).into());
    }
    if let Some(v) = e.rows.iter().flatten().find(|v| !v.is_finite()) {
        return Err(format!("a non-finite embedding value: {v}").into());
    }
    let mean =
        e.rows.iter().flatten().map(|&v| f64::from(v)).sum::<f64>() / (e.rows.len() * dim) as f64;
    Ok(format!(
        "result: downstream rows={} skipped={} dim={dim} periods={:?} mean={mean:.4}",
        e.rows.len(),
        skipped.skipped,
        e.grid.periods
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
