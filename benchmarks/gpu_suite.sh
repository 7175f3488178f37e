#!/usr/bin/env bash
# The CUDA checks and benchmarks of one GPU in one go (a few minutes on an H200):
#   1. tests on the GPU: parity with the flyvis fixtures to 1e-5, stacked ensembles = CPU;
#   2. simulation at batch 1 to 256 (ms per step, torch's CSR product beside it, synapse
#      updates per second), the training step, 8 models in one pass against one model;
#   3. the default moving-edge suite for an 8-model ensemble: one pass against 8 runs.
# Results (markdown and JSON) go to $OUT (default benchmarks/results).
# Usage: bash benchmarks/gpu_suite.sh     (from the repository root, flygnn's environment active)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/gpu_device.txt"
start=$(date +%s)
python -m pytest -q -rs -p no:cacheprovider tests/test_perf.py -k cuda 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt"
python benchmarks/bench_network.py --device cuda --threads 0 --repeats 5 --no-flyvis --out "$OUT"
python benchmarks/bench_responses.py --device cuda --batch-size 16 --ensemble 8 --out "$OUT"
echo "gpu suite: $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu_tests.txt"
