// Scalar reference row operations: llama.cpp's plain-C versions (expf, sums in double).
#include "vector_ops.h"

#include <cmath>
#include <cstring>

namespace moerun {

namespace {

void softmax_ref(float* x, int64_t n, float cutoff) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        const float d = x[i] - max;
        x[i] = d < cutoff ? 0.0f : std::exp(d);
        sum += double(x[i]);
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu_ref(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void weighted_rows_ref(float* y, const float* v, int64_t v_stride, const float* p, int64_t rows, int64_t n) {
    for (int64_t j = 0; j < rows; ++j) {
        const float* vj = v + j * v_stride;
        for (int64_t e = 0; e < n; ++e) y[e] += p[j] * vj[e];
    }
}

void transpose_u16_ref(const uint8_t* src, size_t src_stride, uint8_t* dst, size_t dst_stride, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) std::memcpy(dst + size_t(c) * dst_stride + size_t(r) * 2, src + size_t(r) * src_stride + size_t(c) * 2, 2);
    }
}

}  // namespace

vector_ops vector_ops_reference() {
    vector_ops ops;
    ops.lanes = 0;
    ops.softmax = softmax_ref;
    ops.swiglu = swiglu_ref;
    ops.weighted_rows = weighted_rows_ref;
    ops.transpose_u16 = transpose_u16_ref;
    ops.contracts_fma = false;
    return ops;
}

}  // namespace moerun
