// The AVX-512 kernels of this folder (declarations only; see register.cpp for which rows use them).
#pragma once

#include <cstdint>

namespace moerun::avx512 {

// float.cpp
void vec_dot_f32(int64_t n, float* s, const void* x, const void* y);
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y);
void vec_dot_bf16_dpbf16(int64_t n, float* s, const void* x, const void* y);  // needs AVX512_BF16
void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);

// kquant.cpp: K-quants, 64 quants per register
void vec_dot_q2_k(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_k(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_k(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q6_k(int64_t n, float* s, const void* x, const void* y);

}  // namespace moerun::avx512
