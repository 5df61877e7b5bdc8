// The float chain of the block-scaled integer formats (the lattice, ternary and FP4 formats of
// iq_grid.cpp here, and avx512/ternary.cpp's): each block's exact int32 sum, scaled and added to
// one running float sum in block order as the scalar reference does, with the horizontal sums of
// 4 blocks done at once; and MXFP4's block scales as floats.
// Included only by files compiled with the AVX2 (or AVX-512) flags; internal linkage, like simd.h.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "../../quant/blocks.h"
#include "simd.h"

namespace moerun::avx2 {
namespace {

// The reference kernels of these formats reduce each block to one exact int32 and add a float
// term per block to one running sum, in block order. A horizontal sum per block costs as much as
// a lattice sub-block's products, so the kernels reduce blocks 4 at a time: `block(i, v)` leaves
// block i's products as 8 int32 lanes per row in v[0..R) (their total is the block's sum), and
// `term(i, r, f)` gives the float the reference adds for block i of row r, f being the block's
// sum converted to float; `terms4(i, r, f)` the same for blocks i..i+3 at once, f holding their
// sums (by default, term lane by lane). sum[r] takes the terms in block order, as the reference
// does.
// Lanes of pair_sums(a, b): a0+a2, b0+b2, a1+a3, b1+b3 per half.
inline __m256i pair_sums(__m256i a, __m256i b) { return _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b)); }
// From pair_sums(a, b) and pair_sums(c, d): the totals of a, b, c, d.
inline __m128 quad_totals(__m256i ab, __m256i cd) {
    const __m256i s = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    return _mm_cvtepi32_ps(_mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
}
// s + t0 + t1 + ... in that order, for the first n lanes of t.
inline float add_lanes_in_order(float s, __m128 t, int n = 4) {
    alignas(16) float f[4];
    _mm_store_ps(f, t);
    for (int j = 0; j < n; ++j) s += f[j];
    return s;
}

// flatten: GCC otherwise calls the block expansion (a lambda, and its prepared super-block) out
// of line, passing the lanes through memory.
template <int R, typename BlockFn, typename Terms4Fn, typename TermFn>
[[gnu::flatten]] inline void sum_block_terms(int64_t nb, float sum[R], BlockFn&& block, Terms4Fn&& terms4, TermFn&& term) {
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        __m256i a[R], b[R], ab[R];
        block(i, a);
        block(i + 1, b);
        for (int r = 0; r < R; ++r) ab[r] = pair_sums(a[r], b[r]);
        block(i + 2, a);
        block(i + 3, b);
        for (int r = 0; r < R; ++r) sum[r] = add_lanes_in_order(sum[r], terms4(i, r, quad_totals(ab[r], pair_sums(a[r], b[r]))));
    }
    for (; i < nb; ++i) {  // the last 1..3 blocks one by one
        __m256i a[R];
        block(i, a);
        for (int r = 0; r < R; ++r) sum[r] += term(i, r, float(hsum_i32(a[r])));
    }
}

template <int R, typename BlockFn, typename TermFn>
inline void sum_block_terms(int64_t nb, float sum[R], BlockFn&& block, TermFn&& term) {
    auto terms4 = [&](int64_t i, int r, __m128 f) {
        alignas(16) float v[4];
        _mm_store_ps(v, f);
        return _mm_setr_ps(term(i, r, v[0]), term(i + 1, r, v[1]), term(i + 2, r, v[2]), term(i + 3, r, v[3]));
    };
    sum_block_terms<R>(nb, sum, block, terms4, term);
}

template <int R>
inline void q8k_rows(const uint8_t* y, size_t y_stride, const block_q8_K* yr[R]) {
    for (int r = 0; r < R; ++r) yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
}

// e8m0_to_fp32_half of every exponent byte (blocks.h), one load per block. constexpr, so the
// compiler fills it: files built with -mavx2 or -mavx512* must run no initializer at load, where
// a loop vectorized for their ISA faults on CPUs without it (valgrind, which has no AVX-512,
// stopped at that initializer in ternary.cpp). Entry e is 2^(e - 128), subnormal below e = 2.
inline constexpr std::array<float, 256> k_e8m0_half = [] {
    std::array<float, 256> t{};
    for (uint32_t e = 0; e < 256; ++e) t[e] = std::bit_cast<float>(e < 2 ? 0x00200000u << e : (e - 1) << 23);
    return t;
}();
static_assert(k_e8m0_half[0] == 0x1p-128f && k_e8m0_half[1] == 0x1p-127f && k_e8m0_half[2] == 0x1p-126f && k_e8m0_half[128] == 1.0f &&
              k_e8m0_half[255] == 0x1p127f);

}  // namespace
}  // namespace moerun::avx2
