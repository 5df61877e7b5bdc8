#!/bin/bash
# Decode tokens/s of moerun (native/test/run_model) and llama.cpp (bench/peer/llama_cpp_bench.cpp)
# on one GGUF with the same threads, interleaved round by round, without Node: each round runs
# moerun, then llama.cpp, each in its own process (4 prompt tokens, then N decoded), and prints
# both lines with the load average, so a shared machine's load hits both alike.
#   bash bench/peer/decode-ab.sh MODEL.gguf [THREADS=2] [ROUNDS=3] [TOKENS=12]
# Environment: RUN_MODEL (default build-core/run_model), LLAMA_CPP_BENCH (default
# /tmp/llama_cpp_bench, built from llama_cpp_bench.cpp as its header says), BINS (node-llama-cpp's
# prebuilt libraries). Model files: scripts/make-bench-model.ts, e.g.
#   npx tsx scripts/make-bench-model.ts deepseek-v2-lite --quant IQ2_XXS
cd "$(dirname "$0")/../.."
model=$1 threads=${2:-2} rounds=${3:-3} tokens=${4:-12}
run_model=${RUN_MODEL:-build-core/run_model}
llama=${LLAMA_CPP_BENCH:-/tmp/llama_cpp_bench}
bins=${BINS:-node_modules/@node-llama-cpp/linux-x64/bins/linux-x64}
if [ ! -f "$model" ] || [ ! -x "$run_model" ] || [ ! -x "$llama" ]; then
  echo "usage: $0 MODEL.gguf [THREADS] [ROUNDS] [TOKENS]; needs $run_model and $llama" >&2
  exit 2
fi
echo "$model: $threads threads, $rounds rounds of $tokens tokens; $(uptime)"
for r in $(seq 1 "$rounds"); do
  m=$("$run_model" "$model" -n "$tokens" -t "$threads" --prompt 4 2>&1 | tail -1)
  l=$("$llama" "$model" "$bins" "$threads" 4 "$tokens" 2>&1 | tail -1)
  echo "round $r: moerun $m | $l | $(uptime | sed 's/.*load/load/')"
done
