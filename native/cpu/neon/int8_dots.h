// The integer-dot kernels of the NEON paths, written once over an int8 dot primitive `Dot`:
//   Dot::dot(acc, a, b): int32x4_t acc plus the 16 products a[i] * b[i] (int8 x int8), spread over
//   the 4 lanes in some grouping; only the sum of the lanes is used, so it is exact either way.
// cpu/neon/quant.cpp instantiates them with a widening multiply (plain ARMv8-A), dotprod/quant.cpp
// with SDOT. Everything here has internal linkage, so the two builds (different -march flags)
// never share a compiled function.
//
// Summation order, the same for every Dot and for one or many activation rows, so vec_dot_n equals
// vec_dot and the neon, dotprod and i8mm paths equal each other bit for bit:
//   32-element formats: each block's dot is an exact int32; four blocks' sums go into the four
//     lanes of a float accumulator, acc += float(sum) * (d_x * d_y), a short last group padded
//     with zeros (which add exactly nothing); the result is acc's lanes (0 + 1) + (2 + 3), plus the
//     min terms m_x * s_y (Q4_1, Q5_1) summed the same way in a second accumulator.
//   256-element formats (against Q8_K): per super-block the exact int32 sum of each 16-element
//     group times its sub-block scale; then acc += (d_y * d_x) * sumi, minus
//     (d_y * dmin_x) * (sum of mins times Q8_K's bsums) for Q2_K, Q4_K and Q5_K, in a float scalar.
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../../quant/blocks.h"
#include "../kernels.h"

namespace moerun::neon_int8 {
namespace {

inline float f16(uint16_t h) {
    __fp16 v;
    std::memcpy(&v, &h, 2);
    return float(v);
}

// Four halves to floats in one conversion (unused lanes 0).
inline float32x4_t f16x4(const uint16_t (&h)[4]) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h))); }

// [sum a, sum b, sum c, sum d] of four int32x4 vectors.
inline int32x4_t fold4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

// The 32 bits of qh as 32 bytes (element j: bit j), 0x10 where set; half 0: elements 0..15.
inline uint8x16_t qh_bit4(const uint8_t* qh, int half) {
    static const uint8_t k_bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t v = vcombine_u8(vdup_n_u8(qh[2 * half]), vdup_n_u8(qh[2 * half + 1]));
    return vandq_u8(vtstq_u8(v, vld1q_u8(k_bit)), vdupq_n_u8(0x10));
}

inline int8x16_t s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }
inline uint8x16_t low4(uint8x16_t v) { return vandq_u8(v, vdupq_n_u8(0x0f)); }
inline uint8x16_t high4(uint8x16_t v) { return vshrq_n_u8(v, 4); }

// ---- 32-element formats: expand(block, lo, hi) gives elements 0..15 and 16..31 as int8 ----

struct fmt_q4_0 {
    using block = block_q4_0;
    using act = block_q8_0;
    static constexpr bool has_min = false;
    static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = vsubq_s8(s8(low4(v)), vdupq_n_s8(8));
        hi = vsubq_s8(s8(high4(v)), vdupq_n_s8(8));
    }
};
struct fmt_q4_1 {
    using block = block_q4_1;
    using act = block_q8_1;
    static constexpr bool has_min = true;
    static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = s8(low4(v));
        hi = s8(high4(v));
    }
};
struct fmt_q5_0 {
    using block = block_q5_0;
    using act = block_q8_0;
    static constexpr bool has_min = false;
    static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = vsubq_s8(s8(vorrq_u8(low4(v), qh_bit4(b.qh, 0))), vdupq_n_s8(16));
        hi = vsubq_s8(s8(vorrq_u8(high4(v), qh_bit4(b.qh, 1))), vdupq_n_s8(16));
    }
};
struct fmt_q5_1 {
    using block = block_q5_1;
    using act = block_q8_1;
    static constexpr bool has_min = true;
    static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = s8(vorrq_u8(low4(v), qh_bit4(b.qh, 0)));
        hi = s8(vorrq_u8(high4(v), qh_bit4(b.qh, 1)));
    }
};
struct fmt_q8_0 {
    using block = block_q8_0;
    using act = block_q8_0;
    static constexpr bool has_min = false;
    static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        lo = vld1q_s8(b.qs);
        hi = vld1q_s8(b.qs + 16);
    }
};
struct fmt_iq4_nl {
    using block = block_iq4_nl;
    using act = block_q8_0;
    static constexpr bool has_min = false;
    static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const int8x16_t values = vld1q_s8(k_iq4nl_values);
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = vqtbl1q_s8(values, low4(v));
        hi = vqtbl1q_s8(values, high4(v));
    }
};

// One block's exact int dot with an activation block, in the lanes of an int32x4.
template <class Dot>
inline int32x4_t block_dot(int8x16_t lo, int8x16_t hi, const int8_t* y) {
    return Dot::dot(Dot::dot(vdupq_n_s32(0), lo, vld1q_s8(y)), hi, vld1q_s8(y + 16));
}

// Blocks g..g+N-1 (N <= 4) of weight row x against R activation rows; the order of the file header.
template <class Dot, class F, int R, int N>
inline void group32(const typename F::block* x, const typename F::act* const* y, int64_t g, float32x4_t* acc, float32x4_t* accm) {
    int8x16_t lo[N], hi[N];
    uint16_t dx[4] = {0, 0, 0, 0}, mx[4] = {0, 0, 0, 0};
    for (int b = 0; b < N; ++b) {
        F::expand(x[g + b], lo[b], hi[b]);
        dx[b] = x[g + b].d;
        if constexpr (F::has_min) mx[b] = x[g + b].m;
    }
    const float32x4_t dx4 = f16x4(dx);
    for (int r = 0; r < R; ++r) {
        int32x4_t p[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        uint16_t dy[4] = {0, 0, 0, 0}, sy[4] = {0, 0, 0, 0};
        for (int b = 0; b < N; ++b) {
            p[b] = block_dot<Dot>(lo[b], hi[b], y[r][g + b].qs);
            dy[b] = y[r][g + b].d;
            if constexpr (F::has_min) sy[b] = y[r][g + b].s;
        }
        acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(fold4(p[0], p[1], p[2], p[3])), vmulq_f32(dx4, f16x4(dy)));
        if constexpr (F::has_min) accm[r] = vfmaq_f32(accm[r], f16x4(mx), f16x4(sy));
    }
}

// out[r] = dot(x, y_r) for R activation rows y_r = y + r * y_stride bytes.
template <class Dot, class F, int R>
inline void dot_rows32(int64_t n, const void* vx, const uint8_t* y, size_t y_stride, float* out) {
    using A = typename F::act;
    const auto* x = static_cast<const typename F::block*>(vx);
    const int64_t nb = n / 32;
    const A* yr[R];
    float32x4_t acc[R], accm[R];
    for (int r = 0; r < R; ++r) {
        yr[r] = reinterpret_cast<const A*>(y + size_t(r) * y_stride);
        acc[r] = accm[r] = vdupq_n_f32(0);
    }
    int64_t g = 0;
    for (; g + 4 <= nb; g += 4) group32<Dot, F, R, 4>(x, yr, g, acc, accm);
    switch (nb - g) {
        case 3: group32<Dot, F, R, 3>(x, yr, g, acc, accm); break;
        case 2: group32<Dot, F, R, 2>(x, yr, g, acc, accm); break;
        case 1: group32<Dot, F, R, 1>(x, yr, g, acc, accm); break;
        default: break;
    }
    for (int r = 0; r < R; ++r) out[r] = F::has_min ? vaddvq_f32(acc[r]) + vaddvq_f32(accm[r]) : vaddvq_f32(acc[r]);
}

// ---- 256-element formats against Q8_K ----
// expand(block, q) gives the 256 elements as 16 int8x16 vectors in order; scales(block, sc) the
// scale of each 16-element group (a 32-element sub-block's scale twice) as four int32x4.

inline int32x4_t widen_lo(int16x8_t v) { return vmovl_s16(vget_low_s16(v)); }
inline int32x4_t widen_hi(int16x8_t v) { return vmovl_high_s16(v); }
inline void scales16_from_s8(int8x16_t s, int32x4_t sc[4]) {
    const int16x8_t a = vmovl_s8(vget_low_s8(s)), b = vmovl_high_s8(s);
    sc[0] = widen_lo(a), sc[1] = widen_hi(a), sc[2] = widen_lo(b), sc[3] = widen_hi(b);
}
// Eight 32-element sub-block scales (bytes) as sixteen 16-element group scales.
inline void scales16_from_32(uint8x8_t s, int32x4_t sc[4]) { scales16_from_s8(s8(vcombine_u8(vzip1_u8(s, s), vzip2_u8(s, s))), sc); }

// Q4_K/Q5_K's 6-bit scales and mins (llama.cpp's get_scale_min_k4): sub-block j < 4 from the low 6
// bits of bytes j and j + 4; j >= 4 from byte j + 4's nibbles and the top 2 bits of bytes j - 4, j.
inline void k4_scales_mins(const uint8_t* q, uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 4; ++j) {
        sc[j] = q[j] & 63;
        m[j] = q[j + 4] & 63;
        sc[j + 4] = uint8_t((q[j + 8] & 0xf) | ((q[j] >> 6) << 4));
        m[j + 4] = uint8_t((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
    }
}

// Sum over 16-element groups j of mins[j] * bsums[j] (mins as 16 bytes, one per group).
inline int32_t min_dot16(uint8x16_t mins, const int16_t* bsums) {
    const int16x8_t m0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins))), m1 = vreinterpretq_s16_u16(vmovl_high_u8(mins));
    const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    int32x4_t s = vmull_s16(vget_low_s16(m0), vget_low_s16(b0));
    s = vmlal_high_s16(s, m0, b0);
    s = vmlal_s16(s, vget_low_s16(m1), vget_low_s16(b1));
    s = vmlal_high_s16(s, m1, b1);
    return vaddvq_s32(s);
}

struct fmt_q2_k {
    using block = block_q2_K;
    static constexpr bool has_min = true;
    // Element 128h + 32k + l is bits 2k of qs[32h + l].
    static void expand(const block& b, int8x16_t q[16]) {
        for (int h = 0; h < 2; ++h) {
            const uint8x16_t v0 = vld1q_u8(b.qs + 32 * h), v1 = vld1q_u8(b.qs + 32 * h + 16);
            const uint8x16_t three = vdupq_n_u8(3);
            q[8 * h + 0] = s8(vandq_u8(v0, three)), q[8 * h + 1] = s8(vandq_u8(v1, three));
            q[8 * h + 2] = s8(vandq_u8(vshrq_n_u8(v0, 2), three)), q[8 * h + 3] = s8(vandq_u8(vshrq_n_u8(v1, 2), three));
            q[8 * h + 4] = s8(vandq_u8(vshrq_n_u8(v0, 4), three)), q[8 * h + 5] = s8(vandq_u8(vshrq_n_u8(v1, 4), three));
            q[8 * h + 6] = s8(vshrq_n_u8(v0, 6)), q[8 * h + 7] = s8(vshrq_n_u8(v1, 6));
        }
    }
    static void scales(const block& b, int32x4_t sc[4]) { scales16_from_s8(s8(low4(vld1q_u8(b.scales))), sc); }
    static int32_t min_sum(const block& b, const int16_t* bsums) { return min_dot16(high4(vld1q_u8(b.scales)), bsums); }
};

struct fmt_q3_k {
    using block = block_q3_K;
    static constexpr bool has_min = false;
    // As Q2_K's low 2 bits, minus 4 where element j's bit j/32 of hmask[j % 32] is clear.
    static void expand(const block& b, int8x16_t q[16]) {
        const uint8x16_t hm0 = vld1q_u8(b.hmask), hm1 = vld1q_u8(b.hmask + 16);
        const uint8x16_t three = vdupq_n_u8(3), four = vdupq_n_u8(4);
        for (int h = 0; h < 2; ++h) {
            const uint8x16_t v0 = vld1q_u8(b.qs + 32 * h), v1 = vld1q_u8(b.qs + 32 * h + 16);
            for (int k = 0; k < 4; ++k) {
                const int8x16_t shift = vdupq_n_s8(int8_t(-2 * k));
                const uint8x16_t bit = vdupq_n_u8(uint8_t(1u << (4 * h + k)));
                const uint8x16_t l0 = vandq_u8(vshlq_u8(v0, shift), three), l1 = vandq_u8(vshlq_u8(v1, shift), three);
                q[8 * h + 2 * k] = vsubq_s8(s8(vorrq_u8(l0, vandq_u8(vtstq_u8(hm0, bit), four))), s8(four));
                q[8 * h + 2 * k + 1] = vsubq_s8(s8(vorrq_u8(l1, vandq_u8(vtstq_u8(hm1, bit), four))), s8(four));
            }
        }
    }
    // 16 6-bit scales minus 32: group i's low 4 bits in byte i (i < 8, low nibble) or i - 8 (high
    // nibble), its high 2 bits at bits 2 * (i / 4) of byte 8 + i % 4.
    static void scales(const block& b, int32x4_t sc[4]) {
        uint32_t aux[3];
        std::memcpy(aux, b.scales, 12);
        constexpr uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
        const uint32_t s[4] = {(aux[0] & m4) | ((aux[2] & m2) << 4), (aux[1] & m4) | (((aux[2] >> 2) & m2) << 4),
                               ((aux[0] >> 4) & m4) | (((aux[2] >> 4) & m2) << 4), ((aux[1] >> 4) & m4) | (((aux[2] >> 6) & m2) << 4)};
        scales16_from_s8(vsubq_s8(vreinterpretq_s8_u32(vld1q_u32(s)), vdupq_n_s8(32)), sc);
    }
    static int32_t min_sum(const block&, const int16_t*) { return 0; }
};

struct fmt_q4_k {
    using block = block_q4_K;
    static constexpr bool has_min = true;
    // Sub-block 2c: low nibbles of qs[32c..32c+32), 2c + 1: their high nibbles.
    static void expand(const block& b, int8x16_t q[16]) {
        for (int c = 0; c < 4; ++c) {
            const uint8x16_t v0 = vld1q_u8(b.qs + 32 * c), v1 = vld1q_u8(b.qs + 32 * c + 16);
            q[4 * c + 0] = s8(low4(v0)), q[4 * c + 1] = s8(low4(v1));
            q[4 * c + 2] = s8(high4(v0)), q[4 * c + 3] = s8(high4(v1));
        }
    }
    static void scales(const block& b, int32x4_t sc[4]) {
        uint8_t s[8], m[8];
        k4_scales_mins(b.scales, s, m);
        scales16_from_32(vld1_u8(s), sc);
    }
    static int32_t min_sum(const block& b, const int16_t* bsums) {
        uint8_t s[8], m[8];
        k4_scales_mins(b.scales, s, m);
        const uint8x8_t mv = vld1_u8(m);
        return min_dot16(vcombine_u8(vzip1_u8(mv, mv), vzip2_u8(mv, mv)), bsums);
    }
};

struct fmt_q5_k {
    using block = block_q5_K;
    static constexpr bool has_min = true;
    // As Q4_K, plus bit 4 of sub-block s's element l at bit s of qh[l].
    static void expand(const block& b, int8x16_t q[16]) {
        const uint8x16_t h0 = vld1q_u8(b.qh), h1 = vld1q_u8(b.qh + 16), x10 = vdupq_n_u8(0x10);
        for (int c = 0; c < 4; ++c) {
            const uint8x16_t v0 = vld1q_u8(b.qs + 32 * c), v1 = vld1q_u8(b.qs + 32 * c + 16);
            const uint8x16_t be = vdupq_n_u8(uint8_t(1u << (2 * c))), bo = vdupq_n_u8(uint8_t(2u << (2 * c)));
            q[4 * c + 0] = s8(vorrq_u8(low4(v0), vandq_u8(vtstq_u8(h0, be), x10)));
            q[4 * c + 1] = s8(vorrq_u8(low4(v1), vandq_u8(vtstq_u8(h1, be), x10)));
            q[4 * c + 2] = s8(vorrq_u8(high4(v0), vandq_u8(vtstq_u8(h0, bo), x10)));
            q[4 * c + 3] = s8(vorrq_u8(high4(v1), vandq_u8(vtstq_u8(h1, bo), x10)));
        }
    }
    static void scales(const block& b, int32x4_t sc[4]) {
        uint8_t s[8], m[8];
        k4_scales_mins(b.scales, s, m);
        scales16_from_32(vld1_u8(s), sc);
    }
    static int32_t min_sum(const block& b, const int16_t* bsums) {
        uint8_t s[8], m[8];
        k4_scales_mins(b.scales, s, m);
        const uint8x8_t mv = vld1_u8(m);
        return min_dot16(vcombine_u8(vzip1_u8(mv, mv), vzip2_u8(mv, mv)), bsums);
    }
};

struct fmt_q6_k {
    using block = block_q6_K;
    static constexpr bool has_min = false;
    // Per 128 elements (half h): ql[64h..], qh[32h..]; elements 32k + l (l < 32) take ql[l + 32 (k & 1)]'s
    // low (k < 2) or high nibble and bits 2k of qh[l] as bits 4-5, minus 32.
    static void expand(const block& b, int8x16_t q[16]) {
        const uint8x16_t three = vdupq_n_u8(3);
        const int8x16_t m32 = vdupq_n_s8(32);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = b.ql + 64 * h;
            const uint8_t* qh = b.qh + 32 * h;
            for (int i = 0; i < 2; ++i) {  // l in [16i, 16i + 16)
                const uint8x16_t l0 = vld1q_u8(ql + 16 * i), l1 = vld1q_u8(ql + 32 + 16 * i), hb = vld1q_u8(qh + 16 * i);
                const uint8x16_t h0 = vshlq_n_u8(vandq_u8(hb, three), 4);
                const uint8x16_t h1 = vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), three), 4);
                const uint8x16_t h2 = vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), three), 4);
                const uint8x16_t h3 = vshlq_n_u8(vshrq_n_u8(hb, 6), 4);
                q[8 * h + 0 + i] = vsubq_s8(s8(vorrq_u8(low4(l0), h0)), m32);
                q[8 * h + 2 + i] = vsubq_s8(s8(vorrq_u8(low4(l1), h1)), m32);
                q[8 * h + 4 + i] = vsubq_s8(s8(vorrq_u8(high4(l0), h2)), m32);
                q[8 * h + 6 + i] = vsubq_s8(s8(vorrq_u8(high4(l1), h3)), m32);
            }
        }
    }
    static void scales(const block& b, int32x4_t sc[4]) { scales16_from_s8(vld1q_s8(b.scales), sc); }
    static int32_t min_sum(const block&, const int16_t*) { return 0; }
};

struct fmt_iq4_xs {
    using block = block_iq4_xs;
    static constexpr bool has_min = false;
    // Sub-block s: qs[16s..16s+16), low nibbles elements 0..15, high 16..31, through the IQ4_NL table.
    static void expand(const block& b, int8x16_t q[16]) {
        const int8x16_t values = vld1q_s8(k_iq4nl_values);
        for (int s = 0; s < 8; ++s) {
            const uint8x16_t v = vld1q_u8(b.qs + 16 * s);
            q[2 * s] = vqtbl1q_s8(values, low4(v));
            q[2 * s + 1] = vqtbl1q_s8(values, high4(v));
        }
    }
    // ls - 32: low 4 bits in nibble s % 2 of scales_l[s / 2], high 2 bits at bits 2s of scales_h.
    static void scales(const block& b, int32x4_t sc[4]) {
        uint8_t ls[8];
        for (int s = 0; s < 8; ++s) {
            ls[s] = uint8_t((((b.scales_l[s / 2] >> (4 * (s % 2))) & 0xf) | (((b.scales_h >> (2 * s)) & 3) << 4)) - 32);
        }
        scales16_from_32(vld1_u8(ls), sc);
    }
    static int32_t min_sum(const block&, const int16_t*) { return 0; }
};

template <class F>
inline float k_dmin(const typename F::block& b) {
    if constexpr (F::has_min) return f16(b.dmin);
    else return 0.0f;
}

// One super-block of x against R Q8_K rows: acc[r] += its contribution (the header's order).
template <class Dot, class F, int R>
inline void super_block(const typename F::block& x, const block_q8_K* const* y, int64_t i, float* acc) {
    int8x16_t q[16];
    int32x4_t sc[4];
    F::expand(x, q);
    F::scales(x, sc);
    const float dx = f16(x.d), dmin = k_dmin<F>(x);
    for (int r = 0; r < R; ++r) {
        const block_q8_K& yb = y[r][i];
        int32x4_t sumi = vdupq_n_s32(0);
        for (int c = 0; c < 4; ++c) {
            int32x4_t p[4];
            for (int k = 0; k < 4; ++k) p[k] = Dot::dot(vdupq_n_s32(0), q[4 * c + k], vld1q_s8(yb.qs + 64 * c + 16 * k));
            sumi = vmlaq_s32(sumi, fold4(p[0], p[1], p[2], p[3]), sc[c]);
        }
        acc[r] += (yb.d * dx) * float(vaddvq_s32(sumi));
        if constexpr (F::has_min) acc[r] -= (yb.d * dmin) * float(F::min_sum(x, yb.bsums));
    }
}

template <class Dot, class F, int R>
inline void dot_rows256(int64_t n, const void* vx, const uint8_t* y, size_t y_stride, float* out) {
    const auto* x = static_cast<const typename F::block*>(vx);
    const block_q8_K* yr[R];
    float acc[R];
    for (int r = 0; r < R; ++r) yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride), acc[r] = 0.0f;
    for (int64_t i = 0; i < n / 256; ++i) super_block<Dot, F, R>(x[i], yr, i, acc);
    for (int r = 0; r < R; ++r) out[r] = acc[r];
}

// vec_dot and vec_dot_n (groups of 4 rows, then the rest) over a dot_rows kernel.
template <class Dot, class F, bool k256>
void vec_dot(int64_t n, float* s, const void* x, const void* y) {
    if constexpr (k256) dot_rows256<Dot, F, 1>(n, x, static_cast<const uint8_t*>(y), 0, s);
    else dot_rows32<Dot, F, 1>(n, x, static_cast<const uint8_t*>(y), 0, s);
}

template <class Dot, class F, bool k256, int R>
inline void dot_group(int64_t n, float* s, int64_t s_stride, const void* x, const uint8_t* y, size_t y_stride) {
    float out[R];
    if constexpr (k256) dot_rows256<Dot, F, R>(n, x, y, y_stride, out);
    else dot_rows32<Dot, F, R>(n, x, y, y_stride, out);
    for (int r = 0; r < R; ++r) s[r * s_stride] = out[r];
}

template <class Dot, class F, bool k256>
void vec_dot_n(int64_t n, float* s, int64_t s_stride, const void* x, const void* vy, size_t y_stride, int64_t ny) {
    const uint8_t* y = static_cast<const uint8_t*>(vy);
    int64_t j = 0;
    for (; j + 4 <= ny; j += 4) dot_group<Dot, F, k256, 4>(n, s + j * s_stride, s_stride, x, y + size_t(j) * y_stride, y_stride);
    switch (ny - j) {
        case 3: dot_group<Dot, F, k256, 3>(n, s + j * s_stride, s_stride, x, y + size_t(j) * y_stride, y_stride); break;
        case 2: dot_group<Dot, F, k256, 2>(n, s + j * s_stride, s_stride, x, y + size_t(j) * y_stride, y_stride); break;
        case 1: dot_group<Dot, F, k256, 1>(n, s + j * s_stride, s_stride, x, y + size_t(j) * y_stride, y_stride); break;
        default: break;
    }
}

template <class Dot, class F, bool k256>
void set_row(cpu_kernels& row) {
    row.vec_dot = vec_dot<Dot, F, k256>;
    row.vec_dot_n = vec_dot_n<Dot, F, k256>;
}

// The rows these kernels serve, on a path whose int8 primitive is Dot.
template <class Dot>
void register_int8_rows(cpu_kernels* table) {
    using T = tensor_type;
    auto at = [&](T id) -> cpu_kernels& { return table[uint32_t(id)]; };
    set_row<Dot, fmt_q4_0, false>(at(T::Q4_0));
    set_row<Dot, fmt_q4_1, false>(at(T::Q4_1));
    set_row<Dot, fmt_q5_0, false>(at(T::Q5_0));
    set_row<Dot, fmt_q5_1, false>(at(T::Q5_1));
    set_row<Dot, fmt_q8_0, false>(at(T::Q8_0));
    set_row<Dot, fmt_iq4_nl, false>(at(T::IQ4_NL));
    set_row<Dot, fmt_q2_k, true>(at(T::Q2_K));
    set_row<Dot, fmt_q3_k, true>(at(T::Q3_K));
    set_row<Dot, fmt_q4_k, true>(at(T::Q4_K));
    set_row<Dot, fmt_q5_k, true>(at(T::Q5_K));
    set_row<Dot, fmt_q6_k, true>(at(T::Q6_K));
    set_row<Dot, fmt_iq4_xs, true>(at(T::IQ4_XS));
}

}  // namespace
}  // namespace moerun::neon_int8
