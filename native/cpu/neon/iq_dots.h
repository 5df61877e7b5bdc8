// The NEON dots of the lattice formats (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) and
// the ternary formats (TQ1_0, TQ2_0) against Q8_K, and of MXFP4 against Q8_0, written once over
// int8_dots.h's Dot primitive and row drivers: iq_grid.cpp instantiates them with mull_dot (plain
// ARMv8-A), dotprod/iq_grid.cpp with SDOT.
//
// 256-element formats: per super-block, expand(block, q) gives the 256 weights as 16 int8x16
// vectors (grid points gathered with 8- or 4-byte lane loads, IQ2/IQ3 signs multiplied in as +-1
// bytes) and prepare(block) the sub-block scales 2 ls + 1 as int32x4 vectors, once for all
// activation rows; scaled_dot256 gives each row's exact int32 sum of scale * sub-block dot.
// Every reference (quant/reference_iq_grid.cpp, reference_tq.cpp) adds one float term per
// super-block to a running sum, (d * d_y) * value(sum), and multiplies the total by a constant
// (1/8 for IQ2, 1/4 for IQ3_XXS); the kernels do the same float operations in the same order, so
// they equal the reference bit for bit.
// IQ1 weights are d (2 ls + 1) (g + delta), g in {-1, 0, 1}, delta = +-1/8. IQ1_S's delta (one per
// 32 weights) goes through Q8_K's bsums, as in the reference; IQ1_M's (one per 8) is folded into the
// weights as 8 g +- 1, whose scaled sum is 8 sumi + sumi_delta: an int below 2^23, so the
// reference's float(sumi) + float(sumi_delta) / 8 is exactly float(8 sumi + sumi_delta) / 8.
// MXFP4: as IQ4_NL (a table lookup per nibble), four blocks' int sums at once, each block's term
// (d_y * d) * sum added to the running sum in block order as the reference does.
#pragma once

#include "../iq_tables.h"
#include "int8_dots.h"

namespace moerun::neon_int8 {
namespace {

// ---- gathering grid points and signs ----

// Two 8-byte table entries as one vector: table[a] in bytes 0..7, table[b] in 8..15.
MOERUN_ALWAYS_INLINE inline int8x16_t entries2(const uint64_t* table, uint32_t a, uint32_t b) {
    return vreinterpretq_s8_u64(vcombine_u64(vld1_u64(table + a), vld1_u64(table + b)));
}
// Four 4-byte table entries as one vector, table[a] in bytes 0..3.
MOERUN_ALWAYS_INLINE inline int8x16_t entries4(const uint32_t* table, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    const uint32x2_t lo = vld1_lane_u32(table + b, vld1_dup_u32(table + a), 1);
    const uint32x2_t hi = vld1_lane_u32(table + d, vld1_dup_u32(table + c), 1);
    return vreinterpretq_s8_u32(vcombine_u32(lo, hi));
}

// The signs of 16 weights from two 7-bit fields of a parity-sign word (k_iq_signs).
MOERUN_ALWAYS_INLINE inline int8x16_t parity_signs2(uint32_t a, uint32_t b) { return entries2(k_iq_sign_bytes.data(), a & 127, b & 127); }

// The 32 stored sign bytes of an IQ2_S/IQ3_S super-block (bit j of byte k: weight 8k + j negative).
struct sign_bytes {
    uint8x16_t v[2];
    explicit sign_bytes(const uint8_t* s) : v{vld1q_u8(s), vld1q_u8(s + 16)} {}
    // Weights 16c..16c+15 with their signs: bytes 2c and 2c + 1 spread over 8 lanes each, tested
    // bit by bit; (w ^ neg) - neg negates where neg is all ones.
    template <int c>
    MOERUN_ALWAYS_INLINE int8x16_t apply(int8x16_t w) const {
        constexpr uint8_t a = 2 * (c % 8), b = a + 1;
        const uint8x16_t spread = vqtbl1q_u8(v[c / 8], uint8x16_t{a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b});
        const int8x16_t neg = s8(vtstq_u8(spread, uint8x16_t{1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128}));
        return vsubq_s8(veorq_s8(w, neg), neg);
    }
};

// ---- sub-block scales ----

struct lattice_prep {
    int32x4_t sc[4];    // 2 ls + 1 per sub-block: sc[0..1] for 8 of 32 weights, sc[0..3] for 16 of 16
    int16x8_t delta;    // IQ1_S: the scales with the sign of each sub-block's delta
};
// The ternary formats' prep: one unscaled group.
inline lattice_prep no_scales() { return {{vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)}, vdupq_n_s16(0)}; }

inline void widen_scales(uint8x8_t s, int32x4_t* sc) {
    const int16x8_t w = vreinterpretq_s16_u16(vmovl_u8(s));
    sc[0] = widen_lo(w), sc[1] = widen_hi(w);
}

// 2 ls + 1 of the 4-bit fields of `bytes` (4 or 8 bytes, low nibble first: field 2k + h is nibble h
// of bytes[k]) as sc[0 .. bytes / 2).
template <int bytes>
MOERUN_ALWAYS_INLINE inline void nibble_scales(const uint8_t* p, int32x4_t* sc) {
    uint8x8_t v;
    if constexpr (bytes == 4) {
        uint32_t w;
        std::memcpy(&w, p, 4);
        v = vcreate_u8(w);
    } else {
        v = vld1_u8(p);
    }
    const uint8x8_t lo = vand_u8(v, vdup_n_u8(0xf)), hi = vshr_n_u8(v, 4), one = vdup_n_u8(1);
    widen_scales(vsli_n_u8(one, vzip1_u8(lo, hi), 1), sc);  // (ls << 1) | 1
    if constexpr (bytes == 8) widen_scales(vsli_n_u8(one, vzip2_u8(lo, hi), 1), sc + 2);
}

// 2 ls + 1 of four words holding ls in their top 4 bits (IQ2_XXS, IQ3_XXS): (w >> 27) | 1 is
// 2 (w >> 28) + 1.
inline int32x4_t top4_scales(uint32x4_t w) { return vreinterpretq_s32_u32(vorrq_u32(vshrq_n_u32(w, 27), vdupq_n_u32(1))); }

// ---- the 256-element formats ----
// block, groups (sub-blocks: 8 of 32 or 16 of 16; 1: one unscaled group), expand, prepare, d (the
// super-block scale), value(sumi, prep, y) (the factor of d * d_y in the reference's term),
// factor (of the final sum), and where a format has its own, dot<Dot>(q, y) (the exact int sum).

struct lattice_defaults {
    static constexpr float factor = 1.0f;
    static float value(int32_t sumi, const lattice_prep&, const block_q8_K&) { return float(sumi); }
};

struct fmt_iq2_xxs : lattice_defaults {
    using block = block_iq2_xxs;
    static constexpr int groups = 8;
    static constexpr float factor = 0.125f;
    static float d(const block& b) { return f16(b.d); }
    // Sub-block ib: words 2ib (4 grid indices, bytes) and 2ib + 1 (4 x 7 sign bits, ls << 28).
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        static_for<8>([&](auto ib) MOERUN_ALWAYS_INLINE {
            uint32_t w[2];
            std::memcpy(w, b.qs + 4 * ib, 8);
            const uint64_t* grid = k_iq2xxs_grid.data();
            q[2 * ib] = vmulq_s8(entries2(grid, w[0] & 255, (w[0] >> 8) & 255), parity_signs2(w[1], w[1] >> 7));
            q[2 * ib + 1] = vmulq_s8(entries2(grid, (w[0] >> 16) & 255, w[0] >> 24), parity_signs2(w[1] >> 14, w[1] >> 21));
        });
    }
    MOERUN_ALWAYS_INLINE static lattice_prep prepare(const block& b) {
        const uint8_t* qs = reinterpret_cast<const uint8_t*>(b.qs);
        const uint32x4_t w0 = vreinterpretq_u32_u8(vld1q_u8(qs)), w1 = vreinterpretq_u32_u8(vld1q_u8(qs + 16));
        const uint32x4_t w2 = vreinterpretq_u32_u8(vld1q_u8(qs + 32)), w3 = vreinterpretq_u32_u8(vld1q_u8(qs + 48));
        lattice_prep p;
        p.sc[0] = top4_scales(vuzp2q_u32(w0, w1));  // the odd words: sub-blocks 0..3
        p.sc[1] = top4_scales(vuzp2q_u32(w2, w3));
        return p;
    }
};

struct fmt_iq2_xs : lattice_defaults {
    using block = block_iq2_xs;
    static constexpr int groups = 16;
    static constexpr float factor = 0.125f;
    static float d(const block& b) { return f16(b.d); }
    // Per 8 weights a word: 9-bit grid index, 7 sign bits above it.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        static_for<16>([&](auto c) MOERUN_ALWAYS_INLINE {
            const uint32_t w0 = b.qs[2 * c], w1 = b.qs[2 * c + 1];
            q[c] = vmulq_s8(entries2(k_iq2xs_grid.data(), w0 & 511, w1 & 511), parity_signs2(w0 >> 9, w1 >> 9));
        });
    }
    MOERUN_ALWAYS_INLINE static lattice_prep prepare(const block& b) {
        lattice_prep p;
        nibble_scales<8>(b.scales, p.sc);
        return p;
    }
};

struct fmt_iq2_s : lattice_defaults {
    using block = block_iq2_s;
    static constexpr int groups = 16;
    static constexpr float factor = 0.125f;
    static float d(const block& b) { return f16(b.d); }
    // Group l of sub-block ib: index qs[4ib + l] plus bits 2l..2l+1 of qh[ib] as bits 8-9; signs stored.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        const sign_bytes signs(b.qs + 32);
        static_for<8>([&](auto ib) MOERUN_ALWAYS_INLINE {
            const uint32_t h = b.qh[ib];
            const uint8_t* idx = b.qs + 4 * ib;
            const uint64_t* grid = k_iq2s_grid.data();
            q[2 * ib] = signs.apply<2 * ib>(entries2(grid, idx[0] | ((h << 8) & 0x300), idx[1] | ((h << 6) & 0x300)));
            q[2 * ib + 1] = signs.apply<2 * ib + 1>(entries2(grid, idx[2] | ((h << 4) & 0x300), idx[3] | ((h << 2) & 0x300)));
        });
    }
    MOERUN_ALWAYS_INLINE static lattice_prep prepare(const block& b) {
        lattice_prep p;
        nibble_scales<8>(b.scales, p.sc);
        return p;
    }
};

struct fmt_iq3_xxs : lattice_defaults {
    using block = block_iq3_xxs;
    static constexpr int groups = 8;
    static constexpr float factor = 0.25f;
    static float d(const block& b) { return f16(b.d); }
    // Sub-block ib: grid indices qs[8ib..8ib+8) (4 weights each), signs and ls in the word at qs + 64 + 4ib.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        static_for<8>([&](auto ib) MOERUN_ALWAYS_INLINE {
            uint32_t s;
            std::memcpy(&s, b.qs + 64 + 4 * ib, 4);
            const uint8_t* idx = b.qs + 8 * ib;
            const uint32_t* grid = k_iq3xxs_grid.data();
            q[2 * ib] = vmulq_s8(entries4(grid, idx[0], idx[1], idx[2], idx[3]), parity_signs2(s, s >> 7));
            q[2 * ib + 1] = vmulq_s8(entries4(grid, idx[4], idx[5], idx[6], idx[7]), parity_signs2(s >> 14, s >> 21));
        });
    }
    MOERUN_ALWAYS_INLINE static lattice_prep prepare(const block& b) {
        lattice_prep p;
        p.sc[0] = top4_scales(vreinterpretq_u32_u8(vld1q_u8(b.qs + 64)));
        p.sc[1] = top4_scales(vreinterpretq_u32_u8(vld1q_u8(b.qs + 80)));
        return p;
    }
};

struct fmt_iq3_s : lattice_defaults {
    using block = block_iq3_s;
    static constexpr int groups = 8;
    static float d(const block& b) { return f16(b.d); }
    // Index k of sub-block ib: qs[8ib + k] plus bit k of qh[ib] as bit 8, the 8 built in one vector
    // (bit k moved to bit 8 by a left shift of 8 - k) and read back from the stack; signs stored.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        const sign_bytes signs(b.signs);
        const int16x8_t to_bit8 = {8, 7, 6, 5, 4, 3, 2, 1};
        static_for<8>([&](auto ib) MOERUN_ALWAYS_INLINE {
            const uint16x8_t high = vandq_u16(vshlq_u16(vdupq_n_u16(b.qh[ib]), to_bit8), vdupq_n_u16(0x100));
            uint16_t idx[8];
            vst1q_u16(idx, vorrq_u16(vmovl_u8(vld1_u8(b.qs + 8 * ib)), high));
            const uint32_t* grid = k_iq3s_grid.data();
            q[2 * ib] = signs.apply<2 * ib>(entries4(grid, idx[0], idx[1], idx[2], idx[3]));
            q[2 * ib + 1] = signs.apply<2 * ib + 1>(entries4(grid, idx[4], idx[5], idx[6], idx[7]));
        });
    }
    MOERUN_ALWAYS_INLINE static lattice_prep prepare(const block& b) {
        lattice_prep p;
        nibble_scales<4>(b.scales, p.sc);
        return p;
    }
};

struct fmt_iq1_s {
    using block = block_iq1_s;
    static constexpr int groups = 8;
    static constexpr float factor = 1.0f;
    static float d(const block& b) { return f16(b.d); }
    // Group l of sub-block ib: index qs[4ib + l] plus bits 3l..3l+2 of qh[ib] as bits 8-10.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        static_for<8>([&](auto ib) MOERUN_ALWAYS_INLINE {
            const uint32_t h = b.qh[ib];
            const uint8_t* idx = b.qs + 4 * ib;
            const uint64_t* grid = k_iq1s_grid.data();
            q[2 * ib] = entries2(grid, idx[0] | ((h << 8) & 0x700), idx[1] | ((h << 5) & 0x700));
            q[2 * ib + 1] = entries2(grid, idx[2] | ((h << 2) & 0x700), idx[3] | ((h >> 1) & 0x700));
        });
    }
    // ls at bits 12-14 of qh[ib], the delta's sign at bit 15.
    MOERUN_ALWAYS_INLINE static lattice_prep prepare(const block& b) {
        const uint16x8_t h = vld1q_u16(b.qh);
        const int16x8_t ls = vreinterpretq_s16_u16(vorrq_u16(vandq_u16(vshrq_n_u16(h, 11), vdupq_n_u16(0xe)), vdupq_n_u16(1)));
        const int16x8_t neg = vshrq_n_s16(vreinterpretq_s16_u16(h), 15);  // all ones where bit 15 is set
        lattice_prep p;
        p.sc[0] = widen_lo(ls), p.sc[1] = widen_hi(ls);
        p.delta = vsubq_s16(veorq_s16(ls, neg), neg);
        return p;
    }
    static float value(int32_t sumi, const lattice_prep& p, const block_q8_K& y) {
        return float(sumi) + k_iq1_delta * float(min_dot8(p.delta, y.bsums));
    }
};

struct fmt_iq1_m {
    using block = block_iq1_m;
    static constexpr int groups = 16;
    static constexpr float factor = 1.0f;
    // d's 16 bits are the top nibbles of the four scale words.
    static float d(const block& b) {
        uint16_t w[4];
        std::memcpy(w, b.scales, 8);
        return f16(uint16_t((w[0] >> 12) | ((w[1] >> 8) & 0x00f0) | ((w[2] >> 4) & 0x0f00) | (w[3] & 0xf000)));
    }
    // 16 weights 16c.. (groups 2h, 2h + 1 of sub-block c / 2, h = c % 2) take qh[c]: the index's
    // bits 8-10 at bits 0-2 and 4-6, the delta's sign at bits 3 and 7. Each weight is 8 g + delta
    // (see the file header).
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        const uint8x16_t qh = vld1q_u8(b.qh);
        const uint8x16_t delta_bits = {8, 8, 8, 8, 8, 8, 8, 8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
        static_for<16>([&](auto c) MOERUN_ALWAYS_INLINE {
            const uint32_t h = b.qh[c];
            const uint8_t* idx = b.qs + 2 * c;
            const int8x16_t g = entries2(k_iq1s_grid.data(), idx[0] | ((h << 8) & 0x700), idx[1] | ((h << 4) & 0x700));
            const int8x16_t delta = s8(vorrq_u8(vtstq_u8(vdupq_laneq_u8(qh, c), delta_bits), vdupq_n_u8(1)));  // +-1
            q[c] = vaddq_s8(vshlq_n_s8(g, 3), delta);
        });
    }
    // The 3-bit ls of the 16 halves, four per word at bits 0, 3, 6 and 9.
    MOERUN_ALWAYS_INLINE static lattice_prep prepare(const block& b) {
        const uint16x4_t w = vld1_u16(reinterpret_cast<const uint16_t*>(b.scales));
        const int16x8_t shifts = {0, -3, -6, -9, 0, -3, -6, -9};
        lattice_prep p;
        static_for<2>([&](auto k) MOERUN_ALWAYS_INLINE {  // words 2k and 2k + 1
            const uint16x8_t v = vcombine_u16(vdup_lane_u16(w, 2 * k), vdup_lane_u16(w, 2 * k + 1));
            const uint16x8_t ls = vandq_u16(vshlq_u16(v, shifts), vdupq_n_u16(7));
            const int16x8_t odd = vreinterpretq_s16_u16(vsliq_n_u16(vdupq_n_u16(1), ls, 1));
            p.sc[2 * k] = widen_lo(odd), p.sc[2 * k + 1] = widen_hi(odd);
        });
        return p;
    }
    static float value(int32_t sumi, const lattice_prep&, const block_q8_K&) { return float(sumi) * k_iq1_delta; }
};

// The sum of a Q8_K block's 256 values, from its bsums. The ternary formats store t + 1 for each
// weight t: their dot is (t + 1) . y - sum(y), so the weights need no subtraction per element.
inline int32_t sum_q8k(const block_q8_K& y) {
    return vaddlvq_s16(vaddq_s16(vld1q_s16(y.bsums), vld1q_s16(y.bsums + 8)));  // |each| <= 16 * 128 * 2
}

struct fmt_tq1_0 {
    using block = block_tq1_0;
    static constexpr int groups = 1;
    static constexpr float factor = 1.0f;
    static float d(const block& b) { return f16(b.d); }
    // Trit k of byte q is floor(3 * (q * 3^k mod 256) / 256), computed as ((x + x / 2) / 2) / 64 with
    // x = q * 3^k (each division floored, so they compose); the weight is the trit minus 1 (in
    // value()). Bytes 0..31: trit k of byte m is element 32k + m; bytes 32..47: element
    // 160 + 16k + m; qh[j]: element 240 + 4k + j.
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        auto trits = [](uint8x16_t x) MOERUN_ALWAYS_INLINE { return s8(vshrq_n_u8(vhaddq_u8(x, vshrq_n_u8(x, 1)), 6)); };
        const uint8x16_t v0 = vld1q_u8(b.qs), v1 = vld1q_u8(b.qs + 16), v2 = vld1q_u8(b.qs + 32);
        static_for<5>([&](auto k) MOERUN_ALWAYS_INLINE {
            constexpr uint8_t pow3 = k == 0 ? 1 : k == 1 ? 3 : k == 2 ? 9 : k == 3 ? 27 : 81;
            uint8x16_t m = vdupq_n_u8(pow3);
            __asm__("" : "+w"(m));  // an opaque multiplier: GCC would turn * 3 and * 9 into shift + add
            q[2 * k] = trits(k == 0 ? v0 : vmulq_u8(v0, m));
            q[2 * k + 1] = trits(k == 0 ? v1 : vmulq_u8(v1, m));
            q[10 + k] = trits(k == 0 ? v2 : vmulq_u8(v2, m));
        });
        uint32_t h;
        std::memcpy(&h, b.qh, 4);
        q[15] = trits(vmulq_u8(vreinterpretq_u8_u32(vdupq_n_u32(h)), uint8x16_t{1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27}));
    }
    static lattice_prep prepare(const block&) { return no_scales(); }
    static float value(int32_t sumi, const lattice_prep&, const block_q8_K& y) { return float(sumi - sum_q8k(y)); }
};

struct fmt_tq2_0 {
    using block = block_tq2_0;
    static constexpr int groups = 1;
    static constexpr float factor = 1.0f;
    static float d(const block& b) { return f16(b.d); }
    // Q2_K's packing (element 128h + 32k + l at bits 2k of qs[32h + l]), each field left in place:
    // q[8h + 2k + m] holds 4^k times the values for k < 3 (one AND, no shift), the top field shifted
    // down. The weights are the values minus 1 (in value()).
    MOERUN_ALWAYS_INLINE static void expand(const block& b, int8x16_t q[16]) {
        static_for<4>([&](auto j) MOERUN_ALWAYS_INLINE {  // 16 bytes qs[16j..16j+16): h = j / 2, m = j % 2
            const uint8x16_t v = vld1q_u8(b.qs + 16 * j);
            constexpr int base = 8 * (j / 2) + j % 2;
            q[base] = s8(vandq_u8(v, vdupq_n_u8(0x03)));
            q[base + 2] = s8(vandq_u8(v, vdupq_n_u8(0x0c)));
            q[base + 4] = s8(vandq_u8(v, vdupq_n_u8(0x30)));
            q[base + 6] = s8(vshrq_n_u8(v, 6));
        });
    }
    // One accumulator per field k, divided by 4^k at the end (exactly: every product in it is a
    // multiple of 4^k).
    template <class Dot>
    MOERUN_ALWAYS_INLINE static int32_t dot(const int8x16_t q[16], const int8_t* y) {
        int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        static_for<16>([&](auto j) MOERUN_ALWAYS_INLINE {
            constexpr int k = (j % 8) / 2;
            acc[k] = Dot::dot(acc[k], q[j], vld1q_s8(y + 16 * j));
        });
        const int32x4_t s = vsraq_n_s32(vsraq_n_s32(vaddq_s32(acc[0], acc[3]), acc[1], 2), acc[2], 4);
        return vaddvq_s32(s);
    }
    static lattice_prep prepare(const block&) { return no_scales(); }
    static float value(int32_t sumi, const lattice_prep&, const block_q8_K& y) { return float(sumi - sum_q8k(y)); }
};

// The exact int32 sum of q . y over 256 elements, in four accumulators.
template <class Dot>
MOERUN_ALWAYS_INLINE inline int32_t plain_dot256(const int8x16_t q[16], const int8_t* y) {
    int32x4_t p[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    static_for<16>([&](auto k) MOERUN_ALWAYS_INLINE { p[k % 4] = Dot::dot(p[k % 4], q[k], vld1q_s8(y + 16 * k)); });
    return vaddvq_s32(vaddq_s32(vaddq_s32(p[0], p[1]), vaddq_s32(p[2], p[3])));
}

// R Q8_K rows against a row of a 256-element format above (the file header's order).
template <class Dot, class F>
struct lattice_rows {
    template <int R>
    MOERUN_ALWAYS_INLINE static void run(int64_t n, const void* vx, const uint8_t* y, size_t y_stride, float* out) {
        const auto* x = static_cast<const typename F::block*>(vx);
        const block_q8_K* yr[R];
        float sum[R];
        for (int r = 0; r < R; ++r) yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride), sum[r] = 0.0f;
        for (int64_t i = 0; i < n / 256; ++i) {
            int8x16_t q[16];
            F::expand(x[i], q);
            const lattice_prep p = F::prepare(x[i]);
            const float d = F::d(x[i]);
            static_for<R>([&](auto r) MOERUN_ALWAYS_INLINE {
                const block_q8_K& yb = yr[r][i];
                int32_t sumi;
                if constexpr (requires { F::template dot<Dot>(q, yb.qs); }) sumi = F::template dot<Dot>(q, yb.qs);  // its own
                else if constexpr (F::groups == 1) sumi = plain_dot256<Dot>(q, yb.qs);
                else sumi = scaled_dot256<Dot, F::groups>(q, p.sc, yb.qs);
                sum[r] += (d * yb.d) * F::value(sumi, p, yb);
            });
        }
        for (int r = 0; r < R; ++r) out[r] = F::factor * sum[r];
    }
};

// ---- MXFP4 against Q8_0 ----

// 2^(e - 128) of four E8M0 exponents (blocks.h's e8m0_to_fp32_half): (e - 1) << 23 as float
// bits, 0x00200000 << e for the subnormal e 0 and 1.
inline float32x4_t e8m0_half4(uint32x4_t e) {
    const uint32x4_t normal = vshlq_n_u32(vsubq_u32(e, vdupq_n_u32(1)), 23);
    const uint32x4_t subnormal = vshlq_u32(vdupq_n_u32(0x00200000), vreinterpretq_s32_u32(e));
    return vreinterpretq_f32_u32(vbslq_u32(vcltq_u32(e, vdupq_n_u32(2)), subnormal, normal));
}

// Blocks g..g+N-1 (N <= 4) of x against R rows: the int sums of the N blocks in one vector, times
// (d_y * d) lane by lane, added to sum[r] one by one.
template <class Dot, int R, int N>
MOERUN_ALWAYS_INLINE inline void mxfp4_group(const block_mxfp4* x, const block_q8_0* const* y, int64_t g, float* sum) {
    const int8x16_t values = vld1q_s8(k_mxfp4_values.data());
    int8x16_t lo[N], hi[N];
    uint32x4_t e = vdupq_n_u32(0);
    static_for<N>([&](auto b) MOERUN_ALWAYS_INLINE {
        const uint8x16_t v = vld1q_u8(x[g + b].qs);
        lo[b] = vqtbl1q_s8(values, low4(v));
        hi[b] = vqtbl1q_s8(values, high4(v));
        e = vsetq_lane_u32(x[g + b].e, e, b);
    });
    const float32x4_t dx = e8m0_half4(e);
    static_for<R>([&](auto r) MOERUN_ALWAYS_INLINE {
        int32x4_t p[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        uint16x4_t dy = vdup_n_u16(0);
        static_for<N>([&](auto b) MOERUN_ALWAYS_INLINE {
            p[b] = block_dot<Dot>(lo[b], hi[b], y[r][g + b].qs);
            dy = vld1_lane_u16(&y[r][g + b].d, dy, b);
        });
        const float32x4_t t = vmulq_f32(vmulq_f32(f16x4(dy), dx), vcvtq_f32_s32(fold4(p[0], p[1], p[2], p[3])));
        static_for<N>([&](auto b) MOERUN_ALWAYS_INLINE { sum[r] += vgetq_lane_f32(t, b); });
    });
}

template <class Dot>
struct mxfp4_rows {
    template <int R>
    MOERUN_ALWAYS_INLINE static void run(int64_t n, const void* vx, const uint8_t* y, size_t y_stride, float* out) {
        const auto* x = static_cast<const block_mxfp4*>(vx);
        const int64_t nb = n / 32;
        const block_q8_0* yr[R];
        for (int r = 0; r < R; ++r) yr[r] = reinterpret_cast<const block_q8_0*>(y + size_t(r) * y_stride), out[r] = 0.0f;
        int64_t g = 0;
        for (; g + 4 <= nb; g += 4) mxfp4_group<Dot, R, 4>(x, yr, g, out);
        switch (nb - g) {
            case 3: mxfp4_group<Dot, R, 3>(x, yr, g, out); break;
            case 2: mxfp4_group<Dot, R, 2>(x, yr, g, out); break;
            case 1: mxfp4_group<Dot, R, 1>(x, yr, g, out); break;
            default: break;
        }
    }
};

// The rows of this file, on a path whose int8 primitive is Dot.
template <class Dot>
void register_iq_rows(cpu_kernels* table) {
    using T = tensor_type;
    auto at = [&](T id) -> cpu_kernels& { return table[uint32_t(id)]; };
    set_row<lattice_rows<Dot, fmt_iq2_xxs>>(at(T::IQ2_XXS));
    set_row<lattice_rows<Dot, fmt_iq2_xs>>(at(T::IQ2_XS));
    set_row<lattice_rows<Dot, fmt_iq2_s>>(at(T::IQ2_S));
    set_row<lattice_rows<Dot, fmt_iq3_xxs>>(at(T::IQ3_XXS));
    set_row<lattice_rows<Dot, fmt_iq3_s>>(at(T::IQ3_S));
    set_row<lattice_rows<Dot, fmt_iq1_s>>(at(T::IQ1_S));
    set_row<lattice_rows<Dot, fmt_iq1_m>>(at(T::IQ1_M));
    set_row<lattice_rows<Dot, fmt_tq1_0>>(at(T::TQ1_0));
    set_row<lattice_rows<Dot, fmt_tq2_0>>(at(T::TQ2_0));
    set_row<mxfp4_rows<Dot>>(at(T::MXFP4));
}

}  // namespace
}  // namespace moerun::neon_int8
