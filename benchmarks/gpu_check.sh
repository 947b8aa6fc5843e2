#!/usr/bin/env bash
# The GPU check of issue 19, in one call (<= 8 minutes on one H200): fer's loader, train step,
# end-to-end `fer train` (eager and torch.compile), evaluation, CPU-vs-GPU parity and batched
# MTCNN, on synthetic prepared data made there (benchmarks/gpu_check.py says what it prints).
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine: python3 with torch, numpy, pandas
#   bash benchmarks/gpu_check.sh --dry      # the same path on the CPU, tiny (tests/test_benchmarks.py)
#
# It runs from the working tree (PYTHONPATH, no install) and needs nothing beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
exec timeout "${GPU_CHECK_TIMEOUT_S:-480}" "$PYTHON" benchmarks/gpu_check.py "$@"
