//! The `sits` binary on a folder of GeoTIFFs exactly as published (CBERS-4 AWFI,
//! Albers CRS without an EPSG code, a CMASK cloud layer): inspect, pretrain, embed,
//! cluster and changes run on it, and the GeoTIFF maps they write are reopened by
//! GDAL (through rasterio, `SITS_GDAL_PYTHON`) with the input's CRS and
//! geotransform as GDAL reads them from an input file.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

mod common;
use common::{get, result, s};

fn sits(args: &[&str]) -> std::process::Output {
    common::sits(args, &[])
}

fn cbers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/cbers4_awfi_022024_geotiff")
}

fn small(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for a in [
        "--epochs",
        "2",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
    ] {
        v.push(a.into());
    }
    v
}

fn run(args: &[String]) -> Vec<(String, String)> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    result(&sits(&refs))
}

#[test]
fn the_cli_path_on_a_folder_of_geotiffs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let input = cbers();

    let o = sits(&["inspect", s(&input)]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{text}");
    assert!(text.contains("14 dates x 4 bands x 50 x 50"), "{text}");
    assert!(text.contains("clouds: layer CMASK"), "{text}");
    assert!(text.contains("+proj=aea"), "{text}");

    // one calendar year: pretrain, embed, cluster
    let enc = t.join("enc");
    let r = run(&small(&["pretrain", s(&input), "--out", s(&enc)]));
    assert_eq!(get(&r, "series"), "2500");
    assert_eq!(get(&r, "bands"), "B13,B14,B15,B16");
    let emb = t.join("emb");
    let r = run(&[
        "embed".into(),
        s(&input).into(),
        "--encoder".into(),
        s(&enc).into(),
        "--out".into(),
        s(&emb).into(),
    ]);
    assert_eq!(get(&r, "pixel_periods"), "2500");
    let clu = t.join("clu");
    let zarr = emb.join("embeddings.zarr");
    let r = run(&[
        "cluster".into(),
        s(&zarr).into(),
        "--out".into(),
        s(&clu).into(),
        "--k".into(),
        "4".into(),
    ]);
    assert_eq!(get(&r, "k"), "4");

    // two periods (from May): the change scores between them
    let enc2 = t.join("enc2");
    run(&small(&[
        "pretrain",
        s(&input),
        "--out",
        s(&enc2),
        "--start-month",
        "5",
        "--any-length",
        "--pooling",
        "mean",
    ]));
    let ch = t.join("changes");
    let r = run(&[
        "changes".into(),
        s(&input).into(),
        "--encoder".into(),
        s(&enc2).into(),
        "--out".into(),
        s(&ch).into(),
    ]);
    assert_eq!(get(&r, "pairs"), "1");

    let maps = [
        emb.join("embeddings_2018-02-02.tif"),
        clu.join("clusters.tif"),
        ch.join("changes.tif"),
    ];
    for m in &maps {
        assert!(m.is_file(), "{} missing", m.display());
    }
    let source = input.join("CBERS-4_AWFI_022024_B13_2018-02-02.tif");
    let mut files: Vec<&Path> = maps.iter().map(PathBuf::as_path).collect();
    files.push(&source);
    let Some(g) = common::gdal(&files) else {
        return;
    };
    let src = &g[s(&source)];
    for m in &maps {
        let got = &g[s(m)];
        assert_eq!(got["crs_proj4"], src["crs_proj4"], "{}", m.display());
        assert_eq!(
            (&got["width"], &got["height"]),
            (&src["width"], &src["height"]),
            "{}",
            m.display()
        );
        let (a, b) = (
            got["transform"].as_array().unwrap(),
            src["transform"].as_array().unwrap(),
        );
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                "{}: {a:?} vs {b:?}",
                m.display()
            );
        }
        assert_eq!(got["nodata"], "nan", "{}", m.display());
    }
    // the cluster map holds the four cluster numbers and nothing else
    let vals: std::collections::BTreeSet<i64> = g[s(&maps[1])]["values"][0]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_f64())
        .map(|v| v as i64)
        .collect();
    assert_eq!(vals, (0..4).collect());
}

#[test]
fn raster_folder_options_and_their_errors() {
    let input = cbers();
    let o = sits(&[
        "inspect",
        s(&input),
        "--bands",
        "B16,B14",
        "--cloud-band",
        "none",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("14 dates x 2 bands") && text.contains("[\"B16\", \"B14\"]"),
        "{text}"
    );
    assert!(text.contains("no cloud layer"), "{text}");

    let o = sits(&[
        "inspect",
        s(&input),
        "--cloud-band",
        "CMASK",
        "--cloud-values",
        "4",
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("values [4.0] masked"));

    // a pattern without {band}, a band that is not there
    let o = sits(&["inspect", s(&input), "--pattern", "{tile}_{date}"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("{band}"));
    let o = sits(&["inspect", s(&input), "--bands", "B13,B99"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("B99"));

    // a copy without one file: the missing band-date is named, nothing is read
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&input).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".tif") && name != "CBERS-4_AWFI_022024_B15_2018-04-07.tif" {
            std::fs::copy(&p, tmp.path().join(&name)).unwrap();
        }
    }
    let o = sits(&["inspect", s(tmp.path())]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && err.contains("B15 on 2018-04-07"),
        "{err}"
    );
    // leaving the band out is the fix
    let o = sits(&["inspect", s(tmp.path()), "--bands", "B13,B14,B16"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // a file on another grid is named with what differs
    let other = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../sits-data/tests/fixtures/geotiff/crs_utm22s.tif"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("CBERS-4_AWFI_022024_B15_2018-04-07.tif"),
        other,
    )
    .unwrap();
    let o = sits(&["inspect", s(tmp.path())]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("B15_2018-04-07.tif") && err.contains("CRS"),
        "{err}"
    );
}

#[test]
fn points_in_longitude_latitude_label_a_cube_for_classify_and_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cube = root.join("data/eolearn_slovenia_s2_ndvi");
    let enc = root.join("data/encoders/s2_ndvi_pixel");
    let points = root.join("crates/sits-data/tests/fixtures/points/slovenia_points.csv");
    let out = tmp.path().join("cls");
    let o = sits(&[
        "classify",
        s(&cube),
        "--encoder",
        s(&enc),
        "--points",
        s(&points),
        "--out",
        s(&out),
    ]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    // the two points that cannot be placed are listed by id, with the reason
    assert!(
        text.contains("2 point(s) not placed") && text.contains("outside: outside the cube"),
        "{text}"
    );
    assert!(text.contains("no_dates: no date of the cube"), "{text}");
    let r = result(&o);
    let (train, test): (usize, usize) = (
        get(&r, "train_points").parse().unwrap(),
        get(&r, "test_points").parse().unwrap(),
    );
    assert_eq!(train + test, 59, "{r:?}");
    assert!(test >= 10, "{r:?}");
    assert!(out.join("classes.tif").is_file());

    let geojson = points.with_extension("geojson");
    let o = sits(&[
        "experiment",
        "--data",
        s(&cube),
        "--points",
        s(&geojson),
        "--epochs",
        "1",
        "--out",
        s(&tmp.path().join("exp")),
    ]);
    let r = result(&o);
    assert!(
        get(&r, "raw_probe_oa@100").parse::<f64>().unwrap() > 0.0,
        "{r:?}"
    );
}
