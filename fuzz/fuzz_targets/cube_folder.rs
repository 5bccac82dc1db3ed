#![no_main]
//! The cube-folder reader: metadata.json, the values array, a cloud mask, a label
//! layer and samples.csv, mutated together.

use libfuzzer_sys::fuzz_target;
use sits_fuzz::{folder, split};

fuzz_target!(|data: &[u8]| {
    let p = split(data, 5);
    let dir = folder(
        "cube",
        &[
            ("metadata.json", p[0]),
            ("cube.npy", p[1]),
            ("cloud_mask.npy", p[2]),
            ("lulc.npy", p[3]),
            ("samples.csv", p[4]),
        ],
    );
    if let Ok(f) = sits_data::CubeFolder::read(&dir) {
        let _ = sits_data::folder::layer_value_counts(&f, "lulc");
        let _ = f.cube.validity();
        let _ = sits_data::norm::NormStats::of_cube(&f.cube, 1e-3);
        let _ = sits_data::datasets::SloveniaNdvi::load(&dir).map(|s| s.class_counts());
    }
});
