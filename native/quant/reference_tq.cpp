// Reference kernels for the ternary formats TQ1_0 and TQ2_0 (super-blocks of 256 weights in
// {-d, 0, d}, dot with Q8_K) and for MXFP4 (blocks of 32 E2M1 values with an E8M0 exponent, dot
// with Q8_0). Values and summation orders as llama.cpp's dequantize_row_* and generic vec_dot;
// the quantizers are llama.cpp's (quantize_row_*_ref, which llama-quantize runs for these types:
// no search, no importance matrix), so they write its bytes.
#include <algorithm>
#include <cmath>

#include "blocks.h"
#include "reference.h"

namespace moerun::ref {
namespace {

// TQ1_0 packs 5 trits t0..t4 per byte as the fraction 0.t0t1t2t3t4 (base 3) scaled to 0..255
// (rounded up). Trit k of byte q: multiply by 3^k (mod 256) to shift it to the top, then take
// the integer part of 3 * q / 256.
inline int tq1_trit(uint8_t q, int k) {
    static constexpr uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t shifted = uint8_t(q * pow3[k]);
    return (int(shifted) * 3) >> 8;
}

// Visits the 256 trits of a TQ1_0 block in element order: f(element, trit).
template <typename F>
inline void tq1_for_each(const block_tq1_0& b, F&& f) {
    int e = 0;
    for (int j = 0; j < 32; j += 32) {  // bytes 0..31: five runs of 32 elements
        for (int k = 0; k < 5; ++k)
            for (int m = 0; m < 32; ++m) f(e++, tq1_trit(b.qs[j + m], k));
    }
    for (int j = 32; j < 48; j += 16) {  // bytes 32..47: five runs of 16
        for (int k = 0; k < 5; ++k)
            for (int m = 0; m < 16; ++m) f(e++, tq1_trit(b.qs[j + m], k));
    }
    for (int k = 0; k < 4; ++k)  // qh: four runs of 4
        for (int j = 0; j < 4; ++j) f(e++, tq1_trit(b.qh[j], k));
}

// TQ quantizers: d = max |x|, each weight rounded to -1, 0, 1 (stored 0..2).
inline float tq_scale(const float* x) {
    float amax = 0;
    for (int j = 0; j < k_qk_k; ++j) amax = std::max(amax, std::fabs(x[j]));
    return amax;
}
inline int tq_trit(float x, float id) { return int(std::lround(x * id)) + 1; }

// TQ1_0: n trits (first most significant) as a base-3 fraction scaled to a byte, rounded up.
inline uint8_t tq1_pack(const int* t, int n) {
    uint8_t q = 0;
    for (int k = 0; k < n; ++k) q = uint8_t(q * 3 + t[k]);
    for (int k = n; k < 5; ++k) q = uint8_t(q * 3);  // qh bytes: 4 trits, shifted up to 5
    return uint8_t((uint16_t(q) * 256 + (243 - 1)) / 243);
}

// MXFP4: the E2M1 level nearest to x / d (first on ties).
inline int mxfp4_index(float x, float d) {
    int best = 0;
    float best_err = std::fabs(float(k_mxfp4_values[0]) * d - x);
    for (int i = 1; i < 16; ++i) {
        const float err = std::fabs(float(k_mxfp4_values[size_t(i)]) * d - x);
        if (err < best_err) { best = i; best_err = err; }
    }
    return best;
}

inline int tq2_value(const block_tq2_0& b, int e) {  // element e: 0..2 (3 is not written by llama.cpp)
    const int chunk = e / 128, l = (e % 128) / 32, m = e % 32;
    return (b.qs[32 * chunk + m] >> (2 * l)) & 3;
}

}  // namespace

// ---- TQ1_0 ----

void to_float_tq1_0(const void* src, float* dst, int64_t n) {
    const block_tq1_0* x = static_cast<const block_tq1_0*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i, dst += k_qk_k) {
        const float d = fp16_to_fp32(x[i].d);
        tq1_for_each(x[i], [&](int e, int t) { dst[e] = float(t - 1) * d; });
    }
}

void from_float_tq1_0(const float* src, void* dst, int64_t n) {
    block_tq1_0* y = static_cast<block_tq1_0*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float* x = src + i * k_qk_k;
        const float d = tq_scale(x);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        int t[5];
        for (int m = 0; m < 32; ++m) {  // elements m + 32k, k = 0..4, in byte m
            for (int k = 0; k < 5; ++k) t[k] = tq_trit(x[m + 32 * k], id);
            y[i].qs[m] = tq1_pack(t, 5);
        }
        for (int m = 0; m < 16; ++m) {  // elements 160 + m + 16k in byte 32 + m
            for (int k = 0; k < 5; ++k) t[k] = tq_trit(x[160 + m + 16 * k], id);
            y[i].qs[32 + m] = tq1_pack(t, 5);
        }
        for (int j = 0; j < 4; ++j) {  // elements 240 + j + 4k in qh[j]
            for (int k = 0; k < 4; ++k) t[k] = tq_trit(x[240 + j + 4 * k], id);
            y[i].qh[j] = tq1_pack(t, 4);
        }
    }
}

void vec_dot_tq1_0(int64_t n, float* s, const void* vx, const void* vy) {
    const block_tq1_0* x = static_cast<const block_tq1_0*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        int isum = 0;
        tq1_for_each(x[i], [&](int e, int t) { isum += (t - 1) * y[i].qs[e]; });
        sum += float(isum) * (fp16_to_fp32(x[i].d) * y[i].d);
    }
    *s = sum;
}

// ---- TQ2_0 ----

void to_float_tq2_0(const void* src, float* dst, int64_t n) {
    const block_tq2_0* x = static_cast<const block_tq2_0*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i, dst += k_qk_k) {
        const float d = fp16_to_fp32(x[i].d);
        for (int e = 0; e < k_qk_k; ++e) dst[e] = float(tq2_value(x[i], e) - 1) * d;
    }
}

void from_float_tq2_0(const float* src, void* dst, int64_t n) {
    block_tq2_0* y = static_cast<block_tq2_0*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float* x = src + i * k_qk_k;
        const float d = tq_scale(x);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int c = 0; c < 2; ++c) {
            for (int m = 0; m < 32; ++m) {
                int q = 0;
                for (int l = 0; l < 4; ++l) q |= (tq_trit(x[128 * c + 32 * l + m], id) & 3) << (2 * l);
                y[i].qs[32 * c + m] = uint8_t(q);
            }
        }
    }
}

void vec_dot_tq2_0(int64_t n, float* s, const void* vx, const void* vy) {
    const block_tq2_0* x = static_cast<const block_tq2_0*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        int isum = 0;
        for (int e = 0; e < k_qk_k; ++e) isum += y[i].qs[e] * (tq2_value(x[i], e) - 1);
        sum += float(isum) * (y[i].d * fp16_to_fp32(x[i].d));
    }
    *s = sum;
}

// ---- MXFP4 ----

void to_float_mxfp4(const void* src, float* dst, int64_t n) {
    const block_mxfp4* x = static_cast<const block_mxfp4*>(src);
    for (int64_t i = 0; i < n / k_qk32; ++i, dst += k_qk32) {
        const float d = e8m0_to_fp32_half(x[i].e);
        for (int j = 0; j < 16; ++j) {
            dst[j] = float(k_mxfp4_values[x[i].qs[j] & 0xf]) * d;
            dst[j + 16] = float(k_mxfp4_values[x[i].qs[j] >> 4]) * d;
        }
    }
}

void from_float_mxfp4(const float* src, void* dst, int64_t n) {
    block_mxfp4* y = static_cast<block_mxfp4*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i) {
        const float* x = src + i * k_qk32;
        float amax = 0;
        for (int j = 0; j < k_qk32; ++j) amax = std::max(amax, std::fabs(x[j]));
        // E8M0 exponent: 2^(floor(log2 amax) - 2) is the scale that puts amax in E2M1's top binade.
        y[i].e = amax > 0 ? uint8_t(int(std::floor(std::log2(amax)) - 2 + 127)) : 0;
        const float d = e8m0_to_fp32_half(y[i].e);
        for (int j = 0; j < 16; ++j) y[i].qs[j] = uint8_t(mxfp4_index(x[j], d) | (mxfp4_index(x[j + 16], d) << 4));
    }
}

void vec_dot_mxfp4(int64_t n, float* s, const void* vx, const void* vy) {
    const block_mxfp4* x = static_cast<const block_mxfp4*>(vx);
    const block_q8_0* y = static_cast<const block_q8_0*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk32; ++i) {
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += y[i].qs[j] * k_mxfp4_values[x[i].qs[j] & 0xf] + y[i].qs[j + 16] * k_mxfp4_values[x[i].qs[j] >> 4];
        }
        sum += fp16_to_fp32(y[i].d) * e8m0_to_fp32_half(x[i].e) * float(isum);
    }
    *s = sum;
}

}  // namespace moerun::ref
