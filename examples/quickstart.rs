//! The main job, for now: load the three bundled real datasets, summarise them,
//! compute normalisation statistics, stream one epoch of padded batches through the
//! deterministic loader, and round-trip a cube through Zarr.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Pretraining and evaluation join this job when `sits-models` and `sits-ssl` land.

use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use sits::sits_data::datasets::{self, DtwsatCube, SloveniaNdvi};
use sits::sits_data::norm::NormStats;
use sits::sits_data::zarr::{write_cube, CubeChunks, ZarrCube};
use sits::sits_data::{Loader, LoaderConfig, Split};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let root = sits::bundled_data_dir();
    let device = Device::Cpu;

    // 1. labelled pixel series
    let set = datasets::mato_grosso(&root.join(datasets::MATO_GROSSO))?;
    println!(
        "mato_grosso_mod13q1: {} series x {} dates x {} bands {:?}",
        set.len(),
        set.max_len(),
        set.bands().len(),
        set.bands()
    );
    for (name, n) in set.class_names().iter().zip(set.class_counts()) {
        println!("  {name:<14} {n:>4}");
    }
    let train = set.split(Split::Train)?;
    let stats = NormStats::of_samples(&train, 1e-4)?;
    println!("  train-split band means {:?}", stats.mean);
    println!("  train-split band stds  {:?}", stats.std);

    // 2. one epoch of padded, shuffled batches (deterministic for a seed)
    let mut normed = train.clone();
    stats.apply_samples(&mut normed)?;
    let config = LoaderConfig {
        batch_size: 256,
        seed: 42,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(Arc::new(normed), config, device.clone())?;
    let start = Instant::now();
    let (mut batches, mut series) = (0, 0);
    for batch in loader.epoch(0) {
        let batch = batch?;
        batches += 1;
        series += batch.batch_size();
        if batches == 1 {
            println!(
                "  first batch: values {:?}, days {:?}, labels {:?}",
                batch.values().dims(),
                batch.days().dims(),
                batch.labels().map(|l| l.dims().to_vec())
            );
        }
    }
    println!(
        "  loader: {batches} batches, {series} series in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    // 3. the MODIS cube and its labelled pixel-years
    let dtw = DtwsatCube::load(&root.join(datasets::DTWSAT_CUBE))?;
    let (t, c, h, w) = dtw.cube.shape();
    println!(
        "dtwsat cube: {t} dates x {c} bands x {h} x {w}, {} .. {}, {} labelled pixel-years",
        dtw.cube
            .times()
            .first()
            .map(|d| d.date().to_string())
            .unwrap_or_default(),
        dtw.cube
            .times()
            .last()
            .map(|d| d.date().to_string())
            .unwrap_or_default(),
        dtw.samples.len()
    );
    for (name, n) in dtw.class_names.iter().zip(dtw.class_counts()) {
        println!("  {name:<15} {n:>4}");
    }

    // 4. the Sentinel-2 NDVI cube with clouds, through Zarr and back
    let slo = SloveniaNdvi::load(&root.join(datasets::SLOVENIA_NDVI))?;
    let valid = slo.cube.validity();
    let clear = valid.iter().filter(|v| **v).count() as f64 / valid.len() as f64;
    println!(
        "slovenia S2 NDVI cube: {:?}, {:.1} % clear observations",
        slo.cube.shape(),
        100.0 * clear
    );
    let dir = std::env::temp_dir().join(format!("sits-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("slovenia.zarr");
    write_cube(
        &slo.cube,
        &store,
        CubeChunks {
            t: 8,
            c: 1,
            y: 32,
            x: 32,
        },
    )?;
    let z = ZarrCube::open_path(&store)?;
    let back = z.read_all()?;
    println!(
        "  zarr round trip ({}): identical = {}",
        store.display(),
        back == slo.cube
    );
    let window = z.read(10..20, 32..64, 0..32)?;
    let batch = window.to_batch(sits::sits_core::dates::pastis_reference(), &device)?;
    println!(
        "  window batch: values {:?}, valid {:?}",
        batch.values().dims(),
        batch.valid().map(|v| v.dims().to_vec())
    );
    std::fs::remove_dir_all(&dir)?;
    if back != slo.cube {
        return Err("zarr round trip changed the cube".into());
    }
    Ok(())
}
