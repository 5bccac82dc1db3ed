//! Prints what a dataset holds: kind, shape, first and last date, bands, classes
//! (the same as `sits inspect PATH`).
//!
//! ```text
//! cargo run --release --example inspect -- PATH
//! ```
//! PATH is a sample-table folder, a cube folder, a PASTIS folder or a Zarr store.

use std::path::PathBuf;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os().nth(1).map(PathBuf::from).ok_or(
        "usage: inspect PATH (sample-set folder, cube folder, PASTIS folder or Zarr store)",
    )?;
    for line in sits::tasks::inspect::describe(&path)? {
        println!("{line}");
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
