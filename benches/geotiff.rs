//! GeoTIFF window reads (`sits_data::geotiff`), beside GDAL reading the same file
//! (`benches/peers/bench_geotiff.py`, through rasterio): a 4096 x 4096 uint16
//! Cloud-Optimized GeoTIFF, windows of 512 x 512 (four tiles), 2048 x 2048 and the
//! whole image, the file opened for every read as GDAL's side does.
//!
//! The file is the one the peer script wrote with GDAL's COG driver
//! (`target/bench-data/cog_u16_4096.tif`, or `SITS_BENCH_COG`); run the peer first
//! to compare the two on the same bytes. Without it (CI compiles and runs the
//! benches once without Python) this bench writes a COG of its own there with the
//! sits writer.
//!
//! `cargo bench --bench geotiff`

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array3;
use sits::sits_data::geotiff::write::{write_geotiff, WriteOptions};
use sits::sits_data::geotiff::{GeoTiff, Window};
use sits::sits_data::GeoInfo;

fn cog_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SITS_BENCH_COG") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/cog_u16_4096.tif");
    if !p.exists() {
        // the values of a CBERS near-infrared band tiled over the image, plus a
        // little deterministic noise
        let dir = sits::bundled_data_dir()
            .expect("the bundled data (SITS_DATA or the checkout)")
            .join("cbers4_awfi_022024_geotiff");
        let src = dir.join("CBERS-4_AWFI_022024_B16_2018-02-02.tif");
        let tile = GeoTiff::open(&src)
            .and_then(|mut t| t.read_all::<f32>())
            .expect("bundled file");
        let mut state = 1u64;
        let img = Array3::<u16>::from_shape_fn((1, 4096, 4096), |(_, r, c)| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let noise = ((state >> 59) as i32) - 16;
            (tile[[0, r % 50, c % 50]] as i32 + noise).clamp(1, 10000) as u16
        });
        let geo = GeoInfo {
            crs: "EPSG:32722".into(),
            transform: [600000.0, 10.0, 0.0, 8600000.0, 0.0, -10.0],
        };
        let opts = WriteOptions {
            tile: 512,
            cog: true,
            band_names: vec![],
        };
        write_geotiff(&p, img.view(), Some(&geo), None, &opts).expect("write the bench COG");
    }
    p
}

fn bench(c: &mut Criterion) {
    let path = cog_path();
    eprintln!("geotiff bench file: {}", path.display());
    let mut g = c.benchmark_group("geotiff_read");
    for (name, (r, col, h, w)) in [
        ("window_512", (1800, 1700, 512, 512)),
        ("window_2048", (1000, 900, 2048, 2048)),
        ("whole_4096", (0, 0, 4096, 4096)),
    ] {
        g.throughput(Throughput::Elements((h * w) as u64));
        g.bench_with_input(BenchmarkId::new(name, "sits"), &path, |b, p| {
            b.iter(|| {
                let mut t = GeoTiff::open(p).expect("open");
                t.read_window::<f32>(Window::new(r, col, h, w))
                    .expect("read")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
