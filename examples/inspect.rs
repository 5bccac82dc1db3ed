//! Prints what a dataset holds: kind, shape, first and last date, bands, classes.
//!
//! ```text
//! cargo run --release --example inspect -- PATH
//! ```
//! PATH is a sample-table folder, a cube folder, a PASTIS folder or a Zarr store.

use std::path::PathBuf;

use sits::sits_core::dates::Timestamps;
use sits::sits_data::folder::layer_value_counts;
use sits::sits_data::open::{open, Opened};
use sits::sits_data::SampleSet;

fn dates(t: &Timestamps) -> String {
    let iso = t.to_iso();
    format!(
        "{} .. {} ({} dates)",
        iso.first().map_or("-", String::as_str),
        iso.last().map_or("-", String::as_str),
        t.len()
    )
}

fn print_classes(names: &[String], counts: &[usize]) {
    for (i, (name, n)) in names.iter().zip(counts).enumerate() {
        if !name.is_empty() || *n > 0 {
            println!("  class {i:>2} {name:<22} {n:>6}");
        }
    }
}

fn print_samples(set: &SampleSet) {
    let first = set.series().iter().filter_map(|s| s.times.first()).min();
    let last = set.series().iter().filter_map(|s| s.times.last()).max();
    let min_len = set.series().iter().map(|s| s.len()).min().unwrap_or(0);
    println!("kind:   pixel sample set");
    println!(
        "shape:  {} series x {}..{} dates x {} bands",
        set.len(),
        min_len,
        set.max_len(),
        set.bands().len()
    );
    if let (Some(a), Some(b)) = (first, last) {
        println!("dates:  {a} .. {b}");
    }
    println!("bands:  {:?}", set.bands());
    if set.labels().is_some() {
        print_classes(set.class_names(), &set.class_counts());
    } else {
        println!("labels: none");
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os().nth(1).map(PathBuf::from).ok_or(
        "usage: inspect PATH (sample-set folder, cube folder, PASTIS folder or Zarr store)",
    )?;
    println!("path:   {}", path.display());
    match open(&path)? {
        Opened::Samples(set) => print_samples(&set),
        Opened::Cube(f) => {
            let (t, c, h, w) = f.cube.shape();
            println!("kind:   datacube folder");
            println!("shape:  {t} dates x {c} bands x {h} x {w} (T, C, H, W)");
            println!("dates:  {}", dates(f.cube.times()));
            println!("bands:  {:?}", f.cube.bands());
            let valid = f.cube.validity();
            let clear = valid.iter().filter(|v| **v).count();
            println!(
                "valid:  {:.1} % of pixel-dates",
                100.0 * clear as f64 / valid.len().max(1) as f64
            );
            println!("layers: {:?}", f.layers.keys().collect::<Vec<_>>());
            if !f.samples.is_empty() {
                let mut counts = vec![0; f.class_names.len()];
                f.samples
                    .iter()
                    .filter_map(|s| s.label)
                    .for_each(|l| counts[l] += 1);
                println!("labelled pixels: {}", f.samples.len());
                print_classes(&f.class_names, &counts);
            } else if let Some(layer) = ["lulc", "labels", "label", "target"]
                .into_iter()
                .find(|n| f.layers.contains_key(*n))
            {
                let (by_id, unlabelled) = layer_value_counts(&f, layer)?;
                println!("pixel labels:");
                for (id, n) in &by_id {
                    let name = usize::try_from(*id)
                        .ok()
                        .and_then(|i| f.class_names.get(i))
                        .map_or("(no name in metadata.json)", String::as_str);
                    println!("  class {id:>2} {name:<22} {n:>6}");
                }
                if unlabelled > 0 {
                    println!("  negative or nodata      {unlabelled:>6}");
                }
            }
        }
        Opened::ZarrCube(z) => {
            let [t, c, h, w] = z.shape();
            println!("kind:   datacube Zarr store");
            println!(
                "shape:  {t} dates x {c} bands x {h} x {w} (T, C, H, W), chunks {:?}",
                z.chunk_shape()?
            );
            println!("dates:  {}", dates(z.times()));
            println!("bands:  {:?}", z.bands());
        }
        Opened::Pastis(p) => {
            println!("kind:   PASTIS folder");
            println!("patches: {}", p.patches().len());
            for fold in 1..=5u8 {
                println!(
                    "  fold {fold}: {} patches",
                    p.patches_in_folds(&[fold]).len()
                );
            }
            if let (Some(a), Some(b)) = (
                p.patches().iter().filter_map(|x| x.dates.first()).min(),
                p.patches().iter().filter_map(|x| x.dates.last()).max(),
            ) {
                println!("dates:  {a} .. {b}");
            }
            println!("bands:  {:?}", sits::sits_data::pastis::S2_BANDS);
        }
    }
    Ok(())
}
