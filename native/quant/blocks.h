// Block layouts of the quantized formats, byte for byte as llama.cpp/ggml writes them in GGUF
// files (ggml-common.h). Halves are stored as raw IEEE binary16 bits (uint16_t).
//
// Notation used in the comments: a block of n weights is w[i] = d * q[i] (symmetric) or
// w[i] = d * q[i] - m / + m (affine). K-quants group 256 weights in a super-block with
// 8 or 16 sub-blocks whose scales are themselves quantized against the super-block's fp16 d.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace moerun {

constexpr int k_qk32 = 32;   // block size of the legacy formats and IQ4_NL
constexpr int k_qk_k = 256;  // super-block size of the K-quants and IQ4_XS

// ---- legacy 32-element blocks ----

struct block_q4_0 {       // w = d * (q - 8), q in 0..15
    uint16_t d;
    uint8_t qs[16];       // element j in low nibble of qs[j], element j+16 in high nibble
};
static_assert(sizeof(block_q4_0) == 18);

struct block_q4_1 {       // w = d * q + m, q in 0..15
    uint16_t d, m;
    uint8_t qs[16];
};
static_assert(sizeof(block_q4_1) == 20);

struct block_q5_0 {       // w = d * (q - 16), q in 0..31; bit 4 of element j is bit j of qh
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[16];
};
static_assert(sizeof(block_q5_0) == 22);

struct block_q5_1 {       // w = d * q + m, q in 0..31
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[16];
};
static_assert(sizeof(block_q5_1) == 24);

struct block_q8_0 {       // w = d * q, q in -127..127
    uint16_t d;
    int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34);

struct block_q8_1 {       // activations for Q4_1/Q5_1: s = d * sum(q) lets the dot absorb their min
    uint16_t d, s;
    int8_t qs[32];
};
static_assert(sizeof(block_q8_1) == 36);

struct block_iq4_nl {     // w = d * kvalues_iq4nl[q], q in 0..15, nibbles arranged as in Q4_0
    uint16_t d;
    uint8_t qs[16];
};
static_assert(sizeof(block_iq4_nl) == 18);

// ---- 256-element super-blocks ----

struct block_q2_K {       // 16 sub-blocks of 16: w = d*(sc&15)*q - dmin*(sc>>4), q in 0..3
    uint8_t scales[16];   // low nibble: scale, high nibble: min, of each sub-block
    uint8_t qs[64];       // per 128 elements: 32 bytes, element l+32*k at bits 2k of byte l
    uint16_t d, dmin;
};
static_assert(sizeof(block_q2_K) == 84);

struct block_q3_K {       // 16 sub-blocks of 16: w = d*(sc-32)*(q-4), q in 0..7, sc 6 bits
    uint8_t hmask[32];    // bit 2 of q: element j at bit j/32 of hmask[j%32]
    uint8_t qs[64];       // low 2 bits of q, packed as in Q2_K
    uint8_t scales[12];   // 16 6-bit scales: low nibbles in bytes 0..7, high 2 bits in 8..11
    uint16_t d;
};
static_assert(sizeof(block_q3_K) == 110);

struct block_q4_K {       // 8 sub-blocks of 32: w = d*sc*q - dmin*m, q in 0..15, sc/m 6 bits
    uint16_t d, dmin;
    uint8_t scales[12];   // 8 scales + 8 mins, 6 bits each (see get_scale_min_k4)
    uint8_t qs[128];      // per 64 elements: 32 bytes, first 32 in low nibbles, next 32 in high
};
static_assert(sizeof(block_q4_K) == 144);

struct block_q5_K {       // as Q4_K with q in 0..31
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];       // bit 4 of q: element j at bit j/32 of qh[j%32]
    uint8_t qs[128];
};
static_assert(sizeof(block_q5_K) == 176);

struct block_q6_K {       // 16 sub-blocks of 16: w = d*sc*(q-32), q in 0..63, sc int8
    uint8_t ql[128];      // low 4 bits
    uint8_t qh[64];       // high 2 bits
    int8_t scales[16];
    uint16_t d;
};
static_assert(sizeof(block_q6_K) == 210);

struct block_q8_K {       // activations for the K-quants and IQ4_XS; d is a plain float
    float d;
    int8_t qs[256];
    int16_t bsums[16];    // sum of each group of 16 quants, for the min terms of Q2_K/Q4_K/Q5_K
};
static_assert(sizeof(block_q8_K) == 292);

struct block_iq4_xs {     // 8 sub-blocks of 32: w = d*(ls-32)*kvalues_iq4nl[q], ls 6 bits
    uint16_t d;
    uint16_t scales_h;    // high 2 bits of sub-block ib's ls at bits 2*ib
    uint8_t scales_l[4];  // low 4 bits: sub-block ib in nibble ib%2 of byte ib/2
    uint8_t qs[128];      // per sub-block 16 bytes, nibbles as in IQ4_NL
};
static_assert(sizeof(block_iq4_xs) == 136);

// ---- lattice (codebook) formats: IQ1/IQ2/IQ3 ----
// A group of 8 (IQ1/IQ2) or 4 (IQ3) weights is one point of a fixed grid (quant/iq_grids.h), chosen
// by index, times a sub-block scale, with 7 stored sign bits per 8 weights whose 8th is their
// parity (k_iq_signs). "ls" below is a sub-block's 3- or 4-bit scale field.

struct block_iq2_xxs {    // per 32: w = d*(0.5+ls)/4 * grid2xxs[idx]*sign, ls 4 bits
    uint16_t d;
    uint16_t qs[32];      // per 32 weights two words: 4 byte-wide grid indices, then 4 x 7 sign bits | ls << 28
};
static_assert(sizeof(block_iq2_xxs) == 66);

struct block_iq2_xs {     // per 16: w = d*(0.5+ls)/4 * grid2xs[idx]*sign
    uint16_t d;
    uint16_t qs[32];      // per 8 weights: 9-bit grid index | 7 sign bits << 9
    uint8_t scales[8];    // per 32 weights: ls of the first 16 (low nibble) and the last 16 (high)
};
static_assert(sizeof(block_iq2_xs) == 74);

struct block_iq2_s {      // per 16: w = d*(0.5+ls)/4 * grid2s[idx]*sign, signs stored in full
    uint16_t d;
    uint8_t qs[64];       // 32 low 8 bits of the grid indices, then 32 sign bytes (one per 8 weights)
    uint8_t qh[8];        // per 32 weights: bits 9-8 of the 4 indices at bits 2l
    uint8_t scales[8];    // as IQ2_XS
};
static_assert(sizeof(block_iq2_s) == 82);

struct block_iq3_xxs {    // per 32: w = d*(0.5+ls)/2 * grid3xxs[idx]*sign, 4 weights per index
    uint16_t d;
    uint8_t qs[96];       // 64 grid indices, then per 32 weights a word of 4 x 7 sign bits | ls << 28
};
static_assert(sizeof(block_iq3_xxs) == 98);

struct block_iq3_s {      // per 32: w = d*(1+2*ls) * grid3s[idx]*sign, 4 weights per index
    uint16_t d;
    uint8_t qs[64];       // low 8 bits of the 64 grid indices
    uint8_t qh[8];        // per 32 weights: bit 8 of its 8 indices
    uint8_t signs[32];    // one sign bit per weight
    uint8_t scales[4];    // ls of 32-weight sub-blocks 2k (low nibble) and 2k+1 (high)
};
static_assert(sizeof(block_iq3_s) == 110);

struct block_iq1_s {      // per 32: w = d*(2*ls+1) * (grid1[idx] + delta), grid values -1, 0, 1
    uint16_t d;
    uint8_t qs[32];       // low 8 bits of the 11-bit grid indices
    uint16_t qh[8];       // per 32: 3 high index bits per group at bits 3l, ls at bits 12-14, delta sign at 15
};
static_assert(sizeof(block_iq1_s) == 50);

struct block_iq1_m {      // per 16: w = d*(2*ls+1) * (grid1[idx] + delta); d is spread over scales
    uint8_t qs[32];       // low 8 bits of the grid indices
    uint8_t qh[16];       // per 16 weights: 3 high index bits and the delta sign (bit 3) per group of 8
    uint8_t scales[8];    // 4 words: 4 x 3-bit ls each (bits 0-11), d's 16 bits in their top nibbles
};
static_assert(sizeof(block_iq1_m) == 56);

inline constexpr float k_iq1_delta = 0.125f;  // the grid offset of IQ1_S/IQ1_M, +- per group

// Sign bytes of the IQ2/IQ3 formats: 7 stored bits, bit 7 set when they hold an odd number of
// minus signs, so each group of 8 has an even number.
inline constexpr std::array<uint8_t, 128> k_iq_signs = [] {
    std::array<uint8_t, 128> t{};
    for (int i = 0; i < 128; ++i) t[size_t(i)] = uint8_t(i | ((__builtin_popcount(unsigned(i)) & 1) << 7));
    return t;
}();

// ---- ternary and FP4 formats ----

struct block_tq1_0 {      // w = d * (t - 1), t in 0..2, five (qs) or four (qh) trits per byte
    uint8_t qs[48];       // elements 0..239: byte j holds 5 trits as a base-3 fraction (see to_float)
    uint8_t qh[4];        // elements 240..255
    uint16_t d;
};
static_assert(sizeof(block_tq1_0) == 54);

struct block_tq2_0 {      // w = d * (q - 1), q in 0..2 (3 unused): 2 bits each
    uint8_t qs[64];       // per 128 elements: 32 bytes, element l+32*k at bits 2k of byte l
    uint16_t d;
};
static_assert(sizeof(block_tq2_0) == 66);

struct block_mxfp4 {      // w = 2^(e-128) * k_mxfp4_values[q] (values are E2M1 doubled)
    uint8_t e;            // E8M0 shared exponent
    uint8_t qs[16];       // nibbles arranged as in Q4_0
};
static_assert(sizeof(block_mxfp4) == 17);

// E2M1 (sign, 2 exponent bits, 1 mantissa bit) times 2, so each is an integer.
inline constexpr std::array<int8_t, 16> k_mxfp4_values = [] {
    std::array<int8_t, 16> t{};
    for (int i = 0; i < 16; ++i) {
        const int e = (i >> 1) & 3, m = i & 1;
        const int twice = e == 0 ? m : (2 + m) << (e - 1);  // subnormal 0.5*m, else (1 + m/2) * 2^(e-1)
        t[size_t(i)] = int8_t(i & 8 ? -twice : twice);
    }
    return t;
}();

// 2^(e-128) as llama.cpp decodes an E8M0 exponent for MXFP4 (half the E8M0 value; e 0 and 1
// subnormal).
static inline float e8m0_to_fp32_half(uint8_t e) {
    const uint32_t bits = e < 2 ? 0x00200000u << e : uint32_t(e - 1) << 23;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// The 16 non-linear levels of IQ4_NL and IQ4_XS.
inline constexpr int8_t k_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                               1,    13,   25,  38,  53,  69,  89,  113};

// The helpers below are `static` so that each file, the ISA-specific ones included, gets its own
// copy: one inline definition shared by files compiled with different -m flags could make the
// linker keep an AVX-512 copy for scalar callers.

// 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K scales[12] array.
static inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// All 8 scales and 8 mins of a Q4_K/Q5_K scales[12] array at once, with word operations (the
// same values as get_scale_min_k4 for j = 0..7). Bytes 0-3 hold scales 0-3 (low 6 bits) and the
// top 2 bits of scales 4-7; bytes 4-7 the same for the mins; bytes 8-11 the low 4 bits of
// scales 4-7 (low nibbles) and mins 4-7 (high nibbles).
static inline void unpack_scales_min_k4(const uint8_t* q, uint8_t sc[8], uint8_t m[8]) {
    uint32_t w[3];
    std::memcpy(w, q, 12);
    const uint32_t s03 = w[0] & 0x3f3f3f3fu, m03 = w[1] & 0x3f3f3f3fu;
    const uint32_t s47 = (w[2] & 0x0f0f0f0fu) | (((w[0] >> 6) & 0x03030303u) << 4);
    const uint32_t m47 = ((w[2] >> 4) & 0x0f0f0f0fu) | (((w[1] >> 6) & 0x03030303u) << 4);
    std::memcpy(sc, &s03, 4);
    std::memcpy(sc + 4, &s47, 4);
    std::memcpy(m, &m03, 4);
    std::memcpy(m + 4, &m47, 4);
}

// The 16 signed 6-bit scales (-32..31) of a Q3_K block.
static inline void q3k_unpack_scales(const uint8_t* s, int8_t out[16]) {
    for (int j = 0; j < 16; ++j) {
        const int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = int8_t((lo | (hi << 4)) - 32);
    }
}

}  // namespace moerun
