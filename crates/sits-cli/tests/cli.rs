//! The `sits` binary on a cube it has never seen (synthetic: two bands, calendar
//! years of 15 irregular dates, clouds), as a user would run it: every command
//! succeeds, ends with a machine-readable `result:` line and writes its outputs; a
//! band mismatch with the saved encoder exits with an error naming the band.

use std::path::Path;
use std::process::{Command, Output};

use sits_core::io::IfExists;
use sits_tasks::synthetic::{cube, SyntheticCube};

mod common;
use common::{get, result, s};

fn sits(args: &[&str]) -> Output {
    common::sits(args, &[])
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
    assert_eq!(get(&r, "ari_first_half"), "none");
    assert_eq!(get(&r, "ari_second_half"), "none");
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
    // behaviour: the top-left block of the synthetic cube changes type in the last
    // year; its change scores between the last two years must stand well above
    // those of the pixels that keep their type
    let scores = sits_data::zarr::ZarrCube::open_path(&ch.join("changes.zarr"))
        .and_then(|z| z.read_all())
        .expect("read changes.zarr");
    let last_pair = scores.values().index_axis(ndarray::Axis(0), 1).to_owned();
    let (mut changed, mut kept) = (Vec::new(), Vec::new());
    for ((_, r, c), &v) in last_pair.indexed_iter() {
        assert!(v.is_finite(), "change score at ({r}, {c}) is {v}");
        if spec.changed(r, c) {
            changed.push(f64::from(v));
        } else {
            kept.push(f64::from(v));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (mc, mk) = (mean(&changed), mean(&kept));
    eprintln!("change scores 2020-2021: changed {mc:.4}, kept {mk:.4}");
    assert!(
        !changed.is_empty() && mc > 2.0 * mk,
        "changed {mc} vs kept {mk}"
    );

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

#[test]
fn segment_a_cube_folder_with_label_and_split_layers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = SyntheticCube {
        years: 1,
        dates_per_year: 8,
        size: (32, 32),
        ..SyntheticCube::default()
    };
    let dir = tmp.path().join("cube");
    sits_data::folder::write_cube_folder(&cube(&spec).expect("cube"), &dir, IfExists::Refuse)
        .expect("cube folder");
    // land-cover ids 10/20/30 for the three stripes, and a block split
    let ids =
        ndarray::Array2::from_shape_fn((32, 32), |(r, c)| 10 * (spec.kind(r, c, 0) as i64 + 1));
    let split =
        ndarray::Array2::from_shape_fn(
            (32, 32),
            |(r, c)| if (r / 8 + c / 8) % 4 == 0 { 2u8 } else { 1 },
        );
    sits_data::npy::write_npy(
        &dir.join("lulc.npy"),
        &ids.view().into_dyn(),
        IfExists::Refuse,
    )
    .expect("lulc");
    sits_data::npy::write_npy(
        &dir.join("split.npy"),
        &split.view().into_dyn(),
        IfExists::Refuse,
    )
    .expect("split");
    let meta_path = dir.join("metadata.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).expect("read")).expect("json");
    meta["files"]["lulc.npy"] = serde_json::json!({"shape": [32, 32]});
    meta["files"]["split.npy"] = serde_json::json!({"shape": [32, 32]});
    std::fs::write(&meta_path, meta.to_string()).expect("write");

    let out = tmp.path().join("seg");
    let r = result(&sits(&[
        "segment",
        s(&dir),
        "--out",
        s(&out),
        "--labels",
        "lulc",
        "--split",
        "split",
        "--classes",
        "10,20,30",
        "--epochs",
        "1",
        "--utae-epochs",
        "1",
    ]));
    for key in ["ubarn_miou", "utae_miou", "raw_miou"] {
        let v: f64 = get(&r, key).parse().expect("number");
        assert!((0.0..=1.0).contains(&v), "{key}={v}");
    }
    // clean synthetic stripes: the raw per-pixel probe finds them
    assert!(get(&r, "raw_miou").parse::<f64>().expect("number") > 0.8);
    let files: Vec<String> = std::fs::read_dir(&out)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    for f in [
        "maps.png",
        "report.md",
        "results.json",
        "ubarn_ssl.zarr",
        "utae.zarr",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} missing from {files:?}");
    }
    // a layer that is not there is named
    let o = sits(&[
        "segment",
        s(&dir),
        "--out",
        s(&tmp.path().join("seg2")),
        "--labels",
        "crops",
        "--split",
        "split",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("crops"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn three_worker_processes_fill_one_store_and_verify_checks_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let spec = SyntheticCube {
        size: (10, 14),
        ..SyntheticCube::default()
    };
    let zarr = t.join("region.zarr");
    sits_data::zarr::write_cube(
        &cube(&spec).expect("cube"),
        &zarr,
        Default::default(),
        IfExists::Refuse,
    )
    .expect("write zarr");
    let enc = t.join("encoder");
    result(&sits(&[
        "pretrain",
        s(&zarr),
        "--out",
        s(&enc),
        "--epochs",
        "1",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
    ]));
    // one process
    let one = t.join("one");
    result(&sits(&[
        "embed",
        s(&zarr),
        "--encoder",
        s(&enc),
        "--out",
        s(&one),
        "--block",
        "4",
    ]));
    // three workers at once, the third picking its shard from a Kubernetes-style index
    let shared = t.join("shared");
    let spawn = |args: Vec<String>, env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_sits"))
            .args(&args)
            .arg("--quiet")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let base: Vec<String> = [
        "embed",
        s(&zarr),
        "--encoder",
        s(&enc),
        "--out",
        s(&shared),
        "--block",
        "4",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let with = |extra: &[&str]| {
        base.iter()
            .cloned()
            .chain(extra.iter().map(|x| x.to_string()))
            .collect()
    };
    let workers = vec![
        spawn(with(&["--shard", "0/3"]), &[]),
        spawn(with(&["--shard", "1/3"]), &[]),
        spawn(
            with(&[]),
            &[("JOB_COMPLETION_INDEX", "2"), ("SITS_SHARD_COUNT", "3")],
        ),
    ];
    for w in workers {
        let o = w.wait_with_output().expect("wait");
        let r = result(&o);
        assert!(get(&r, "shard").ends_with("/3"));
    }
    let store = shared.join("embeddings.zarr");
    let r = result(&sits(&["verify", s(&store)]));
    assert_eq!((get(&r, "blocks"), get(&r, "missing")), ("12", "0"));
    let bits = |p: &Path| {
        sits_data::zarr::ZarrCube::open_path(p)
            .expect("open")
            .read_all()
            .expect("read")
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<u32>>()
    };
    assert_eq!(
        bits(&one.join("embeddings.zarr")),
        bits(&store),
        "three workers differ from one process"
    );
    // a deleted chunk is caught, and a rerun of its shard rewrites that block only
    std::fs::remove_file(store.join("values/c/0/0/2/3")).expect("rm chunk");
    std::fs::remove_file(store.join(sits_data::zarr::DONE_DIR).join("8_12.stored"))
        .expect("rm marker");
    let o = sits(&["verify", s(&store)]);
    assert!(!o.status.success());
    let last = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.ends_with("missing=1"), "{last}");
    let r = result(&sits(
        &with(&["--shard", "2/3"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    assert_eq!(get(&r, "blocks_done_before"), "3");
    assert_eq!(get(&result(&sits(&["verify", s(&store)])), "missing"), "0");
    assert_eq!(bits(&one.join("embeddings.zarr")), bits(&store));
}

/// Presto through the CLI on a synthetic cube with `red` and `nir` in reflectance
/// (its NIR and NDVI tokens): continued pretraining, then the result used as an
/// encoder; a published encoder named where an encoder folder is needed is refused.
#[test]
fn presto_from_the_published_weights_through_pretrain_and_cluster() {
    let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/weights/presto/default_model.pt");
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let zarr = t.join("region.zarr");
    let mut c = cube(&SyntheticCube::default()).expect("cube");
    // the synthetic bands are reflectance-like; Presto checks the units
    c.values_mut()
        .mapv_inplace(|v| 0.05 + 0.3 * v.abs().min(2.0));
    // and reads each pixel's location from the grid
    let c = c.with_geo(Some(sits_data::GeoInfo {
        crs: "EPSG:4326".into(),
        transform: [14.5, 0.001, 0.0, 45.9, 0.0, -0.001],
    }));
    sits_data::zarr::write_cube(&c, &zarr, Default::default(), IfExists::Refuse)
        .expect("write zarr");
    let presto = format!("presto:{}", weights.display());
    let out = t.join("presto");
    let r = result(&sits(&[
        "pretrain",
        s(&zarr),
        "--from",
        &presto,
        "--out",
        s(&out),
        "--epochs",
        "2",
        "--lr",
        "1e-4",
        "--max-series",
        "64",
    ]));
    assert_eq!(get(&r, "series"), "64");
    let (first, last): (f64, f64) = (
        get(&r, "first_loss").parse().expect("loss"),
        get(&r, "last_loss").parse().expect("loss"),
    );
    assert!(
        first.is_finite() && last.is_finite() && last < first,
        "{first} -> {last}"
    );
    let continued = format!("presto:{}", out.join("presto.safetensors").display());
    let r = result(&sits(&[
        "cluster",
        s(&zarr),
        "--encoder",
        &continued,
        "--out",
        s(&t.join("k")),
        "--k",
        "3",
    ]));
    assert_eq!(get(&r, "k"), "3");
    assert_eq!(get(&r, "pixel_periods"), (3 * 12 * 10).to_string());
    // sample-set points with a published encoder: refused, naming what works
    let o = sits(&[
        "classify",
        s(&zarr),
        "--encoder",
        &presto,
        "--points",
        s(&zarr),
        "--out",
        s(&t.join("c")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("longitude/latitude table"), "{err}");
}

#[test]
fn galileo_embeds_and_clusters_and_is_not_pretrained() {
    let weights =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/weights/galileo_nano");
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let zarr = t.join("region.zarr");
    let mut c = cube(&SyntheticCube::default()).expect("cube");
    c.values_mut()
        .mapv_inplace(|v| 0.05 + 0.3 * v.abs().min(2.0));
    let c = c.with_geo(Some(sits_data::GeoInfo {
        crs: "EPSG:4326".into(),
        transform: [14.5, 0.001, 0.0, 45.9, 0.0, -0.001],
    }));
    sits_data::zarr::write_cube(&c, &zarr, Default::default(), IfExists::Refuse)
        .expect("write zarr");
    let galileo = format!("galileo:{}", weights.display());
    let r = result(&sits(&[
        "cluster",
        s(&zarr),
        "--encoder",
        &galileo,
        "--out",
        s(&t.join("k")),
        "--k",
        "3",
    ]));
    assert_eq!(get(&r, "k"), "3");
    assert_eq!(get(&r, "pixel_periods"), (3 * 12 * 10).to_string());
    let o = sits(&[
        "pretrain",
        s(&zarr),
        "--from",
        &galileo,
        "--out",
        s(&t.join("g")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("available for Presto"), "{err}");
    assert!(
        !t.join("g").exists(),
        "a refused run created its output folder"
    );
}
