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
    let c = sits::tasks::convert::convert(&input, &output, None, overwrite)?;
    println!(
        "wrote the {} ({} values) as a {} to {}",
        c.kind,
        c.values,
        c.to,
        output.display()
    );
    if !c.not_converted.is_empty() {
        println!("note: extra layers {:?} are not converted", c.not_converted);
    }
    Ok(())
}
