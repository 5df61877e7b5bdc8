// The integer-dot kernels of the NEON paths, written once over an int8 dot primitive `Dot`:
//   Dot::dot(acc, a, b): int32x4_t acc plus the 16 products a[i] * b[i] (int8 x int8), spread over
//   the 4 lanes in some grouping; only the sum of the lanes is used, so it is exact either way.
// The plain ARMv8-A files (quant.cpp, iq_grid.cpp) instantiate them with mull_dot below, the
// dotprod/ ones with SDOT (dotprod/sdot.h). Everything here has internal linkage, so the builds
// (different -march flags) never share a compiled function. iq_dots.h adds the lattice, ternary
// and MXFP4 formats over the same primitive and row drivers.
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
#include <utility>

#include "../../quant/blocks.h"
#include "../kernels.h"
#include "../simd_orders.h"  // MOERUN_ALWAYS_INLINE

namespace moerun::neon_int8 {
namespace {

// Kernel helpers are inlined whatever the optimization level (MOERUN_ALWAYS_INLINE, simd_orders.h:
// at -O2 GCC kept the 256-element formats' expand out of line, through the stack: 31 instead of
// 17 instructions per 32 IQ4_XS values).

// f(std::integral_constant<int, I>{}) for I = 0..N-1, unrolled, so lane indices are constants.
template <int N, class Fn>
MOERUN_ALWAYS_INLINE inline void static_for(Fn&& f) {
    [&]<int... I>(std::integer_sequence<int, I...>) MOERUN_ALWAYS_INLINE { (f(std::integral_constant<int, I>{}), ...); }(
        std::make_integer_sequence<int, N>{});
}

inline float f16(uint16_t h) {
    __fp16 v;
    std::memcpy(&v, &h, 2);
    return float(v);
}

// Four halves (lanes loaded one by one, unused lanes 0) to floats in one conversion.
inline float32x4_t f16x4(uint16x4_t h) { return vcvt_f32_f16(vreinterpret_f16_u16(h)); }

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

// The Dot of plain ARMv8-A: each int8 x int8 product widened to int16 (SMULL/SMULL2, exact: at
// most 128 * 128), pairs added into the int32 lanes (SADALP).
struct mull_dot {
    static int32x4_t dot(int32x4_t acc, int8x16_t a, int8x16_t b) {
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
        return vpadalq_s16(acc, vmull_high_s8(a, b));
    }
};

inline int8x16_t s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }
// v >> n for a constant n, a left shift for n < 0.
template <int n>
inline uint8x16_t shr(uint8x16_t v) {
    if constexpr (n == 0) return v;
    else if constexpr (n > 0) return vshrq_n_u8(v, n);
    else return vshlq_n_u8(v, -n);
}
inline uint8x16_t low4(uint8x16_t v) { return vandq_u8(v, vdupq_n_u8(0x0f)); }
inline uint8x16_t high4(uint8x16_t v) { return vshrq_n_u8(v, 4); }

// ---- 32-element formats: expand(block, lo, hi) gives elements 0..15 and 16..31 as int8 ----

struct fmt_q4_0 {
    using block = block_q4_0;
    using act = block_q8_0;
    static constexpr bool has_min = false;
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = vsubq_s8(s8(low4(v)), vdupq_n_s8(8));
        hi = vsubq_s8(s8(high4(v)), vdupq_n_s8(8));
    }
};
struct fmt_q4_1 {
    using block = block_q4_1;
    using act = block_q8_1;
    static constexpr bool has_min = true;
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = s8(low4(v));
        hi = s8(high4(v));
    }
};
struct fmt_q5_0 {
    using block = block_q5_0;
    using act = block_q8_0;
    static constexpr bool has_min = false;
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = vsubq_s8(s8(vorrq_u8(low4(v), qh_bit4(b.qh, 0))), vdupq_n_s8(16));
        hi = vsubq_s8(s8(vorrq_u8(high4(v), qh_bit4(b.qh, 1))), vdupq_n_s8(16));
    }
};
struct fmt_q5_1 {
    using block = block_q5_1;
    using act = block_q8_1;
    static constexpr bool has_min = true;
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        const uint8x16_t v = vld1q_u8(b.qs);
        lo = s8(vorrq_u8(low4(v), qh_bit4(b.qh, 0)));
        hi = s8(vorrq_u8(high4(v), qh_bit4(b.qh, 1)));
    }
};
struct fmt_q8_0 {
    using block = block_q8_0;
    using act = block_q8_0;
    static constexpr bool has_min = false;
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
        lo = vld1q_s8(b.qs);
        hi = vld1q_s8(b.qs + 16);
    }
};
struct fmt_iq4_nl {
    using block = block_iq4_nl;
    using act = block_q8_0;
    static constexpr bool has_min = false;
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t& lo, int8x16_t& hi) {
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
    uint16x4_t dx = vdup_n_u16(0), mx = vdup_n_u16(0);
    static_for<N>([&](auto b) {
        F::expand(x[g + b], lo[b], hi[b]);
        dx = vld1_lane_u16(&x[g + b].d, dx, b);
        if constexpr (F::has_min) mx = vld1_lane_u16(&x[g + b].m, mx, b);
    });
    const float32x4_t dx4 = f16x4(dx);
    static_for<R>([&](auto r) {
        int32x4_t p[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        uint16x4_t dy = vdup_n_u16(0), sy = vdup_n_u16(0);
        static_for<N>([&](auto b) {
            p[b] = block_dot<Dot>(lo[b], hi[b], y[r][g + b].qs);
            dy = vld1_lane_u16(&y[r][g + b].d, dy, b);
            if constexpr (F::has_min) sy = vld1_lane_u16(&y[r][g + b].s, sy, b);
        });
        acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(fold4(p[0], p[1], p[2], p[3])), vmulq_f32(dx4, f16x4(dy)));
        if constexpr (F::has_min) accm[r] = vfmaq_f32(accm[r], f16x4(mx), f16x4(sy));
    });
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
// expand(block, q) gives the 256 elements as 16 int8x16 vectors in order. prep(block) gives the
// super-block's integer scales, once for all activation rows: `groups` (8 sub-blocks of 32 or 16
// of 16) scales as int32x4 vectors, and for the formats with a min term its mins (int16).
// min_sum(prep, bsums) is the sum over sub-blocks of min * (sum of the activations there).

inline int32x4_t widen_lo(int16x8_t v) { return vmovl_s16(vget_low_s16(v)); }
inline int32x4_t widen_hi(int16x8_t v) { return vmovl_high_s16(v); }

struct k_prep {
    int32x4_t sc[4];      // sub-block scales: sc[0..1] for 8 sub-blocks, sc[0..3] for 16
    int16x8_t mins[2];    // mins[0] for 8 sub-blocks, mins[0..1] for 16 (Q2_K)
};

inline void scales_from_s8x8(int8x8_t s, int32x4_t* sc) {
    const int16x8_t a = vmovl_s8(s);
    sc[0] = widen_lo(a), sc[1] = widen_hi(a);
}

// Q4_K/Q5_K's 6-bit scales and mins in 12 bytes (llama.cpp's get_scale_min_k4), four sub-blocks per
// 32-bit word: sub-blocks 0-3 have their scales and mins in the low 6 bits of bytes 0-3 and 4-7;
// sub-blocks 4-7 the low 4 bits in bytes 8-11's low (scale) and high (min) nibbles, the high 2
// bits in the top 2 bits of bytes 0-3 (scale) and 4-7 (min).
inline void k4_scales_mins(const uint8_t* q, uint8x8_t& sc, uint8x8_t& m) {
    uint32_t w[3];
    std::memcpy(w, q, 12);
    constexpr uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
    const uint32_t sc_lo = w[0] & low6, m_lo = w[1] & low6;
    const uint32_t sc_hi = (w[2] & low4) | (((w[0] >> 6) & low2) << 4);
    const uint32_t m_hi = ((w[2] >> 4) & low4) | (((w[1] >> 6) & low2) << 4);
    sc = vcreate_u8(uint64_t(sc_hi) << 32 | sc_lo);
    m = vcreate_u8(uint64_t(m_hi) << 32 | m_lo);
}

// Sum of mins[s] * (bsums[2s] + bsums[2s + 1]) over 8 sub-blocks of 32.
inline int32_t min_dot8(int16x8_t mins, const int16_t* bsums) {
    const int16x8_t b = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));  // |sum| <= 32 * 128
    return vaddvq_s32(vmlal_high_s16(vmull_s16(vget_low_s16(mins), vget_low_s16(b)), mins, b));
}

// 256 2-bit values packed as Q2_K's and TQ2_0's qs[64]: element 128h + 32k + l is bits 2k of qs[32h + l].
MOERUN_ALWAYS_INLINE inline void expand_2bit(const uint8_t* qs, int8x16_t q[16]) {
    const uint8x16_t three = vdupq_n_u8(3);
    static_for<2>([&](auto h) {
        const uint8x16_t v0 = vld1q_u8(qs + 32 * h), v1 = vld1q_u8(qs + 32 * h + 16);
        q[8 * h + 0] = s8(vandq_u8(v0, three)), q[8 * h + 1] = s8(vandq_u8(v1, three));
        q[8 * h + 2] = s8(vandq_u8(vshrq_n_u8(v0, 2), three)), q[8 * h + 3] = s8(vandq_u8(vshrq_n_u8(v1, 2), three));
        q[8 * h + 4] = s8(vandq_u8(vshrq_n_u8(v0, 4), three)), q[8 * h + 5] = s8(vandq_u8(vshrq_n_u8(v1, 4), three));
        q[8 * h + 6] = s8(vshrq_n_u8(v0, 6)), q[8 * h + 7] = s8(vshrq_n_u8(v1, 6));
    });
}

struct fmt_q2_k {
    using block = block_q2_K;
    static constexpr bool has_min = true;
    static constexpr int groups = 16;
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) { expand_2bit(b.qs, q); }
    // Low nibble of scales[j]: group j's scale; high nibble: its min.
    MOERUN_ALWAYS_INLINE static k_prep prep(const block& b) {
        k_prep p;
        const uint8x16_t v = vld1q_u8(b.scales);
        const int8x16_t sc = s8(low4(v));
        scales_from_s8x8(vget_low_s8(sc), p.sc);
        scales_from_s8x8(vget_high_s8(sc), p.sc + 2);
        const uint8x16_t m = high4(v);
        p.mins[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m)));
        p.mins[1] = vreinterpretq_s16_u16(vmovl_high_u8(m));
        return p;
    }
    static int32_t min_sum(const k_prep& p, const int16_t* bsums) {
        const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
        int32x4_t s = vmull_s16(vget_low_s16(p.mins[0]), vget_low_s16(b0));
        s = vmlal_high_s16(s, p.mins[0], b0);
        s = vmlal_s16(s, vget_low_s16(p.mins[1]), vget_low_s16(b1));
        return vaddvq_s32(vmlal_high_s16(s, p.mins[1], b1));
    }
};

struct fmt_q3_k {
    using block = block_q3_K;
    static constexpr bool has_min = false;
    static constexpr int groups = 16;
    // As Q2_K's low 2 bits, minus 4 where element j's bit j/32 of hmask[j % 32] is clear.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        const uint8x16_t three = vdupq_n_u8(3);
        // Inverted hmask: bit k of element l set where 4 is subtracted; moved to bit 2 per k below.
        const uint8x16_t nh0 = vmvnq_u8(vld1q_u8(b.hmask)), nh1 = vmvnq_u8(vld1q_u8(b.hmask + 16));
        static_for<2>([&](auto h) {
            const uint8x16_t v0 = vld1q_u8(b.qs + 32 * h), v1 = vld1q_u8(b.qs + 32 * h + 16);
            static_for<4>([&](auto k) {
                constexpr int bit = 4 * h + k;  // the hmask bit of these elements, moved to bit 2 (= 4)
                const uint8x16_t four = vdupq_n_u8(4);
                q[8 * h + 2 * k] = vsubq_s8(s8(vandq_u8(shr<2 * k>(v0), three)), s8(vandq_u8(shr<bit - 2>(nh0), four)));
                q[8 * h + 2 * k + 1] = vsubq_s8(s8(vandq_u8(shr<2 * k>(v1), three)), s8(vandq_u8(shr<bit - 2>(nh1), four)));
            });
        });
    }
    // 16 6-bit scales minus 32: group i's low 4 bits in byte i (i < 8, low nibble) or i - 8 (high
    // nibble), its high 2 bits at bits 2 * (i / 4) of byte 8 + i % 4.
    MOERUN_ALWAYS_INLINE static k_prep prep(const block& b) {
        uint32_t aux[3];
        std::memcpy(aux, b.scales, 12);
        constexpr uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
        const uint32_t w[4] = {(aux[0] & m4) | ((aux[2] & m2) << 4), (aux[1] & m4) | (((aux[2] >> 2) & m2) << 4),
                               ((aux[0] >> 4) & m4) | (((aux[2] >> 4) & m2) << 4), ((aux[1] >> 4) & m4) | (((aux[2] >> 6) & m2) << 4)};
        const int8x16_t sc = vsubq_s8(vreinterpretq_s8_u32(vld1q_u32(w)), vdupq_n_s8(32));
        k_prep p;
        scales_from_s8x8(vget_low_s8(sc), p.sc);
        scales_from_s8x8(vget_high_s8(sc), p.sc + 2);
        return p;
    }
    static int32_t min_sum(const k_prep&, const int16_t*) { return 0; }
};

struct fmt_q4_k {
    using block = block_q4_K;
    static constexpr bool has_min = true;
    static constexpr int groups = 8;
    // Sub-block 2c: low nibbles of qs[32c..32c+32), 2c + 1: their high nibbles.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        static_for<4>([&](auto c) {
            const uint8x16_t v0 = vld1q_u8(b.qs + 32 * c), v1 = vld1q_u8(b.qs + 32 * c + 16);
            q[4 * c + 0] = s8(low4(v0)), q[4 * c + 1] = s8(low4(v1));
            q[4 * c + 2] = s8(high4(v0)), q[4 * c + 3] = s8(high4(v1));
        });
    }
    MOERUN_ALWAYS_INLINE static k_prep prep(const block& b) {
        uint8x8_t sc, m;
        k4_scales_mins(b.scales, sc, m);
        k_prep p;
        scales_from_s8x8(vreinterpret_s8_u8(sc), p.sc);
        p.mins[0] = vreinterpretq_s16_u16(vmovl_u8(m));
        return p;
    }
    static int32_t min_sum(const k_prep& p, const int16_t* bsums) { return min_dot8(p.mins[0], bsums); }
};

struct fmt_q5_k {
    using block = block_q5_K;
    static constexpr bool has_min = true;
    static constexpr int groups = 8;
    // As Q4_K, plus bit 4 of sub-block s's element l at bit s of qh[l].
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        const uint8x16_t h0 = vld1q_u8(b.qh), h1 = vld1q_u8(b.qh + 16), x10 = vdupq_n_u8(0x10);
        static_for<4>([&](auto c) {
            const uint8x16_t v0 = vld1q_u8(b.qs + 32 * c), v1 = vld1q_u8(b.qs + 32 * c + 16);
            const uint8x16_t be = vdupq_n_u8(uint8_t(1u << (2 * c))), bo = vdupq_n_u8(uint8_t(2u << (2 * c)));
            q[4 * c + 0] = s8(vorrq_u8(low4(v0), vandq_u8(vtstq_u8(h0, be), x10)));
            q[4 * c + 1] = s8(vorrq_u8(low4(v1), vandq_u8(vtstq_u8(h1, be), x10)));
            q[4 * c + 2] = s8(vorrq_u8(high4(v0), vandq_u8(vtstq_u8(h0, bo), x10)));
            q[4 * c + 3] = s8(vorrq_u8(high4(v1), vandq_u8(vtstq_u8(h1, bo), x10)));
        });
    }
    MOERUN_ALWAYS_INLINE static k_prep prep(const block& b) {
        uint8x8_t sc, m;
        k4_scales_mins(b.scales, sc, m);
        k_prep p;
        scales_from_s8x8(vreinterpret_s8_u8(sc), p.sc);
        p.mins[0] = vreinterpretq_s16_u16(vmovl_u8(m));
        return p;
    }
    static int32_t min_sum(const k_prep& p, const int16_t* bsums) { return min_dot8(p.mins[0], bsums); }
};

struct fmt_q6_k {
    using block = block_q6_K;
    static constexpr bool has_min = false;
    static constexpr int groups = 16;
    // Per 128 elements (half h): ql[64h..], qh[32h..]; elements 32k + l (l < 32) take ql[l + 32 (k & 1)]'s
    // low (k < 2) or high nibble and bits 2k of qh[l] as bits 4-5, minus 32.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        const uint8x16_t three = vdupq_n_u8(3);
        const int8x16_t m32 = vdupq_n_s8(32);
        static_for<2>([&](auto h) {
            const uint8_t* ql = b.ql + 64 * h;
            const uint8_t* qh = b.qh + 32 * h;
            static_for<2>([&](auto i) {  // l in [16i, 16i + 16)
                const uint8x16_t l0 = vld1q_u8(ql + 16 * i), l1 = vld1q_u8(ql + 32 + 16 * i), hb = vld1q_u8(qh + 16 * i);
                // Shift-left-insert: (bits << 4) | the low nibble, one instruction.
                q[8 * h + 0 + i] = vsubq_s8(s8(vsliq_n_u8(l0, vandq_u8(hb, three), 4)), m32);
                q[8 * h + 2 + i] = vsubq_s8(s8(vsliq_n_u8(l1, vandq_u8(vshrq_n_u8(hb, 2), three), 4)), m32);
                q[8 * h + 4 + i] = vsubq_s8(s8(vsliq_n_u8(vshrq_n_u8(l0, 4), vandq_u8(vshrq_n_u8(hb, 4), three), 4)), m32);
                q[8 * h + 6 + i] = vsubq_s8(s8(vsliq_n_u8(vshrq_n_u8(l1, 4), vshrq_n_u8(hb, 6), 4)), m32);
            });
        });
    }
    MOERUN_ALWAYS_INLINE static k_prep prep(const block& b) {
        const int8x16_t sc = vld1q_s8(b.scales);
        k_prep p;
        scales_from_s8x8(vget_low_s8(sc), p.sc);
        scales_from_s8x8(vget_high_s8(sc), p.sc + 2);
        return p;
    }
    static int32_t min_sum(const k_prep&, const int16_t*) { return 0; }
};

struct fmt_iq4_xs {
    using block = block_iq4_xs;
    static constexpr bool has_min = false;
    static constexpr int groups = 8;
    // Sub-block s: qs[16s..16s+16), low nibbles elements 0..15, high 16..31, through the IQ4_NL table.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        const int8x16_t values = vld1q_s8(k_iq4nl_values);
        static_for<8>([&](auto s) {
            const uint8x16_t v = vld1q_u8(b.qs + 16 * s);
            q[2 * s] = vqtbl1q_s8(values, low4(v));
            q[2 * s + 1] = vqtbl1q_s8(values, high4(v));
        });
    }
    // ls - 32: low 4 bits in nibble s % 2 of scales_l[s / 2], high 2 bits at bits 2s of scales_h.
    MOERUN_ALWAYS_INLINE static k_prep prep(const block& b) {
        uint32_t l4;
        std::memcpy(&l4, b.scales_l, 4);
        const uint8x8_t l = vcreate_u8(l4);
        const uint8x8_t lo = vzip1_u8(vand_u8(l, vdup_n_u8(0xf)), vshr_n_u8(l, 4));  // nibble s at byte s
        static const int16_t k_shift[8] = {0, -2, -4, -6, -8, -10, -12, -14};
        const uint16x8_t h = vandq_u16(vshlq_u16(vdupq_n_u16(b.scales_h), vld1q_s16(k_shift)), vdupq_n_u16(3));
        const uint8x8_t ls = vorr_u8(lo, vshl_n_u8(vmovn_u16(h), 4));
        k_prep p;
        scales_from_s8x8(vsub_s8(vreinterpret_s8_u8(ls), vdup_n_s8(32)), p.sc);
        return p;
    }
    static int32_t min_sum(const k_prep&, const int16_t*) { return 0; }
};

template <class F>
inline float k_dmin(const typename F::block& b) {
    if constexpr (F::has_min) return f16(b.dmin);
    else return 0.0f;
}

// The exact sum over a super-block's `groups` sub-blocks (8 of 32 or 16 of 16 elements) of
// sc[sub-block] * (its elements q . y), q the 256 elements as 16 vectors, sc the scales as int32x4
// vectors (sc[0..1] for 8, sc[0..3] for 16). Each sub-block's dot is one int32x4 (two Dots for 32
// elements, one for 16); four of them fold into one vector, which is multiplied by four scales.
template <class Dot, int groups>
MOERUN_ALWAYS_INLINE inline int32_t scaled_dot256(const int8x16_t q[16], const int32x4_t sc[], const int8_t* y) {
    constexpr int per = 16 / groups;  // vectors per sub-block
    int32x4_t sumi = vdupq_n_s32(0);
    static_for<groups / 4>([&](auto c) {
        int32x4_t p[4];
        static_for<4>([&](auto k) {
            constexpr int s = 4 * c + k;  // sub-block
            p[k] = Dot::dot(vdupq_n_s32(0), q[per * s], vld1q_s8(y + 16 * per * s));
            if constexpr (per == 2) p[k] = Dot::dot(p[k], q[per * s + 1], vld1q_s8(y + 16 * per * s + 16));
        });
        sumi = vmlaq_s32(sumi, fold4(p[0], p[1], p[2], p[3]), sc[c]);
    });
    return vaddvq_s32(sumi);
}

// One super-block of x against R Q8_K rows: acc[r] += its contribution (the header's order).
template <class Dot, class F, int R>
inline void super_block(const typename F::block& x, const block_q8_K* const* y, int64_t i, float* acc) {
    int8x16_t q[16];
    F::expand(x, q);
    const k_prep pr = F::prep(x);
    const float dx = f16(x.d), dmin = k_dmin<F>(x);
    static_for<R>([&](auto r) {
        const block_q8_K& yb = y[r][i];
        acc[r] += (yb.d * dx) * float(scaled_dot256<Dot, F::groups>(q, pr.sc, yb.qs));
        if constexpr (F::has_min) acc[r] -= (yb.d * dmin) * float(F::min_sum(pr, yb.bsums));
    });
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

// A row driver: Rows::run<R>(n, x, y, y_stride, out) sets out[r] = dot(x, y_r) for R activation
// rows y_r = y + r * y_stride bytes. These two serve the formats above; iq_dots.h adds its own.
template <class Dot, class F>
struct rows32 {
    template <int R>
    MOERUN_ALWAYS_INLINE static void run(int64_t n, const void* x, const uint8_t* y, size_t y_stride, float* out) {
        dot_rows32<Dot, F, R>(n, x, y, y_stride, out);
    }
};
template <class Dot, class F>
struct rows256 {
    template <int R>
    MOERUN_ALWAYS_INLINE static void run(int64_t n, const void* x, const uint8_t* y, size_t y_stride, float* out) {
        dot_rows256<Dot, F, R>(n, x, y, y_stride, out);
    }
};

// vec_dot and vec_dot_n (groups of 4 rows, then the rest) over a row driver.
template <class Rows>
void vec_dot(int64_t n, float* s, const void* x, const void* y) {
    Rows::template run<1>(n, x, static_cast<const uint8_t*>(y), 0, s);
}

template <class Rows, int R>
inline void dot_group(int64_t n, float* s, int64_t s_stride, const void* x, const uint8_t* y, size_t y_stride) {
    float out[R];
    Rows::template run<R>(n, x, y, y_stride, out);
    for (int r = 0; r < R; ++r) s[r * s_stride] = out[r];
}

template <class Rows>
void vec_dot_n(int64_t n, float* s, int64_t s_stride, const void* x, const void* vy, size_t y_stride, int64_t ny) {
    const uint8_t* y = static_cast<const uint8_t*>(vy);
    int64_t j = 0;
    for (; j + 4 <= ny; j += 4) dot_group<Rows, 4>(n, s + j * s_stride, s_stride, x, y + size_t(j) * y_stride, y_stride);
    switch (ny - j) {
        case 3: dot_group<Rows, 3>(n, s + j * s_stride, s_stride, x, y + size_t(j) * y_stride, y_stride); break;
        case 2: dot_group<Rows, 2>(n, s + j * s_stride, s_stride, x, y + size_t(j) * y_stride, y_stride); break;
        case 1: dot_group<Rows, 1>(n, s + j * s_stride, s_stride, x, y + size_t(j) * y_stride, y_stride); break;
        default: break;
    }
}

template <class Rows>
void set_row(cpu_kernels& row) {
    row.vec_dot = vec_dot<Rows>;
    row.vec_dot_n = vec_dot_n<Rows>;
}

// The rows these kernels serve, on a path whose int8 primitive is Dot.
template <class Dot>
void register_int8_rows(cpu_kernels* table) {
    using T = tensor_type;
    auto at = [&](T id) -> cpu_kernels& { return table[uint32_t(id)]; };
    set_row<rows32<Dot, fmt_q4_0>>(at(T::Q4_0));
    set_row<rows32<Dot, fmt_q4_1>>(at(T::Q4_1));
    set_row<rows32<Dot, fmt_q5_0>>(at(T::Q5_0));
    set_row<rows32<Dot, fmt_q5_1>>(at(T::Q5_1));
    set_row<rows32<Dot, fmt_q8_0>>(at(T::Q8_0));
    set_row<rows32<Dot, fmt_iq4_nl>>(at(T::IQ4_NL));
    set_row<rows256<Dot, fmt_q2_k>>(at(T::Q2_K));
    set_row<rows256<Dot, fmt_q3_k>>(at(T::Q3_K));
    set_row<rows256<Dot, fmt_q4_k>>(at(T::Q4_K));
    set_row<rows256<Dot, fmt_q5_k>>(at(T::Q5_K));
    set_row<rows256<Dot, fmt_q6_k>>(at(T::Q6_K));
    set_row<rows256<Dot, fmt_iq4_xs>>(at(T::IQ4_XS));
}

}  // namespace
}  // namespace moerun::neon_int8
