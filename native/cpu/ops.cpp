#include "ops.h"

#include <algorithm>
#include <cmath>

#include "vector_ops.h"

namespace moerun {

void rms_norm_rows(const float* x, const float* weight, float* out, int64_t rows, int64_t n, float eps) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * n;
        float* yr = out + r * n;
        double sum = 0;  // squares in float, accumulated in double, as ggml does
        for (int64_t i = 0; i < n; ++i) sum += double(xr[i] * xr[i]);
        const float mean = float(sum / double(n));
        const float scale = 1.0f / std::sqrt(mean + eps);
        if (weight) {
            for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] * scale) * weight[i];
        } else {
            for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale;
        }
    }
}

void rope_apply(float* x, int n_heads, int head_dim, int n_rot, int pos, const model_config& c) {
    // Angles: theta_i = pos * base^(-2i/n_rot), computed by repeated multiplication in float as
    // ggml does, so positions far into the context agree with llama.cpp to the last bits.
    float cs[512];  // (cos, sin) pairs for n_rot <= 512
    // Rounded as llama.cpp's build for this path rounds it: with FMA, GCC fuses the first product
    // of each `a*b +- c*d`.
    const bool fused = vector_ops_active().contracts_fma;
    const float theta_scale = std::pow(c.rope_freq_base, -2.0f / float(n_rot));
    float theta = float(pos);
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float extrap = theta, interp = c.rope_freq_scale * theta;
        float t = interp, mscale = c.rope_mscale;
        if (c.rope_ext_factor != 0.0f) {
            // YaRN: mix interpolation and extrapolation by a ramp over the dims.
            const float y = (float(i0 / 2) - c.rope_corr_dims[0]) / std::max(0.001f, c.rope_corr_dims[1] - c.rope_corr_dims[0]);
            const float ramp = (1.0f - std::min(1.0f, std::max(0.0f, y))) * c.rope_ext_factor;
            const float log_scale = std::log(1.0f / c.rope_freq_scale);
            if (fused) {
                t = std::fma(interp, 1.0f - ramp, extrap * ramp);
                mscale *= std::fma(0.1f, log_scale, 1.0f);
            } else {
                t = interp * (1.0f - ramp) + extrap * ramp;
                mscale *= 1.0f + 0.1f * log_scale;
            }
        }
        cs[i0] = std::cos(t) * mscale;
        cs[i0 + 1] = std::sin(t) * mscale;
        theta *= theta_scale;
    }
    for (int h = 0; h < n_heads; ++h) {
        float* v = x + size_t(h) * size_t(head_dim);
        for (int i0 = 0; i0 < n_rot; i0 += 2) {
            // normal: pairs (2i, 2i+1); neox: pairs (i, i + n_rot/2)
            const int a = c.rope_type == rope_kind::normal ? i0 : i0 / 2;
            const int b = c.rope_type == rope_kind::normal ? i0 + 1 : i0 / 2 + n_rot / 2;
            const float x0 = v[a], x1 = v[b], cos = cs[i0], sin = cs[i0 + 1];
            if (fused) {
                v[a] = std::fma(x0, cos, -(x1 * sin));
                v[b] = std::fma(x0, sin, x1 * cos);
            } else {
                v[a] = x0 * cos - x1 * sin;
                v[b] = x0 * sin + x1 * cos;
            }
        }
    }
}

void swiglu_rows(float* gate, const float* up, int64_t rows, int64_t n) {
    const vector_ops& ops = vector_ops_active();
    for (int64_t r = 0; r < rows; ++r) ops.swiglu(gate + r * n, up + r * n, n);
}

void softmax(float* x, int64_t n) { vector_ops_active().softmax(x, n, -INFINITY); }

}  // namespace moerun
