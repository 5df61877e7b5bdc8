// Tensor element types: each format's facts and scalar reference code (the traits table). The
// kernels a CPU path runs are in cpu/kernels.h.
//
// Type ids are GGUF's (= ggml's `ggml_type`), so a tensor's type field indexes this table directly.
// Block layouts follow llama.cpp bit for bit; each block struct lives in quant/blocks.h with a
// static_assert on its size.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../base/tensor_type.h"

namespace moerun {

// Row functions of a format. `n` is the number of elements in the row and is a multiple of the
// block size.
using to_float_fn = void (*)(const void* src, float* dst, int64_t n);
using from_float_fn = void (*)(const float* src, void* dst, int64_t n);
// Quantize with an importance matrix: imatrix[n] weighs each column of the row (llama-imatrix's
// values, one per element of the row), as llama.cpp's quantize_* take quant_weights.
using from_float_imatrix_fn = void (*)(const float* src, void* dst, int64_t n, const float* imatrix);
// s = dot(x, y): x is a row of this type, y a row of the type's `vec_dot_type` (for CPU kernels:
// an activation row as cpu/kernels.h's act_from_float writes it).
using vec_dot_fn = void (*)(int64_t n, float* s, const void* x, const void* y);

// A format's facts and its scalar reference code (quant/reference_*.cpp): what a block holds,
// and which activation type its dot product pairs with (ggml's vec_dot_type).
struct type_traits {
    const char* name = nullptr;     // "Q4_K"; nullptr for ids GGUF does not define
    int64_t block_size = 0;         // elements per block
    size_t type_size = 0;           // bytes per block
    bool is_quantized = false;
    to_float_fn to_float = nullptr;       // dequantize a row; nullptr = not supported
    from_float_fn from_float = nullptr;   // quantize a row; nullptr = not supported
    from_float_imatrix_fn from_float_imatrix = nullptr;  // quantize a row with an importance matrix; nullptr = none
    vec_dot_fn vec_dot = nullptr;         // nullptr = cannot be a matmul weight
    tensor_type vec_dot_type = tensor_type::F32;  // what activations are converted to for vec_dot
};

// The reference table (scalar code). The kernels a CPU path runs are cpu/kernels.h's.
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
