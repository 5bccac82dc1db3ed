#!/usr/bin/env bash
# Builds the workspace with `--features cuda` on a machine with no GPU and no CUDA
# toolkit, using NVIDIA's PyPI wheels for nvcc, the runtime headers, cuBLAS and cuRAND
# (CUDA 13). It proves that the CUDA code paths of candle and of sits compile: every
# library of the workspace is built with candle's kernels compiled to PTX by nvcc for
# the compute capability below, and the tests, examples, benches and the `sits` binary
# are type-checked. Executables are not linked: they need libcuda.so, which comes with
# the GPU driver, not with the wheels. It does not prove that anything runs on a GPU:
# nothing is executed, and no GPU test exists.
#
#   bash docs/recipes/check-cuda-build.sh            # from the repository root
#
# Env: CUDA_VENV (default /tmp/sits-cuda-venv), CUDA_COMPUTE_CAP (default 80: there is
# no GPU to ask), CARGO_TARGET_DIR (default target/cuda-check, apart from the CPU build).
# Downloads about 0.5 GB of wheels the first time; the build takes several minutes.
set -euo pipefail
VENV="${CUDA_VENV:-/tmp/sits-cuda-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cublas nvidia-curand \
  nvidia-cuda-cccl
SITE="$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
CU="$SITE/nvidia/cu13"
[ -x "$CU/bin/nvcc" ] || { echo "no nvcc under $CU/bin" >&2; exit 1; }
export PATH="$CU/bin:$PATH" CUDA_ROOT="$CU" CUDA_PATH="$CU" CUDA_HOME="$CU"
export LD_LIBRARY_PATH="$CU/lib:${LD_LIBRARY_PATH:-}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
# cudarc 0.19 (candle 0.11's) knows CUDA up to 13.4; the wheels are newer
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13040}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cuda-check}"
nvcc --version | tail -2
cargo build --workspace --lib --features cuda
cargo check --workspace --all-targets --features cuda
echo "cuda build: ok (libraries built, all targets checked; nothing linked or run on a GPU)"
