#!/bin/bash
# The CUDA backend's checks on a GPU machine, in one run of at most 465 s (step limits: 45 + 90 +
# 150 + 60 + 120; typically far less), from binaries and
# models prepared on a CPU machine (the GPU host has no Node and little time):
#   here:  npx tsx bench/peer/gpu-prepare.ts          # fills .device/ (git-ignored)
#   there: bash bench/peer/gpu-check.sh               # device tool: carry [".device"]; results in $OUT
# Writes to ${OUT:-/tmp/gpu-check} (at most 8 files): summary.txt (the verdict lines), env.txt
# (GPU, driver, library), harness.txt (the test driver checked against itself on the CPU), ops.txt (every op CPU vs CUDA by NMSE), models.txt (every architecture's
# test model, logits and greedy tokens, CPU vs CUDA), bench.txt (decode and prefill tok/s, CPU vs
# CUDA), memcheck.txt (compute-sanitizer over the ops). Each step has its own time limit, and a step that fails or times out does not stop the
# others. Where no GPU is usable (a CPU machine), the drivers exit 77 with "no device: <why>";
# the script reports that and still exits 0, so its non-GPU parts can be tried anywhere.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
bin=.device/cuda
export MOERUN_CUDA_LIBRARY=$PWD/$bin/libmoerun_cuda.so
summary=$out/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

# step NAME SECONDS FILE COMMAND...: runs COMMAND with a time limit into FILE, and notes the end.
step() {
  local name=$1 limit=$2 file=$3
  shift 3
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$file" 2>&1
  local rc=$?
  local verdict="rc=$rc"
  case $rc in 0) verdict="pass" ;; 1) verdict="FAIL" ;; 77) verdict="no device: $(grep -m1 '^no device:' "$file" | cut -c12-)" ;; 124 | 137) verdict="TIMED OUT after ${limit}s" ;; esac
  note "$name: $verdict ($((SECONDS - t0)) s; $(grep -m1 -E '^[0-9]+ checks' "$file" || echo "see $(basename "$file")"))"
  grep -E '^FAIL' "$file" | head -40 >> "$summary"
  return 0
}

if [[ ! -x $bin/test_cuda_backend || ! -f $bin/libmoerun_cuda.so ]]; then
  note "gpu-check: $bin is not prepared (run bench/peer/gpu-prepare.ts on a machine with nvcc and carry .device)"
  exit 1
fi

{
  echo "date: $(date -u)"
  echo "host: $(uname -srm), $(nproc) cores, $(ldd --version 2>&1 | head -1)"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  else
    echo "nvidia-smi: not available"
  fi
  echo "library: $(ls -l $bin/libmoerun_cuda.so)"
  objdump -p $bin/libmoerun_cuda.so 2>/dev/null | grep NEEDED
  ldd $bin/test_cuda_backend 2>&1 | grep -E "not found|GLIBC" || echo "test_cuda_backend: all libraries found"
} > "$out/env.txt" 2>&1
note "env: $(grep -m1 -iE 'H200|H100|NVIDIA|not available' "$out/env.txt" || echo unknown)"

# 0. The harness itself, a second CPU backend in CUDA's place (must agree exactly, and catch a
#    planted difference), so a failure below is the GPU's.
step "harness" 45 "$out/harness.txt" "$bin/test_cuda_backend" --self-test --ops --models .device/models/llama-F32.gguf
# 1. Every operation on both backends (random inputs, NMSE <= 1e-7): matmul for all 25 weight
#    types (F32..IQ4_XS, the lattice IQ1_S..IQ3_S, TQ1_0, TQ2_0, MXFP4; test_cuda_backend.cpp's
#    k_weight_types), the FFNs, MoE (F32, Q8_0, Q4_K, IQ2_XXS experts), get_rows, attention.
step "ops" 90 "$out/ops.txt" "$bin/test_cuda_backend" --ops
# 2. Every architecture's test model: F32 at NMSE <= 1e-8 with 64 identical greedy tokens; the
#    quantized files against the CPU on the same file (F32 and F16 KV caches).
#    MoE files also with the routed experts on the host, split by a budget (the expert cache), and
#    computed on the device in waves (issue 14).
step "models" 150 "$out/models.txt" "$bin/test_cuda_backend" --waves --models .device/models/*.gguf
# 3. Speed: decode and prefill, CPU (all cores) vs CUDA, on the largest prepared model.
big=$(ls -S .device/models/*.gguf 2>/dev/null | head -1)
step "bench" 60 "$out/bench.txt" "$bin/test_cuda_backend" --bench "$big"
grep -E "tok/s" "$out/bench.txt" | tee -a "$summary"
# 4. The ops again under compute-sanitizer's memcheck (out-of-bounds and misaligned accesses),
#    where the runtime lets it read the device (Firecracker yes, gVisor no: KINDS.md).
if command -v compute-sanitizer > /dev/null; then
  step "memcheck" 120 "$out/memcheck.txt" compute-sanitizer --tool memcheck --error-exitcode 1 "$bin/test_cuda_backend" --ops
  grep -m5 -E "Invalid|ERROR SUMMARY" "$out/memcheck.txt" | tee -a "$summary"
else
  note "memcheck: compute-sanitizer not on PATH"
fi
exit 0
