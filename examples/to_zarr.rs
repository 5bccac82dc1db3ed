//! Converts a sample-table folder or a cube folder into a Zarr v3 store.
//!
//! ```text
//! cargo run --release --example to_zarr -- IN OUT.zarr
//! ```
//! The store opens with zarr-python (`zarr.open_group(OUT)`); its layout is described
//! in `sits_data::zarr`.

use std::path::PathBuf;

use sits::sits_data::open::{open, Opened};
use sits::sits_data::zarr::{write_cube, write_samples, CubeChunks};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (input, output) = match (args.next(), args.next()) {
        (Some(i), Some(o)) => (i, o),
        _ => return Err("usage: to_zarr IN OUT.zarr".into()),
    };
    match open(&input)? {
        Opened::Samples(set) => {
            write_samples(&set, &output)?;
            println!("wrote {} series to {}", set.len(), output.display());
        }
        Opened::Cube(f) => {
            write_cube(&f.cube, &output, CubeChunks::default())?;
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
