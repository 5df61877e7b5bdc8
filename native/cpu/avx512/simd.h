// AVX-512 (F/BW/VL/DQ) helpers shared by the kernels in this folder; included only by files
// compiled with the AVX-512 flags. The 256-bit helpers of ../avx2/simd.h are reused (AVX-512 CPUs
// have AVX2); like those, everything here has internal linkage.
#pragma once

// GCC 12's AVX-512 intrinsic headers trip -Wuninitialized on their own _mm512_undefined_*
// placeholders (GCC bug 105593, fixed in GCC 13); silence it for the files of this folder.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "../avx2/simd.h"

namespace moerun::avx512 {
namespace {

using avx2::f16;
using avx2::load128;
using avx2::load256;

// The 16 lanes added as llama.cpp's GEMM (GCC's _mm512_reduce_add_ps) adds them: halves down to
// 4 lanes, then (0 + 2) + (1 + 3).
inline float hsum_gemm(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1); }
inline __m512 join_ps(float lo, float hi) {
    return _mm512_insertf32x8(_mm512_zextps256_ps512(_mm256_set1_ps(lo)), _mm256_set1_ps(hi), 1);
}

// y * sign(x) per byte (y != -128): with |x| it turns a signed x signed product into u8 x s8.
inline __m512i apply_sign(__m512i y, __m512i x) {
    return _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), _mm512_setzero_si512(), y);
}
// Pairwise int16 sums of byte products (see avx2::mul_u8_i8 for the saturation bound).
inline __m512i mul_u8_i8(__m512i u, __m512i s) { return _mm512_maddubs_epi16(u, s); }
inline __m512i mul_i8_i8(__m512i x, __m512i y) { return _mm512_maddubs_epi16(_mm512_abs_epi8(x), apply_sign(y, x)); }
// acc + int16 pair sums weighted by per-lane int16 scales, widened to int32.
inline __m512i add_scaled(__m512i acc, __m512i p16, __m512i scale16) { return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, scale16)); }

// Spreads 16 int16 sub-block scales over the 32 int16 lanes of a 64-byte product: lane L gets
// scale[first + L / per] (per = 8: four sub-blocks of 16 bytes; per = 16: two of 32).
inline __m512i spread_scales(__m512i scales16, int first, int per) {
    const __m512i iota = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
                                          12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_add_epi16(per == 8 ? _mm512_srli_epi16(iota, 3) : _mm512_srli_epi16(iota, 4), _mm512_set1_epi16(short(first)));
    return _mm512_permutexvar_epi16(idx, scales16);
}
// 16 int8 scales in memory -> int16 lanes 0..15 (a register load: building the vector through a
// stack array instead stalls on store forwarding).
inline __m512i scales_to_i16(const int8_t* s) { return _mm512_castsi256_si512(_mm256_cvtepi8_epi16(load128(s))); }

// ---- float rows: loaders, and the vector ops of the float orders (cpu/simd_orders.h) ----

// The lanes of `m` (16 elements as 16 floats), the others zero.
inline __m512 load_f32(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load_f16(const uint16_t* p, __mmask16 m) { return _mm512_maskz_cvtph_ps(m, _mm256_maskz_loadu_epi16(m, p)); }
inline __m512 load_bf16(const uint16_t* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// L = 16 lanes in one __m512.
struct vec16_ops {
    using vec = __m512;
    static constexpr int lanes = 16, width = 16;
    static vec zero() { return _mm512_setzero_ps(); }
    static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
    static vec fmadd(vec a, vec b, vec acc) { return _mm512_fmadd_ps(a, b, acc); }
    static float hsum_unrolled(const vec* s) { return hsum_gemm(s[0]); }
};
struct f32x16_ops : vec16_ops {
    using elem = float;
    static vec load(const float* p) { return load_f32(p, 0xFFFF); }
    static float scalar(float x) { return x; }
};
struct f16x16_ops : vec16_ops {
    using elem = uint16_t;
    static vec load(const uint16_t* p) { return load_f16(p, 0xFFFF); }
    static float scalar(uint16_t h) { return f16(h); }
};

}  // namespace
}  // namespace moerun::avx512
