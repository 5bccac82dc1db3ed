//! The `sits` binary on a cube it has never seen (synthetic: two bands, calendar
//! years of 15 irregular dates, clouds), as a user would run it: every command
//! succeeds, ends with a machine-readable `result:` line and writes its outputs; a
//! band mismatch with the saved encoder exits with an error naming the band.

use std::path::Path;
use std::process::{Command, Output};

use sits_core::io::IfExists;
use sits_tasks::synthetic::{cube, SyntheticCube};

fn sits(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sits"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run sits")
}

/// The last line of stdout, parsed as `result: key=value ...`.
fn result(o: &Output) -> Vec<(String, String)> {
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "sits failed: {}\n{stdout}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let rest = last
        .strip_prefix("result: ")
        .unwrap_or_else(|| panic!("last line: {last}"));
    rest.split(' ')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {kv}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn get<'a>(r: &'a [(String, String)], key: &str) -> &'a str {
    r.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {r:?}"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn the_cli_path_on_an_unseen_cube() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let spec = SyntheticCube::default();
    let zarr = t.join("region.zarr");
    sits_data::zarr::write_cube(
        &cube(&spec).expect("cube"),
        &zarr,
        Default::default(),
        IfExists::Refuse,
    )
    .expect("write zarr");

    let r = result(&sits(&["inspect", s(&zarr)]));
    assert_eq!(get(&r, "input"), s(&zarr));

    // a cube folder made from the store reads back as the same cube
    let folder = t.join("region_folder");
    let r = result(&sits(&["convert", s(&zarr), s(&folder)]));
    assert_eq!(get(&r, "to"), "cube_folder");
    assert_eq!(get(&r, "values"), (45 * 2 * 12 * 10).to_string());

    let enc = t.join("encoder");
    let r = result(&sits(&[
        "pretrain",
        s(&folder),
        "--out",
        s(&enc),
        "--epochs",
        "2",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
    ]));
    assert_eq!(get(&r, "series"), "360");
    assert_eq!(get(&r, "dates"), "15");
    assert_eq!(get(&r, "bands"), "red,nir");
    assert!(enc.join("encoder.json").is_file() && enc.join("encoder.safetensors").is_file());
    // the same command again does not replace the encoder
    let again = sits(&["pretrain", s(&folder), "--out", s(&enc), "--epochs", "1"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));

    let emb = t.join("emb");
    let r = result(&sits(&[
        "embed",
        s(&zarr),
        "--encoder",
        s(&enc),
        "--out",
        s(&emb),
    ]));
    assert_eq!(get(&r, "pixel_periods"), "360");
    assert_eq!(get(&r, "periods"), "3");
    assert_eq!(get(&r, "dims"), (15 * 16).to_string());
    assert!(emb.join("embeddings.zarr").is_dir() && emb.join("embeddings.png").is_file());

    let cl = t.join("clusters");
    let r = result(&sits(&[
        "cluster",
        s(&emb.join("embeddings.zarr")),
        "--out",
        s(&cl),
        "--k",
        "3",
    ]));
    assert_eq!(get(&r, "k"), "3");
    assert_eq!(get(&r, "trajectories"), "120");
    assert_eq!(get(&r, "ari"), "none");
    for f in [
        "clusters.png",
        "clusters_2019.png",
        "clusters.zarr",
        "trajectory_clusters.zarr",
    ] {
        assert!(cl.join(f).exists(), "{f} missing");
    }

    let ch = t.join("changes");
    let r = result(&sits(&[
        "changes",
        s(&zarr),
        "--encoder",
        s(&enc),
        "--out",
        s(&ch),
    ]));
    assert_eq!(get(&r, "pairs"), "2");
    assert!(get(&r, "mean_score").parse::<f64>().expect("number") > 0.0);
    assert!(ch.join("changes_2020-2021.png").is_file() && ch.join("changes.zarr").is_dir());

    // another cube whose second band is not the encoder's
    let mut other = spec.clone();
    other.bands = vec!["red".into(), "swir16".into()];
    let oz = t.join("other.zarr");
    sits_data::zarr::write_cube(
        &cube(&other).expect("cube"),
        &oz,
        Default::default(),
        IfExists::Refuse,
    )
    .expect("write zarr");
    let o = sits(&[
        "embed",
        s(&oz),
        "--encoder",
        s(&enc),
        "--out",
        s(&t.join("emb2")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("lacks [\"nir\"]") && err.contains("swir16"),
        "{err}"
    );
}

#[test]
fn an_output_inside_the_input_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let zarr = tmp.path().join("region.zarr");
    sits_data::zarr::write_cube(
        &cube(&SyntheticCube::default()).expect("cube"),
        &zarr,
        Default::default(),
        IfExists::Refuse,
    )
    .expect("write zarr");
    let inside = zarr.join("out");
    let o = sits(&["pretrain", s(&zarr), "--out", s(&inside)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the input"));
    assert!(!inside.exists(), "the refused output was created");
}
