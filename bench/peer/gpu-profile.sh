#!/bin/bash
# Where a CUDA decode step's time goes, on the real shapes, on the GPU machine (issue 13): per
# model, test_cuda_backend --bench (prefill 512 and decode 128 tokens: the CPU with every core, CUDA,
# and CUDA with the routed experts on the host), then run_model --gpu --profile (each backend op of
# 64 decode steps timed to its end, with the weight bytes it read and its GB/s).
#   here:   npx tsx bench/peer/gpu-prepare.ts && npx tsx bench/peer/bench-prepare.ts
#   there:  bash bench/peer/gpu-profile.sh [RECIPE...]   # device tool: carry [".device/cuda", ".device/bench"]
# RECIPE: names of .device/bench/models/*.recipe (default ling-mini-2.0-l20-q4_k_m-v1), expanded
# to /tmp first (bench-model.sh). Writes ${OUT:-/tmp/gpu-profile}/profile.txt. llama.cpp's CUDA
# build is gpu-bench.sh's (minutes of the machine's time); this script needs none.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-profile}
mkdir -p "$out"
cuda=.device/cuda
export MOERUN_CUDA_LIBRARY=$PWD/$cuda/libmoerun_cuda.so
log=$out/profile.txt
for f in "$cuda/test_cuda_backend" .device/bench/bin/run_model; do
  [[ -x $f ]] || { echo "gpu-profile: $f is missing (run gpu-prepare.ts and bench-prepare.ts here)" | tee -a "$log"; exit 1; }
done
for r in "${@:-ling-mini-2.0-l20-q4_k_m-v1}"; do
  t0=$SECONDS
  m=$(bash bench/peer/bench-model.sh "$r") || { echo "expand $r: FAILED" | tee -a "$log"; continue; }
  echo "== $r: expanded in $((SECONDS - t0)) s" | tee -a "$log"
  timeout 120 "$cuda/test_cuda_backend" --bench "$m" 2>&1 | grep -E "tok/s|FAIL|no device|cuda device|cuda graphs" | tee -a "$log"
  timeout 90 .device/bench/bin/run_model "$m" --gpu --kv f16 --prompt 32 -n 64 --warmup --profile 2>&1 | grep -v "^[0-9 ]*$" | tee -a "$log"
done
