#![no_main]
//! The GeoTIFF reader: any bytes give a raster or an error, never a panic, and no
//! allocation sized by an unchecked number; a raster that opens reads a window of
//! exactly the requested shape.

use libfuzzer_sys::fuzz_target;
use sits_data::geotiff::{GeoTiff, Window};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(mut tif) = GeoTiff::from_bytes(Path::new("fuzz.tif"), data.to_vec()) else {
        return;
    };
    let info = tif.info().clone();
    let (h, w) = (info.height.min(64), info.width.min(64));
    if let Ok(a) = tif.read_window::<f32>(Window::new(0, 0, h, w)) {
        assert_eq!(a.dim(), (info.bands, h, w));
    }
    if let Some(g) = &info.geo {
        let _ = sits_data::geo::Crs::parse(&g.crs);
    }
});
