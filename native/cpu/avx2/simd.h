// AVX2 helpers shared by the kernels in this folder. Included only by files compiled with
// -mavx2 -mfma -mf16c (and by nothing else).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../simd_orders.h"  // also MOERUN_UNROLL

// Everything here has internal linkage (unnamed namespace): the same inline function compiled in
// an AVX-512 file could otherwise be the copy the linker keeps, and run on an AVX2-only CPU.
namespace moerun::avx2 {
namespace {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t to_f16(float f) { return uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// 16 bytes of packed nibbles -> 32 bytes: low nibbles in bytes 0..15, high nibbles in 16..31
// (the element order of Q4_0, Q4_1, IQ4_NL and IQ4_XS sub-blocks).
inline __m256i unpack_nibbles(const uint8_t* qs) {
    const __m128i t = load128(qs);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// Byte j = 0xFF where bit j of `bits` is set, else 0.
inline __m256i bits_to_bytes(uint32_t bits) {
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                          _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

// Pairwise u8*s8 products summed to 16 int16 lanes (lane k: bytes 2k, 2k+1). The int16 sums
// saturate beyond 32767: callers keep |u| * |s| * 2 below that (|u| <= 128, |s| <= 127 is fine).
inline __m256i mul_u8_i8(__m256i u, __m256i s) { return _mm256_maddubs_epi16(u, s); }
// Signed x signed via the sign trick: |x| * (y * sign(x)). Needs y != -128.
inline __m256i mul_i8_i8(__m256i x, __m256i y) { return _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)); }
// int16 pair sums -> 8 int32 lanes (each the sum of 4 byte products), optionally weighted.
inline __m256i sum_i16(__m256i p) { return _mm256_madd_epi16(p, _mm256_set1_epi16(1)); }
inline __m256i sum_i16_scaled(__m256i p, __m256i scale16) { return _mm256_madd_epi16(p, scale16); }
// Scale vector for a 32-byte product whose first 16 bytes belong to scale a, the rest to b.
inline __m256i scales_2x16(int a, int b) { return _mm256_set_m128i(_mm_set1_epi16(short(b)), _mm_set1_epi16(short(a))); }

// The same from int16 scales in a register: with s holding 8 int16 scales in both 128-bit
// halves, vpshufb by scale_pair_spread(c) gives scale 2c in every word of the low half and
// 2c + 1 in the high half (one instruction where scales_2x16 of two scalars took several).
inline __m256i scale_pair_spread(int c) {
    return _mm256_set_m128i(_mm_set1_epi16(short((4 * c + 2) | (4 * c + 3) << 8)), _mm_set1_epi16(short((4 * c) | (4 * c + 1) << 8)));
}

// q3k_unpack_scales (quant/blocks.h) in a register, as 16 int16: scale j = (low nibble j | high
// bits j << 4) - 32, the low nibbles of bytes 0-7 (j < 8) then their high nibbles, the high bits
// 2-bit fields of bytes 8-11 (field j / 4 of byte 8 + j % 4). Reads the 12 bytes only.
inline __m256i q3k_scales16(const uint8_t* s) {
    const __m128i lo8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s));
    const __m128i lo = _mm_and_si128(_mm_unpacklo_epi64(lo8, _mm_srli_epi16(lo8, 4)), _mm_set1_epi8(0x0F));
    int32_t h4;
    std::memcpy(&h4, s + 8, 4);
    const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(h4), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
    const __m128i sc = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
    return _mm256_cvtepi8_epi16(sc);
}

// The 8 scales and 8 mins of a Q4_K/Q5_K super-block (12 bytes of 6-bit fields), unpacked as
// unpack_scales_min_k4 does but in a register (a stack array read back at once stalls on store
// forwarding): dwords sc0-3, m0-3, sc4-7, m4-7, so scale j is byte k_scale_byte[j] and min j byte
// k_min_byte[j], for vpshufb to spread. Reads 16 bytes: the 4 after the scales are quants.
constexpr int k_scale_byte[8] = {0, 1, 2, 3, 8, 9, 10, 11};
constexpr int k_min_byte[8] = {4, 5, 6, 7, 12, 13, 14, 15};
inline __m128i scales_mins_k4(const uint8_t* scales) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales));  // dwords u0, u1, u2
    // u0, u1, u2 & 0x0F.., (u2 >> 4) & 0x0F.. | 0, 0, (u0 >> 6) << 4, (u1 >> 6) << 4 (per byte)
    const __m128i x = _mm_srlv_epi32(_mm_shuffle_epi32(v, 0xA4), _mm_setr_epi32(0, 0, 0, 4));
    const __m128i high = _mm_srli_epi32(_mm_and_si128(_mm_shuffle_epi32(v, 0x44), _mm_setr_epi32(0, 0, int(0xC0C0C0C0), int(0xC0C0C0C0))), 2);
    return _mm_or_si128(_mm_and_si128(x, _mm_setr_epi32(0x3F3F3F3F, 0x3F3F3F3F, 0x0F0F0F0F, 0x0F0F0F0F)), high);
}
// A vpshufb control whose int16 lanes (per 128 bits) take byte b of the lane, zero-extended.
inline int32_t word_pair_of_byte(int b) { return int32_t(uint32_t(b) | 0x8000u | uint32_t(b) << 16 | 0x80000000u); }

// 8 floats -> 8 int32 rounded half away from zero (C's roundf), exact for |x| < 2^23.
inline __m256i round_away(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(x, t));
    const __m256 one = _mm256_or_ps(_mm256_and_ps(x, sign), _mm256_set1_ps(1.0f));
    const __m256 up = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one);
    return _mm256_cvttps_epi32(_mm256_add_ps(t, up));
}

// 4 x 8 int32 (in [-128, 127]) -> 32 int8 in order.
inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b);  // a0-3 b0-3 | a4-7 b4-7
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd);  // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Multi-row dots (vec_dot_n): runs body(std::integral_constant<int, R>, j) over the activation
// rows j..j+R-1, in groups of `G` and then one group of the remaining 1..G-1 rows, so the kernel
// body can keep R rows' accumulators in registers with R known at compile time.
template <int G, typename Body>
inline void for_row_groups(int64_t ny, Body&& body) {
    int64_t j = 0;
    for (; j + G <= ny; j += G) body(std::integral_constant<int, G>{}, j);
    const int64_t rest = ny - j;
    if constexpr (G > 3) if (rest == 3) body(std::integral_constant<int, 3>{}, j);
    if constexpr (G > 2) if (rest == 2) body(std::integral_constant<int, 2>{}, j);
    if constexpr (G > 1) if (rest == 1) body(std::integral_constant<int, 1>{}, j);
    static_assert(G >= 1 && G <= 4, "groups of 1 to 4 rows");
}

// vec_dot_n through a kernel for R activation rows at a time: rows_fn(std::integral_constant<int,
// R>, y_j, out) writes the dots with rows y_j, y_j + y_stride, ... into out[0..R), which land in
// s[(j + r) * s_stride]. With Big > 0, groups of Big rows go first (kernels with registers for
// more rows), then groups of up to G.
template <int G, int Big = 0, typename RowsFn>
inline void dot_n_rows(int64_t ny, float* s, int64_t s_stride, const void* y, size_t y_stride, RowsFn&& rows_fn) {
    const uint8_t* yb = static_cast<const uint8_t*>(y);
    auto group = [&](auto rows, int64_t j) {
        constexpr int R = decltype(rows)::value;
        float out[R];
        rows_fn(rows, yb + size_t(j) * y_stride, out);
        for (int r = 0; r < R; ++r) s[(j + r) * s_stride] = out[r];
    };
    int64_t j0 = 0;
    if constexpr (Big > 0) {
        for (; j0 + Big <= ny; j0 += Big) group(std::integral_constant<int, Big>{}, j0);
    }
    for_row_groups<G>(ny - j0, [&](auto rows, int64_t j) { group(rows, j0 + j); });
}

inline float bf16_to_f32(uint16_t h) { return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int(uint32_t(h) << 16)))); }

// ---- float rows: loaders, and the vector ops of the float orders (cpu/simd_orders.h) ----

// 8 elements as 8 floats.
inline __m256 load_f32(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(load128(p)); }
inline __m256 load_bf16(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p)), 16));
}
// The first `count` (< 8) elements, zero-padded.
template <typename E, __m256 (*load)(const E*)>
inline __m256 load_partial(const E* p, int64_t count) {
    E tmp[8] = {};
    std::memcpy(tmp, p, size_t(count) * sizeof(E));
    return load(tmp);
}

// L = 8 lanes in one __m256.
struct vec8_ops {
    using vec = __m256;
    static constexpr int lanes = 8, width = 8;
    static vec zero() { return _mm256_setzero_ps(); }
    static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
    static vec fmadd(vec a, vec b, vec acc) { return _mm256_fmadd_ps(a, b, acc); }
    // As llama.cpp's AVX vector dot reduces: halves added, then two horizontal adds (not hsum's tree).
    static float hsum_unrolled(const vec* s) {
        const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s[0]), _mm256_extractf128_ps(s[0], 1));
        const __m128 t1 = _mm_hadd_ps(t0, t0);
        return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
    }
};
struct f32x8_ops : vec8_ops {
    using elem = float;
    static vec load(const float* p) { return load_f32(p); }
    static float scalar(float x) { return x; }
};
struct f16x8_ops : vec8_ops {
    using elem = uint16_t;
    static vec load(const uint16_t* p) { return load_f16(p); }
    static float scalar(uint16_t h) { return f16(h); }
};

}  // namespace
}  // namespace moerun::avx2
