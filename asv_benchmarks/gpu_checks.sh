#!/usr/bin/env bash
# The GPU checks of the CUDA device, as one command for a machine with an NVIDIA GPU and no
# network (the `device` machine): `bash asv_benchmarks/gpu_checks.sh` from the repository root.
#
# It installs fastdnn from this checkout without dependencies (the machine's Python must
# already have numba, numba-cuda, scipy, scikit-learn, pytest and PyTorch with CUDA), then runs
# the CUDA tests natively (run natively they compile every kernel, so the PTX compile test is
# left out), the GEMM tile sweep against torch.matmul, and the peer comparison of workloads M and
# L against PyTorch CUDA. Each step has its own time limit (570 s in all, within one 600 s call),
# so one that hangs does not take the others with it; logs go to $OUT (or ./gpu-checks) and to
# the terminal.
set -uo pipefail
out="${OUT:-gpu-checks}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run, log to $out/NAME.log, report the exit status
    local name="$1" limit="$2"
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local status=${PIPESTATUS[0]}
    echo "=== $name: exit $status after $((SECONDS - start))s"
    echo "$name $status $((SECONDS - start))s" >>"$out/summary.txt"
}

step setup 60 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv;
    $py -m pip install -q --no-deps --no-build-isolation -e . &&
    $py -c 'import sys, numba, numba_cuda, numpy, torch, fastdnn;
print(sys.version.split()[0], \"numba\", numba.__version__, \"numba-cuda\", numba_cuda.__version__,
      \"numpy\", numpy.__version__, \"torch\", torch.__version__, torch.cuda.is_available())
from fastdnn.engines.cuda import cuda_problem; print(\"cuda_problem:\", cuda_problem())'"
step tests 300 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda_kernels.py \
    tests/test_cuda_engine.py
step gemm 90 "$py" -m asv_benchmarks.gpu_gemm --workloads M,L
step peers 120 "$py" -m asv_benchmarks.peers --device cuda --workloads M,L --repeats 3
cat "$out/summary.txt"
