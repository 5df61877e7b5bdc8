// Scalar reference kernels: the definition of every format's semantics. SIMD kernels in cpu/ are
// tested against these; they are also the fallback on CPUs without a faster path.
#pragma once

#include "types.h"

namespace moerun::ref {

void to_float_f32(const void* src, float* dst, int64_t n);
void from_float_f32(const float* src, void* dst, int64_t n);
void vec_dot_f32(int64_t n, float* s, const void* x, const void* y);

void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y);

void to_float_bf16(const void* src, float* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y);

}  // namespace moerun::ref
