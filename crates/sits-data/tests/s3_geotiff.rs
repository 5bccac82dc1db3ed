//! A Cloud-Optimized GeoTIFF on object storage (a real S3-compatible server on
//! 127.0.0.1): a window read fetches the header and the tiles the window touches,
//! nothing else. One test function, so the request counts are this test's alone.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ndarray::{s, Array3};
use sits_data::geotiff::write::{write_geotiff, WriteOptions};
use sits_data::geotiff::{GeoTiff, Window};
use sits_data::GeoInfo;

/// `(start, end)` of each ranged GET in the server's log, from position `from`.
fn ranges(log: &[String], from: usize) -> Vec<(u64, u64)> {
    log[from..]
        .iter()
        .filter(|l| l.starts_with("GET"))
        .map(|l| {
            let r = l
                .split("bytes=")
                .nth(1)
                .unwrap_or_else(|| panic!("GET without a range: {l} in {log:?}"));
            let (a, b) = r.trim().split_once('-').unwrap();
            (a.parse().unwrap(), b.parse::<u64>().unwrap() + 1)
        })
        .collect()
}

#[test]
fn a_cog_window_on_s3_fetches_only_its_tiles() {
    let root = tempfile::tempdir().unwrap();
    let server = sits_testing::S3Server::start(root.path(), 0).unwrap();
    server.create_bucket("cogs").unwrap();
    for (k, v) in server.env() {
        std::env::set_var(k, v);
    }
    // 2 bands of 1024 x 1024 values that compress poorly: 2 x 16 tiles of ~200 kB
    let mut state = 7u64;
    let values = Array3::<f32>::from_shape_fn((2, 1024, 1024), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / 1000.0
    });
    let geo = GeoInfo {
        crs: "EPSG:32633".into(),
        transform: [500000.0, 10.0, 0.0, 5100000.0, 0.0, -10.0],
    };
    let file = root.path().join("cogs/scene.tif");
    let options = WriteOptions {
        tile: 256,
        cog: true,
        band_names: vec![],
    };
    write_geotiff(&file, values.view(), Some(&geo), None, &options).unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 4_000_000, "{size} bytes");

    let before = server.request_log().len();
    let mut tif = GeoTiff::open(Path::new("s3://cogs/scene.tif")).unwrap();
    assert_eq!(tif.info().geo.as_ref(), Some(&geo));
    let opened = server.request_log().len();
    let header: u64 = ranges(&server.request_log(), before)
        .iter()
        .map(|(a, b)| b - a)
        .sum();
    assert!(header <= 64 * 1024, "the header took {header} bytes");

    // rows 600..700, cols 520..560 lie in tile (2, 2) of each band: 2 tiles, 2 GETs
    let w = tif
        .read_window::<f32>(Window::new(600, 520, 100, 40))
        .unwrap();
    assert_eq!(w, values.slice(s![.., 600..700, 520..560]).to_owned());
    let got = ranges(&server.request_log(), opened);
    assert_eq!(got.len(), 2, "{:?}", &server.request_log()[opened..]);
    let fetched: u64 = got.iter().map(|(a, b)| b - a).sum();
    // two tiles of at most 256 x 256 x 4 bytes (plus deflate's framing)
    assert!(
        fetched <= 2 * (256 * 256 * 4 + 1024),
        "{fetched} bytes for two tiles"
    );
    assert_eq!(tif.requests() as usize, server.request_log().len() - before);

    // a second read of the same tiles costs nothing more
    let again = server.request_log().len();
    tif.read_window::<f32>(Window::new(610, 530, 10, 10))
        .unwrap();
    assert_eq!(server.request_log().len(), again);
}
