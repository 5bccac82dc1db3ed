//! What the CLI tests share: running the `sits` binary and reading its result line.

#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::process::{Command, Output};

/// Runs `sits ARGS --quiet` with the extra environment variables `env`.
pub(crate) fn sits(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sits"))
        .args(args)
        .arg("--quiet")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run sits")
}

/// The last line of stdout, parsed as `result: key=value ...`.
pub(crate) fn result(o: &Output) -> Vec<(String, String)> {
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

pub(crate) fn get<'a>(r: &'a [(String, String)], key: &str) -> &'a str {
    r.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {r:?}"))
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// What GDAL (through rasterio) sees in each file, from sits-data's `gdal_read.py`:
/// `None` when `SITS_GDAL_PYTHON` (a python with rasterio) is not set, which CI
/// refuses (`.ci/run` installs one and sets it).
pub(crate) fn gdal(files: &[&Path]) -> Option<serde_json::Value> {
    let python = match std::env::var("SITS_GDAL_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SITS_GDAL_PYTHON to a python with rasterio"
            );
            eprintln!("SITS_GDAL_PYTHON not set: GDAL read-back skipped");
            return None;
        }
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sits-data/tests/fixtures/geotiff/gdal_read.py");
    let out = Command::new(python)
        .arg(script)
        .args(files)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("JSON from gdal_read.py"))
}
