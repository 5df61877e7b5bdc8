// What the int8 GEMM tiles of int8_gemm.cpp (Q8_0, Q4_0) and int8_gemm_k.cpp (Q4_K, Q5_K, Q6_K)
// share: the tile's row pointers, the 16 x 4 dword transpose that interleaves 16 weight rows (row
// r in dword lane r), and the passes over the activation rows. Included only by files of this
// folder (AVX-512 flags); everything has internal linkage, like simd.h.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simd.h"

namespace moerun::avx512 {
namespace {

constexpr int k_tile_rows = 16;    // weight rows per tile: one int32 / float lane each
constexpr int k_tile_tokens = 8;   // activation rows per pass over a packed tile (registers)

// row[r] = weight row r of the tile; rows past the tile's last (r >= nw) repeat it, so the packing
// reads valid blocks and the store mask drops their lanes.
inline void tile_row_pointers(const void* w, size_t w_row, int64_t nw, const uint8_t* row[k_tile_rows]) {
    for (int r = 0; r < k_tile_rows; ++r) row[r] = static_cast<const uint8_t*>(w) + size_t(std::min<int64_t>(r, nw - 1)) * w_row;
}
inline __mmask16 tile_store_mask(int64_t nw) { return __mmask16((1u << nw) - 1); }

// A call's nw weight rows as tiles of k_tile_rows: fn(r0, rows) for each tile, its first row and
// row count (the last tile may be partial).
template <typename Fn>
inline void for_each_tile(int64_t nw, Fn&& fn) {
    for (int64_t r0 = 0; r0 < nw; r0 += k_tile_rows) fn(r0, std::min<int64_t>(k_tile_rows, nw - r0));
}

inline int32_t load_i32(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Dword j of the 16 bytes at row[r] + offset in lane r of out[j] (r < 16, j < 4): four 16-byte
// rows per register, then a 4 x 4 transpose within each 128-bit lane.
inline void transpose_16x4(const uint8_t* const* row, size_t offset, __m512i out[4]) {
    __m512i z[4];
    MOERUN_UNROLL
    for (int i = 0; i < 4; ++i) {  // 128-bit lane l of z[i]: row 4l + i
        __m512i v = _mm512_castsi128_si512(load128(row[i] + offset));
        v = _mm512_inserti32x4(v, load128(row[4 + i] + offset), 1);
        v = _mm512_inserti32x4(v, load128(row[8 + i] + offset), 2);
        z[i] = _mm512_inserti32x4(v, load128(row[12 + i] + offset), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]);  // per 128-bit lane: a0 b0 a1 b1
    const __m512i t1 = _mm512_unpackhi_epi32(z[0], z[1]);  // a2 b2 a3 b3
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]);
    const __m512i t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t2);  // a0 b0 c0 d0
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

// Runs pass(std::integral_constant<int, T>{}, i) over activation rows i..i+T-1 of nx: passes of
// k_tile_tokens rows, then one pass of the remaining 1..7, so each pass keeps its T accumulators
// in registers with T known at compile time.
template <typename Pass>
inline void for_token_passes(int64_t nx, Pass&& pass) {
    int64_t i = 0;
    for (; i + k_tile_tokens <= nx; i += k_tile_tokens) pass(std::integral_constant<int, k_tile_tokens>{}, i);
    switch (nx - i) {
        case 7: pass(std::integral_constant<int, 7>{}, i); break;
        case 6: pass(std::integral_constant<int, 6>{}, i); break;
        case 5: pass(std::integral_constant<int, 5>{}, i); break;
        case 4: pass(std::integral_constant<int, 4>{}, i); break;
        case 3: pass(std::integral_constant<int, 3>{}, i); break;
        case 2: pass(std::integral_constant<int, 2>{}, i); break;
        case 1: pass(std::integral_constant<int, 1>{}, i); break;
        default: break;
    }
    static_assert(k_tile_tokens == 8, "the switch above takes the remaining 1..7 rows");
}

}  // namespace
}  // namespace moerun::avx512
