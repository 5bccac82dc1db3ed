//! Zarr stores on object storage: a real S3-compatible server (s3s-fs) on
//! 127.0.0.1, reached through the same environment variables a user sets. One test
//! function, so that the request counts are not mixed with another test's.

#![allow(clippy::unwrap_used, clippy::identity_op)]

use std::path::{Path, PathBuf};

use ndarray::s;
use sits_core::io::IfExists;
use sits_data::datasets::{self, SloveniaNdvi};
use sits_data::zarr::{
    open_path, write_cube, write_samples, CubeChunks, CubeWriter, ZarrContent, ZarrCube,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

#[test]
fn stores_on_an_s3_server() {
    let root = tempfile::tempdir().unwrap();
    let server = sits_testing::S3Server::start(root.path(), 0).unwrap();
    server.create_bucket("cubes").unwrap();
    for (k, v) in server.env() {
        std::env::set_var(k, v);
    }
    let slo = SloveniaNdvi::load(&data(datasets::SLOVENIA_NDVI)).unwrap();
    let url = Path::new("s3://cubes/runs/slo.zarr");
    let chunks = CubeChunks {
        t: 8,
        c: 1,
        y: 32,
        x: 32,
    };
    write_cube(&slo.cube, url, chunks, IfExists::Refuse).unwrap();
    // the objects are where a user of any S3 tool would look
    assert!(root
        .path()
        .join("cubes/runs/slo.zarr/values/c/0/0/0/0")
        .is_file());

    // the whole cube reads back bit-identical
    let z = ZarrCube::open_path(url).unwrap();
    let back = z.read_all().unwrap();
    assert_eq!(back.times(), slo.cube.times());
    assert_eq!(back.valid_mask(), slo.cube.valid_mask());
    assert!(back
        .values()
        .iter()
        .zip(slo.cube.values().iter())
        .all(|(a, b)| a.to_bits() == b.to_bits()));

    // a window costs one GET per chunk it touches, as on disk (tests/zarr.rs):
    // dates 10..20 touch t-chunks 1 and 2, rows 40..60 y-chunk 1, cols 0..40
    // x-chunks 0 and 1, for the values and the mask
    let before = server.requests();
    let w = z.read(10..20, 40..60, 0..40).unwrap();
    assert_eq!(server.requests() - before, 2 * 1 * 2 + 2 * 1 * 2);
    let log = server.request_log();
    assert!(
        log[before..].iter().all(|r| r.starts_with("GET ")),
        "{:?}",
        &log[before..]
    );
    assert_eq!(
        w.values(),
        slo.cube.values().slice(s![10..20, .., 40..60, 0..40])
    );

    // an existing store is never replaced on object storage, not even when asked
    for if_exists in [IfExists::Refuse, IfExists::Replace] {
        let e = write_cube(&slo.cube, url, chunks, if_exists).unwrap_err();
        assert!(e.to_string().contains("never deletes"), "{e}");
    }
    // nor is a prefix holding anything else
    std::fs::create_dir_all(root.path().join("cubes/theirs")).unwrap();
    std::fs::write(root.path().join("cubes/theirs/notes.txt"), b"mine").unwrap();
    let e = write_cube(
        &slo.cube,
        Path::new("s3://cubes/theirs"),
        chunks,
        IfExists::Replace,
    )
    .unwrap_err();
    assert!(e.to_string().contains("never replaced"), "{e}");
    assert_eq!(
        std::fs::read(root.path().join("cubes/theirs/notes.txt")).unwrap(),
        b"mine"
    );

    // a sample set round trip
    let set = datasets::mato_grosso(&data(datasets::MATO_GROSSO)).unwrap();
    let sub = set.subset(&(0..200).collect::<Vec<_>>()).unwrap();
    let surl = Path::new("s3://cubes/mg.zarr");
    write_samples(&sub, surl, IfExists::Refuse).unwrap();
    match open_path(surl).unwrap() {
        ZarrContent::Samples(back) => assert_eq!(back, sub),
        ZarrContent::Cube(_) => panic!("expected a sample set"),
    }

    // a streamed writer cut short leaves no root metadata: nothing reads as a cube
    let cut = Path::new("s3://cubes/cut.zarr");
    let wr = CubeWriter::create(
        cut,
        slo.cube.times(),
        slo.cube.bands().to_vec(),
        [101, 100],
        chunks,
        None,
        IfExists::Refuse,
    )
    .unwrap();
    wr.write_window(0, 0, slo.cube.values().slice(s![.., .., 0..32, 0..32]))
        .unwrap();
    drop(wr);
    assert!(ZarrCube::open_path(cut).is_err());
    assert!(!root.path().join("cubes/cut.zarr/zarr.json").exists());

    // a missing bucket or a wrong key is an error naming the store, not a panic
    let e = ZarrCube::open_path(Path::new("s3://nobucket/x.zarr")).unwrap_err();
    assert!(e.to_string().contains("s3://nobucket/x.zarr"), "{e}");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "wrong");
    let e = ZarrCube::open_path(url).unwrap_err();
    assert!(e.to_string().contains("s3://cubes/runs/slo.zarr"), "{e}");
}
