#!/usr/bin/env bash
# Executed instructions per 32 weights of the arm64 dot kernels, moerun's (native/cpu/neon) against
# llama.cpp's NEON ones (ggml/src/ggml-cpu/arch/arm/quants.c), as a stand-in for a speed comparison
# on a machine without arm64 hardware. Both are compiled by the same cross compiler with the same
# flags and called once on n = 4096 and once on n = 8192 elements under qemu-aarch64 -singlestep,
# which logs every executed instruction; the difference over the 128 extra blocks is the per-block
# cost (process start, data setup and the call's own setup cancel out). Counts are not cycles:
# SDOT, SMMLA, loads and shuffles all count one.
#   scripts/neon-insn-count.sh [-O2|-O3] [LLAMA_CPP_DIR]   (defaults: -O3, /tmp/llama.cpp: clone it with
#   git clone node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llama.cpp)
# NEON_INSN_TYPES='IQ2_XXS IQ1_S' limits the per-type table to those types. Needs
# g++-aarch64-linux-gnu and qemu-user-static. Rows:
#   sdot     one row, -march=armv8.2-a+dotprod: llama.cpp's ggml_vec_dot_<type>, moerun's dotprod vec_dot
#   v8       moerun's plain ARMv8-A vec_dot (SMULL + SADALP; llama.cpp's plain build is not counted)
#   tile     Q8_0/Q4_0 prompt tiles with +i8mm, per output and block: llama.cpp's 2 x 2 SMMLA call
#            (nrc = 2), moerun's gemm_tile at 2 x 2 and 4 x 4
set -euo pipefail
opt=${1:--O3}
llama=${2:-/tmp/llama.cpp}
root=$(cd "$(dirname "$0")/.." && pwd)
quants=$llama/ggml/src/ggml-cpu/arch/arm/quants.c
[[ -f $quants ]] || { echo "neon-insn-count: no $quants (see the header for how to get llama.cpp)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc=aarch64-linux-gnu-gcc
cxx=aarch64-linux-gnu-g++
inc=(-I"$llama/ggml/include" -I"$llama/ggml/src" -I"$llama/ggml/src/ggml-cpu")

cat > "$work/llama_drv.c" <<'EOF'
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
void __assert_fail(const char* a, const char* b, unsigned c, const char* d) { abort(); }
float ggml_table_f32_ue4m3[256];
void quantize_row_q8_K_ref(const float* x, void* y, int64_t k) {}
typedef void (*dot_fn)(int, float*, size_t, const void*, size_t, const void*, size_t, int);
#define F(name) void ggml_vec_dot_##name(int, float*, size_t, const void*, size_t, const void*, size_t, int);
F(q4_0_q8_0) F(q4_1_q8_1) F(q5_0_q8_0) F(q5_1_q8_1) F(q8_0_q8_0) F(iq4_nl_q8_0) F(q2_K_q8_K) F(q3_K_q8_K) F(q4_K_q8_K)
F(q5_K_q8_K) F(q6_K_q8_K) F(iq4_xs_q8_K) F(iq2_xxs_q8_K) F(iq2_xs_q8_K) F(iq2_s_q8_K) F(iq3_xxs_q8_K) F(iq3_s_q8_K)
F(iq1_s_q8_K) F(iq1_m_q8_K) F(tq1_0_q8_K) F(tq2_0_q8_K) F(mxfp4_q8_0)
static struct { const char* name; dot_fn f; } fns[] = {
    {"Q4_0", ggml_vec_dot_q4_0_q8_0}, {"Q4_1", ggml_vec_dot_q4_1_q8_1}, {"Q5_0", ggml_vec_dot_q5_0_q8_0},
    {"Q5_1", ggml_vec_dot_q5_1_q8_1}, {"Q8_0", ggml_vec_dot_q8_0_q8_0}, {"IQ4_NL", ggml_vec_dot_iq4_nl_q8_0},
    {"Q2_K", ggml_vec_dot_q2_K_q8_K}, {"Q3_K", ggml_vec_dot_q3_K_q8_K}, {"Q4_K", ggml_vec_dot_q4_K_q8_K},
    {"Q5_K", ggml_vec_dot_q5_K_q8_K}, {"Q6_K", ggml_vec_dot_q6_K_q8_K}, {"IQ4_XS", ggml_vec_dot_iq4_xs_q8_K},
    {"IQ2_XXS", ggml_vec_dot_iq2_xxs_q8_K}, {"IQ2_XS", ggml_vec_dot_iq2_xs_q8_K}, {"IQ2_S", ggml_vec_dot_iq2_s_q8_K},
    {"IQ3_XXS", ggml_vec_dot_iq3_xxs_q8_K}, {"IQ3_S", ggml_vec_dot_iq3_s_q8_K}, {"IQ1_S", ggml_vec_dot_iq1_s_q8_K},
    {"IQ1_M", ggml_vec_dot_iq1_m_q8_K}, {"TQ1_0", ggml_vec_dot_tq1_0_q8_K}, {"TQ2_0", ggml_vec_dot_tq2_0_q8_K},
    {"MXFP4", ggml_vec_dot_mxfp4_q8_0}};
static uint8_t x[1 << 16], y[1 << 16];
int main(int argc, char** argv) {  // TYPE N [rows: 2 = llama.cpp's 2 x 2 i8mm call]
  const int n = atoi(argv[2]), rows = argc > 3 ? atoi(argv[3]) : 1;
  for (int i = 0; i < (1 << 16); ++i) x[i] = (uint8_t)(i * 37 + 11), y[i] = (uint8_t)(i * 101 + 3);
  float s[4];
  for (unsigned i = 0; i < sizeof fns / sizeof fns[0]; ++i)
    if (!strcmp(fns[i].name, argv[1])) { fns[i].f(n, s, 2, x, 8192, y, 8192, rows); volatile float v = s[0]; (void)v; return 0; }
  return 1;
}
EOF

cat > "$work/ours_drv.cpp" <<'EOF'
#include <cstdlib>
#include <cstring>
#include "native/cpu/neon/kernels.h"
using namespace moerun;
static uint8_t x[1 << 16], y[1 << 16];
int main(int argc, char** argv) {  // TYPE N [tile rows: gemm_tile with rows x rows outputs]
  static cpu_kernels table[k_tensor_type_count];
#ifdef PLAIN
  neon::register_int8_rows(table);
  neon::register_iq_rows(table);
#else
  neon_dotprod::register_int8_rows(table);
  neon_dotprod::register_iq_rows(table);
#endif
  using T = tensor_type;
  const char* names[] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS",
                         "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "MXFP4"};
  const T ids[] = {T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q8_0, T::IQ4_NL, T::Q2_K, T::Q3_K, T::Q4_K, T::Q5_K, T::Q6_K, T::IQ4_XS,
                   T::IQ2_XXS, T::IQ2_XS, T::IQ2_S, T::IQ3_XXS, T::IQ3_S, T::IQ1_S, T::IQ1_M, T::TQ1_0, T::TQ2_0, T::MXFP4};
  const int n = atoi(argv[2]), rows = argc > 3 ? atoi(argv[3]) : 0;
  for (int i = 0; i < (1 << 16); ++i) x[i] = uint8_t(i * 37 + 11), y[i] = uint8_t(i * 101 + 3);
  float s[16];
#ifdef TILE
  if (rows) {
    (!strcmp(argv[1], "Q8_0") ? neon_i8mm::gemm_tile_q8_0 : neon_i8mm::gemm_tile_q4_0)(n, x, 8192, rows, y, 8192, rows, s, rows);
    volatile float v = s[0]; (void)v;
    return 0;
  }
#endif
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
    if (!strcmp(names[i], argv[1])) { table[uint32_t(ids[i])].vec_dot(n, s, x, y); volatile float v = s[0]; (void)v; return 0; }
  return 1;
}
EOF

flags=(-std=c++20 "$opt" -ffp-contract=off -fno-math-errno -I"$root")
$cc "$opt" -march=armv8.2-a+dotprod -std=gnu11 "${inc[@]}" -c "$quants" -o "$work/llama_sdot.o"
$cc "$opt" -march=armv8.2-a+dotprod+i8mm -std=gnu11 "${inc[@]}" -c "$quants" -o "$work/llama_i8mm.o"
$cc -O2 -static "$work/llama_drv.c" "$work/llama_sdot.o" -o "$work/llama_sdot"
$cc -O2 -static "$work/llama_drv.c" "$work/llama_i8mm.o" -o "$work/llama_i8mm"
$cxx "${flags[@]}" -march=armv8.2-a+dotprod -c "$root/native/cpu/neon/dotprod/quant.cpp" -o "$work/ours_sdot.o"
$cxx "${flags[@]}" -march=armv8.2-a+dotprod -c "$root/native/cpu/neon/dotprod/iq_grid.cpp" -o "$work/ours_sdot_iq.o"
$cxx "${flags[@]}" -c "$root/native/cpu/neon/quant.cpp" -o "$work/ours_v8.o"
$cxx "${flags[@]}" -c "$root/native/cpu/neon/iq_grid.cpp" -o "$work/ours_v8_iq.o"
$cxx "${flags[@]}" -march=armv8.2-a+dotprod+i8mm -c "$root/native/cpu/neon/i8mm/tile.cpp" -o "$work/ours_i8mm.o"
$cxx -std=c++20 -O2 -static -I"$root" "$work/ours_drv.cpp" "$work/ours_sdot.o" "$work/ours_sdot_iq.o" -o "$work/ours_sdot"
$cxx -std=c++20 -O2 -static -DPLAIN -I"$root" "$work/ours_drv.cpp" "$work/ours_v8.o" "$work/ours_v8_iq.o" -o "$work/ours_v8"
$cxx -std=c++20 -O2 -static -DTILE -I"$root" "$work/ours_drv.cpp" "$work/ours_sdot.o" "$work/ours_sdot_iq.o" "$work/ours_i8mm.o" -o "$work/ours_tile"

# Executed instructions of one run.
count() {
  qemu-aarch64-static -cpu max -singlestep -d nochain,exec -D "$work/trace" "$@" >/dev/null
  grep -c '^Trace' "$work/trace"
}
# Instructions per 32 weights of one output: (count(8192) - count(4096)) / (128 blocks * outputs).
per_block() {
  local outputs=$1; shift
  local bin=$1 type=$2; shift 2
  local a b
  a=$(count "$bin" "$type" 4096 "$@")
  b=$(count "$bin" "$type" 8192 "$@")
  awk -v a="$a" -v b="$b" -v o="$outputs" 'BEGIN { printf "%8.2f", (b - a) / (128 * o) }'
}

echo "executed instructions per 32 weights and output ($opt, $(${cxx} -dumpfullversion); qemu-aarch64 -singlestep)"
printf '%-7s %14s %14s %10s\n' type 'llama.cpp sdot' 'moerun sdot' 'moerun v8'
types=${NEON_INSN_TYPES:-Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_XS IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ1_S IQ1_M TQ1_0 TQ2_0 MXFP4}
for t in $types; do
  printf '%-7s %14s %14s %10s\n' "$t" "$(per_block 1 "$work/llama_sdot" "$t")" "$(per_block 1 "$work/ours_sdot" "$t")" "$(per_block 1 "$work/ours_v8" "$t")"
done
echo
printf '%-7s %18s %14s %14s\n' tile 'llama.cpp 2x2 i8mm' 'moerun 2x2' 'moerun 4x4'
for t in Q8_0 Q4_0; do
  printf '%-7s %18s %14s %14s\n' "$t" "$(per_block 4 "$work/llama_i8mm" "$t" 2)" "$(per_block 4 "$work/ours_tile" "$t" 2)" "$(per_block 16 "$work/ours_tile" "$t" 4)"
done
