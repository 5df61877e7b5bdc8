#!/usr/bin/env bash
# The long fuzzing run: libFuzzer over whole model files (native/fuzz/fuzz_model.cpp) under ASan +
# UBSan + LSan, seeded with scripts/fuzz-seeds.ts, on one core at the lowest priority so it never
# starves the machine. CI runs the same target for about a minute (test/sanitizers.test.ts).
#
#   scripts/fuzz-long.sh [RUNS=1000000] [MAX_SECONDS=0 (no limit)]
#
# FUZZ_DIR (default /tmp/moerun-fuzz) keeps seeds/, corpus/ (grows across runs), crashes/ and
# fuzz.log; the last lines printed are the run's figures: inputs executed, coverage (edges) and
# features, corpus size, crashes. Needs clang and libclang-rt (Debian: clang libclang-rt-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
max_seconds=${2:-0}
dir=${FUZZ_DIR:-/tmp/moerun-fuzz}
build=build-asan
mkdir -p "$dir/corpus" "$dir/crashes"

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DMOERUN_SANITIZE=address
fi
nice -n 19 cmake --build "$build" -j1 --target fuzz_model
[[ -d $dir/seeds ]] || npx tsx scripts/fuzz-seeds.ts "$dir/seeds"

# Whole files: the largest seed must fit, or libFuzzer would cut them.
max_len=$(find "$dir/seeds" "$dir/corpus" -type f -printf '%s\n' | sort -n | tail -1)
# -malloc_limit_mb: any single allocation over 512 MB is a finding (the harness skips models whose
# activations would need more; weights are bounded by the input). -timeout: an input running 60 s
# is a hang.
# A copy, so rebuilding the tree during a run cannot change the binary under it.
cp "$build/fuzz_model" "$dir/fuzz_model"
nice -n 19 "$dir/fuzz_model" -runs="$runs" -max_total_time="$max_seconds" -max_len="$max_len" \
  -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=60 -print_final_stats=1 \
  -artifact_prefix="$dir/crashes/" "$dir/corpus" "$dir/seeds" >"$dir/fuzz.log" 2>&1 && status=0 || status=$?

last=$(grep -E '^#[0-9]+' "$dir/fuzz.log" | tail -1 || true)
echo "fuzz-long: exit status $status"
echo "fuzz-long: last status line: $last"
grep -E '^stat::' "$dir/fuzz.log" || true
echo "fuzz-long: corpus $(find "$dir/corpus" -type f | wc -l) files, $(du -sh "$dir/corpus" | cut -f1)"
echo "fuzz-long: findings $(find "$dir/crashes" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)," \
  "slow inputs (over 10 s, not findings) $(find "$dir/crashes" -type f -name 'slow-unit-*' | wc -l) (in $dir/crashes)"
exit "$status"
