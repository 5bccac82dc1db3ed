#!/bin/bash
# embed throughput on the 100x tiling: local disk and S3 server, 1 and 2 workers
set -u
# run from the repository root after:
#   cargo build --release -p sits-cli -p sits-testing --bins
#   cargo run --release --example embed_zarr -- --tile 10 --out out/embed_zarr_tile10
S=$(realpath ${SITS:-target/release/sits})
ENC=$PWD/data/encoders/modis_mod13q1_pixel
IN=$(realpath ${IN:-out/embed_zarr_tile10/tiled_input.zarr})
W=${WORK:-/tmp/sits-bench}  # a scratch folder this script owns
mkdir -p $W && cd $W
run() { # name outdir input shards
  local name=$1 out=$2 in=$3 n=$4
  local t0=$(date +%s.%N)
  if [ "$n" = 1 ]; then
    /usr/bin/time -v $S embed $in --encoder $ENC --out $out --quiet > $name.0.out 2> $name.0.time
  else
    for i in $(seq 0 $((n-1))); do
      RAYON_NUM_THREADS=1 /usr/bin/time -v $S embed $in --encoder $ENC --out $out --shard $i/$n --quiet > $name.$i.out 2> $name.$i.time &
    done
    wait
  fi
  local t1=$(date +%s.%N)
  echo "$name wall=$(echo "$t1 - $t0" | bc) $(for f in $name.*.time; do grep -E 'Maximum resident' $f | awk '{print "rss_kb=" $6}'; done | tr '\n' ' ') $(tail -qn1 $name.*.out | tr '\n' ' ')"
}
rm -rf l1 l2 s3root; mkdir -p s3root/bench
cp -r $IN s3root/bench/in.zarr
run local1 l1 $IN 1; rm -rf l1
run local2 l2 $IN 2; rm -rf l2
$(dirname $S)/s3-server $W/s3root 9123 < /dev/null > s3.env &
SP=$!
sleep 2
eval "$(grep ^export s3.env)"
run s3_1 s3://bench/o1 s3://bench/in.zarr 1; rm -rf s3root/bench/o1
run s3_2 s3://bench/o2 s3://bench/in.zarr 2
$S verify s3://bench/o2/embeddings.zarr --quiet | tail -1
rm -rf s3root/bench/o2
kill $SP
