// AVX-512 (BW + VNNI) dots of the ternary formats TQ1_0 and TQ2_0 against Q8_K, and of MXFP4
// against Q8_0, bit for bit the scalar reference (quant/reference_tq.cpp).
//
// TQ1_0, TQ2_0: a super-block's 256 weights are expanded once, for all activation rows, into four
// registers of 64 unsigned bytes t + 1 (0..2; TQ2_0's unused code 3 gives 3), in element order,
// so register p meets the 64-byte load of quants 64p..64p+63 of each row in one vpdpbusd (4 exact
// products per int32 lane). The reference's sum(t q) is sum((t + 1) q) - sum(q), the last from
// Q8_K's per-16 quant sums (bsums), subtracted lane by lane.
// Each super-block's int32 lanes, folded to 8, go to the reference's float chain 4 blocks at a
// time (avx2/block_terms.h).
// MXFP4: blocks of 32, two per register: the E2M1 values by a byte shuffle, their magnitudes
// against the activations with the negative weights' signs moved onto them (a masked subtract),
// one vpdpbusd per row. With blocks this small the horizontal sums would dominate, so 16 blocks'
// sums are reduced together into one register (unpacks and adds, two permutes at the end),
// scaled in a vector as the reference does (d_y * e * isum) and added to the row's sum one by
// one, in block order.
#include "../../quant/blocks.h"
#include "../avx2/block_terms.h"
#include "../avx2/kernels.h"  // avx2::q8_0_act_scales
#include "kernels.h"
#include "simd.h"

namespace moerun::avx512 {
namespace {

// 16-bit lanes: a in 128-bit lane 0, b in lane 1, c in 2, d in 3.
inline __m512i words_by_lane(__m128i a, __m128i b, __m128i c, __m128i d) { return join(_mm256_set_m128i(b, a), _mm256_set_m128i(d, c)); }
inline __m128i words(short w) { return _mm_set1_epi16(w); }

// TQ2_0: byte m of 32-byte chunk c holds elements 128c + 32l + m at bits 2l..2l+1. Elements
// 64p..64p+63 are chunk p / 2 shifted by 2l for l = 2 (p % 2) (its first 32) and l + 1 (its last
// 32): the chunk in both 256-bit halves, one variable 16-bit shift, one AND.
struct tq2_fmt {
    using block = block_tq2_0;
    static void expand(const block& b, __m512i w[4]) {
        const __m512i m3 = _mm512_set1_epi8(3);
        const __m512i shift[2] = {words_by_lane(words(0), words(0), words(2), words(2)), words_by_lane(words(4), words(4), words(6), words(6))};
        for (int c = 0; c < 2; ++c) {
            const __m512i chunk = _mm512_broadcast_i64x4(load256(b.qs + 32 * c));
            for (int h = 0; h < 2; ++h) w[2 * c + h] = _mm512_and_si512(_mm512_srlv_epi16(chunk, shift[h]), m3);
        }
    }
};

// TQ1_0 packs 5 trits per byte as a base-3 fraction: trit k of byte b is (3 (b 3^k mod 256)) >> 8.
// With b in the high byte of a 16-bit lane (low byte 0), mullo by 3^k leaves exactly
// (b 3^k mod 256) << 8 there, and mulhi_epu16 by 3 takes (3 b') >> 8 into the low byte
// (avx2/iq_grid.cpp's tq1_trits, 64 bytes at once). pow_lo / pow_hi: 3^k for bytes 0..7 / 8..15 of
// each 128-bit lane of v; packus puts the 64 trits back in v's byte order.
inline __m512i tq1_trits(__m512i v, __m512i pow_lo, __m512i pow_hi) {
    const __m512i zero = _mm512_setzero_si512(), three = _mm512_set1_epi16(3);
    const __m512i t_lo = _mm512_mulhi_epu16(_mm512_mullo_epi16(_mm512_unpacklo_epi8(zero, v), pow_lo), three);
    const __m512i t_hi = _mm512_mulhi_epu16(_mm512_mullo_epi16(_mm512_unpackhi_epi8(zero, v), pow_hi), three);
    return _mm512_packus_epi16(t_lo, t_hi);
}

// TQ1_0: bytes 0..31 give elements 32k + m (trit k of byte m), bytes 32..47 give 160 + 16k + m,
// and qh's 4 bytes give 240 + 4k + j. The block's 52 trit bytes (qs, then qh) in one masked load;
// each step's bytes by one dword permute, each 16-byte lane with the power of its trit:
//   step 0: qs 0..31 twice, trits 0, 1     step 2: qs 0..31 trit 4, qs 32..47 trits 0, 1
//   step 1: qs 0..31 twice, trits 2, 3     step 3: qs 32..47 trits 2, 3, 4, then qh 4 times (3^k for 240 + 4k + j)
struct tq1_fmt {
    using block = block_tq1_0;
    static void expand(const block& b, __m512i w[4]) {
        static_assert(offsetof(block, qh) == 48, "qs then qh");
        const __m512i v = _mm512_maskz_loadu_epi8((1ull << 52) - 1, b.qs);
        const __m512i lo32 = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7), v);
        const __m512i mid = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 8, 9, 10, 11), v);
        const __m512i tail = _mm512_permutexvar_epi32(_mm512_setr_epi32(8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 12, 12, 12, 12), v);
        auto same = [](short a, short b, short c, short d) { return words_by_lane(words(a), words(b), words(c), words(d)); };
        const __m512i p0 = same(1, 1, 3, 3), p1 = same(9, 9, 27, 27), p2 = same(81, 81, 1, 3);
        w[0] = tq1_trits(lo32, p0, p0);
        w[1] = tq1_trits(lo32, p1, p1);
        w[2] = tq1_trits(mid, p2, p2);
        const __m128i qh_lo = _mm_setr_epi16(1, 1, 1, 1, 3, 3, 3, 3), qh_hi = _mm_setr_epi16(9, 9, 9, 9, 27, 27, 27, 27);
        w[3] = tq1_trits(tail, words_by_lane(words(9), words(27), words(81), qh_lo), words_by_lane(words(9), words(27), words(81), qh_hi));
    }
};

inline __m256i fold_to_256(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

// R activation rows at once: each super-block is expanded once for all of them.
template <typename F, int R>
inline void ternary_rows(int64_t nb, const typename F::block* x, const uint8_t* y, size_t y_stride, float* out) {
    const block_q8_K* yr[R];
    avx2::q8k_rows<R>(y, y_stride, yr);
    auto block = [&](int64_t i, __m256i* lanes) {
        __m512i w[4];
        F::expand(x[i], w);
        for (int r = 0; r < R; ++r) {
            const block_q8_K& q = yr[r][i];
            __m512i acc = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_cvtepi16_epi32(load256(q.bsums)));
            for (int p = 0; p < 4; ++p) acc = _mm512_dpbusd_epi32(acc, w[p], load512(q.qs + 64 * p));
            lanes[r] = fold_to_256(acc);
        }
    };
    float sum[R] = {};
    // the reference's isum * (d_x * d_y) (TQ2_0 writes d_y * d_x: the same float)
    avx2::sum_block_terms<R>(nb, sum, block, [&](int64_t i, int r, float isum) { return isum * (f16(x[i].d) * yr[r][i].d); });
    for (int r = 0; r < R; ++r) out[r] = sum[r];
}

template <typename F>
void ternary_dot(int64_t n, float* s, const void* x, const void* y) {
    ternary_rows<F, 1>(n / 256, static_cast<const typename F::block*>(x), static_cast<const uint8_t*>(y), 0, s);
}

template <typename F>
void ternary_dot_n(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        ternary_rows<F, decltype(rows)::value>(n / 256, static_cast<const typename F::block*>(x), yj, ys, out);
    });
}

// ---- MXFP4: two blocks per register, 16 blocks reduced at once ----

// Blocks a, a + 1 of a row: 64 unsigned magnitudes |w| (block a's 32 in bytes 0..31, a + 1's in
// 32..63, each in element order: low nibbles, then high) and the mask of the negative ones.
// `two` false: only block a (the last of a row); the upper half then repeats it.
struct mxfp4_pair {
    __m512i magnitude;
    __mmask64 negative;
};
inline mxfp4_pair mxfp4_weights(const block_mxfp4* x, int64_t a, bool two, __m512i lut) {
    const __m256i qs = _mm256_inserti128_si256(_mm256_castsi128_si256(load128(x[a].qs)), load128(x[two ? a + 1 : a].qs), 1);
    const __m512i spread = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(qs));
    const __m512i nibbles = _mm512_and_si512(_mm512_srlv_epi64(spread, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), _mm512_set1_epi8(0x0f));
    const __m512i w = _mm512_shuffle_epi8(lut, nibbles);
    return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w)};
}

// The same blocks' activations (zeros for an absent a + 1), signs applied: products in 16 int32 lanes.
inline __m512i mxfp4_products(const mxfp4_pair& w, const block_q8_0* y, int64_t a, bool two) {
    const __m256i hi = two ? load256(y[a + 1].qs) : _mm256_setzero_si256();
    const __m512i q = join(load256(y[a].qs), hi);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.magnitude, _mm512_mask_sub_epi8(q, w.negative, _mm512_setzero_si512(), q));
}

// Per 128-bit lane: a0+a2, b0+b2, a1+a3, b1+b3 (avx2's pair_sums, 512 bits).
inline __m512i pair_sums(__m512i a, __m512i b) { return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b)); }
// From pair_sums(a, b) and pair_sums(c, d): int32 lane 4g + m is the total of 128-bit lane g of
// the m-th of a, b, c, d.
inline __m512i lane_totals(__m512i ab, __m512i cd) { return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd)); }

// e8m0_to_fp32_half (blocks.h) of the exponents of blocks i..i+count-1, lane j for block i + j
// (others 0): 16 table loads took 0.85x the time of one vpgatherdd and integer ops at m = 1.
inline __m512 mxfp4_scales(const block_mxfp4* x, int64_t i, int count) {
    alignas(64) float e[16] = {};
    for (int j = 0; j < count; ++j) e[j] = avx2::k_e8m0_half[x[i + j].e];
    return _mm512_load_ps(e);
}

// Blocks i..i+count-1 (count <= 16) of R rows: their exact int32 sums in one register per row
// (lane j: block i + j), scaled as the reference (yd * e * isum) and added to sum[r] in order.
// always_inline: the main loop's count = 16 then folds the tail's checks away.
template <int R>
[[gnu::flatten, gnu::always_inline]] inline void mxfp4_group(const block_mxfp4* x, const block_q8_0* const yr[R], const float* const yd[R], int64_t i, int count,
                                       __m512i lut, float sum[R]) {
    __m512i quad[R][2];  // lane 4g + m: 128-bit lane g of pair 4h + m's products
    MOERUN_UNROLL
    for (int h = 0; h < 2; ++h) {
        __m512i pairs[R][2];
        MOERUN_UNROLL
        for (int k2 = 0; k2 < 2; ++k2) {
            __m512i z[2][R];
            MOERUN_UNROLL
            for (int t = 0; t < 2; ++t) {
                const int a = 8 * h + 4 * k2 + 2 * t;  // first block of pair 4h + 2 k2 + t
                if (a >= count) {
                    for (int r = 0; r < R; ++r) z[t][r] = _mm512_setzero_si512();
                    continue;
                }
                const bool two = a + 1 < count;
                const mxfp4_pair w = mxfp4_weights(x, i + a, two, lut);
                for (int r = 0; r < R; ++r) z[t][r] = mxfp4_products(w, yr[r], i + a, two);
            }
            for (int r = 0; r < R; ++r) pairs[r][k2] = pair_sums(z[0][r], z[1][r]);
        }
        for (int r = 0; r < R; ++r) quad[r][h] = lane_totals(pairs[r][0], pairs[r][1]);
    }
    // block 2m + b of half h: lanes 8b + m and 8b + 4 + m of quad[h] (its pair's two 128-bit lanes)
    const __m512i first = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 16, 24, 17, 25, 18, 26, 19, 27);
    const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(4));
    const __mmask16 live = __mmask16((1u << count) - 1);
    const __m512 e = mxfp4_scales(x, i, count);
    for (int r = 0; r < R; ++r) {
        const __m512i isum = _mm512_add_epi32(_mm512_permutex2var_epi32(quad[r][0], first, quad[r][1]), _mm512_permutex2var_epi32(quad[r][0], second, quad[r][1]));
        alignas(64) float term[16];
        _mm512_store_ps(term, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(live, yd[r] + i), e), _mm512_cvtepi32_ps(isum)));
        for (int j = 0; j < count; ++j) sum[r] += term[j];
    }
}

template <int R>
inline void mxfp4_rows(int64_t nb, const block_mxfp4* x, const uint8_t* y, size_t y_stride, float* out) {
    const __m512i lut = _mm512_broadcast_i32x4(load128(k_mxfp4_values.data()));
    const block_q8_0* yr[R];
    const float* yd[R];
    for (int r = 0; r < R; ++r) {
        yr[r] = reinterpret_cast<const block_q8_0*>(y + size_t(r) * y_stride);
        yd[r] = avx2::q8_0_act_scales(yr[r], nb);
    }
    float sum[R] = {};
    int64_t i = 0;
    for (; i + 16 <= nb; i += 16) mxfp4_group<R>(x, yr, yd, i, 16, lut, sum);
    if (i < nb) mxfp4_group<R>(x, yr, yd, i, int(nb - i), lut, sum);
    for (int r = 0; r < R; ++r) out[r] = sum[r];
}

}  // namespace

void vec_dot_tq1_0_vnni(int64_t n, float* s, const void* x, const void* y) { ternary_dot<tq1_fmt>(n, s, x, y); }
void vec_dot_tq2_0_vnni(int64_t n, float* s, const void* x, const void* y) { ternary_dot<tq2_fmt>(n, s, x, y); }
void vec_dot_n_tq1_0_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    ternary_dot_n<tq1_fmt>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_tq2_0_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    ternary_dot_n<tq2_fmt>(n, s, ss, x, y, ys, ny);
}

void vec_dot_mxfp4_vnni(int64_t n, float* s, const void* x, const void* y) {
    mxfp4_rows<1>(n / 32, static_cast<const block_mxfp4*>(x), static_cast<const uint8_t*>(y), 0, s);
}
void vec_dot_n_mxfp4_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        mxfp4_rows<decltype(rows)::value>(n / 32, static_cast<const block_mxfp4*>(x), yj, ys, out);
    });
}

}  // namespace moerun::avx512
