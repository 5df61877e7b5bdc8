// Reference kernels for the non-linear 4-bit formats IQ4_NL (blocks of 32, dot with Q8_0) and
// IQ4_XS (super-blocks of 256 with 6-bit sub-block scales, dot with Q8_K).
//
// The quantizer is llama.cpp's quantize_iq4_nl / quantize_iq4_xs without an importance matrix
// (what llama-quantize runs): per 32 weights, weighted least squares over 15 trial scales, each
// weight snapped to the nearest of the 16 levels.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "blocks.h"
#include "reference.h"
#include "search.h"

namespace moerun::ref {
namespace {

constexpr float k_group_max_eps = 1e-15f;
constexpr int k_ntry = 7;

// Quantizes one IQ4_NL block (sb == 32) or IQ4_XS super-block (sb == 256). Writes d, the nibbles
// and, for IQ4_XS, the packed 6-bit sub-block scales. qw (optional): the block's importance; each
// weight then counts qw * sqrt(sigma2 + x^2) instead of x^2, as in llama.cpp's quantize_row_iq4_nl_impl.
void quantize_iq4_block(int sb, const float* x, uint16_t* dh, uint8_t* q4, uint16_t* scales_h, uint8_t* scales_l,
                        const float* qw = nullptr) {
    const int8_t* values = k_iq4nl_values;
    uint8_t L[256];
    float scales[8], weight[32];
    std::memset(q4, 0, size_t(sb / 2));
    *dh = fp32_to_fp16(0.f);

    float sigma2 = 0;
    for (int j = 0; j < sb; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / float(sb);

    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < sb / 32; ++ib) {
        const float* xb = x + 32 * ib;
        uint8_t* Lb = L + 32 * ib;
        if (qw) {
            for (int j = 0; j < 32; ++j) weight[j] = qw[32 * ib + j] * std::sqrt(sigma2 + xb[j] * xb[j]);
        } else {
            for (int j = 0; j < 32; ++j) weight[j] = xb[j] * xb[j];
        }
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j) {
            const float ax = std::fabs(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (amax < k_group_max_eps) {
            scales[ib] = 0;
            continue;
        }
        float d = -max / float(values[0]);
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const int l = best_index_int8(16, values, id * xb[j]);
            Lb[j] = uint8_t(l);
            const float q = values[l];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -k_ntry; itry <= k_ntry; ++itry) {
            id = (float(itry) + float(values[0])) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; ++j) {
                const float q = values[best_index_int8(16, values, id * xb[j])];
                sumqx += weight[j] * q * xb[j];
                sumq2 += weight[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (std::fabs(d) > amax_scale) { amax_scale = std::fabs(d); max_scale = d; }
    }

    if (sb > 32) {
        // IQ4_XS: 6-bit signed sub-block scales against the fp16 super-block scale.
        *scales_h = 0;
        const float d = -max_scale / 32;
        *dh = fp32_to_fp16(d);
        const float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < sb / 32; ++ib) {
            int l = nearest_int(id * scales[ib]);
            l = std::max(-32, std::min(31, l));
            const float dl = d * float(l);
            const float idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < 32; ++j) L[32 * ib + j] = uint8_t(best_index_int8(16, values, idl * x[32 * ib + j]));
            l += 32;
            if (ib % 2 == 0) scales_l[ib / 2] = uint8_t(l & 0xF);
            else scales_l[ib / 2] |= uint8_t((l & 0xF) << 4);
            *scales_h |= uint16_t((l >> 4) << (2 * ib));
        }
    } else {
        *dh = fp32_to_fp16(scales[0]);
        const float id = scales[0] ? 1 / scales[0] : 0;
        for (int j = 0; j < 32; ++j) L[j] = uint8_t(best_index_int8(16, values, id * x[j]));
    }
    for (int i = 0; i < sb / 32; ++i) {
        for (int j = 0; j < 16; ++j) q4[16 * i + j] = uint8_t(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
    }
}

inline int iq4_xs_scale(const block_iq4_xs& b, int ib) {
    return (((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b.scales_h >> (2 * ib)) & 3) << 4)) - 32;
}

// Dot of 32 IQ4 nibbles (as in Q4_0) with 32 int8 activations.
inline int dot_iq4_32(const uint8_t* qs, const int8_t* y) {
    int s = 0;
    for (int j = 0; j < 16; ++j) s += k_iq4nl_values[qs[j] & 0xF] * y[j] + k_iq4nl_values[qs[j] >> 4] * y[j + 16];
    return s;
}

}  // namespace

// ---- IQ4_NL ----

void to_float_iq4_nl(const void* src, float* dst, int64_t n) {
    const block_iq4_nl* x = static_cast<const block_iq4_nl*>(src);
    for (int64_t i = 0; i < n / k_qk32; ++i, dst += k_qk32) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < 16; ++j) {
            dst[j] = d * float(k_iq4nl_values[x[i].qs[j] & 0xF]);
            dst[j + 16] = d * float(k_iq4nl_values[x[i].qs[j] >> 4]);
        }
    }
}

void from_float_iq4_nl(const float* src, void* dst, int64_t n) {
    block_iq4_nl* y = static_cast<block_iq4_nl*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i) quantize_iq4_block(32, src + 32 * i, &y[i].d, y[i].qs, nullptr, nullptr);
}

void from_float_imatrix_iq4_nl(const float* src, void* dst, int64_t n, const float* imatrix) {
    block_iq4_nl* y = static_cast<block_iq4_nl*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i) quantize_iq4_block(32, src + 32 * i, &y[i].d, y[i].qs, nullptr, nullptr, imatrix + 32 * i);
}

void vec_dot_iq4_nl(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq4_nl* x = static_cast<const block_iq4_nl*>(vx);
    const block_q8_0* y = static_cast<const block_q8_0*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk32; ++i) {
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(dot_iq4_32(x[i].qs, y[i].qs));
    }
    *s = sum;
}

// ---- IQ4_XS ----

void to_float_iq4_xs(const void* src, float* dst, int64_t n) {
    const block_iq4_xs* x = static_cast<const block_iq4_xs*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int ib = 0; ib < 8; ++ib, dst += 32) {
            const float dl = d * float(iq4_xs_scale(x[i], ib));
            const uint8_t* qs = x[i].qs + 16 * ib;
            for (int j = 0; j < 16; ++j) {
                dst[j] = dl * float(k_iq4nl_values[qs[j] & 0xF]);
                dst[j + 16] = dl * float(k_iq4nl_values[qs[j] >> 4]);
            }
        }
    }
}

void from_float_iq4_xs(const float* src, void* dst, int64_t n) {
    block_iq4_xs* y = static_cast<block_iq4_xs*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        quantize_iq4_block(256, src + 256 * i, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l);
    }
}

void from_float_imatrix_iq4_xs(const float* src, void* dst, int64_t n, const float* imatrix) {
    block_iq4_xs* y = static_cast<block_iq4_xs*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        quantize_iq4_block(256, src + 256 * i, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l, imatrix + 256 * i);
    }
}

void vec_dot_iq4_xs(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq4_xs* x = static_cast<const block_iq4_xs*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        int isum = 0;
        for (int ib = 0; ib < 8; ++ib) isum += iq4_xs_scale(x[i], ib) * dot_iq4_32(x[i].qs + 16 * ib, y[i].qs + 32 * ib);
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(isum);
    }
    *s = sum;
}

}  // namespace moerun::ref
