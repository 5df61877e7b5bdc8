// Matrix multiplication against weights of any supported type, threaded over output rows.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "../backend/backend.h"
#include "../base/tensor.h"
#include "../base/thread_pool.h"
#include "kernels.h"

namespace moerun {

// y (m x n) = x (m x k) . w^T, with w a (k, n) tensor (n rows of k elements, any type with a
// vec_dot; activation_view: backend/backend.h). x rows are converted once to w's vec_dot_type in `scratch`.
void matmul(thread_pool& pool, const tensor& w, const float* x, int64_t m, float* y, std::vector<uint8_t>& scratch,
            activation_view view = activation_view::contiguous);

// y_j = x . w_j^T for up to 4 weights with the same row length (k) and type, in one threaded
// pass: the activations are converted once and the threads synchronize once (Q/K/V projections,
// the fused gate/up of an FFN). Weights of different types fall back to one pass each.
void matmul_group(thread_pool& pool, std::initializer_list<matmul_job> jobs, const float* x, int64_t m, std::vector<uint8_t>& scratch);

// Grouped expert matmul (ggml's mul_mat_id): for each batch b, rows [first, first + count) of x
// go through expert `expert` of each 3-D weight: y_j[row] = x[row] . w_j.expert(e)^T. All experts
// and weights share one threaded pass over (weight, expert, output row), so a decode step through
// k experts costs one synchronization, not k.
// A batch whose expert is k_shared_expert goes through shared[j] instead, a 2-D weight of the
// experts' type and shape (a shared expert: one more pass would cost one more synchronization),
// summed in the order a dense matmul of that weight sums (matmul above).
struct expert_batch {
    int expert;     // index into each 3-D weight, or k_shared_expert
    int64_t first;  // first row of x / y
    int64_t count;  // rows routed to this expert
};
inline constexpr int k_shared_expert = -1;
void matmul_experts(thread_pool& pool, std::initializer_list<matmul_job> jobs, const std::vector<expert_batch>& batches,
                    const float* x, int64_t m, std::vector<uint8_t>& scratch, std::initializer_list<const tensor*> shared = {});

// One thread's matmul of rows already in memory: y[i * y_stride + r] = dot(w_r, x_i) for weight
// rows w_r = w + r * w_row bytes (r < rows, of wt's type) and activation rows x_i = x + i * x_row
// bytes (i < nx, already of wt's vec_dot_type), summed as llama.cpp's matmul of a (k, rows) weight
// sums them (cpu/kernels.h). Attention weights its values with it. Float weights go through
// their register tiles float_tile_rows weight rows at a time (1 to 4; 0: as matmul() does, one
// row where the tile takes all the activations, else 4); the results are the same either way.
void matmul_rows(const cpu_kernels& wt, int64_t k, const uint8_t* w, size_t w_row, int64_t rows, const uint8_t* x, size_t x_row, int64_t nx,
                 float* y, int64_t y_stride, int float_tile_rows = 0);

// dst (n) = row `r` of `w` as floats (embedding lookups).
void tensor_get_row(const tensor& w, int64_t r, float* dst);

}  // namespace moerun
