#!/bin/bash
# A/B of two builds' matmul kernels (native/test/bench_matmul) on a shared machine: the two binaries
# alternate round by round on the same CPU, each run taking the best of its repetitions in process
# CPU time, and the best and the median of each (type, n, m) over the rounds are printed with their
# ratio. On the 2-vCPU VMs of this project a kernel's speed swung up to 2x between runs (another
# tenant on the core's other hyperthread), so one run of each says little; the best over rounds
# approaches the undisturbed speed, the median shows whether a gain holds in the slow phases too.
#   bash bench/matmul-ab.sh BASE_BENCH_MATMUL NEW_BENCH_MATMUL ROUNDS [bench_matmul options...]
# e.g. a base build in a worktree against this one, the AMX path, one thread:
#   git worktree add /tmp/base HEAD~1 && cmake -S /tmp/base -B /tmp/base/build-core -DCMAKE_BUILD_TYPE=Release \
#     && cmake --build /tmp/base/build-core -j2 --target bench_matmul
#   MOERUN_CPU=amx bash bench/matmul-ab.sh /tmp/base/build-core/bench_matmul build-core/bench_matmul 6 \
#     --threads 1 --types Q4_0,Q8_0 --m 64,512 --n 2048 --budget 0.3
# Environment: MOERUN_CPU as for bench_matmul; CPU (default 0), the CPU both run on (taskset).
set -euo pipefail
if [ $# -lt 3 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
  echo "usage: $0 BASE_BENCH_MATMUL NEW_BENCH_MATMUL ROUNDS [bench_matmul options...]" >&2
  exit 2
fi
base=$1 new=$2 rounds=$3
shift 3
cpu=${CPU:-0}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for which in base new; do
    bin=$base
    [ "$which" = new ] && bin=$new
    # rows after bench_matmul's two header lines: type n m ms GFLOP/s GB/s
    taskset -c "$cpu" "$bin" --clock cpu "$@" | tail -n +3 | awk '{print $1, $2, $3, $5}' >> "$out/$which"
  done
  echo "round $r/$rounds done; $(uptime | sed 's/.*load/load/')" >&2
done
summary() {  # per (type, n, m): best and median GFLOP/s
  sort -k1,1 -k2,2n -k3,3n -k4,4g "$1" | awk '
    function flush() { if (key != "") printf "%s %s %.1f %.1f\n", key, "x", v[c], (c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2) }
    { k = $1 " " $2 " " $3; if (k != key) { flush(); key = k; c = 0 } v[++c] = $4 }
    END { flush() }'
}
echo "GFLOP/s over $rounds alternating rounds (process CPU time), base: $base, new: $new"
printf "%-7s %6s %5s | %9s %9s %6s | %9s %9s %6s\n" type n m "best b" "best n" ratio "median b" "median n" ratio
LC_ALL=C join <(summary "$out/base" | awk '{print $1"/"$2"/"$3, $5, $6}' | LC_ALL=C sort) <(summary "$out/new" | awk '{print $1"/"$2"/"$3, $5, $6}' | LC_ALL=C sort) |
  awk '{split($1, k, "/"); printf "%-7s %6s %5s | %9.1f %9.1f %5.2fx | %9.1f %9.1f %5.2fx\n", k[1], k[2], k[3], $2, $4, $4 / $2, $3, $5, $5 / $3}'
