//! Shared helpers of the fuzz targets: one fuzz input holds several files, separated
//! by [`SEP`], so that the fuzzer mutates a whole folder at once.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Separates the files of one fuzz input.
pub const SEP: &[u8] = b"\n\x00SITS-PART\x00\n";

/// Splits an input into at most `n` parts (missing parts are empty).
pub fn split(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    while out.len() + 1 < n {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    while out.len() < n {
        out.push(&[]);
    }
    out
}

/// Joins files into one input (the inverse of [`split`]).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEP);
        }
        out.extend_from_slice(p);
    }
    out
}

/// One scratch folder per fuzzing process (on tmpfs when there is one), and a small
/// read budget so that a declared size the readers accept cannot exhaust memory.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::set_var("SITS_READ_BUDGET_MB", "64");
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("sits-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

/// The files of a sample-table folder, in the order of the parts of an input.
pub const SAMPLE_FOLDER: &[&str] = &[
    "metadata.json",
    "samples.csv",
    "timeseries.csv",
    "values.npy",
];

/// The files of a cube folder.
pub const CUBE_FOLDER: &[&str] = &[
    "metadata.json",
    "cube.npy",
    "cloud_mask.npy",
    "lulc.npy",
    "samples.csv",
];

/// The files of a PASTIS folder with one patch (id 1).
pub const PASTIS_FOLDER: &[&str] = &[
    "metadata.geojson",
    "NORM_S2_patch.json",
    "DATA_S2/S2_1.npy",
    "ANNOTATIONS/TARGET_1.npy",
];

/// Writes the parts of `data` as the files of `layout` into the folder `name` under
/// the scratch folder; an empty part removes its file, so the fuzzer also tries
/// missing files.
pub fn folder(name: &str, layout: &[&str], data: &[u8]) -> PathBuf {
    let dir = scratch().join(name);
    for (f, bytes) in layout.iter().zip(split(data, layout.len())) {
        let p = dir.join(f);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        if bytes.is_empty() {
            let _ = std::fs::remove_file(&p);
        } else {
            std::fs::write(&p, bytes).expect("write");
        }
    }
    dir
}
