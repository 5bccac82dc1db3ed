#![no_main]
//! The Zarr store opener and readers on an in-memory store: the input alternates keys
//! and values (`zarr.json`, `values/zarr.json`, `values/c/0/0/0`, ...).

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sits_fuzz::split;
use zarrs::storage::store::MemoryStore;
use zarrs::storage::{StoreKey, WritableStorageTraits};

fuzz_target!(|data: &[u8]| {
    sits_fuzz::scratch(); // sets the read budget
    let parts = split(data, 64);
    let store = Arc::new(MemoryStore::new());
    for kv in parts.chunks(2) {
        let (Some(k), Some(v)) = (kv.first(), kv.get(1)) else {
            continue;
        };
        let Ok(k) = std::str::from_utf8(k) else {
            continue;
        };
        let Ok(key) = StoreKey::new(k) else {
            continue;
        };
        let _ = store.set(&key, v.to_vec().into());
    }
    if let Ok(z) = sits_data::zarr::ZarrCube::open(store.clone(), "fuzz") {
        let [t, _, h, w] = z.shape();
        let _ = z.read(0..t.min(4), 0..h.min(8), 0..w.min(8));
        let _ = z.read_all();
    }
    let _ = sits_data::zarr::read_samples_from(&store, "fuzz");
});
