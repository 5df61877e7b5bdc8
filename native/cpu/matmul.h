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

// dst (n) = row `r` of `w` as floats (embedding lookups).
void tensor_get_row(const tensor& w, int64_t r, float* dst);

}  // namespace moerun
