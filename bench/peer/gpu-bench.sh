#!/bin/bash
# moerun's CUDA backend against llama.cpp's CUDA build on the real shapes (issues 13 and 14), on the
# GPU machine, in one run, from what was prepared here:
#   here:   npx tsx bench/peer/gpu-prepare.ts && npx tsx bench/peer/bench-prepare.ts
#   there:  bash bench/peer/gpu-bench.sh     # device tool: carry [".device/cuda", ".device/bench"]; results in $OUT
#
# 1. llama.cpp's CUDA llama-bench is built there (bench/peer/build-llama-cuda.sh build: this
#    machine has no cuBLAS), while the models are expanded from their recipes (expand_bench_model):
#    Ling-mini-2.0 (20 layers) Q4_K_M and Q8_0, Qwen3-30B-A3B (48 layers) Q4_K_M.
# 2. Per model, moerun (test_cuda_backend --bench: prefill 512 and decode 128 tokens, on the CPU
#    with every core, then on CUDA) and llama.cpp (llama-bench -ngl 99: pp512, tg128, 3 repeats).
# 3. Issue 14's baseline: llama.cpp with every routed expert on the CPU (--n-cpu-moe 99, 16
#    threads) on Ling-mini-2.0 Q4_K_M.
# MOERUN_BENCH_RECIPES (names of .device/bench/models/*.recipe) replaces the three models. Typically
# 6-8 minutes, most of it the build; a step's limit ends it, and what is under $OUT still comes back.
# Writes ${OUT:-/tmp/gpu-bench}: summary.txt (every tok/s line), build.txt, moerun-*.txt, llama-*.txt.
# A step that fails or times out does not stop the others; where no GPU is usable the moerun
# steps report "no device" and llama-bench runs on the CPU only (-ngl 99 with no GPU).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/gpu-bench}
mkdir -p "$out"
dev=.device/bench
cuda=.device/cuda
export MOERUN_CUDA_LIBRARY=$PWD/$cuda/libmoerun_cuda.so
summary=$out/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
for f in "$dev/bin/expand_bench_model" "$dev/llama-src.tar.xz" "$cuda/test_cuda_backend"; do
  [[ -e $f ]] || { note "gpu-bench: $f is missing (run gpu-prepare.ts and bench-prepare.ts here; carry .device/cuda and .device/bench)"; exit 1; }
done
{
  echo "date: $(date -u); host: $(uname -srm), $(nproc) CPUs"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
} | tee -a "$summary"

# 1. The llama.cpp build in the background; the models meanwhile.
t0=$SECONDS
timeout 330 bash bench/peer/build-llama-cuda.sh build "$dev/llama-src.tar.xz" > "$out/build.txt" 2>&1 &
build_pid=$!
models=()
for r in ${MOERUN_BENCH_RECIPES:-ling-mini-2.0-l20-q4_k_m-v1 ling-mini-2.0-l20-q8_0-v1 qwen3-30b-a3b-l48-q4_k_m-v1}; do
  if f=$(bash bench/peer/bench-model.sh "$r"); then models+=("$f"); else note "expand $r: FAILED"; fi
done
note "models expanded in $((SECONDS - t0)) s: ${models[*]}"
wait "$build_pid"
build_rc=$?
llama_bench=/tmp/moerun-llama-cuda/bin/llama-bench
note "llama.cpp CUDA build: rc=$build_rc after $((SECONDS - t0)) s"

# 2. moerun, then llama.cpp, per model.
for m in "${models[@]}"; do
  name=$(basename "$m" .gguf)
  timeout 90 "$cuda/test_cuda_backend" --bench "$m" > "$out/moerun-$name.txt" 2>&1
  note "moerun $name (rc=$?):"
  grep -E "tok/s|FAIL|no device" "$out/moerun-$name.txt" | tee -a "$summary"
  if [[ -x $llama_bench ]]; then
    timeout 90 "$llama_bench" -m "$m" -ngl 99 -p 512 -n 128 -r 3 -o md > "$out/llama-$name.txt" 2>&1
    note "llama.cpp $name (rc=$?):"
    grep -E "pp512|tg128" "$out/llama-$name.txt" | tee -a "$summary"
  fi
done

# 3. llama.cpp with the routed experts on the CPU (issue 14's comparison).
if [[ -x $llama_bench && ${#models[@]} -gt 0 ]]; then
  m=${models[0]}
  timeout 100 "$llama_bench" -m "$m" -ngl 99 --n-cpu-moe 99 -t "$(nproc)" -p 512 -n 128 -r 2 -o md > "$out/llama-cpu-moe.txt" 2>&1
  note "llama.cpp $(basename "$m" .gguf) --n-cpu-moe 99 -t $(nproc) (rc=$?):"
  grep -E "pp512|tg128" "$out/llama-cpu-moe.txt" | tee -a "$summary"
fi
note "gpu-bench: done in $((SECONDS - t0)) s"
