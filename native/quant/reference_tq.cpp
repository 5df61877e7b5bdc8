// Reference kernels for the ternary formats TQ1_0 and TQ2_0 (super-blocks of 256 weights in
// {-d, 0, d}, dot with Q8_K) and for MXFP4 (blocks of 32 E2M1 values with an E8M0 exponent, dot
// with Q8_0). Values and summation orders as llama.cpp's dequantize_row_* and generic vec_dot.
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
