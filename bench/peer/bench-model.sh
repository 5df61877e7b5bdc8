#!/bin/bash
# The benchmark model NAME (one of .device/bench/models/NAME.recipe, from bench-prepare.ts) as a
# GGUF under /tmp/moerun-bench-models, written from its recipe by expand_bench_model the first
# time (10-18 GB at disk speed) and reused after. Prints the file's path; messages go to stderr.
#   bash bench/peer/bench-model.sh ling-mini-2.0-l20-q4_k_m-v1
set -uo pipefail
cd "$(dirname "$0")/../.."
dev=.device/bench
name=${1:?usage: bench-model.sh NAME}
out=/tmp/moerun-bench-models
file=$out/$name.gguf
if [[ ! -f $file ]]; then
  recipe=$dev/models/$name.recipe
  [[ -f $recipe ]] || { echo "bench-model: no recipe $recipe" >&2; exit 1; }
  mkdir -p "$out"
  [[ -f $dev/models/$name.head ]] || xz -dk "$dev/models/$name.head.xz" || exit 1
  t0=$SECONDS
  "$dev/bin/expand_bench_model" "$recipe" "$out" > /dev/null || exit 1
  echo "bench-model: expanded $file ($(stat -c %s "$file") bytes) in $((SECONDS - t0)) s" >&2
fi
echo "$file"
