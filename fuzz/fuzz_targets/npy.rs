#![no_main]
//! The `.npy` decoder: any bytes give an array or an error, never a panic, and a
//! decoded array has exactly the elements its header promises.

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.npy");
    if let Ok(a) = sits_data::npy::decode_npy(path, data) {
        let n: usize = a.shape().iter().product();
        assert_eq!(a.to_f32().len(), n);
        let _ = a.to_i64(path);
    }
});
