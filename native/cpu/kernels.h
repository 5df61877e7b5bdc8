// The CPU's kernel table: for each tensor type, the format's facts and reference code
// (quant/types.h) with the fastest kernels this CPU path has in their place, plus what only the
// CPU needs: multi-row dots, tiles, summation orders and activation row layouts. Filled by
// cpu/dispatch.cpp from the reference rows and the per-ISA registrations (cpu/avx2, cpu/avx512).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../quant/types.h"

namespace moerun {

// One weight row against `ny` activation rows (prompt processing): s[j * s_stride] = dot(x, y_j)
// with y_j = y + j * y_stride bytes, for j < ny (any ny >= 1). Each weight block is unpacked once
// for all the rows. Every row's result is bit for bit what vec_dot of the same table gives: the
// kernels keep vec_dot's per-row summation order.
using vec_dot_n_fn = void (*)(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);

// Float weights (F32, F16) sum in llama.cpp's CPU orders, so that F32 and F16 models give its
// logits bit for bit on the same ISA. Rounding the activations to F16 before every F16 matmul
// turns any last-bit difference upstream into a different F16 value, so "close" is not enough.
// With L = gemm_lanes (16 on AVX-512, 8 on AVX2):
//   vec_dot, vec_dot_n ("GEMM order", llama.cpp's llamafile tiles, used for its dense matmuls):
//     one L-lane accumulator per output, one fused multiply-add per L elements, then the lanes
//     added pairwise (halves down to 4 lanes, then (0 + 2) + (1 + 3)). Needs n % L == 0.
//   vec_dot_unrolled ("vector-dot order", ggml_vec_dot_*, used for expert matmuls, attention
//     scores, and dense shapes its GEMM rejects: weight rows % 4 != 0 or n % L != 0): four
//     L-lane accumulators over steps of 4L, added pairwise, then the remainder element by element
//     (F32 in float, the last (remainder mod L/2) with fused multiply-adds, as GCC compiled it;
//     F16 in double).
// With gemm_lanes == 0 (the scalar path) both are llama.cpp's plain-C order: float products
// summed in double, element by element.

// Float types: an nw x nx tile of outputs in the GEMM order, y[i * y_stride + r] = dot(w_r, x_i)
// for weight rows w_r = w + r * w_row bytes (r < nw <= 4) and activation rows x_i = x + i * x_row
// bytes (i < nx <= gemm_tile_x), bit for bit vec_dot. Register-blocked like llama.cpp's tiles:
// each step loads nw + nx vectors for nw * nx fused multiply-adds.
using gemm_tile_fn = void (*)(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx,
                              float* y, int64_t y_stride);

struct cpu_kernels : type_traits {
    vec_dot_n_fn vec_dot_n = nullptr;       // nullptr = callers loop over vec_dot
    vec_dot_fn vec_dot_unrolled = nullptr;  // float types: the vector-dot order; nullptr = use vec_dot
    int gemm_lanes = 0;                     // float types: L of vec_dot's GEMM order; 0 = sequential
    gemm_tile_fn gemm_tile = nullptr;       // float types with gemm_lanes: tiles of the GEMM order
    int gemm_tile_x = 0;                    // the most activation rows a gemm_tile call takes
    // F32 with vec_dot_unrolled: an nw x nx tile in the vector-dot order (same arguments as
    // gemm_tile, any nw, nx >= 1), y[i * y_stride + r] = vec_dot_unrolled(w_r, x_i) bit for bit;
    // each weight row is loaded once for several activation rows (attention: keys against the
    // queries that share them). nullptr = callers loop over vec_dot_unrolled.
    gemm_tile_fn unrolled_tile = nullptr;
    // Integer-dot types with an int8 GEMM: an nw x nx tile of outputs for nw <= int8_tile_rows
    // weight rows and any nx >= 1 activation rows (same arguments as gemm_tile), bit for bit
    // vec_dot. The weight rows are unpacked once for all the activation rows.
    gemm_tile_fn int8_tile = nullptr;
    int int8_tile_rows = 0;
    // int8_tile for weights in the interleaved layout (cpu/interleave.h): nw a multiple of 16, the
    // rows as interleaved groups; bit for bit int8_tile on the same rows in place. Where a path
    // has it, the loader interleaves the weights of this type (interleave_weights).
    gemm_tile_fn int8_tile_interleaved = nullptr;
    // As a vec_dot_type: activation rows may carry act_extra_per_block bytes per block after the
    // blocks, which from_float_act writes and this path's kernels read (Q8_0 on the SIMD paths:
    // each block's scale as a float, read instead of a half converted per block and row; four at
    // a time by the AVX-512 kernels). Every kernel given activations of this type takes such rows.
    from_float_fn from_float_act = nullptr;  // nullptr: from_float
    size_t act_extra_per_block = 0;
    // 8-bit dot types on the amx path (Q8_0, Q8_K): after the extra bytes, each row carries its
    // quants once more, contiguous from a 64-byte aligned offset (act_quants_offset), and is a
    // multiple of 64 bytes. A tile of 16 rows then loads from 16 aligned rows; from the blocks,
    // whose quants start 2 (Q8_0) or 4 (Q8_K) bytes in, its rows crossed cache lines, 2-4x slower.
    bool act_aligned_quants = false;
};

// The active path's table (see cpu/dispatch.h). Never null; unknown ids give a row with
// name == nullptr.
const cpu_kernels& cpu_kernels_of(tensor_type type);

// Where an activation row's extra bytes start: after its blocks, rounded up to 4 bytes so the
// extra floats are aligned (an odd count of Q8_0's 34-byte blocks ends 2 bytes off; reading a
// float there is undefined behaviour, caught by UBSan in test/sanitizers.test.ts).
inline size_t act_extra_offset(size_t blocks_bytes) { return (blocks_bytes + 3) & ~size_t(3); }

// Where an activation row's aligned quants start (act_aligned_quants): the first multiple of 64
// bytes after its blocks and extra bytes.
constexpr size_t k_act_quants_align = 64;
inline size_t act_quants_align_up(size_t bytes) { return (bytes + k_act_quants_align - 1) / k_act_quants_align * k_act_quants_align; }
inline size_t act_quants_offset(size_t blocks_bytes, size_t extra_bytes) {
    return act_quants_align_up(extra_bytes ? act_extra_offset(blocks_bytes) + extra_bytes : blocks_bytes);
}

// Bytes of an activation row of `n` elements of a type with the layout of `t` (blocks, then the
// extra bytes, a multiple of 4 when there are any; then the aligned quants, one byte each, and the
// row a multiple of 64), and on the active path; and the function that writes one.
inline size_t act_row_size(const cpu_kernels& t, int64_t n) {
    const size_t nb = size_t(n / t.block_size);
    const size_t blocks = nb * t.type_size, extra = nb * t.act_extra_per_block;
    if (t.act_aligned_quants) return act_quants_align_up(act_quants_offset(blocks, extra) + size_t(n));
    return extra ? act_extra_offset(blocks) + extra : blocks;
}
inline size_t act_row_size(tensor_type type, int64_t n) { return act_row_size(cpu_kernels_of(type), n); }
inline from_float_fn act_from_float(tensor_type type) {
    const cpu_kernels& t = cpu_kernels_of(type);
    return t.from_float_act ? t.from_float_act : t.from_float;
}

}  // namespace moerun
