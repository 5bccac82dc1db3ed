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
