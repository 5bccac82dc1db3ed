"""GDAL side of `cargo bench --bench geotiff`: window reads of one Cloud-Optimized
GeoTIFF, through rasterio (its wheel bundles GDAL).

The file is written here by GDAL if it is not there yet: a 4096 x 4096 uint16 COG
(GDAL's COG driver: 512 x 512 tiles, deflate with the horizontal predictor,
overviews), the values of the bundled CBERS-4 near-infrared band tiled over the
image with a little noise so that tiles compress like real reflectance. Both sides
read the same bytes: the Rust bench picks the file up from the same path
(target/bench-data/cog_u16_4096.tif, override with SITS_BENCH_COG).

Cases (one JSON line each, as the other peers; values read as float32 on both
sides, as a cube holds them): a 512 x 512 window across four
tiles, a 2048 x 2048 window (25 tiles), the whole image. Every read opens the file,
as a job reading a window of each of many files does.

    /tmp/peers-venv/bin/pip install rasterio
    /tmp/peers-venv/bin/python benches/peers/bench_geotiff.py

Env: PEER_THREADS (default 2; GDAL_NUM_THREADS, GDAL's tile decoding threads),
PEER_RUNS (default 20).
"""
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get(
    "SITS_PEERS_DIR", os.path.join(HERE, "..", "..", "..", "shared", "peers")
)
sys.path.insert(0, PEERS)

import numpy as np  # noqa: E402

from common import emit, env_int, n_threads, time_fn  # noqa: E402

THREADS = n_threads()
os.environ["GDAL_NUM_THREADS"] = str(THREADS)
os.environ.setdefault("GDAL_CACHEMAX", "64")
import rasterio  # noqa: E402
from rasterio.windows import Window  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
PATH = os.environ.get("SITS_BENCH_COG", os.path.join(ROOT, "target", "bench-data", "cog_u16_4096.tif"))
CASES = [("window_512", (1800, 1700, 512, 512)), ("window_2048", (1000, 900, 2048, 2048)),
         ("whole_4096", (0, 0, 4096, 4096))]


def make():
    band = sorted(glob.glob(os.path.join(ROOT, "data", "cbers4_awfi_022024_geotiff", "*_B16_*.tif")))[0]
    with rasterio.open(band) as f:
        tile = f.read(1).astype(np.int32)
    rng = np.random.default_rng(0)
    img = np.tile(tile, (82, 82))[:4096, :4096] + rng.integers(-20, 21, size=(4096, 4096))
    img = img.clip(1, 10000).astype(np.uint16)
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    with rasterio.open(PATH, "w", driver="COG", width=4096, height=4096, count=1, dtype="uint16",
                       crs="EPSG:32722", transform=rasterio.transform.from_origin(600000, 8600000, 10, 10),
                       blocksize=512, compress="deflate", predictor=2) as f:
        f.write(img, 1)


if not os.path.exists(PATH):
    make()
runs = env_int("PEER_RUNS", 20)
for case, (r, c, h, w) in CASES:
    def read():
        with rasterio.open(PATH) as f:
            return f.read(1, window=Window(c, r, w, h), out_dtype="float32")
    a = read()
    assert a.shape == (h, w)
    times = time_fn(read, runs)
    emit(f"geotiff_read/{case}", "gdal", [h, w], times, THREADS, gdal=rasterio.__gdal_version__)
