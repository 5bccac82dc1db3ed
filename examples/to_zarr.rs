//! Converts a sample-table folder or a cube folder into a Zarr v3 store.
//!
//! ```text
//! cargo run --release --example to_zarr -- IN OUT.zarr [--overwrite]
//! ```
//! OUT must not exist, unless `--overwrite` is given and OUT is a store written by
//! sits of the same kind; a folder of other files is never replaced, and OUT may not be
//! IN or lie inside it.
//! The store opens with zarr-python (`zarr.open_group(OUT)`); its layout is described
//! in `sits_data::zarr`.

use std::path::PathBuf;

use sits::sits_core::io::IfExists;
use sits::sits_data::io_util::check_output_outside_input;
use sits::sits_data::open::{open, Opened};
use sits::sits_data::zarr::{write_cube, write_samples, CubeChunks};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut overwrite = IfExists::Refuse;
    let mut paths = Vec::new();
    for a in std::env::args_os().skip(1) {
        if a == "--overwrite" {
            overwrite = IfExists::Replace;
        } else {
            paths.push(PathBuf::from(a));
        }
    }
    let [input, output] =
        <[PathBuf; 2]>::try_from(paths).map_err(|_| "usage: to_zarr IN OUT.zarr [--overwrite]")?;
    // checks that need no reading come first
    check_output_outside_input(&input, &output)?;
    match open(&input)? {
        Opened::Samples(set) => {
            write_samples(&set, &output, overwrite)?;
            println!("wrote {} series to {}", set.len(), output.display());
        }
        Opened::Cube(f) => {
            write_cube(&f.cube, &output, CubeChunks::default(), overwrite)?;
            println!("wrote cube {:?} to {}", f.cube.shape(), output.display());
            let skipped: Vec<&String> = f
                .layers
                .keys()
                .filter(|k| !(k.contains("cloud") || k.contains("valid")))
                .collect();
            if f.cube.valid_mask().is_some() {
                println!("the validity mask is stored as /valid");
            }
            if !skipped.is_empty() {
                println!("note: extra layers {skipped:?} are not converted");
            }
        }
        Opened::ZarrCube(_) => return Err("the input is already a Zarr store".into()),
        Opened::Pastis(_) => {
            return Err("PASTIS folders hold one cube per patch; convert patches one by one".into())
        }
    }
    Ok(())
}
