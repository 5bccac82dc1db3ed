#![no_main]
//! The cube-folder reader: metadata.json, the values array, a cloud mask, a label
//! layer and samples.csv, mutated together.

use libfuzzer_sys::fuzz_target;
use sits_fuzz::{folder, CUBE_FOLDER};

fuzz_target!(|data: &[u8]| {
    let dir = folder("cube", CUBE_FOLDER, data);
    if let Ok(f) = sits_data::CubeFolder::read(&dir) {
        let _ = sits_data::folder::layer_value_counts(&f, "lulc");
        let _ = f.cube.validity();
        let _ = sits_data::norm::NormStats::of_cube(&f.cube, 1e-3);
        let _ = sits_data::datasets::SloveniaNdvi::load(&dir).map(|s| s.class_counts());
    }
});
