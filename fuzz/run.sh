#!/usr/bin/env bash
# Reruns the fuzz targets of sits-data's readers with cargo fuzz (libFuzzer).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain
# (`rustup toolchain install nightly`); without a nightly, RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept the flags cargo fuzz passes. Seeds (fuzz/seeds/<target>,
# made by `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`) are merged
# into the working corpus fuzz/corpus/<target> (not committed); crashes land in
# fuzz/artifacts/<target>/, and each one fixed becomes a regression test in
# crates/sits-data/tests/hostile.rs (the 75-minute run of 2026-12-01, 900 s per
# target, found none; the geotiff target's 300 s of 2026-12-07, 1.3 million runs,
# found none).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-900}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(npy sample_folder cube_folder zarr_store pastis geotiff)
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  echo "== $t: ${secs}s"
  # -s none: safe Rust needs no AddressSanitizer, and the run is faster without it;
  # debug assertions (overflow checks) stay on.
  cargo "${toolchain[@]}" fuzz run -s none "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -max_len=65536 \
    -print_final_stats=1 2>&1 | tee "artifacts/$t/last-run.log" | grep -E '^(#[0-9]+.*(DONE|pulse)|stat::|==|SUMMARY|.*panicked)' || true
done
