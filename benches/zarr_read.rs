//! Zarr window reads: `ZarrCube::read` against the same subset retrieved with zarrs
//! directly (the floor any wrapper can reach), on the real Slovenia cube tiled 4 x 4
//! in space (68 x 1 x 404 x 400, 44 MB) in chunks of 8 x 1 x 64 x 64.
//!
//! `cargo bench --bench zarr_read`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{concatenate, ArrayD, Axis};
use sits::sits_core::io::IfExists;
use sits::sits_data::datasets::{self, SloveniaNdvi};
use sits::sits_data::zarr::{write_cube, CubeChunks, ZarrCube};
use sits::sits_data::Datacube;
use zarrs::array::Array;
use zarrs::filesystem::FilesystemStore;

fn tiled_cube() -> Datacube {
    let s = SloveniaNdvi::load(
        &sits::bundled_data_dir()
            .expect("the bundled data (SITS_DATA or the checkout)")
            .join(datasets::SLOVENIA_NDVI),
    )
    .expect("bundled data");
    let v = s.cube.values();
    let row = concatenate(Axis(3), &[v, v, v, v]).expect("same shapes");
    let big = concatenate(Axis(2), &[row.view(), row.view(), row.view(), row.view()])
        .expect("same shapes");
    let m = s.cube.valid_mask().expect("mask");
    let mrow =
        concatenate(Axis(2), &[m.view(), m.view(), m.view(), m.view()]).expect("same shapes");
    let mbig = concatenate(
        Axis(1),
        &[mrow.view(), mrow.view(), mrow.view(), mrow.view()],
    )
    .expect("same shapes");
    Datacube::new(big, s.cube.times().clone(), s.cube.bands().to_vec())
        .and_then(|c| c.with_valid(mbig))
        .expect("valid cube")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiled.zarr");
    write_cube(
        &tiled_cube(),
        &path,
        CubeChunks {
            t: 8,
            c: 1,
            y: 64,
            x: 64,
        },
        IfExists::Refuse,
    )
    .expect("write");
    let z = ZarrCube::open_path(&path).expect("open");
    let store = Arc::new(FilesystemStore::new(&path).expect("store"));
    let raw = Array::open(store, "/values").expect("values");

    let mut g = c.benchmark_group("zarr_window_read");
    // (dates, rows, cols): a patch time series, a large tile, the whole cube
    for (name, t, r, w) in [
        ("patch_68x64x64", 0..68usize, 128..192usize, 128..192usize),
        ("tile_32x256x256", 16..48, 64..320, 64..320),
        ("whole_68x404x400", 0..68, 0..404, 0..400),
    ] {
        let bytes = (t.len() * r.len() * w.len() * 4) as u64;
        g.throughput(Throughput::Bytes(bytes));
        g.bench_with_input(BenchmarkId::new("sits_ZarrCube_read", name), &(), |b, _| {
            b.iter(|| z.read(t.clone(), r.clone(), w.clone()).expect("read"))
        });
        let ranges = [
            t.start as u64..t.end as u64,
            0..1,
            r.start as u64..r.end as u64,
            w.start as u64..w.end as u64,
        ];
        g.bench_with_input(
            BenchmarkId::new("zarrs_retrieve_values_only", name),
            &(),
            |b, _| {
                b.iter(|| {
                    let a: ArrayD<f32> =
                        raw.retrieve_array_subset(&ranges.as_slice()).expect("read");
                    a
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
