"""PyTorch side of the `conv2d` group of `cargo bench --bench models`.

Case: 2D convolution, 60 images of 64 channels at 64 x 64, 64 output channels,
3 x 3 kernel, stride 1, reflect padding 1 (U-TAE's convolution), float32 on CPU:
forward alone (no gradient) and forward + backward of the output's sum to the
input and the weight. One JSON line per case, as the other peers.

This script lives in the project (the shared peers directory is read-only to
it) and imports the shared helpers from ../shared/peers (override with
SITS_PEERS_DIR). Run with the peers' environment:

    /tmp/peers-venv/bin/python benches/peers/bench_conv.py

Env: PEER_THREADS (default 2), PEER_RUNS.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get(
    "SITS_PEERS_DIR", os.path.join(HERE, "..", "..", "..", "shared", "peers")
)
sys.path.insert(0, PEERS)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import emit, pin_torch_threads, time_fn  # noqa: E402

THREADS = pin_torch_threads()
RUNS = int(os.environ.get("PEER_RUNS", "10"))


def main():
    n, ch, hw = 60, 64, 64
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, ch, hw, hw, generator=gen).requires_grad_(True)
    w = (torch.randn(ch, ch, 3, 3, generator=gen) * 0.05).requires_grad_(True)
    shape = f"{n}x{ch}x{hw}x{hw}_k3_reflect"

    def conv(inp):
        return F.conv2d(F.pad(inp, (1, 1, 1, 1), mode="reflect"), w)

    def fwd():
        with torch.no_grad():
            return conv(x)

    def fwd_bwd():
        x.grad = None
        w.grad = None
        y = conv(x).sum()
        y.backward()
        return y

    emit("conv2d_fwd", "torch", shape, time_fn(fwd, RUNS, warmup=2), THREADS,
         torch=torch.__version__)
    emit("conv2d_fwd_bwd", "torch", shape, time_fn(fwd_bwd, RUNS, warmup=2),
         THREADS, torch=torch.__version__)


if __name__ == "__main__":
    main()
