// Tensor element types and the traits table the engine consults for every weight and activation.
//
// Type ids are GGUF's (= ggml's `ggml_type`), so a tensor's type field indexes this table directly.
// Block layouts follow llama.cpp bit for bit; each block struct lives in quant/blocks.h with a
// static_assert on its size.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../base/tensor_type.h"

namespace moerun {


// Row kernels. `n` is the number of elements in the row and is a multiple of the block size.
using to_float_fn = void (*)(const void* src, float* dst, int64_t n);
using from_float_fn = void (*)(const float* src, void* dst, int64_t n);
// s = dot(x, y): x is a row of this type, y an activation row of the type's `vec_dot_type`, as
// act_from_float writes it (below).
using vec_dot_fn = void (*)(int64_t n, float* s, const void* x, const void* y);
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

struct type_traits {
    const char* name = nullptr;     // "Q4_K"; nullptr for ids GGUF does not define
    int64_t block_size = 0;         // elements per block
    size_t type_size = 0;           // bytes per block
    bool is_quantized = false;
    to_float_fn to_float = nullptr;       // dequantize a row; nullptr = not supported
    from_float_fn from_float = nullptr;   // quantize a row; nullptr = not supported
    vec_dot_fn vec_dot = nullptr;         // nullptr = cannot be a matmul weight
    vec_dot_n_fn vec_dot_n = nullptr;     // nullptr = callers loop over vec_dot
    tensor_type vec_dot_type = tensor_type::F32;  // what activations are converted to for vec_dot
    vec_dot_fn vec_dot_unrolled = nullptr;  // float types: the vector-dot order; nullptr = use vec_dot
    int gemm_lanes = 0;                     // float types: L of vec_dot's GEMM order; 0 = sequential
    gemm_tile_fn gemm_tile = nullptr;       // float types with gemm_lanes: tiles of the GEMM order
    int gemm_tile_x = 0;                    // the most activation rows a gemm_tile call takes
    // As a vec_dot_type: activation rows may carry act_extra_per_block bytes per block after the
    // blocks, which from_float_act writes and this path's kernels read (Q8_0 on the SIMD paths:
    // each block's scale as a float, read instead of a half converted per block and row; four at
    // a time by the AVX-512 kernels). Every kernel given activations of this type takes such rows.
    from_float_fn from_float_act = nullptr;  // nullptr: from_float
    size_t act_extra_per_block = 0;
};

// The active table: references overridden by the fastest kernels this CPU supports
// (see cpu/dispatch.cpp). Never null; unknown ids give a traits entry with name == nullptr.
const type_traits& type_traits_of(tensor_type type);
// The scalar reference table, for tests that compare kernels against it.
const type_traits& type_traits_reference(tensor_type type);

// Name for messages ("Q4_K", or "type 57" for ids GGUF does not define).
const char* tensor_type_name(tensor_type type);
inline bool tensor_type_known(uint32_t id) {
    return id < k_tensor_type_count && type_traits_reference(tensor_type(id)).name != nullptr;
}

// Bytes of a row of `n` elements; n must be a multiple of the block size.
inline size_t row_size(tensor_type type, int64_t n) {
    const type_traits& t = type_traits_reference(type);
    return size_t(n / t.block_size) * t.type_size;
}

// Bytes of an activation row of `n` elements of `type` on the active path (blocks, then the
// path's extra bytes), and the function that writes one.
inline size_t act_row_size(tensor_type type, int64_t n) {
    const type_traits& t = type_traits_of(type);
    return size_t(n / t.block_size) * (t.type_size + t.act_extra_per_block);
}
inline from_float_fn act_from_float(tensor_type type) {
    const type_traits& t = type_traits_of(type);
    return t.from_float_act ? t.from_float_act : t.from_float;
}

// ---- scalar half/bfloat conversions (IEEE round-to-nearest-even, like F16C and ggml) ----
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
    union { uint32_t u; float f; } v{uint32_t(h) << 16};
    return v.f;
}
inline uint16_t fp32_to_bf16(float f) {
    union { float f; uint32_t u; } v{f};
    if ((v.u & 0x7fffffff) > 0x7f800000) return uint16_t((v.u >> 16) | 64);  // quiet NaN
    return uint16_t((v.u + (0x7fff + ((v.u >> 16) & 1))) >> 16);
}

}  // namespace moerun
