#include "matmul.h"

#include <algorithm>

#include "../runtime/error.h"

namespace moerun {

void matmul(thread_pool& pool, const tensor& w, const float* x, int64_t m, float* y, std::vector<uint8_t>& scratch) {
    const int64_t k = w.ne[0];
    const int64_t n = w.ne[1];
    const type_traits& wt = type_traits_of(w.type);
    if (!wt.vec_dot) {
        throw error(error_code::unsupported, format("matmul: tensor '%s' has type %s, which has no dot-product kernel",
                                                    w.name ? w.name->c_str() : "?", tensor_type_name(w.type)));
    }
    // Activations in the weight's dot type. F32 weights use x directly.
    const void* xq = x;
    size_t xq_row = size_t(k) * sizeof(float);
    if (wt.vec_dot_type != tensor_type::F32) {
        const type_traits& at = type_traits_of(wt.vec_dot_type);
        xq_row = row_size(wt.vec_dot_type, k);
        scratch.resize(xq_row * size_t(m));
        pool.parallel_for(m, 1, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) at.from_float(x + i * k, scratch.data() + size_t(i) * xq_row, k);
        });
        xq = scratch.data();
    }
    const uint8_t* xb = static_cast<const uint8_t*>(xq);
    const size_t w_row = w.row_bytes();
    const uint8_t* wb = static_cast<const uint8_t*>(w.data);
    // Threads take contiguous blocks of output rows; within a block, a few weight rows are reused
    // across all m activation rows while they are hot in cache.
    constexpr int64_t k_row_tile = 16;
    pool.parallel_for(n, 4, [&](int64_t begin, int64_t end) {
        for (int64_t r0 = begin; r0 < end; r0 += k_row_tile) {
            const int64_t r1 = std::min(end, r0 + k_row_tile);
            for (int64_t i = 0; i < m; ++i) {
                const uint8_t* xi = xb + size_t(i) * xq_row;
                float* yi = y + i * n;
                for (int64_t r = r0; r < r1; ++r) wt.vec_dot(k, &yi[r], wb + size_t(r) * w_row, xi);
            }
        }
    });
}

void tensor_get_row(const tensor& w, int64_t r, float* dst) {
    const type_traits& wt = type_traits_of(w.type);
    if (!wt.to_float) {
        throw error(error_code::unsupported, format("tensor '%s' has type %s, which cannot be dequantized",
                                                    w.name ? w.name->c_str() : "?", tensor_type_name(w.type)));
    }
    wt.to_float(w.row(r), dst, w.ne[0]);
}

}  // namespace moerun
