// Scalar reference row operations: llama.cpp's plain-C versions (expf, sums in double).
#include "vector_ops.h"

#include <cmath>

#include "../quant/types.h"

namespace moerun {

namespace {

void softmax_ref(float* x, int64_t n) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
        sum += double(x[i]);
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu_ref(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// Per query and element: float products summed in double.
template <typename E, float (*to_f32)(E)>
void weighted_sum_ref(int64_t n_queries, const float* const* p, const int64_t* n, const E* v, size_t v_stride, int64_t dim,
                      float* const* out) {
    for (int64_t q = 0; q < n_queries; ++q) {
        for (int64_t e = 0; e < dim; ++e) {
            double sum = 0;
            for (int64_t j = 0; j < n[q]; ++j) sum += double(p[q][j] * to_f32(v[size_t(j) * v_stride + size_t(e)]));
            out[q][e] = float(sum);
        }
    }
}

float same(float x) { return x; }

}  // namespace

vector_ops vector_ops_reference() {
    vector_ops ops;
    ops.lanes = 0;
    ops.softmax = softmax_ref;
    ops.swiglu = swiglu_ref;
    ops.weighted_sum = weighted_sum_ref<float, same>;
    ops.weighted_sum_f16 = weighted_sum_ref<uint16_t, fp16_to_fp32>;  // products of two F16 values are exact in float
    ops.contracts_fma = false;
    return ops;
}

}  // namespace moerun
