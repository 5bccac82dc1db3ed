#![no_main]
//! The PASTIS reader: metadata.geojson, NORM_S2_patch.json and the arrays of patch 1.

use libfuzzer_sys::fuzz_target;
use sits_data::loader::SampleSource;
use sits_fuzz::{folder, PASTIS_FOLDER};

fuzz_target!(|data: &[u8]| {
    let dir = folder("pastis", PASTIS_FOLDER, data);
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
