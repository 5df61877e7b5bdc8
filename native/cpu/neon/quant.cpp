// The integer-dot kernels (int8_dots.h) on plain ARMv8-A: each int8 x int8 product widened to
// int16 (SMULL/SMULL2), pairs added into int32 lanes (SADALP). Exact, so this path gives the
// dotprod path's results bit for bit. And the activation quantizers (Q8_0, Q8_1, Q8_K) of all
// three NEON paths, byte for byte the reference's (same scale arithmetic, same rounding).
#include <cmath>

#include "int8_dots.h"
#include "kernels.h"

namespace moerun::neon {

namespace {

// 32 floats times id, rounded to int8 by `round` (a float32x4_t -> int32x4_t conversion).
template <int32x4_t (*round)(float32x4_t)>
inline int8x16x2_t scale_round32(const float32x4_t v[8], float id) {
    int16x8_t h[4];
    for (int k = 0; k < 4; ++k) h[k] = vcombine_s16(vmovn_s32(round(vmulq_n_f32(v[2 * k], id))), vmovn_s32(round(vmulq_n_f32(v[2 * k + 1], id))));
    return {{vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])), vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3]))}};
}
inline int32x4_t round_away(float32x4_t v) { return vcvtaq_s32_f32(v); }    // std::round: ties away from zero
inline int32x4_t round_even(float32x4_t v) { return vcvtnq_s32_f32(v); }    // nearest_int: ties to even

inline uint16_t to_half(float f) {
    const __fp16 h = __fp16(f);  // round to nearest even, as fp32_to_fp16
    uint16_t u;
    std::memcpy(&u, &h, 2);
    return u;
}

// One Q8_0/Q8_1 block: d = amax / 127 (NaNs skipped), q = round(x / d) via x * (1 / d); returns d.
inline float quantize_block32(const float* x, int8_t* qs) {
    float32x4_t v[8];
    float32x4_t amax = vdupq_n_f32(0);
    for (int k = 0; k < 8; ++k) v[k] = vld1q_f32(x + 4 * k), amax = vmaxnmq_f32(amax, vabsq_f32(v[k]));
    const float d = vmaxnmvq_f32(amax) / 127;
    const float id = d ? 1.0f / d : 0.0f;
    const int8x16x2_t q = scale_round32<round_away>(v, id);
    vst1q_s8(qs, q.val[0]);
    vst1q_s8(qs + 16, q.val[1]);
    return d;
}

}  // namespace

void register_int8_rows(cpu_kernels* table) { neon_int8::register_int8_rows<neon_int8::mull_dot>(table); }

void from_float_q8_0(const float* src, void* dst, int64_t n) {
    block_q8_0* y = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / 32; ++i) y[i].d = to_half(quantize_block32(src + 32 * i, y[i].qs));
}

void from_float_q8_1(const float* src, void* dst, int64_t n) {
    block_q8_1* y = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / 32; ++i) {
        const float d = quantize_block32(src + 32 * i, y[i].qs);
        y[i].d = to_half(d);
        const int sum = vaddlvq_s8(vld1q_s8(y[i].qs)) + vaddlvq_s8(vld1q_s8(y[i].qs + 16));
        y[i].s = to_half(float(sum) * d);
    }
}

// Q8_K: scale -127 / (the element of largest magnitude, the first of equals), q rounded to even
// and capped at 127, bsums per 16.
void from_float_q8_k(const float* src, void* dst, int64_t n) {
    block_q8_K* y = static_cast<block_q8_K*>(dst);
    for (int64_t i = 0; i < n / 256; ++i) {
        const float* x = src + 256 * i;
        float32x4_t amax4 = vdupq_n_f32(0);
        // FMAXNM skips NaNs, as the reference's comparisons do, so the element searched for exists.
        for (int k = 0; k < 64; ++k) amax4 = vmaxnmq_f32(amax4, vabsq_f32(vld1q_f32(x + 4 * k)));
        const float amax = vmaxnmvq_f32(amax4);
        if (!amax) {
            std::memset(&y[i], 0, sizeof(block_q8_K));
            continue;
        }
        int first = 0;
        while (std::fabs(x[first]) != amax) ++first;
        const float iscale = -127.f / x[first];
        for (int c = 0; c < 8; ++c) {
            float32x4_t v[8];
            for (int k = 0; k < 8; ++k) v[k] = vld1q_f32(x + 32 * c + 4 * k);
            const int8x16x2_t q = scale_round32<round_even>(v, iscale);
            // min(127, q): only -127 / max * max = 127 exactly reaches the cap; -128 never occurs.
            const int8x16_t q0 = vminq_s8(q.val[0], vdupq_n_s8(127)), q1 = vminq_s8(q.val[1], vdupq_n_s8(127));
            vst1q_s8(y[i].qs + 32 * c, q0);
            vst1q_s8(y[i].qs + 32 * c + 16, q1);
            y[i].bsums[2 * c] = int16_t(vaddlvq_s8(q0));
            y[i].bsums[2 * c + 1] = int16_t(vaddlvq_s8(q1));
        }
        y[i].d = 1 / iscale;
    }
}

}  // namespace moerun::neon
