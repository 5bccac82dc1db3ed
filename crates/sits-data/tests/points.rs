//! Labelled points in longitude/latitude placed on a cube: the pixel is the one
//! GDAL's inverse geotransform gives (fixtures made with rasterio on the Slovenia
//! cube, EPSG:32633: `tests/fixtures/points/make_points.py`), and points that
//! cannot be placed are listed with their reason. The Albers, sinusoidal, UTM and
//! geographic CRSs are checked point by point in `tests/geotiff.rs`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;
use sits_data::points::{place, read_points};
use sits_data::CubeFolder;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/points")
}

#[test]
fn points_land_on_the_pixel_gdal_gives_and_the_rest_are_listed() {
    let csv = read_points(&fixtures().join("slovenia_points.csv")).unwrap();
    let geojson = read_points(&fixtures().join("slovenia_points.geojson")).unwrap();
    assert_eq!(csv, geojson);
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let folder = CubeFolder::read(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/eolearn_slovenia_s2_ndvi"),
    )
    .unwrap();
    let placed = place(&csv, &folder.cube, "slovenia").unwrap();
    assert_eq!(placed.samples.len() + placed.refused.len(), csv.len());
    assert!(placed.samples.len() >= 55, "{}", placed.samples.len());
    for s in &placed.samples {
        let e = &expected[&s.id];
        assert_eq!(
            (s.row as u64, s.col as u64),
            (e["row"].as_u64().unwrap(), e["col"].as_u64().unwrap()),
            "{}",
            s.id
        );
        assert_eq!(
            placed.class_names[s.label.unwrap()],
            e["label"].as_str().unwrap(),
            "{}",
            s.id
        );
        // 2016 only
        let t = folder.cube.times().as_slice();
        assert!(
            t[s.t_start].to_string().starts_with("2016")
                && t[s.t_end].to_string().starts_with("2016")
        );
    }
    let why: std::collections::BTreeMap<_, _> = placed.refused.iter().cloned().collect();
    assert!(why["outside"].contains("outside the cube"), "{why:?}");
    assert!(why["no_dates"].contains("no date of the cube"), "{why:?}");
    for id in why.keys() {
        assert!(
            expected[id].get("refused").is_some(),
            "{id} refused: {}",
            why[id]
        );
    }
}

#[test]
fn bad_point_tables_are_errors_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let head = "id,longitude,latitude,start_date,end_date,label\n";
    let e = read_points(&write(
        "a.csv",
        &format!("{head}a,14.5,95.0,2016-01-01,2016-12-31,x\n"),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("latitude") && e.contains("line 2"), "{e}");
    let e = read_points(&write(
        "b.csv",
        &format!("{head}a,14.5,45.0,2016-13-01,2016-12-31,x\n"),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("start_date") && e.contains("line 2"), "{e}");
    let e = read_points(&write(
        "c.csv",
        &format!("{head}a,14.5,45.0,2016-05-01,2016-01-01,x\n"),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("before start_date"), "{e}");
    let e = read_points(&write("d.csv", "lon,lat,label\n1,2,x\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("longitude") && e.contains("columns found"),
        "{e}"
    );
    let e = read_points(&write(
        "e.csv",
        &format!("{head}a,1,2,2016-01-01,2016-12-31,x\na,1,2,2016-01-01,2016-12-31,y\n"),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("twice"), "{e}");
    let e = read_points(&write("f.geojson", r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[]},"properties":{}}]}"#)).unwrap_err().to_string();
    assert!(e.contains("points only"), "{e}");
}
