// Scalar reference row operations: llama.cpp's plain-C versions (expf, sums in double).
#include "vector_ops.h"

#include <cmath>

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

}  // namespace

vector_ops vector_ops_reference() {
    vector_ops ops;
    ops.lanes = 0;
    ops.softmax = softmax_ref;
    ops.swiglu = swiglu_ref;
    ops.weighted_rows = weighted_rows_ref;
    ops.contracts_fma = false;
    return ops;
}

}  // namespace moerun
