// Matrix multiplication against weights of any supported type, threaded over output rows.
#pragma once

#include <cstdint>
#include <vector>

#include "../runtime/tensor.h"
#include "thread_pool.h"

namespace moerun {

// y (m x n) = x (m x k) . w^T, with w a (k, n) tensor (n rows of k elements, any type with a
// vec_dot). x rows are converted once to w's vec_dot_type in `scratch`.
void matmul(thread_pool& pool, const tensor& w, const float* x, int64_t m, float* y, std::vector<uint8_t>& scratch);

// y1 = x . w1^T and y2 = x . w2^T in one threaded pass: the activations are converted once and
// the threads synchronize once (the fused gate/up projection of an FFN). w1 and w2 have the same
// shape and type.
void matmul_pair(thread_pool& pool, const tensor& w1, const tensor& w2, const float* x, int64_t m, float* y1, float* y2,
                 std::vector<uint8_t>& scratch);

// dst (n) = row `r` of `w` as floats (embedding lookups).
void tensor_get_row(const tensor& w, int64_t r, float* dst);

}  // namespace moerun
