#![no_main]
//! The PASTIS reader: metadata.geojson, NORM_S2_patch.json and the arrays of patch 1.

use libfuzzer_sys::fuzz_target;
use sits_data::loader::SampleSource;
use sits_fuzz::{folder, split};

fuzz_target!(|data: &[u8]| {
    let p = split(data, 4);
    let dir = folder(
        "pastis",
        &[
            ("metadata.geojson", p[0]),
            ("NORM_S2_patch.json", p[1]),
            ("DATA_S2/S2_1.npy", p[2]),
            ("ANNOTATIONS/TARGET_1.npy", p[3]),
        ],
    );
    if let Ok(ps) = sits_data::pastis::Pastis::open(&dir) {
        for patch in ps.patches().iter().take(3) {
            let _ = ps.read_patch(patch.id);
            let _ = ps.read_target(patch.id);
        }
        let _ = ps.norm(&[1, 2, 3, 4, 5]);
        if let Ok(src) = ps.source(&[1, 2, 3, 4, 5], true) {
            for i in 0..src.len().min(3) {
                let _ = src.get(i);
            }
        }
    }
});
