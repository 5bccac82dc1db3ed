//! `sits embed` on object storage: the input cube and the output store on a real
//! S3-compatible server (s3s-fs on 127.0.0.1, started by the test), reached through
//! the environment variables a user would set. Three worker processes fill one store
//! bit-identical to one process writing to local disk; a worker killed mid-run and
//! started again finishes without rewriting a done chunk; `verify` catches a deleted
//! chunk. One test function: the server's request log is read between steps.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use sits_core::io::IfExists;
use sits_tasks::synthetic::{cube, SyntheticCube};
use sits_testing::S3Server;

mod common;
use common::{get, result, s, sits};

fn bits(p: &Path) -> Vec<u32> {
    sits_data::zarr::ZarrCube::open_path(p)
        .expect("open")
        .read_all()
        .expect("read")
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Chunk keys of `store` (a path under the server's bucket) written by PUTs in `log`.
fn chunk_puts<'a>(log: &'a [String], store: &str) -> Vec<&'a str> {
    let prefix = format!("PUT /{store}/values/c/");
    log.iter().filter_map(|r| r.strip_prefix(&prefix)).collect()
}

#[test]
fn workers_on_object_storage_match_one_local_process() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let root = t.join("s3");
    std::fs::create_dir_all(&root).unwrap();
    let server = S3Server::start(&root, 0).expect("start the S3 server");
    server.create_bucket("eodata").unwrap();
    let env = server.env();
    for (k, v) in &env {
        std::env::set_var(k, v);
    }

    // the input cube on object storage; the encoder on local disk
    let small = t.join("small.zarr");
    sits_data::zarr::write_cube(
        &cube(&SyntheticCube::default()).unwrap(),
        &small,
        Default::default(),
        IfExists::Refuse,
    )
    .unwrap();
    let enc = t.join("encoder");
    result(&sits(
        &[
            "pretrain",
            s(&small),
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
        ],
        &env,
    ));
    let region = cube(&SyntheticCube {
        size: (40, 40),
        seed: 3,
        ..SyntheticCube::default()
    })
    .unwrap();
    let input = Path::new("s3://eodata/in/region.zarr");
    sits_data::zarr::write_cube(&region, input, Default::default(), IfExists::Refuse).unwrap();
    let embed = |out: &str, extra: &[&str]| -> Vec<String> {
        [
            "embed",
            s(input),
            "--encoder",
            s(&enc),
            "--out",
            out,
            "--block",
            "4",
        ]
        .iter()
        .chain(extra)
        .map(|x| x.to_string())
        .collect()
    };
    let spawn = |args: &[String]| {
        Command::new(env!("CARGO_BIN_EXE_sits"))
            .args(args)
            .arg("--quiet")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };

    // one process, local disk
    let one = t.join("one");
    result(&sits(
        &embed(s(&one), &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &env,
    ));
    let reference = bits(&one.join("embeddings.zarr"));

    // three workers at once on object storage, one through SLURM's variables
    let workers = [
        spawn(&embed("s3://eodata/out", &["--shard", "0/3"])),
        spawn(&embed("s3://eodata/out", &["--shard", "1/3"])),
        Command::new(env!("CARGO_BIN_EXE_sits"))
            .args(embed("s3://eodata/out", &[]))
            .arg("--quiet")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SLURM_ARRAY_TASK_ID", "2")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    ];
    for w in workers {
        let r = result(&w.wait_with_output().expect("wait"));
        assert!(get(&r, "shard").ends_with("/3"), "{r:?}");
    }
    let store = Path::new("s3://eodata/out/embeddings.zarr");
    let r = result(&sits(&["verify", s(store)], &env));
    assert_eq!((get(&r, "blocks"), get(&r, "missing")), ("100", "0"));
    assert!(
        bits(store) == reference,
        "three workers on S3 differ from one process on disk"
    );

    // the cluster and change passes: centroids fitted once beside the output, then
    // three cluster workers and two change workers (Kubernetes' variables) on object
    // storage write the maps of one process reading the local store whole
    let local_maps = t.join("maps");
    result(&sits(
        &[
            "cluster",
            s(&one.join("embeddings.zarr")),
            "--out",
            s(&local_maps),
            "--k",
            "4",
        ],
        &env,
    ));
    result(&sits(
        &[
            "changes",
            s(&one.join("embeddings.zarr")),
            "--out",
            s(&local_maps),
        ],
        &env,
    ));
    let maps = "s3://eodata/maps";
    let r = result(&sits(
        &[
            "cluster",
            s(store),
            "--out",
            maps,
            "--k",
            "4",
            "--fit",
            "--sample",
            "100000",
        ],
        &env,
    ));
    assert_eq!(get(&r, "k"), "4");
    let pass = |cmd: &str, vars: &[(&str, String)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sits"));
        c.args([cmd, s(store), "--out", maps, "--quiet"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn")
    };
    let shard = |i: usize| {
        [
            ("SLURM_ARRAY_TASK_ID", i.to_string()),
            ("SLURM_ARRAY_TASK_COUNT", "3".into()),
        ]
    };
    let k8s = |i: usize| {
        [
            ("JOB_COMPLETION_INDEX", i.to_string()),
            ("SITS_SHARD_COUNT", "2".into()),
        ]
    };
    let workers = [
        pass("cluster", &shard(0)),
        pass("cluster", &shard(1)),
        pass("cluster", &shard(2)),
        pass("changes", &k8s(0)),
        pass("changes", &k8s(1)),
    ];
    for w in workers {
        let r = result(&w.wait_with_output().expect("wait"));
        assert_eq!(get(&r, "blocks_done_before"), "0", "{r:?}");
    }
    for name in ["clusters.zarr", "changes.zarr"] {
        let shared = format!("{maps}/{name}");
        let r = result(&sits(&["verify", &shared], &env));
        assert_eq!(get(&r, "missing"), "0");
        assert!(
            bits(Path::new(&shared)) == bits(&local_maps.join(name)),
            "{name}: the workers on S3 differ from one process on disk"
        );
    }
    // a cluster worker without the fitted model is refused, naming the command
    let o = sits(
        &[
            "cluster",
            s(store),
            "--out",
            "s3://eodata/nomodel",
            "--shard",
            "0/2",
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--fit"), "{err}");

    // a deleted chunk is caught by verify, and a rerun rewrites that block only
    let chunk = root.join("eodata/out/embeddings.zarr/values/c/0/0/0/0");
    std::fs::remove_file(&chunk).expect("delete a chunk");
    let o = sits(&["verify", s(store)], &env);
    assert!(!o.status.success());
    let last = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.ends_with("missing=1"), "{last}");
    let before = server.request_log().len();
    let r = result(&sits(
        &embed("s3://eodata/out", &["--shard", "0/3"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &env,
    ));
    assert_eq!(get(&r, "blocks_done_before"), "33");
    let log = server.request_log();
    let puts = chunk_puts(&log[before..], "eodata/out/embeddings.zarr");
    assert!(
        !puts.is_empty() && puts.iter().all(|k| k.ends_with("/0/0")),
        "{puts:?}"
    );
    assert!(bits(store) == reference);

    // a worker killed mid-run, started again, finishes without rewriting done chunks
    let out = "s3://eodata/killed";
    let markers = root
        .join("eodata/killed/embeddings.zarr")
        .join(sits_data::zarr::DONE_DIR);
    let mut w = spawn(&embed(out, &[]));
    let done_blocks = |dir: &Path| -> Vec<(usize, usize)> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let (r, c) = name.strip_suffix(".stored")?.split_once('_')?;
                        Some((r.parse().ok()?, c.parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let started = std::time::Instant::now();
    while done_blocks(&markers).len() < 5 && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    w.kill().expect("kill the worker");
    let _ = w.wait();
    let done = done_blocks(&markers);
    assert!(
        (5..100).contains(&done.len()),
        "the worker was to be killed mid-run; {} of 100 blocks were done",
        done.len()
    );
    let before = server.request_log().len();
    let again = embed(out, &[]);
    let r = result(&sits(
        &again.iter().map(String::as_str).collect::<Vec<_>>(),
        &env,
    ));
    let done_before: usize = get(&r, "blocks_done_before").parse().unwrap();
    assert!(done_before >= done.len(), "{done_before} < {}", done.len());
    // no chunk of a block done before the kill is written again (keys t/c/y/x)
    let log = server.request_log();
    let rewritten: Vec<&str> = chunk_puts(&log[before..], "eodata/killed/embeddings.zarr")
        .into_iter()
        .filter(|k| {
            let ix: Vec<usize> = k.split('/').filter_map(|x| x.parse().ok()).collect();
            ix.len() == 4 && done.contains(&(ix[2] * 4, ix[3] * 4))
        })
        .collect();
    assert!(
        rewritten.is_empty(),
        "done chunks written again: {rewritten:?}"
    );
    let killed = "s3://eodata/killed/embeddings.zarr";
    assert_eq!(
        get(&result(&sits(&["verify", killed], &env)), "missing"),
        "0"
    );
    assert!(bits(Path::new(killed)) == reference);
}
