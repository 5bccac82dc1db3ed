//! Zarr: round trips, chunk-selective reads, stores written by zarr-python, bad stores.

#![allow(clippy::unwrap_used, clippy::identity_op, clippy::type_complexity)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{s, Array3, Ix3, Ix4};
use sits_core::io::IfExists;
use sits_data::datasets::{self, SloveniaNdvi};
use sits_data::npy::read_npy;
use sits_data::zarr::{
    open_path, write_cube, write_cube_to, write_samples, CubeChunks, CubeWriter, ZarrContent,
    ZarrCube,
};
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::storage_adapter::performance_metrics::PerformanceMetricsStorageAdapter;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn counted(path: &Path) -> Arc<PerformanceMetricsStorageAdapter<FilesystemStore>> {
    Arc::new(PerformanceMetricsStorageAdapter::new(Arc::new(
        FilesystemStore::new(path).unwrap(),
    )))
}

#[test]
fn real_cube_round_trip_is_bit_identical() {
    let slo = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slo.zarr");
    write_cube(
        &slo.cube,
        &path,
        CubeChunks {
            t: 8,
            c: 1,
            y: 32,
            x: 32,
        },
        IfExists::Refuse,
    )
    .unwrap();
    let back = ZarrCube::open_path(&path).unwrap().read_all().unwrap();
    assert_eq!(back.times(), slo.cube.times());
    assert_eq!(back.valid_mask(), slo.cube.valid_mask());
    assert_eq!(back.geo(), slo.cube.geo());
    let same_bits = back
        .values()
        .iter()
        .zip(slo.cube.values().iter())
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same_bits);
    // the dtwsat cube has NaN values: compare bit patterns, not floats
    let dtw = sits_data::datasets::DtwsatCube::load(&data(datasets::DTWSAT_CUBE)).unwrap();
    let p2 = dir.path().join("dtw.zarr");
    write_cube(&dtw.cube, &p2, CubeChunks::default(), IfExists::Refuse).unwrap();
    let back = ZarrCube::open_path(&p2).unwrap().read_all().unwrap();
    assert!(back
        .values()
        .iter()
        .zip(dtw.cube.values().iter())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(back.bands(), dtw.cube.bands());
}

#[test]
fn window_reads_only_overlapping_chunks() {
    let slo = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slo.zarr");
    // 68 x 1 x 101 x 100 in chunks of 8 x 1 x 32 x 32: a 9 x 4 x 4 grid for values,
    // the (T, H, W) mask in chunks of 8 x 32 x 32
    write_cube(
        &slo.cube,
        &path,
        CubeChunks {
            t: 8,
            c: 1,
            y: 32,
            x: 32,
        },
        IfExists::Refuse,
    )
    .unwrap();
    let store = counted(&path);
    let z = ZarrCube::open(store.clone(), "slo").unwrap();
    store.reset();
    // dates 10..20 touch t-chunks 1 and 2; rows 40..60 touch y-chunk 1; cols 0..40 x-chunks 0 and 1
    let w = z.read(10..20, 40..60, 0..40).unwrap();
    assert_eq!(
        store.reads(),
        2 * 1 * 2 /* values */ + 2 * 1 * 2 /* valid */
    );
    assert_eq!(
        w.values(),
        slo.cube.values().slice(s![10..20, .., 40..60, 0..40])
    );
    store.reset();
    let _ = z.read(0..68, 0..101, 0..100).unwrap();
    assert_eq!(store.reads(), 9 * 4 * 4 * 2);
    // a date range
    store.reset();
    let t = slo.cube.times().as_slice();
    let r = z.read_time_range(t[16], t[24]).unwrap();
    assert_eq!(r.times().len(), 8);
    assert_eq!(store.reads(), 16 * 2);
}

#[test]
fn zarr_python_stores_read_back_identically() {
    let expected = read_npy(&fixture("zarr_expected_values.npy"))
        .unwrap()
        .to_f32()
        .into_dimensionality::<Ix4>()
        .unwrap();
    let valid = read_npy(&fixture("zarr_expected_valid.npy"))
        .unwrap()
        .to_i64(Path::new("valid"))
        .unwrap()
        .into_dimensionality::<Ix3>()
        .unwrap()
        .mapv(|v| v != 0);
    for store in ["zarr_python_v3.zarr", "zarr_python_v2.zarr"] {
        let z = ZarrCube::open_path(&fixture(store)).unwrap();
        assert_eq!(z.shape(), [5, 2, 6, 7], "{store}");
        assert_eq!(z.chunk_shape().unwrap(), vec![2, 1, 4, 4], "{store}");
        let cube = z.read_all().unwrap();
        assert!(
            cube.values()
                .iter()
                .zip(expected.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{store}: values differ"
        );
        assert_eq!(cube.valid_mask().unwrap(), &valid, "{store}");
        assert_eq!(cube.bands(), ["B04", "B08"]);
        assert_eq!(cube.times().to_iso()[2], "2018-10-14T10:07:28");
        assert_eq!(cube.geo().unwrap().crs, "EPSG:32631");
        let w = z.read(1..4, 2..6, 3..7).unwrap();
        assert_eq!(w.geo().unwrap().transform[0], 600030.0);
        assert!(w.values()[[0, 0, 0, 0]].is_nan());
        assert_eq!(w.values()[[1, 1, 1, 1]], expected[[2, 1, 3, 4]]);
    }
}

#[test]
fn sample_set_round_trip() {
    let set = datasets::mato_grosso(&data(datasets::MATO_GROSSO)).unwrap();
    let sub = set.subset(&(0..300).collect::<Vec<_>>()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mg.zarr");
    write_samples(&sub, &path, IfExists::Refuse).unwrap();
    match open_path(&path).unwrap() {
        ZarrContent::Samples(back) => assert_eq!(back, sub),
        ZarrContent::Cube(_) => panic!("expected a sample set"),
    }
}

#[test]
fn bad_stores_give_clear_errors() {
    // corrupt chunk bytes: metadata opens, the read names the array
    let z = ZarrCube::open_path(&fixture("zarr_corrupt_chunk.zarr")).unwrap();
    let e = z.read(0..2, 0..4, 0..4).unwrap_err().to_string();
    assert!(
        e.contains("zarr_corrupt_chunk.zarr") && e.contains("values"),
        "{e}"
    );
    // the other chunks still read
    assert!(z.read(2..4, 0..4, 0..4).is_ok());

    let dir = tempfile::tempdir().unwrap();
    // corrupt metadata
    let bad = dir.path().join("bad.zarr");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("zarr.json"),
        b"{\"zarr_format\": 3, \"node_type\": ",
    )
    .unwrap();
    let e = ZarrCube::open_path(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.zarr") && e.contains("root group"), "{e}");
    // a group without our attribute
    let plain = dir.path().join("plain.zarr");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(
        plain.join("zarr.json"),
        br#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#,
    )
    .unwrap();
    let e = ZarrCube::open_path(&plain).unwrap_err().to_string();
    assert!(e.contains("no `sits` attribute"), "{e}");
    // missing store
    let e = ZarrCube::open_path(&dir.path().join("nope.zarr"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.zarr"), "{e}");
    // window outside the cube
    let z = ZarrCube::open_path(&fixture("zarr_python_v3.zarr")).unwrap();
    let e = z.read(0..6, 0..1, 0..1).unwrap_err().to_string();
    assert!(e.contains("outside") && e.contains("5 dates"), "{e}");
    // dates attribute that does not match T
    let store = Arc::new(zarrs::storage::store::MemoryStore::new());
    let cube = z.read_all().unwrap();
    write_cube_to(&store, "mem", &cube, CubeChunks::default()).unwrap();
    let mut meta: serde_json::Value = serde_json::from_slice(
        &zarrs::storage::ReadableStorageTraits::get(&*store, &"zarr.json".try_into().unwrap())
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    meta["attributes"]["sits"]["times"]
        .as_array_mut()
        .unwrap()
        .pop();
    zarrs::storage::WritableStorageTraits::set(
        &*store,
        &"zarr.json".try_into().unwrap(),
        serde_json::to_vec(&meta).unwrap().into(),
    )
    .unwrap();
    let e = ZarrCube::open(store, "mem").unwrap_err().to_string();
    assert!(
        e.contains("4 times in sits.times but /values has T = 5"),
        "{e}"
    );
    let _ = Array3::<u8>::zeros((1, 1, 1));
}

#[test]
fn cube_writer_streams_windows_and_commits_atomically() {
    let slo = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let cube = slo.cube.window(0, 0, 40, 50).unwrap();
    let (t, c, h, w) = cube.shape();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamed.zarr");
    let chunks = CubeChunks {
        t: 16,
        c: 1,
        y: 16,
        x: 16,
    };
    let writer = CubeWriter::create(
        &path,
        cube.times(),
        cube.bands().to_vec(),
        [h, w],
        chunks,
        cube.geo(),
        IfExists::Refuse,
    )
    .unwrap();
    assert_eq!(writer.shape(), [t, c, h, w]);
    // windows that do not follow the chunk grid; the last column block is left out
    for (r, rows) in [(0, 23), (23, 17)] {
        for (cc, cols) in [(0, 30), (30, 12)] {
            let part = cube
                .values()
                .slice(s![.., .., r..r + rows, cc..cc + cols])
                .to_owned();
            writer.write_window(r, cc, part.view()).unwrap();
        }
    }
    // a window that does not fit is refused with the store's name
    let e = writer
        .write_window(30, 45, cube.values().slice(s![.., .., 0..20, 0..10]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("streamed.zarr"), "{e}");
    assert!(!path.exists(), "nothing at the destination before finish");
    writer.finish().unwrap();
    let back = ZarrCube::open_path(&path).unwrap().read_all().unwrap();
    assert_eq!(back.times(), cube.times());
    let (a, b) = (back.values(), cube.values());
    for ((idx, x), y) in a.indexed_iter().zip(b.iter()) {
        if idx.3 < 42 {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{idx:?}"
            );
        } else {
            assert!(x.is_nan(), "unwritten pixel {idx:?} reads as NaN");
        }
    }
}
