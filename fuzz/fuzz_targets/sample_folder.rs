#![no_main]
//! The sample-table folder reader: metadata.json, samples.csv, timeseries.csv and an
//! optional values.npy, all mutated together.

use libfuzzer_sys::fuzz_target;
use sits_fuzz::{folder, SAMPLE_FOLDER};

fuzz_target!(|data: &[u8]| {
    let dir = folder("samples", SAMPLE_FOLDER, data);
    if let Ok(set) = sits_data::SampleSet::read_folder(&dir) {
        // what the rest of the library does with a set must not panic either
        let _ = set.class_counts();
        let _ = sits_data::norm::NormStats::of_samples(&set, 1e-3);
        for s in set.series() {
            assert!(s.values.iter().all(|v| !v.is_infinite()));
        }
    }
});
