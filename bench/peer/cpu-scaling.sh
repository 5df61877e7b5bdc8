#!/bin/bash
# moerun against llama.cpp on the CPU at 1, 2, 4, 8 and 16 threads (issue 17's many-core table), on
# a host without Node (the GPU machine's 16-core Sapphire Rapids): moerun's run_model and llama.cpp's
# C API (bench/peer/llama_cpp_bench.cpp, node-llama-cpp's prebuilt CPU libraries) on the same file.
#
#   here:   npx tsx bench/peer/bench-prepare.ts                  # fills .device/bench (git-ignored)
#   there:  bash bench/peer/cpu-scaling.sh [MODEL|SHAPE] [THREADS] [REPEATS]
#           (device tool: carry [".device/bench"]; results in $OUT)
#
# MODEL is a GGUF path, or the name of one of .device/bench/models/*.recipe (default
# ling-mini-2.0-l20-q4_k_m-v1), which is first expanded to /tmp (bench/peer/bench-model.sh).
# THREADS defaults to "1 2 4 8 16" (counts above the CPUs are left out). Per thread count, moerun
# runs REPEATS (default 2) processes, each a 512-token prompt and 64 decoded tokens after an
# untimed warm-up (run_model --warmup); llama.cpp loads the file once (it repacks some types at
# load) and runs the same per count after its own warm-up. The table takes the best of the
# repeats (the shared machine's noise only slows), with the ratios.
# First, test_kernels: every kernel of every ISA path the CPU has (scalar, avx2, avx512, and amx
# where the OS grants the tiles) against the scalar reference.
# Writes ${OUT:-/tmp/cpu-scaling}/cpu-scaling.txt (the raw lines), cpu-scaling.md (the table) and
# kernels.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
dev=.device/bench
out=${OUT:-/tmp/cpu-scaling}
mkdir -p "$out"
model=${1:-ling-mini-2.0-l20-q4_k_m-v1}
threads=${2:-"1 2 4 8 16"}
repeats=${3:-2}
n_prompt=512
n_gen=64
cpus=$(nproc)
list=()
for t in $threads; do ((t <= cpus)) && list+=("$t"); done
((${#list[@]})) || { echo "cpu-scaling: none of the thread counts '$threads' fits $cpus CPUs"; exit 1; }
for f in "$dev/bin/run_model" "$dev/bin/test_kernels" "$dev/bin/llama_cpp_bench" "$dev/bin/expand_bench_model"; do
  [[ -x $f ]] || { echo "cpu-scaling: $f is missing (run bench/peer/bench-prepare.ts here, carry .device/bench)"; exit 1; }
done
if [[ ! -f $model ]]; then
  model=$(bash bench/peer/bench-model.sh "$model") || exit 1
fi

timeout 300 "$dev/bin/test_kernels" test/fixtures/quant > "$out/kernels.txt" 2>&1
echo "test_kernels: rc=$? ($(grep -c '^ok' "$out/kernels.txt") checks; $(grep -c '^FAIL' "$out/kernels.txt") failed; $(grep '^skip .*path' "$out/kernels.txt" | tr '\n' ' '))"

raw=$out/cpu-scaling.txt
{
  echo "date: $(date -u); host: $(uname -srm), $cpus CPUs; $(grep -m1 'model name' /proc/cpuinfo)"
  echo "flags: $(grep -o 'avx512_vnni\|avx512_bf16\|amx_int8\|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "model: $model ($(stat -c %s "$model") bytes)"
} | tee "$raw"
for t in "${list[@]}"; do
  for ((r = 0; r < repeats; ++r)); do
    line=$("$dev/bin/run_model" "$model" -n "$n_gen" -t "$t" --kv f16 --prompt "$n_prompt" --warmup 2>&1 | tail -1)
    echo "moerun: $line" | tee -a "$raw"
  done
done
bins=$dev/bins
csv=$(IFS=,; echo "${list[*]}")
LD_LIBRARY_PATH=$bins "$dev/bin/llama_cpp_bench" "$model" "$bins" "$csv" "$n_prompt" "$n_gen" "$repeats" 2>&1 | tee -a "$raw"

# The table: best of the repeats per engine and thread count.
awk -v np="$n_prompt" -v ng="$n_gen" -v list="${list[*]}" '
  /^moerun: prompt/ {
    t = $0; sub(/.*\(/, "", t); t += 0
    pp = $0; sub(/.*tokens: /, "", pp); pp += 0
    tg = $0; sub(/.*decode: /, "", tg); tg += 0
    if (pp > mpp[t]) mpp[t] = pp; if (tg > mtg[t]) mtg[t] = tg
  }
  /^llama.cpp: pp/ {
    t = $0; sub(/.*\(/, "", t); t += 0
    pp = $3 + 0; tg = $6 + 0
    if (pp > lpp[t]) lpp[t] = pp; if (tg > ltg[t]) ltg[t] = tg
  }
  END {
    printf "| threads | moerun pp%d | llama.cpp pp%d | pp ratio | moerun tg%d | llama.cpp tg%d | tg ratio |\n", np, np, ng, ng
    printf "|---:|---:|---:|---:|---:|---:|---:|\n"
    n = split(list, ts, " ")  # in the order run (POSIX awk: no sorting)
    for (i = 1; i <= n; ++i) {
      t = ts[i]
      printf "| %d | %.1f | %.1f | %.2fx | %.1f | %.1f | %.2fx |\n", t, mpp[t], lpp[t], lpp[t] ? mpp[t] / lpp[t] : 0, mtg[t], ltg[t], ltg[t] ? mtg[t] / ltg[t] : 0
    }
  }' "$raw" | tee "$out/cpu-scaling.md"
