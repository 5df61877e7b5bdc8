#!/bin/bash
# A GPU session's checks and measurements in one device call (the machine is lent for minutes,
# and each start costs one): gpu-check.sh (every op and test model, CPU vs CUDA, and memcheck),
# the routing kernel against route_token on the device, the launch floor of this GPU, then
# gpu-profile.sh on the real shapes, the decode step with graphs off for comparison, and the GPU's
# clocks sampled while it only decodes.
#   here:   npx tsx bench/peer/gpu-prepare.ts && npx tsx bench/peer/bench-prepare.ts
#           nvcc -O3 -arch=sm_90a -o .device/cuda/launch_floor bench/peer/launch_floor.cu
#   there:  bash bench/peer/gpu-session.sh     # device tool: carry [".device/cuda", ".device/models",
#           ".device/bench/bin/run_model", ".device/bench/bin/expand_bench_model", ".device/bench/models"]
# Writes gpu-check.sh's 7 files to ${OUT:-/tmp/gpu-session}, the route check appended to its
# summary.txt, and profile.txt (launch floor, benches, profiles, clocks): 8 files, the tool's limit.
# Typically 3-4 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
export OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
cuda=$PWD/.device/cuda
export MOERUN_CUDA_LIBRARY=$cuda/libmoerun_cuda.so
bash bench/peer/gpu-check.sh > /dev/null 2>&1
{
  echo "== test_cuda_ops: the routing kernel against route_token, on the device"
  "$cuda/test_cuda_ops" 2>&1 | grep -E "^FAIL|failed|skip"
} >> "$OUT/summary.txt"
profile=$OUT/profile.txt
{
  echo "== launch floor"
  [[ -x $cuda/launch_floor ]] && timeout 30 "$cuda/launch_floor" 2>&1
} > "$profile.head"
MOERUN_CUDA_GRAPH_TIMES=1 bash bench/peer/gpu-profile.sh ling-mini-2.0-l20-q4_k_m-v1 qwen3-30b-a3b-l48-q4_k_m-v1 ling-mini-2.0-l20-q8_0-v1 > /dev/null 2>&1
m=/tmp/moerun-bench-models/ling-mini-2.0-l20-q4_k_m-v1.gguf
{
  echo "== ling-mini-2.0-l20-q4_k_m-v1, MOERUN_CUDA_GRAPHS=0"
  MOERUN_CUDA_GRAPHS=0 timeout 100 "$cuda/test_cuda_backend" --bench "$m" 2>&1 | grep -E "^cuda.*tok/s"
  # Prompt batches on the dp4a tiles instead of tensor cores: the mma kernels' gain, same run.
  echo "== ling-mini-2.0-l20-q4_k_m-v1, MOERUN_CUDA_MMA=0"
  MOERUN_CUDA_MMA=0 timeout 100 "$cuda/test_cuda_backend" --bench "$m" 2>&1 | grep -E "^cuda.*tok/s"
} >> "$profile"
# The GPU's clocks while it only decodes: 1024 replayed steps (a few seconds) sampled every 100 ms
# (the load before them shows as a few idle samples).
{
  echo "== GPU clocks while decoding (run_model --gpu -n 1024; samples of SM MHz, memory MHz, utilization)"
  if command -v nvidia-smi > /dev/null && [[ -f $m ]]; then
    nvidia-smi --query-gpu=clocks.sm,clocks.mem,utilization.gpu --format=csv,noheader -lms 100 > "$OUT/clocks.tmp" 2>&1 &
    smi=$!
    timeout 60 .device/bench/bin/run_model "$m" --gpu --kv f16 --prompt 4 -n 1024 2>&1 | tail -1
    kill "$smi" 2> /dev/null
    sort "$OUT/clocks.tmp" | uniq -c | sort -rn | head -12
  fi
} >> "$profile"
cat "$profile.head" "$profile" > "$profile.all"
mv "$profile.all" "$profile"
rm -f "$profile.head" "$OUT/clocks.tmp"
cat "$OUT/summary.txt"
grep -E "tok/s|==|all kernels|cuda graphs|us per kernel|MHz" "$profile" | head -60
