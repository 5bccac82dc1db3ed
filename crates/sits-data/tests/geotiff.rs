//! The GeoTIFF reader against GDAL: every fixture in `tests/fixtures/geotiff/` was
//! written and read back by GDAL (`make_fixtures.py`, through rasterio); the values
//! we read must equal GDAL's exactly, the geotransform agree to 1e-9 and the CRS be
//! the same.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{s, Array3, ArrayD, Ix3};
use serde_json::Value;
use sits_data::geotiff::{GeoTiff, SampleType, Window};
use sits_data::npy::{read_npy, NpyArray};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geotiff")
}

fn expected() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// GDAL's values, as f64 (exact for every sample type of the fixtures).
fn gdal_values(name: &str) -> Array3<f64> {
    let a: ArrayD<f64> = match read_npy(&dir().join(format!("{name}.npy"))).unwrap() {
        NpyArray::U8(a) => a.mapv(f64::from),
        NpyArray::I8(a) => a.mapv(f64::from),
        NpyArray::U16(a) => a.mapv(f64::from),
        NpyArray::I16(a) => a.mapv(f64::from),
        NpyArray::U32(a) => a.mapv(f64::from),
        NpyArray::I32(a) => a.mapv(f64::from),
        NpyArray::F32(a) => a.mapv(f64::from),
        NpyArray::F64(a) => a,
        other => panic!("{name}: unexpected dtype {:?}", other.dtype()),
    };
    a.into_dimensionality::<Ix3>().unwrap()
}

/// Index and values of the first element that differs (NaN equals NaN only).
fn first_difference(a: &Array3<f64>, b: &Array3<f64>) -> Option<(Vec<usize>, f64, f64)> {
    assert_eq!(a.shape(), b.shape());
    a.indexed_iter()
        .zip(b.iter())
        .find(|((_, x), y)| !(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()) || *x == *y))
        .map(|(((i, j, k), x), y)| (vec![i, j, k], *x, *y))
}

fn proj_params(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|t| t.strip_prefix('+'))
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (t.to_string(), String::new()),
        })
        .filter(|(k, _)| k != "no_defs" && k != "type")
        .collect()
}

fn same_param(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        _ => a == b,
    }
}

#[test]
fn every_fixture_reads_as_gdal_reads_it() {
    let all = expected();
    assert!(all.len() >= 30, "{} fixtures", all.len());
    for (name, e) in &all {
        let path = dir().join(format!("{name}.tif"));
        let mut tif = GeoTiff::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let info = tif.info().clone();
        assert_eq!(info.width as u64, e["width"].as_u64().unwrap(), "{name}");
        assert_eq!(info.height as u64, e["height"].as_u64().unwrap(), "{name}");
        assert_eq!(info.bands as u64, e["count"].as_u64().unwrap(), "{name}");
        let dtype = match info.sample_type {
            SampleType::U8 => "uint8",
            SampleType::I8 => "int8",
            SampleType::U16 => "uint16",
            SampleType::I16 => "int16",
            SampleType::U32 => "uint32",
            SampleType::I32 => "int32",
            SampleType::F32 => "float32",
            SampleType::F64 => "float64",
        };
        assert_eq!(dtype, e["dtype"].as_str().unwrap(), "{name}");

        // values: the whole image, then windows that cross block edges
        let gdal = gdal_values(name);
        let ours = tif.read_all::<f64>().unwrap();
        if let Some(d) = first_difference(&ours, &gdal) {
            panic!(
                "{name}: first difference at {:?}: ours {} GDAL {}",
                d.0, d.1, d.2
            );
        }
        let (h, w) = (info.height, info.width);
        for (r, c, wh, ww) in [
            (0, 0, 1, 1),
            (3, 5, 17, 29),
            (h - 9, w - 13, 9, 13),
            (h / 2, 0, 1, w),
        ] {
            let win = tif.read_window::<f64>(Window::new(r, c, wh, ww)).unwrap();
            let want = gdal.slice(s![.., r..r + wh, c..c + ww]).to_owned();
            assert!(
                first_difference(&win, &want).is_none(),
                "{name}: window {r},{c},{wh},{ww}"
            );
        }

        // georeference
        let gt: Vec<f64> = e["transform"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let geo = info
            .geo
            .clone()
            .unwrap_or_else(|| panic!("{name}: no georeference read"));
        for (k, (a, b)) in geo.transform.iter().zip(&gt).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{name}: transform[{k}] {a} vs GDAL {b}"
            );
        }
        match (geo.crs.strip_prefix("EPSG:"), e["crs_epsg"].as_u64()) {
            (Some(code), Some(gdal)) => assert_eq!(code.parse::<u64>().unwrap(), gdal, "{name}"),
            (Some(code), None) => panic!("{name}: we read EPSG:{code}, GDAL finds no EPSG code"),
            (None, _) => {
                let ours = proj_params(&geo.crs);
                let theirs = proj_params(e["crs_proj4"].as_str().unwrap());
                assert_eq!(
                    ours.keys().collect::<Vec<_>>(),
                    theirs.keys().collect::<Vec<_>>(),
                    "{name}: ours {} GDAL {}",
                    geo.crs,
                    e["crs_proj4"]
                );
                for (k, v) in &ours {
                    assert!(
                        same_param(v, &theirs[k]),
                        "{name}: +{k}={v} vs GDAL {}",
                        theirs[k]
                    );
                }
            }
        }
        assert_eq!(info.pixel_is_point, e["area_or_point"] == "Point", "{name}");

        // nodata, scale, offset
        match (info.nodata, e["nodata"].as_f64()) {
            (None, None) => {}
            (Some(a), Some(b)) => assert_eq!(a, b, "{name}: nodata"),
            (Some(a), None) if a.is_nan() && e["nodata"] == "nan" => {}
            (a, b) => panic!("{name}: nodata {a:?} vs GDAL {b:?} ({})", e["nodata"]),
        }
        let f = |k: &str| -> Vec<f64> {
            e[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        assert_eq!(info.scales, f("scales"), "{name}: scales");
        assert_eq!(info.offsets, f("offsets"), "{name}: offsets");
    }
}

#[test]
fn the_bundled_cbers_files_read_as_gdal_reads_them() {
    // the 70 published files: checked through one of them against the values GDAL
    // gave for the same file in the codec fixtures (int16 band B13 minus 5000)
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cbers4_awfi_022024_geotiff");
    let mut tif = GeoTiff::open(&data.join("CBERS-4_AWFI_022024_B13_2018-02-02.tif")).unwrap();
    let ours = tif.read_all::<f64>().unwrap();
    let gdal = gdal_values("codec_none_strips_pixel");
    let want = gdal.slice(s![0..1, .., ..]).mapv(|v| v + 5000.0);
    assert!(first_difference(&ours, &want).is_none());
    let info = tif.info();
    assert_eq!(info.nodata, Some(-9999.0));
    assert!(
        info.geo.as_ref().unwrap().crs.starts_with("+proj=aea"),
        "{:?}",
        info.geo
    );
}

// ------------------------------------------------------------------ writing

/// A Python with rasterio (GDAL) to read back what we write: `SITS_GDAL_PYTHON`.
/// `.ci/run` installs one and sets it; without it (a laptop without Python) the
/// GDAL read-back is skipped, and in CI its absence is a failure.
fn gdal_python() -> Option<String> {
    match std::env::var("SITS_GDAL_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SITS_GDAL_PYTHON (a python with rasterio) to check written GeoTIFFs with GDAL"
            );
            eprintln!("SITS_GDAL_PYTHON not set: GDAL read-back skipped");
            None
        }
    }
}

fn gdal_read(python: &str, files: &[&Path]) -> BTreeMap<String, Value> {
    let out = std::process::Command::new(python)
        .arg(dir().join("gdal_read.py"))
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn written_maps_open_in_gdal_with_their_grid_values_and_nodata() {
    use sits_data::geotiff::write::{write_geotiff, WriteOptions};
    use sits_data::GeoInfo;
    let tmp = tempfile::tempdir().unwrap();
    // the CRS of a real file (Albers without an EPSG code, as GDAL wrote it)
    let albers = GeoTiff::open(&dir().join("crs_albers_user_defined.tif"))
        .unwrap()
        .info()
        .geo
        .clone()
        .unwrap();
    let sinu = GeoTiff::open(&dir().join("crs_sinusoidal_modis.tif"))
        .unwrap()
        .info()
        .geo
        .clone()
        .unwrap();

    // 1. an embedding-like float map with holes, Albers, NaN nodata, band names
    let mut emb = Array3::<f32>::from_shape_fn((3, 45, 70), |(b, r, c)| {
        (b * 1000 + r * 70 + c) as f32 * 0.37 - 50.0
    });
    emb[[1, 3, 4]] = f32::NAN;
    emb[[2, 44, 69]] = f32::NAN;
    let p1 = tmp.path().join("embedding.tif");
    let names = vec!["e0".to_string(), "e1".into(), "e2".into()];
    write_geotiff(
        &p1,
        emb.view(),
        Some(&albers),
        Some(f64::NAN),
        &WriteOptions {
            tile: 16,
            cog: false,
            band_names: names.clone(),
        },
    )
    .unwrap();

    // 2. a class map, UTM by EPSG code, nodata 255, Cloud-Optimized with overviews
    let classes = Array3::<u8>::from_shape_fn((1, 100, 90), |(_, r, c)| {
        if r == c {
            255
        } else {
            ((r / 7 + c / 11) % 6) as u8
        }
    });
    let utm = GeoInfo {
        crs: "EPSG:32722".into(),
        transform: [600000.0, 10.0, 0.0, 8600000.0, 0.0, -10.0],
    };
    let p2 = tmp.path().join("classes_cog.tif");
    write_geotiff(
        &p2,
        classes.view(),
        Some(&utm),
        Some(255.0),
        &WriteOptions {
            tile: 32,
            cog: true,
            band_names: vec![],
        },
    )
    .unwrap();

    // 3. a rotated grid (transformation matrix) in the MODIS sinusoidal CRS
    let rotated = GeoInfo {
        crs: sinu.crs.clone(),
        transform: [-5559752.6, 231.6, 20.0, -1111950.5, 15.0, -231.6],
    };
    let scores = Array3::<f32>::from_shape_fn((1, 20, 33), |(_, r, c)| (r * c) as f32 / 7.0);
    let p3 = tmp.path().join("scores.tif");
    write_geotiff(
        &p3,
        scores.view(),
        Some(&rotated),
        None,
        &WriteOptions::default(),
    )
    .unwrap();

    // our own reader first (not the reference, a quick sanity check)
    let back = GeoTiff::open(&p2).unwrap().read_all::<f64>().unwrap();
    assert_eq!(back, classes.mapv(f64::from));

    let Some(python) = gdal_python() else { return };
    let got = gdal_read(&python, &[&p1, &p2, &p3]);
    let cases: [(&Path, Array3<f64>, &GeoInfo); 3] = [
        (&p1, emb.mapv(f64::from), &albers),
        (&p2, classes.mapv(f64::from), &utm),
        (&p3, scores.mapv(f64::from), &rotated),
    ];
    for (path, want, geo) in cases {
        let g = &got[path.to_str().unwrap()];
        let (b, h, w) = want.dim();
        assert_eq!(
            (
                g["count"].as_u64(),
                g["height"].as_u64(),
                g["width"].as_u64()
            ),
            (Some(b as u64), Some(h as u64), Some(w as u64))
        );
        for (k, band) in g["values"].as_array().unwrap().iter().enumerate() {
            for (i, v) in band.as_array().unwrap().iter().enumerate() {
                let ours = want[[k, i / w, i % w]];
                match v.as_f64() {
                    None => assert!(
                        ours.is_nan(),
                        "{}: band {k} pixel {i}: GDAL null, ours {ours}",
                        path.display()
                    ),
                    Some(x) => assert_eq!(x, ours, "{}: band {k} pixel {i}", path.display()),
                }
            }
        }
        let gt: Vec<f64> = g["transform"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (a, b) in geo.transform.iter().zip(&gt) {
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                "{}: transform {:?} vs GDAL {gt:?}",
                path.display(),
                geo.transform
            );
        }
        match geo.crs.strip_prefix("EPSG:") {
            Some(code) => assert_eq!(
                g["crs_epsg"].as_u64(),
                Some(code.parse().unwrap()),
                "{}",
                path.display()
            ),
            None => {
                let (ours, theirs) = (
                    proj_params(&geo.crs),
                    proj_params(g["crs_proj4"].as_str().unwrap()),
                );
                assert_eq!(
                    ours.keys().collect::<Vec<_>>(),
                    theirs.keys().collect::<Vec<_>>(),
                    "{}: {} vs {}",
                    path.display(),
                    geo.crs,
                    g["crs_proj4"]
                );
                for (k, v) in &ours {
                    assert!(
                        same_param(v, &theirs[k]),
                        "{}: +{k}={v} vs {}",
                        path.display(),
                        theirs[k]
                    );
                }
            }
        }
    }
    assert_eq!(got[p1.to_str().unwrap()]["nodata"], "nan");
    assert_eq!(
        got[p1.to_str().unwrap()]["descriptions"],
        serde_json::json!(names)
    );
    assert_eq!(got[p2.to_str().unwrap()]["nodata"].as_f64(), Some(255.0));
    assert_eq!(
        got[p2.to_str().unwrap()]["overviews"],
        serde_json::json!([2, 4])
    );
    assert!(got[p3.to_str().unwrap()]["nodata"].is_null());
}

// ------------------------------------------------------------------ points

#[test]
fn lonlat_points_land_on_the_pixel_gdal_gives() {
    use sits_data::geo::Crs;
    let mut checked = 0;
    let mut crs_kinds = std::collections::BTreeSet::new();
    for (name, e) in expected() {
        let Some(points) = e.get("points").and_then(Value::as_array) else {
            continue;
        };
        let tif = GeoTiff::open(&dir().join(format!("{name}.tif"))).unwrap();
        let info = tif.info().clone();
        let geo = info.geo.unwrap();
        let crs = Crs::parse(&geo.crs).unwrap_or_else(|e| panic!("{name}: {e}"));
        // map units: 1 mm in metres, or its angle in degrees
        let tol = if crs.is_geographic() { 1e-8 } else { 1e-3 };
        for p in points {
            let f = |k: &str| p[k].as_f64().unwrap();
            let (x, y) = crs.from_lonlat(f("lon"), f("lat")).unwrap();
            assert!(
                (x - f("x")).abs() < tol && (y - f("y")).abs() < tol,
                "{name}: ({x}, {y}) vs GDAL/PROJ ({}, {})",
                f("x"),
                f("y")
            );
            let px = geo.pixel_of(x, y, info.height, info.width);
            assert_eq!(
                px,
                Some((
                    p["row"].as_u64().unwrap() as usize,
                    p["col"].as_u64().unwrap() as usize
                )),
                "{name}: {p}"
            );
            checked += 1;
        }
        crs_kinds.insert(geo.crs.split_whitespace().next().unwrap().to_string());
    }
    assert!(checked >= 60, "{checked} points");
    assert!(crs_kinds.len() >= 5, "{crs_kinds:?}");
}

// ------------------------------------------------------------------ hostile files

/// A copy of a little-endian classic TIFF fixture with the value of one tag of its
/// first image directory replaced (a SHORT or LONG value stored in the entry).
fn patched(name: &str, tag: u16, value: u32) -> Vec<u8> {
    let mut b = std::fs::read(dir().join(format!("{name}.tif"))).unwrap();
    assert_eq!(&b[..4], b"II*\0");
    let ifd = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
    let n = u16::from_le_bytes(b[ifd..ifd + 2].try_into().unwrap()) as usize;
    for k in 0..n {
        let e = ifd + 2 + 12 * k;
        if u16::from_le_bytes(b[e..e + 2].try_into().unwrap()) == tag {
            let typ = u16::from_le_bytes(b[e + 2..e + 4].try_into().unwrap());
            match typ {
                3 => b[e + 8..e + 10].copy_from_slice(&(value as u16).to_le_bytes()),
                4 => b[e + 8..e + 12].copy_from_slice(&value.to_le_bytes()),
                t => panic!("tag {tag} has type {t}"),
            }
            return b;
        }
    }
    panic!("{name}: no tag {tag}");
}

fn open_err(bytes: Vec<u8>) -> String {
    let name = Path::new("hostile.tif");
    match GeoTiff::from_bytes(name, bytes) {
        Err(e) => e.to_string(),
        Ok(mut t) => t
            .read_all::<f32>()
            .map(|_| "read".to_string())
            .unwrap_or_else(|e| e.to_string()),
    }
}

#[test]
fn hostile_tiffs_are_errors_that_name_the_file() {
    let whole = std::fs::read(dir().join("codec_deflate_tiles_band.tif")).unwrap();
    // truncated: the last blocks point past the end
    let e = open_err(whole[..whole.len() / 2].to_vec());
    assert!(e.contains("hostile.tif") && e.contains("truncated"), "{e}");
    // not a TIFF at all
    let e = open_err(b"PK\x03\x04 not a tiff".to_vec());
    assert!(e.contains("hostile.tif"), "{e}");
    // an empty file
    assert!(open_err(Vec::new()).contains("hostile.tif"));
    // dimensions whose product overflows, on a striped file: no allocation, an error
    let e = open_err(patched("crs_utm22s", 256, u32::MAX));
    assert!(e.contains("hostile.tif"), "{e}");
    let e = open_err(patched("crs_utm22s", 257, u32::MAX));
    assert!(e.contains("hostile.tif"), "{e}");
    // huge tiles
    let e = open_err(patched("dtype_float64", 322, 1 << 20));
    assert!(e.contains("hostile.tif"), "{e}");
    // a strip offset past the end of the file
    let e = open_err(patched("crs_utm22s", 273, u32::MAX - 10));
    assert!(e.contains("truncated"), "{e}");
    // codecs and predictors that are not read: named, with the fix
    let e = open_err(patched("crs_utm22s", 259, 7));
    assert!(
        e.contains("compression 7") && e.contains("gdal_translate"),
        "{e}"
    );
    let e = open_err(patched("dtype_int16", 317, 9));
    assert!(
        e.contains("hostile.tif") && e.contains("predictor") && e.contains('9'),
        "{e}"
    );
    // a corrupt deflate stream: an error naming the file and the codec, not garbage
    // values (the assertion was `error or read` before: it could not fail)
    let mut bad = std::fs::read(dir().join("dtype_uint16.tif")).unwrap();
    let mid = bad.len() / 2;
    bad[mid..mid + 64].iter_mut().for_each(|x| *x ^= 0x5A);
    let e = open_err(bad);
    assert!(e.contains("hostile.tif") && e.contains("deflate"), "{e}");
}

#[test]
fn windows_outside_the_image_are_refused_with_its_size() {
    let mut tif = GeoTiff::open(&dir().join("crs_utm22s.tif")).unwrap();
    let e = tif
        .read_window::<f32>(Window::new(45, 0, 10, 10))
        .unwrap_err()
        .to_string();
    assert!(e.contains("50 rows"), "{e}");
    assert!(tif.read_window::<f32>(Window::new(0, 0, 0, 10)).is_err());
    assert!(tif
        .read_window::<f32>(Window::new(usize::MAX, 0, 2, 2))
        .is_err());
}
