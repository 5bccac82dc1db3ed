//! The `sits` binary on a STAC ItemCollection served by an S3-compatible server on
//! 127.0.0.1 (its COGs in two UTM zones and two resolutions: sits-data's STAC
//! fixture): inspect, pretrain, embed, cluster and changes run on it; the maps
//! reopen in GDAL on the grid `inspect` reports; and an area that misses some items
//! sends no request for their files. One test function: the server's request log
//! is read between steps.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use sits_testing::S3Server;

mod common;
use common::{get, result, s};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sits-data/tests/fixtures/stac")
}

#[test]
fn a_stac_collection_on_object_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    std::fs::create_dir_all(&root).unwrap();
    let server = S3Server::start(&root, 0).unwrap();
    server.create_bucket("stac").unwrap();
    let env = server.env();
    let dst = root.join("stac/s2");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixtures()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".tif") || name == "items.json" {
            std::fs::copy(&p, dst.join(&name)).unwrap();
        }
    }
    let items = "s3://stac/s2/items.json";
    let sits = |args: &[&str]| common::sits(args, &env);
    let grid = ["--crs", "EPSG:32632", "--resolution", "20"];
    let with = |cmd: &[&str]| -> Vec<String> {
        cmd.iter()
            .chain(grid.iter())
            .map(|a| a.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sits(&refs)
    };

    let o = run(with(&["inspect", items]));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("4 dates x 1 bands"), "{text}");
    assert!(text.contains("crs:    EPSG:32632"), "{text}");
    let transform: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("transform: ["))
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();

    // two calendar years of two dates: pretrain, embed, cluster, changes
    let t = tmp.path();
    let enc = t.join("enc");
    let small = [
        "--epochs",
        "2",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
    ];
    let mut args = with(&["pretrain", items, "--out", s(&enc)]);
    args.extend(small.iter().map(|a| a.to_string()));
    let r = result(&run(args));
    assert_eq!(get(&r, "dates"), "2");
    let emb = t.join("emb");
    let r = result(&run(with(&[
        "embed",
        items,
        "--encoder",
        s(&enc),
        "--out",
        s(&emb),
    ])));
    assert_eq!(get(&r, "periods"), "2");
    let clu = t.join("clu");
    let r = result(&sits(&[
        "cluster",
        s(&emb.join("embeddings.zarr")),
        "--out",
        s(&clu),
        "--k",
        "3",
    ]));
    assert_eq!(get(&r, "k"), "3");
    let ch = t.join("ch");
    let r = result(&run(with(&[
        "changes",
        items,
        "--encoder",
        s(&enc),
        "--out",
        s(&ch),
    ])));
    assert_eq!(get(&r, "pairs"), "1");

    // the maps are on the grid inspect reported, in GDAL's reading
    let maps = [clu.join("clusters.tif"), ch.join("changes.tif")];
    let files: Vec<&std::path::Path> = maps.iter().map(PathBuf::as_path).collect();
    if let Some(g) = common::gdal(&files) {
        for m in &maps {
            let got = &g[s(m)];
            assert_eq!(got["crs_epsg"], 32632, "{}", m.display());
            let gt: Vec<f64> = got["transform"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(gt, transform, "{}", m.display());
        }
    }

    // an area inside item a's footprint west of b and e: their files get no request
    let before = server.request_log().len();
    let o = run(with(&[
        "inspect",
        items,
        "--bbox",
        "11.9921,46.0003,11.9940,46.0050",
    ]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = server.request_log()[before..].to_vec();
    let touched = |name: &str| log.iter().filter(|l| l.contains(name)).count();
    assert_eq!(touched("/b_"), 0, "{log:?}");
    assert_eq!(touched("/e_"), 0, "{log:?}");
    for name in ["/a_B04.tif", "/c_B04.tif", "/d_B04.tif"] {
        // one HEAD and the header's ranged GET (these small files fit in it)
        assert!((1..=3).contains(&touched(name)), "{name}: {log:?}");
    }
    assert!(
        log.iter()
            .filter(|l| l.starts_with("GET"))
            .all(|l| l.contains("bytes=") || l.contains("items.json")),
        "{log:?}"
    );
}
