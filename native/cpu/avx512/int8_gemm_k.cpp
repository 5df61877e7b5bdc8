// Q4_K, Q5_K and Q6_K weights against Q8_K activations (AVX512_VNNI; on the amx path, AMX tiles for
// prompt batches: the end of this file), in the scalar reference's order (quant/reference_k.cpp),
// so vec_dot, vec_dot_n and int8_tile equal ref::vec_dot_q4_k / q5_k / q6_k bit for bit: per
// super-block exact int32 sums, then the reference's float steps,
//   Q4_K, Q5_K: sum += (d * d_y) * float(isum) - (dmin * d_y) * float(msum)
//   Q6_K:       sum += (d * d_y) * float(isum)
// as separate multiplies and adds (this tree builds with -ffp-contract=off).
//
// int8_tile (prompt processing) works as the Q8_0/Q4_0 tile of int8_gemm.cpp: a tile's 16 rows are
// unpacked once per call into an interleaved copy (packed_q45_k, packed_q6_k: 5.2 / 5.7 KB per
// super-block), quants 4g..4g+3 of row r in dword lane r of register g, so one vpdpbusd takes 4
// quants of all 16 rows against 4 activation bytes broadcast from memory. The quants are
// unsigned (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63: no bias). Per sub-block and activation row the
// 16 dot lanes are multiplied by the rows' scales (vpmulld) and added; the mins (Q4_K, Q5_K) and
// Q6_K's -32 offset go through the activation's 16-element block sums, one vpdpwssd per pair of
// them against the rows' (min, min) or (-32 sc, -32 sc) int16 pairs. A super-block and a token
// then cost 64 vpdpbusd, 8 (Q6_K 16) vpmulld and 8 vpdpwssd for 4,096 products.
//
// With few activation rows (decode, small expert batches) packing costs more than it saves: the
// tile then runs each weight row in place (dot_rows below, the kernel of vec_dot and vec_dot_n).
#include "../../quant/blocks.h"
#include "../avx2/kernels.h"  // avx2::from_float_q8_k
#include "../avx2/simd.h"     // avx2::dot_n_rows
#include "amx.h"
#include "int8_gemm.h"
#include "kernels.h"
#include "simd.h"

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

namespace moerun::avx512 {

namespace {

inline __m512i bcast_i32(const void* p) { return _mm512_set1_epi32(load_i32(p)); }
inline __m512i bytes(int v) { return _mm512_set1_epi8(char(v)); }

// The bits of every byte moved from position `from` up or down to `to`, then masked by `mask`
// (16-bit shifts: the mask drops the bits that cross into the neighbouring byte).
inline __m512i move_bits(__m512i v, int from, int to, int mask) {
    const __m512i s = from < to ? _mm512_slli_epi16(v, unsigned(to - from)) : from > to ? _mm512_srli_epi16(v, unsigned(from - to)) : v;
    return _mm512_and_si512(s, bytes(mask));
}

// ---- one weight row in place (vec_dot, vec_dot_n, and the tile for few activation rows) ----
//
// Per super-block and activation row the integer lanes stay in registers; the horizontal sums and
// the reference's float steps are taken for a group of super-blocks at once (Q4_K/Q5_K: 2, whose
// isum and msum fill 4 lanes; Q6_K: 4), then added to the row's sum one super-block at a time, in
// the reference's order.
//
// Every helper down to dot_rows is forced inline (MOERUN_ALWAYS_INLINE): GCC kept
// chunk_pair_scales (one vpshufb), mins_for_bsums and super_block_q6_k out of line, so each call
// spilled the live vector registers. Inlined, one thread's decode (bench_matmul --threads 1 --m 1
// --n 256 --k 2048, in cache, Zen 5, 3 alternating runs) went Q4_K 99-101 -> 123-126 GFLOP/s,
// Q5_K 83-84 -> 95-106, Q6_K 107-110 -> 121-130.

// Lane j = the sum of the 16 int32 lanes of a, b, c, d (j = 0, 1, 2, 3): 13 operations for 4 sums.
MOERUN_ALWAYS_INLINE inline __m128i sum_lanes_4(__m512i a, __m512i b, __m512i c, __m512i d) {
    const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));  // per 128 bits: a b a b
    const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    const __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));  // a b c d
    const __m256i half = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
}

// sum += lane 0, lane 1, ..., lane N - 1 of v, in that order.
template <int N>
MOERUN_ALWAYS_INLINE inline float add_lanes_in_order(float sum, __m128 v) {
    sum += _mm_cvtss_f32(v);
    if constexpr (N > 1) sum += _mm_cvtss_f32(_mm_movehdup_ps(v));
    if constexpr (N > 2) sum += _mm_cvtss_f32(_mm_movehl_ps(v, v));
    if constexpr (N > 3) sum += _mm_cvtss_f32(_mm_shuffle_ps(v, v, 3));
    return sum;
}

// vpshufb control with both int16 halves of dword j set to byte idx[j] of the 128-bit lane,
// zero-extended.
MOERUN_ALWAYS_INLINE inline __m512i dword_words_of_bytes(const int (&idx)[16]) {
    auto pair = avx2::word_pair_of_byte;
    return _mm512_setr_epi32(pair(idx[0]), pair(idx[1]), pair(idx[2]), pair(idx[3]), pair(idx[4]), pair(idx[5]), pair(idx[6]), pair(idx[7]),
                             pair(idx[8]), pair(idx[9]), pair(idx[10]), pair(idx[11]), pair(idx[12]), pair(idx[13]), pair(idx[14]), pair(idx[15]));
}

// The int16 scales against packs_epi32(dots of chunk 2h, dots of chunk 2h + 1), which holds per
// 128-bit lane L 4 dots of sub-block 4h + (L < 2 ? 0 : 1), then 4 of sub-block 4h + 2 + (L < 2 ? 0 : 1).
MOERUN_ALWAYS_INLINE inline __m512i chunk_pair_scales(__m512i sm, int h) {
    const int (&s)[8] = avx2::k_scale_byte;
    const int a = s[4 * h], b = s[4 * h + 1], c = s[4 * h + 2], d = s[4 * h + 3];
    return _mm512_shuffle_epi8(sm, dword_words_of_bytes({a, a, c, c, a, a, c, c, b, b, d, d, b, b, d, d}));
}

// Min j in int16 lanes 2j and 2j + 1, against the block sums 2j and 2j + 1 (256 bits).
MOERUN_ALWAYS_INLINE inline __m256i mins_for_bsums(__m512i sm) {
    const int (&m)[8] = avx2::k_min_byte;
    return _mm512_castsi512_si256(_mm512_shuffle_epi8(sm, dword_words_of_bytes({m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], 0, 0, 0, 0, 0, 0, 0, 0})));
}

// Q4_K / Q5_K chunk c of a super-block (64 quants, sub-blocks 2c and 2c + 1): sub-block 2c (the
// low nibbles) in the low 256 bits, 2c + 1 (the high nibbles) in the high 256 bits.
template <typename B>
MOERUN_ALWAYS_INLINE inline __m512i q45_chunk(const B& b, int c) {
    const __m512i q = _mm512_broadcast_i64x4(load256(b.qs + 32 * c));
    const __m512i nib = _mm512_and_si512(_mm512_srlv_epi64(q, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)), bytes(0xF));
    if constexpr (std::is_same_v<B, block_q4_K>) {
        return nib;
    } else {  // Q5_K: qh bit 2c -> bit 4 of the low group, bit 2c + 1 -> bit 4 of the high group (a rotate
              // within each qword: the bits that wrap around are masked off)
        const __m512i qh = _mm512_broadcast_i64x4(load256(b.qh));
        const __m512i h = _mm512_rolv_epi64(qh, _mm512_setr_epi64(4 - 2 * c, 4 - 2 * c, 4 - 2 * c, 4 - 2 * c, (67 - 2 * c) % 64,
                                                                  (67 - 2 * c) % 64, (67 - 2 * c) % 64, (67 - 2 * c) % 64));
        return _mm512_ternarylogic_epi32(nib, h, bytes(0x10), 0xF8);  // nib | (h & 0x10)
    }
}

// One Q4_K/Q5_K super-block against T activation rows: int32 lanes summing to isum (the scaled
// quant products) and msum (sum_j m_j * (bsums[2j] + bsums[2j + 1])) per row. Each chunk's 4-quant
// dots (vpdpbusd: at most 4 * 31 * 128, an int16) are packed to int16 two chunks at a time and
// weighted by the sub-block scales into int32 lanes (vpdpwssd).
template <int T, typename B>
MOERUN_ALWAYS_INLINE inline void super_block_q45_k(const B& w, const block_q8_K* const* xq, int64_t i, __m512i isum[T], __m512i msum[T]) {
    const __m512i sm = _mm512_broadcast_i32x4(avx2::scales_mins_k4(w.scales));  // in every 128-bit lane
    const __m512i s01 = chunk_pair_scales(sm, 0), s23 = chunk_pair_scales(sm, 1);
    __m512i dots[T][4];
    MOERUN_UNROLL
    for (int c = 0; c < 4; ++c) {
        const __m512i q = q45_chunk(w, c);
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) dots[t][c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, load512(xq[t][i].qs + 64 * c));
    }
    const __m256i m16 = mins_for_bsums(sm);
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        isum[t] = _mm512_dpwssd_epi32(_mm512_madd_epi16(_mm512_packs_epi32(dots[t][0], dots[t][1]), s01),
                                      _mm512_packs_epi32(dots[t][2], dots[t][3]), s23);
        msum[t] = _mm512_zextsi256_si512(_mm256_madd_epi16(load256(xq[t][i].bsums), m16));
    }
}

// G (1 or 2) Q4_K/Q5_K super-blocks from i against T activation rows, added to sum[t]:
//   sum += (d * d_y) * float(isum) - (dmin * d_y) * float(msum), super-block by super-block.
template <int G, int T, typename B>
MOERUN_ALWAYS_INLINE inline void group_q45_k(const B* w, const block_q8_K* const* xq, int64_t i, float sum[T]) {
    static_assert(G == 1 || G == 2);
    __m512i isum[G][T], msum[G][T];
    MOERUN_UNROLL
    for (int g = 0; g < G; ++g) super_block_q45_k<T>(w[i + g], xq, i + g, isum[g], msum[g]);
    static_assert(offsetof(B, dmin) == offsetof(B, d) + 2);
    uint64_t d_dmin = uint32_t(load_i32(&w[i].d));
    if constexpr (G == 2) d_dmin |= uint64_t(uint32_t(load_i32(&w[i + 1].d))) << 32;
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(d_dmin)));  // d, dmin of super-blocks i, i + 1
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        const __m512i zero = _mm512_setzero_si512();
        const __m128i sums = sum_lanes_4(isum[0][t], msum[0][t], G == 2 ? isum[G - 1][t] : zero, G == 2 ? msum[G - 1][t] : zero);
        const __m128 dy = _mm_setr_ps(xq[t][i].d, xq[t][i].d, xq[t][i + G - 1].d, xq[t][i + G - 1].d);
        // lanes 2g, 2g + 1: (d * d_y) * float(isum), (dmin * d_y) * float(msum); then their difference
        const __m128 p = _mm_mul_ps(_mm_mul_ps(d, dy), _mm_cvtepi32_ps(sums));
        const __m128 v = _mm_sub_ps(p, _mm_movehdup_ps(p));  // lanes 0 and 2
        sum[t] += _mm_cvtss_f32(v);
        if constexpr (G == 2) sum[t] += _mm_cvtss_f32(_mm_movehl_ps(v, v));
    }
}

// One Q6_K super-block against T activation rows: int32 lanes summing to isum - 32 sum_j sc_j
// bsums_j per row. The unsigned quants 0..63, 64 per register, as int16 pairs (at most 63 * 128 *
// 2) weighted by the int8 scales; the -32 through the block sums.
template <int T>
MOERUN_ALWAYS_INLINE inline void super_block_q6_k(const block_q6_K& w, const block_q8_K* const* xq, int64_t i, __m512i isum[T]) {
    const __m512i sc16 = scales_to_i16(w.scales);
    __m512i acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_si512();
    const __m512i low4 = bytes(0x0F), bits45 = bytes(0x30);
    MOERUN_UNROLL
    for (int h = 0; h < 2; ++h) {
        // Element 128h + 32p + l: low 4 bits in nibble p / 2 of ql[64h + 32(p % 2) + l], high 2
        // bits at bit 2p of qh[32h + l]. ql's 64 bytes hold quants 0..63 (low nibbles) and
        // 64..127 (high); qh's bits go to bit 4 by a shift per 256-bit half.
        const __m512i ql = load512(w.ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(load256(w.qh + 32 * h));
        const __m512i h01 = _mm512_and_si512(_mm512_sllv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2)), bits45);
        const __m512i h23 = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2)), bits45);
        const __m512i q01 = _mm512_ternarylogic_epi32(ql, low4, h01, 0xEA);                           // (ql & 0x0F) | h01
        const __m512i q23 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), low4, h23, 0xEA);  // (ql >> 4 & 0x0F) | h23
        const __m512i s01 = spread_scales(sc16, 8 * h, 8), s23 = spread_scales(sc16, 8 * h + 4, 8);
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            acc[t] = _mm512_dpwssd_epi32(acc[t], _mm512_maddubs_epi16(q01, load512(xq[t][i].qs + 128 * h)), s01);
            acc[t] = _mm512_dpwssd_epi32(acc[t], _mm512_maddubs_epi16(q23, load512(xq[t][i].qs + 128 * h + 64)), s23);
        }
    }
    const __m256i sc = _mm512_castsi512_si256(sc16);
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        // 32 * sum_j sc_j * bsum_j in 8 lanes
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(load256(xq[t][i].bsums), sc), 5);
        isum[t] = _mm512_sub_epi32(acc[t], _mm512_zextsi256_si512(offset));
    }
}

// G (1 to 4) Q6_K super-blocks from i against T activation rows, added to sum[t]:
//   sum += (d * d_y) * float(isum), super-block by super-block.
template <int G, int T>
MOERUN_ALWAYS_INLINE inline void group_q6_k(const block_q6_K* w, const block_q8_K* const* xq, int64_t i, float sum[T]) {
    static_assert(G >= 1 && G <= 4);
    __m512i isum[4][T];
    MOERUN_UNROLL
    for (int g = 0; g < G; ++g) super_block_q6_k<T>(w[i + g], xq, i + g, isum[g]);
    uint64_t d_bits = 0;  // the G half-precision d, lane g in bits 16g..
    MOERUN_UNROLL
    for (int g = 0; g < G; ++g) d_bits |= uint64_t(w[i + g].d) << (16 * g);
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(d_bits)));
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        const __m512i zero = _mm512_setzero_si512();
        const __m128i sums = sum_lanes_4(isum[0][t], G > 1 ? isum[1][t] : zero, G > 2 ? isum[2][t] : zero, G > 3 ? isum[3][t] : zero);
        alignas(16) float dy[4] = {0, 0, 0, 0};
        MOERUN_UNROLL
        for (int g = 0; g < G; ++g) dy[g] = xq[t][i + g].d;
        const __m128 p = _mm_mul_ps(_mm_mul_ps(d, _mm_load_ps(dy)), _mm_cvtepi32_ps(sums));
        sum[t] = add_lanes_in_order<G>(sum[t], p);
    }
}

// T activation rows (x, x + x_row, ...) against one weight row: out[t]. Super-blocks go by groups
// of G (Q4_K/Q5_K: 2, Q6_K: 4), the rest in one smaller group.
template <int T, typename B>
MOERUN_ALWAYS_INLINE inline void dot_rows(int64_t nb, const B* w, const uint8_t* x, size_t x_row, float* out) {
    const block_q8_K* xq[T];
    float sum[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        xq[t] = reinterpret_cast<const block_q8_K*>(x + size_t(t) * x_row);
        sum[t] = 0;
    }
    int64_t i = 0;
    if constexpr (std::is_same_v<B, block_q6_K>) {
        for (; i + 4 <= nb; i += 4) group_q6_k<4, T>(w, xq, i, sum);
        switch (nb - i) {
            case 3: group_q6_k<3, T>(w, xq, i, sum); break;
            case 2: group_q6_k<2, T>(w, xq, i, sum); break;
            case 1: group_q6_k<1, T>(w, xq, i, sum); break;
            default: break;
        }
    } else {
        for (; i + 2 <= nb; i += 2) group_q45_k<2, T>(w, xq, i, sum);
        if (i < nb) group_q45_k<1, T>(w, xq, i, sum);
    }
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) out[t] = sum[t];
}

// ---- packed tiles ----

// One super-block of a tile's 16 rows, row r in lane r of every register.
struct packed_q45_k {
    __m512i q[64];      // quants 4g..4g+3 (0..15 or 0..31) in register g
    __m512i scale[8];   // sub-block j's 6-bit scale, int32
    __m512i min[8];     // sub-block j's 6-bit min twice, as an int16 pair (against bsums 2j, 2j+1)
    __m512 d, dmin;
};
struct packed_q6_k {
    __m512i q[64];       // quants 4g..4g+3 (0..63) in register g
    __m512i scale[16];   // sub-block j's int8 scale, int32
    __m512i offset[8];   // (-32 sc_2k, -32 sc_2k+1) as an int16 pair (against bsums 2k, 2k+1)
    __m512 d;
};
template <typename B>
using packed_k = std::conditional_t<std::is_same_v<B, block_q6_K>, packed_q6_k, packed_q45_k>;

// Where a Q4_K/Q5_K tile's 16 rows come from, as dwords of one super-block in lanes:
// dwords(i, out) puts dwords i..i+3 of each row's block b in out[0..4), row r in lane r.
struct rows_in_place {  // the file's layout: a 16 x 4 transpose per call
    const uint8_t* const* row;  // the rows' first bytes
    template <typename B>
    MOERUN_ALWAYS_INLINE void dwords(int64_t b, int i, __m512i out[4]) const {
        transpose_16x4(row, size_t(b) * sizeof(B) + 4 * size_t(i), out);
    }
};
struct rows_interleaved {  // interleaved rows (cpu/interleave.h): already in lanes
    const uint8_t* group;  // the group's first byte
    template <typename B>
    MOERUN_ALWAYS_INLINE void dwords(int64_t b, int i, __m512i out[4]) const {
        const uint8_t* p = group + size_t(b) * sizeof(B) * k_tile_rows + 64 * size_t(i);
        MOERUN_UNROLL
        for (int j = 0; j < 4; ++j) out[j] = _mm512_loadu_si512(p + 64 * j);
    }
};

// The block head's dwords 0..3 (d | dmin << 16, then scales[0..3], [4..7], [8..11]) of 16 rows in
// lanes, unpacked as unpack_scales_min_k4 does: d and dmin as floats, scales[j] and mins[j] (j < 8)
// as int32 in byte j % 4 of s03/m03 (j < 4) or s47/m47.
struct q45_k_head {
    __m512 d, dmin;
    __m512i s03, m03, s47, m47;
};
MOERUN_ALWAYS_INLINE inline q45_k_head unpack_q45_k_head(const __m512i head[4]) {
    q45_k_head h;
    h.d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head[0]));
    h.dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(head[0], 16)));
    const __m512i low6 = bytes(0x3F), low4 = bytes(0xF);
    h.s03 = _mm512_and_si512(head[1], low6);
    h.m03 = _mm512_and_si512(head[2], low6);
    h.s47 = _mm512_or_si512(_mm512_and_si512(head[3], low4), move_bits(head[1], 6, 4, 0x30));
    h.m47 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(head[3], 4), low4), move_bits(head[2], 6, 4, 0x30));
    return h;
}
// Byte j % 4 of v's dwords (scale or min j of q45_k_head), as int32.
MOERUN_ALWAYS_INLINE inline __m512i head_byte(__m512i v, int j) {
    return _mm512_and_si512(_mm512_srli_epi32(v, unsigned(8 * (j % 4))), _mm512_set1_epi32(0xFF));
}

// Packs super-block b of the tile's rows from `src` (rows_in_place or rows_interleaved).
template <typename B, typename Source>
inline void pack_super_block(const Source& src, int64_t b, packed_q45_k* out) {
    static_assert(offsetof(B, d) == 0 && offsetof(B, dmin) == 2 && offsetof(B, scales) == 4);
    __m512i head[4];
    src.template dwords<B>(b, 0, head);
    const q45_k_head hd = unpack_q45_k_head(head);
    out->d = hd.d;
    out->dmin = hd.dmin;
    MOERUN_UNROLL
    for (int j = 0; j < 8; ++j) {
        out->scale[j] = head_byte(j < 4 ? hd.s03 : hd.s47, j);
        const __m512i m = head_byte(j < 4 ? hd.m03 : hd.m47, j);
        out->min[j] = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
    }
    const __m512i low4 = bytes(0xF);
    // Q5_K: dword j of qh (bytes 4j..4j+3, elements 32k + 4j.. at bit k) in h[j]
    __m512i h[8];
    if constexpr (std::is_same_v<B, block_q5_K>) {
        src.template dwords<B>(b, offsetof(B, qh) / 4, h);
        src.template dwords<B>(b, offsetof(B, qh) / 4 + 4, h + 4);
    }
    MOERUN_UNROLL
    for (int c = 0; c < 4; ++c) {  // 64 elements: byte l of qs[32c..] holds 64c + l and 64c + 32 + l
        __m512i v[8];
        src.template dwords<B>(b, offsetof(B, qs) / 4 + 8 * c, v);
        src.template dwords<B>(b, offsetof(B, qs) / 4 + 8 * c + 4, v + 4);
        MOERUN_UNROLL
        for (int j = 0; j < 8; ++j) {
            __m512i lo = _mm512_and_si512(v[j], low4), hi = _mm512_and_si512(_mm512_srli_epi16(v[j], 4), low4);
            if constexpr (std::is_same_v<B, block_q5_K>) {
                lo = _mm512_or_si512(lo, move_bits(h[j], 2 * c, 4, 0x10));
                hi = _mm512_or_si512(hi, move_bits(h[j], 2 * c + 1, 4, 0x10));
            }
            out->q[16 * c + j] = lo;
            out->q[16 * c + 8 + j] = hi;
        }
    }
}

template <typename B>
inline void pack_super_block(const rows_in_place& src, int64_t b, packed_q6_k* out) {
    const uint8_t* const* row = src.row;
    const size_t at = size_t(b) * sizeof(block_q6_K);
    __m512i s[4];  // scales 4k..4k+3 in s[k]
    transpose_16x4(row, at + offsetof(block_q6_K, scales), s);
    __m512i sc[16];
    MOERUN_UNROLL
    for (int j = 0; j < 16; ++j) sc[j] = _mm512_srai_epi32(_mm512_slli_epi32(s[j / 4], unsigned(24 - 8 * (j % 4))), 24);
    MOERUN_UNROLL
    for (int j = 0; j < 16; ++j) out->scale[j] = sc[j];
    const __m512i low16 = _mm512_set1_epi32(0xFFFF);
    MOERUN_UNROLL
    for (int k = 0; k < 8; ++k) {  // -32 * sc as int16 (|.| <= 4096)
        const __m512i lo = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sc[2 * k], 5));
        const __m512i hi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sc[2 * k + 1], 5));
        out->offset[k] = _mm512_or_si512(_mm512_and_si512(lo, low16), _mm512_slli_epi32(hi, 16));
    }
    // d ends the block: a 16-byte load there would read past the last row, so 2-byte moves.
    alignas(32) uint16_t d[k_tile_rows];
    for (int r = 0; r < k_tile_rows; ++r) std::memcpy(&d[r], row[r] + at + offsetof(block_q6_K, d), 2);
    out->d = _mm512_cvtph_ps(load256(d));
    // Per half h (128 elements), element 128h + 32p + l (p < 4, l < 32): low bits in nibble p / 2
    // of ql[64h + 32(p % 2) + l], high bits at bit 2p of qh[32h + l].
    const __m512i low4 = bytes(0xF);
    MOERUN_UNROLL
    for (int h = 0; h < 2; ++h) {
        __m512i qh[8];
        transpose_16x4(row, at + offsetof(block_q6_K, qh) + 32 * h, qh);
        transpose_16x4(row, at + offsetof(block_q6_K, qh) + 32 * h + 16, qh + 4);
        MOERUN_UNROLL
        for (int p = 0; p < 2; ++p) {
            __m512i ql[8];
            transpose_16x4(row, at + offsetof(block_q6_K, ql) + 64 * h + 32 * p, ql);
            transpose_16x4(row, at + offsetof(block_q6_K, ql) + 64 * h + 32 * p + 16, ql + 4);
            MOERUN_UNROLL
            for (int j = 0; j < 8; ++j) {
                out->q[32 * h + 8 * p + j] = _mm512_or_si512(_mm512_and_si512(ql[j], low4), move_bits(qh[j], 2 * p, 4, 0x30));
                out->q[32 * h + 8 * (p + 2) + j] =
                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql[j], 4), low4), move_bits(qh[j], 2 * (p + 2), 4, 0x30));
            }
        }
    }
}

// Sub-block j's dots (G registers of 4 quants, from register first) for each activation row,
// multiplied by the rows' scales and added to isum[t].
template <int T, int G>
inline void add_sub_block(const __m512i* q, __m512i scale, const block_q8_K* const* xq, int64_t b, int first, __m512i* isum) {
    __m512i w[G];
    MOERUN_UNROLL
    for (int g = 0; g < G; ++g) w[g] = q[first + g];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        const int8_t* a = xq[t][b].qs + 4 * first;
        __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], bcast_i32(a));
        MOERUN_UNROLL
        for (int g = 1; g < G; ++g) dot = _mm512_dpbusd_epi32(dot, w[g], bcast_i32(a + 4 * g));
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dot, scale));
    }
}

// vpdpwssd of the 8 int16-pair registers p against the activation's bsums, pair k against k.
inline __m512i dot_bsums(__m512i acc, const __m512i* p, const int16_t* bsums) {
    MOERUN_UNROLL
    for (int k = 0; k < 8; ++k) acc = _mm512_dpwssd_epi32(acc, p[k], bcast_i32(bsums + 2 * k));
    return acc;
}

// The reference's float step of a Q4_K/Q5_K super-block, lane by lane (16 rows):
//   acc + ((d * d_y) * float(isum) - (dmin * d_y) * float(msum))
MOERUN_ALWAYS_INLINE inline __m512 step_q45_k(__m512 acc, __m512 d, __m512 dmin, float d_y, __m512i isum, __m512i msum) {
    const __m512 dy = _mm512_set1_ps(d_y);
    const __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(isum)), _mm512_mul_ps(_mm512_mul_ps(dmin, dy), _mm512_cvtepi32_ps(msum)));
    return _mm512_add_ps(acc, v);
}

// T activation rows against a packed tile: y[t * y_stride + r] for the rows in `store`.
template <int T, typename B>
inline void tile_tokens(const packed_k<B>* pw, int64_t nb, const uint8_t* x, size_t x_row, float* y, int64_t y_stride, __mmask16 store) {
    const block_q8_K* xq[T];
    __m512 acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        xq[t] = reinterpret_cast<const block_q8_K*>(x + size_t(t) * x_row);
        acc[t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; ++b) {
        const packed_k<B>& p = pw[b];
        __m512i isum[T];
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
        if constexpr (std::is_same_v<B, block_q6_K>) {
            for (int j = 0; j < 16; ++j) add_sub_block<T, 4>(p.q, p.scale[j], xq, b, 4 * j, isum);
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) {
                isum[t] = dot_bsums(isum[t], p.offset, xq[t][b].bsums);
                acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_mul_ps(p.d, _mm512_set1_ps(xq[t][b].d)), _mm512_cvtepi32_ps(isum[t])));
            }
        } else {
            for (int j = 0; j < 8; ++j) add_sub_block<T, 8>(p.q, p.scale[j], xq, b, 8 * j, isum);
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) {
                const __m512i msum = dot_bsums(_mm512_setzero_si512(), p.min, xq[t][b].bsums);
                acc[t] = step_q45_k(acc[t], p.d, p.dmin, xq[t][b].d, isum[t], msum);
            }
        }
    }
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
}

// Up to this many activation rows the tile runs each weight row in place instead of packing it.
// bench_matmul --threads 1, k 2048, n 2048 and 5632, GFLOP/s, in place against packed (load 4-9):
//   Q4_K m 2: 158-159 / 132-137, m 3: 144-163 / 163-167, m 4: 160 / 237, m 8: 155-160 / 256-343
//   Q5_K m 2: 144 / 113-120, m 3: 146-150 / 145-148
//   Q6_K m 2: 165-169 / 118-121, m 3: 143-151 / 115-126, m 4: 170 / 177-182, m 8: 168-170 / 265-281
template <typename B>
constexpr int64_t k_direct_max_tokens = std::is_same_v<B, block_q6_K> ? 3 : 2;

template <typename B>
void int8_tile_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* vx, size_t x_row, int64_t nx, float* y,
                 int64_t y_stride) {
    const int64_t nb = n / 256;
    const uint8_t* x = static_cast<const uint8_t*>(vx);
    if (nx <= k_direct_max_tokens<B>) {
        for (int64_t r = 0; r < nw; ++r) {
            const B* wr = reinterpret_cast<const B*>(static_cast<const uint8_t*>(w) + size_t(r) * w_row);
            avx2::for_row_groups<2>(nx, [&](auto rows, int64_t i) {
                constexpr int T = decltype(rows)::value;
                float out[T];
                dot_rows<T>(nb, wr, x + size_t(i) * x_row, x_row, out);
                for (int t = 0; t < T; ++t) y[(i + t) * y_stride + r] = out[t];
            });
        }
        return;
    }
    // Per-thread scratch, grown to the longest row seen; its type is local to this file, so the
    // vector code instantiated here is never shared with other files through the linker.
    thread_local std::vector<packed_k<B>> scratch;
    if (scratch.size() < size_t(nb)) scratch.resize(size_t(nb));
    packed_k<B>* const packed = scratch.data();
    const uint8_t* row[k_tile_rows];
    tile_row_pointers(w, w_row, nw, row);
    for (int64_t b = 0; b < nb; ++b) pack_super_block<B>(rows_in_place{row}, b, &packed[b]);
    const __mmask16 store = tile_store_mask(nw);
    for_token_passes(nx, [&](auto tokens, int64_t i) {
        tile_tokens<decltype(tokens)::value, B>(packed, nb, x + size_t(i) * x_row, x_row, y + i * y_stride, y_stride, store);
    });
}

// ---- interleaved weights (cpu/interleave.h): Q4_K and Q5_K ----
//
// A group of 16 rows stores super-block b's dword i of row r at byte 16 b sizeof(B) + 64 i + 4 r,
// so one 64-byte load gives a dword of all 16 rows in lanes: the packed
// tile's registers without its 16 x 4 transposes. Few activation rows (decode) run on the
// weights as they are, unpacking each super-block in registers (interleaved_tokens); more are
// packed as by int8_tile_k, from these loads, then run as its passes. Both sum as tile_tokens
// does, so the results are bit for bit int8_tile_k's on the same rows.

// Super-blocks the decode kernel prefetches ahead (2.3 KB each for Q4_K): bench_matmul's
// interleaved rows from DRAM, 1 thread, Zen 5, Q4_K k 2048: none 23 GB/s, 1 ahead 30, 2 45,
// 4 48, 8 26-29.
constexpr int k_interleaved_prefetch = 4;

// T (1..4) activation rows against one interleaved group of nb super-blocks: y[t * y_stride + r].
// Per super-block: the head unpacked once (unpack_q45_k_head), then per chunk of 64 quants its 8
// dwords of quants loaded and split into nibbles once for all T rows; per row two chains of 8
// vpdpbusd (sub-blocks 2c and 2c + 1) weighted by the rows' scales, the mins through the bsums.
template <int T, typename B>
inline void interleaved_tokens(const uint8_t* group, int64_t nb, const uint8_t* x, size_t x_row, float* y, int64_t y_stride) {
    static_assert(T >= 1 && T <= 4, "4 rows keep 5 T + 4 accumulators in the 32 registers");
    constexpr bool q5 = std::is_same_v<B, block_q5_K>;
    constexpr int dwords = int(sizeof(B) / 4), qs_at = int(offsetof(B, qs) / 4);
    const block_q8_K* xq[T];
    __m512 acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        xq[t] = reinterpret_cast<const block_q8_K*>(x + size_t(t) * x_row);
        acc[t] = _mm512_setzero_ps();
    }
    const __m512i low4 = bytes(0xF);
    const rows_interleaved src{group};
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* next = group + size_t(b + k_interleaved_prefetch) * sizeof(B) * k_tile_rows;
        MOERUN_UNROLL
        for (int l = 0; l < dwords; ++l) _mm_prefetch(reinterpret_cast<const char*>(next + 64 * l), _MM_HINT_T0);
        __m512i head[4];
        src.dwords<B>(b, 0, head);
        const q45_k_head hd = unpack_q45_k_head(head);
        __m512i qh[8];
        if constexpr (q5) {
            src.dwords<B>(b, offsetof(B, qh) / 4, qh);
            src.dwords<B>(b, offsetof(B, qh) / 4 + 4, qh + 4);
        }
        __m512i isum[T], msum[T];
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) isum[t] = msum[t] = _mm512_setzero_si512();
        const uint8_t* qs = group + size_t(b) * sizeof(B) * k_tile_rows + 64 * size_t(qs_at);
        MOERUN_UNROLL
        for (int c = 0; c < 4; ++c) {  // sub-blocks 2c (low nibbles) and 2c + 1 (high)
            __m512i dlo[T], dhi[T];
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) dlo[t] = dhi[t] = _mm512_setzero_si512();
            MOERUN_UNROLL
            for (int k = 0; k < 8; ++k) {
                const __m512i v = _mm512_loadu_si512(qs + 64 * (8 * c + k));
                __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
                if constexpr (q5) {
                    lo = _mm512_or_si512(lo, move_bits(qh[k], 2 * c, 4, 0x10));
                    hi = _mm512_or_si512(hi, move_bits(qh[k], 2 * c + 1, 4, 0x10));
                }
                MOERUN_UNROLL
                for (int t = 0; t < T; ++t) {
                    const int8_t* a = xq[t][b].qs + 64 * c + 4 * k;
                    dlo[t] = _mm512_dpbusd_epi32(dlo[t], lo, bcast_i32(a));
                    dhi[t] = _mm512_dpbusd_epi32(dhi[t], hi, bcast_i32(a + 32));
                }
            }
            const __m512i sv = c < 2 ? hd.s03 : hd.s47, mv = c < 2 ? hd.m03 : hd.m47;
            const __m512i s_lo = head_byte(sv, 2 * c), s_hi = head_byte(sv, 2 * c + 1);
            const __m512i m_lo = head_byte(mv, 2 * c), m_hi = head_byte(mv, 2 * c + 1);
            const __m512i mp_lo = _mm512_or_si512(m_lo, _mm512_slli_epi32(m_lo, 16)), mp_hi = _mm512_or_si512(m_hi, _mm512_slli_epi32(m_hi, 16));
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) {
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dlo[t], s_lo));
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dhi[t], s_hi));
                msum[t] = _mm512_dpwssd_epi32(msum[t], mp_lo, bcast_i32(xq[t][b].bsums + 4 * c));
                msum[t] = _mm512_dpwssd_epi32(msum[t], mp_hi, bcast_i32(xq[t][b].bsums + 4 * c + 2));
            }
        }
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) acc[t] = step_q45_k(acc[t], hd.d, hd.dmin, xq[t][b].d, isum[t], msum[t]);
    }
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * y_stride, acc[t]);
}

// Up to this many activation rows the interleaved tile runs on the weights as they are; more are
// packed first.
constexpr int64_t k_interleaved_direct_max_tokens = 4;

// int8_tile's arguments, with the nw rows (a multiple of 16) interleaved groups.
template <typename B>
void int8_tile_k_interleaved(int64_t n, const void* vw, size_t w_row, int64_t nw, const void* vx, size_t x_row, int64_t nx, float* y,
                             int64_t y_stride) {
    const int64_t nb = n / 256;
    const uint8_t* w = static_cast<const uint8_t*>(vw);
    const uint8_t* x = static_cast<const uint8_t*>(vx);
    for (int64_t r0 = 0; r0 < nw; r0 += k_tile_rows) {
        const uint8_t* group = w + size_t(r0) * w_row;
        if (nx <= k_interleaved_direct_max_tokens) {
            for (int64_t i = 0; i < nx; i += 4) {
                const uint8_t* xi = x + size_t(i) * x_row;
                float* yi = y + i * y_stride + r0;
                switch (std::min<int64_t>(4, nx - i)) {
                    case 4: interleaved_tokens<4, B>(group, nb, xi, x_row, yi, y_stride); break;
                    case 3: interleaved_tokens<3, B>(group, nb, xi, x_row, yi, y_stride); break;
                    case 2: interleaved_tokens<2, B>(group, nb, xi, x_row, yi, y_stride); break;
                    default: interleaved_tokens<1, B>(group, nb, xi, x_row, yi, y_stride); break;
                }
            }
            continue;
        }
        thread_local std::vector<packed_q45_k> scratch;
        if (scratch.size() < size_t(nb)) scratch.resize(size_t(nb));
        for (int64_t b = 0; b < nb; ++b) pack_super_block<B>(rows_interleaved{group}, b, &scratch[size_t(b)]);
        for_token_passes(nx, [&](auto tokens, int64_t i) {
            tile_tokens<decltype(tokens)::value, B>(scratch.data(), nb, x + size_t(i) * x_row, x_row, y + i * y_stride + r0, y_stride,
                                                    __mmask16(0xFFFF));
        });
    }
}

// ---- AMX (amx.h): K-quant super-blocks as whole-width tiles ----
//
// The sub-block scales go into the weights, so that one pair of C tiles sums a whole super-block
// (4 chunks of 64 quants) instead of a tile store per sub-block: each weight's scaled quant
// w = (q - o) * sc_j (Q4_K, Q5_K: o = 0, sc 0..63; Q6_K: o = 32, sc int8), at most 4,096 in
// magnitude, is split into its low byte (unsigned) and the rest, w = lo + 256 hi (hi signed,
// -16..15), so TDPBSUD and TDPBSSD sum over the super-block
//   C_lo = sum_k y_k lo_k,  C_hi = sum_k y_k hi_k,  isum = C_lo + 256 C_hi = sum_j sc_j sum_k (q_k - o) y_k
// exactly (|C_lo| < 2^23, |isum| < 2^28); Q6_K's -32 offset is then inside isum. The mins of
// Q4_K/Q5_K go in the vector units, per token: msum = sum_k (m_2k, m_2k+1) . (S_2k, S_2k+1), 4
// vpdpwssd of the rows' min pairs against the token's sub-block sums S_j = bsums[2j] + bsums[2j + 1]
// (amx_k_step). A third tile with each weight's min as a byte (C_min = msum; 4 more B tile loads,
// dot products and a tile store per super-block, 4 KB more to pack) ran Q4_K/Q5_K 0.96-0.99x as
// fast at m 256, 0.92x at 64 and 0.81-0.88x at 32 (best of 6 alternating runs; with the bsums
// unsummed, 8 vpdpwssd a token, the vector units had run Q4_K at half Q6_K's speed). The float
// steps are tile_tokens'. Per super-block and 16 activation rows: 4 A and 8 B tile loads, 8
// dot-product tile operations and 2 tile stores, against 1,024 vpdpbusd on the AVX-512 tile.

// One super-block of a tile's 16 rows as B tiles per chunk c of 64 quants (row g: weights
// 64c + 4g..+3 of each weight row, 4 bytes per row, the packed_k::q layout), and d.
struct packed_amx_q6_k {
    uint8_t lo[4][16][64];
    uint8_t hi[4][16][64];
    __m512 d;
};
struct packed_amx_q45_k : packed_amx_q6_k {
    __m512i min_pairs[4];  // lane r: row r's (m_2k, m_2k+1) as int16, against a token's sub-block sums
    __m512 dmin;
};
template <typename B>
using packed_amx = std::conditional_t<std::is_same_v<B, block_q6_K>, packed_amx_q6_k, packed_amx_q45_k>;

// (q - offset) * s for the unsigned bytes q and the int32 lanes s, split into low bytes and high
// (signed) bytes, 16-bit products of the even and the odd bytes.
inline void scaled_bytes(__m512i q, __m512i s, int offset, __m512i* lo, __m512i* hi) {
    const __m512i s16 = _mm512_or_si512(_mm512_and_si512(s, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(s, 16));
    const __m512i o = _mm512_set1_epi16(int16_t(offset)), byte0 = _mm512_set1_epi16(0x00FF);
    const __m512i even = _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_and_si512(q, byte0), o), s16);
    const __m512i odd = _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_srli_epi16(q, 8), o), s16);
    *lo = _mm512_or_si512(_mm512_and_si512(even, byte0), _mm512_slli_epi16(odd, 8));
    *hi = _mm512_or_si512(_mm512_srli_epi16(even, 8), _mm512_andnot_si512(byte0, odd));
}

// Source: rows_in_place, or rows_interleaved (Q4_K, Q5_K), as pack_super_block takes them.
template <typename B, typename Source>
inline void pack_amx_super_block(const Source& src, int64_t b, packed_k<B>* tmp, packed_amx<B>* out) {
    constexpr bool q6 = std::is_same_v<B, block_q6_K>;
    constexpr int regs_per_scale = q6 ? 4 : 8;  // sub-blocks of 16 (Q6_K) or 32 quants
    pack_super_block<B>(src, b, tmp);
    MOERUN_UNROLL
    for (int reg = 0; reg < 64; ++reg) {
        __m512i lo, hi;
        scaled_bytes(tmp->q[reg], tmp->scale[reg / regs_per_scale], q6 ? 32 : 0, &lo, &hi);
        _mm512_store_si512(out->lo[reg / 16][reg % 16], lo);
        _mm512_store_si512(out->hi[reg / 16][reg % 16], hi);
    }
    out->d = tmp->d;
    if constexpr (!q6) {
        MOERUN_UNROLL
        for (int k = 0; k < 4; ++k) {  // tmp->min[j]: (m_j, m_j) as int16 -> (m_2k, m_2k+1)
            out->min_pairs[k] = _mm512_mask_blend_epi16(__mmask32(0xAAAAAAAA), tmp->min[2 * k], tmp->min[2 * k + 1]);
        }
        out->dmin = tmp->dmin;
    }
}

// Tile registers. Tiles are not renamed: loading chunk c + 1 into the registers chunk c's
// dot products read waits for them (one set ran Q4_K at m = 64 about 1.3x slower than two).
// C_lo 3, C_hi 4; A, B_lo, B_hi are 0, 1, 2 for even chunks and 5, 6, 7 for odd ones.
inline amx_config amx_k_config(int tokens) {
    amx_config c;
    for (int tile : {0, 3, 4, 5}) c.set(tile, tokens, 64);
    for (int tile : {1, 2, 6, 7}) c.set(tile, 16, 64);
    return c;
}

// Where a Q8_K activation row of the amx path keeps its quants aligned (cpu/kernels.h): in place,
// a block_q8_K's quants start 4 bytes into it, so every row of an A tile crossed a cache line (a
// 16-row tile load of such rows took 2-4x an aligned one).
inline size_t act_quants_at_k(int64_t nb) { return act_quants_offset(size_t(nb) * sizeof(block_q8_K), 0); }

// Super-block b's C tiles of the pass's tokens (A: their aligned quants of it, x_row apart) into
// out[0..1]. The activation rows are not written during a call, so only the weights need fences.
// Q4_K/Q5_K tiles (packed_amx_q45_k) pass as their packed_amx_q6_k part: the same B tiles.
using amx_k_sums = int32_t[2][k_amx_tokens][k_tile_rows];  // C_lo, C_hi

inline void amx_super_block(const uint8_t* a, size_t x_row, const packed_amx_q6_k& p, amx_k_sums& out) {
    amx_fence(p);
    _tile_zero(3);
    _tile_zero(4);
    MOERUN_UNROLL
    for (int c = 0; c < 4; c += 2) {
        MOERUN_AMX_LOAD(0, a + 64 * c, x_row);
        MOERUN_AMX_LOAD(1, p.lo[c], 64);
        MOERUN_AMX_LOAD(2, p.hi[c], 64);
        _tile_dpbsud(3, 0, 1);
        _tile_dpbssd(4, 0, 2);
        MOERUN_AMX_LOAD(5, a + 64 * (c + 1), x_row);
        MOERUN_AMX_LOAD(6, p.lo[c + 1], 64);
        MOERUN_AMX_LOAD(7, p.hi[c + 1], 64);
        _tile_dpbsud(3, 5, 6);
        _tile_dpbssd(4, 5, 7);
    }
    MOERUN_AMX_STORE(3, out[0]);
    MOERUN_AMX_STORE(4, out[1]);
    amx_fence(p);
}

// The tiles run 2 super-blocks (steps) ahead of the float steps (tile_pipeline).
constexpr int k_amx_k_lead = 2;

// A Q8_K block's sub-block sums S_j = bsums[2j] + bsums[2j + 1] as int16 pairs: out[k] = (S_2k,
// S_2k+1), |S_j| <= 32 * 127. The mins of Q4_K/Q5_K take them (msum = sum_j m_j S_j).
inline void sub_block_sum_pairs(const block_q8_K& x, int32_t out[4]) {
    const __m256i s = _mm256_madd_epi16(load256(x.bsums), _mm256_set1_epi16(1));  // S_0..S_7, int32
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_packs_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
}

// Token t's float step of a super-block from its C tiles (row t of each) and, Q4_K/Q5_K, its
// sub-block sum pairs (sub_block_sum_pairs):
//   Q4_K/Q5_K: (d * d_y) * float(isum) - (dmin * d_y) * float(msum);  Q6_K: (d * d_y) * float(isum).
template <typename B>
inline __m512 amx_k_step(const amx_k_sums& cs, int t, const packed_amx<B>& p, __m512 d_y, const int32_t* sum_pairs) {
    const __m512i isum = _mm512_add_epi32(amx_load_row(cs[0][t]), _mm512_slli_epi32(amx_load_row(cs[1][t]), 8));
    if constexpr (std::is_same_v<B, block_q6_K>) {
        return _mm512_mul_ps(_mm512_mul_ps(p.d, d_y), _mm512_cvtepi32_ps(isum));
    } else {
        __m512i msum = _mm512_setzero_si512();
        MOERUN_UNROLL
        for (int k = 0; k < 4; ++k) msum = _mm512_dpwssd_epi32(msum, p.min_pairs[k], _mm512_set1_epi32(sum_pairs[k]));
        return _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(p.d, d_y), _mm512_cvtepi32_ps(isum)),
                             _mm512_mul_ps(_mm512_mul_ps(p.dmin, d_y), _mm512_cvtepi32_ps(msum)));
    }
}

// One pass of `tokens` (1..16) activation rows (x: their rows; a: their aligned quants; sums: their
// sub-block sum pairs, [b][t][k], Q4_K/Q5_K only) over all super-blocks of one packed tile. The
// float steps run 16 tokens (rows past the last repeat it, and are not stored).
template <typename B>
inline void amx_pass_k(const packed_amx<B>* pw, int64_t nb, const uint8_t* x, size_t x_row, const uint8_t* a, const int32_t* sums,
                       int tokens, float* y, int64_t y_stride, __mmask16 store) {
    constexpr int T = k_amx_tokens;
    const block_q8_K* xq[T];
    __m512 acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        xq[t] = reinterpret_cast<const block_q8_K*>(x + size_t(std::min(t, tokens - 1)) * x_row);
        acc[t] = _mm512_setzero_ps();
    }
    alignas(64) amx_k_sums c[k_amx_k_lead + 1];
    auto issue = [&](int64_t b, int slot) { amx_super_block(a + 256 * b, x_row, pw[b], c[slot]); };
    auto take = [&](int64_t b, int slot) {
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            acc[t] = _mm512_add_ps(acc[t], amx_k_step<B>(c[slot], t, pw[b], _mm512_set1_ps(xq[t][b].d), sums + (b * T + t) * 4));
        }
    };
    tile_pipeline<k_amx_k_lead>(nb, issue, take);
    MOERUN_UNROLL  // constant indices: acc stays in registers (a loop to `tokens` put it in memory)
    for (int t = 0; t < T; ++t) {
        if (t < tokens) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
    }
}

// From this many activation rows on the AMX tile runs; fewer take int8_tile_k. 64 weight rows a
// call, k 2048, n 512, 1 thread, this Sapphire Rapids VM (its speed swung up to 2x between runs),
// GFLOP/s of the AVX-512 tile / the AMX tile, best of 6 alternating runs: Q4_K m 8 148 / 131,
// 12 162 / 178, 17 179 / 178, 20 188 / 208, 24 190 / 231. (A pass of fewer than 16 tokens costs
// as much as a full one.) Earlier, Q6_K's AMX tile over the AVX-512 one, 3 runs: m 8
// 0.86/0.61/1.21x, 12 1.59/0.81/1.47x, 16 1.92/0.99/1.79x. A kernel with the roles turned for
// Q4_K/Q5_K at 13-16 rows (the weights as A, a C tile per sub-block) lost to this tile once its
// mins left the tile unit: 170-202 against 173-214 GFLOP/s.
constexpr int64_t k_amx_k_min_tokens = 12;

// Per-thread scratch of amx_tile_k (local types: see int8_tile_k).
template <typename B>
struct amx_k_scratch {
    std::vector<packed_amx<B>> packed;  // the call's tiles, nb super-blocks each
};

// Up to k_amx_rows_per_call weight rows: with enough activation rows each 16 packed once, then
// passes of 16 tokens over all the tiles. Interleaved: the rows are interleaved groups
// (cpu/interleave.h; Q4_K, Q5_K), packed without the transposes, and few activation rows go
// through int8_tile_k_interleaved; the tiles are the same, and so is every sum.
template <typename B, bool Interleaved = false>
void amx_tile_k(int64_t n, const void* vw, size_t w_row, int64_t nw, const void* vx, size_t x_row, int64_t nx, float* y,
                int64_t y_stride) {
    const uint8_t* w = static_cast<const uint8_t*>(vw);
    const uint8_t* x = static_cast<const uint8_t*>(vx);
    if (nx < k_amx_k_min_tokens) {
        if constexpr (Interleaved) {
            int8_tile_k_interleaved<B>(n, vw, w_row, nw, vx, x_row, nx, y, y_stride);
        } else {
            for_each_tile(nw, [&](int64_t r0, int64_t rows) { int8_tile_k<B>(n, w + size_t(r0) * w_row, w_row, rows, vx, x_row, nx, y + r0, y_stride); });
        }
        return;
    }
    const int64_t nb = n / 256;
    const int64_t tiles = (nw + k_tile_rows - 1) / k_tile_rows;  // tile g: rows 16 g.., packed at packed + g nb
    thread_local amx_k_scratch<B> scratch;
    if (scratch.packed.size() < size_t(tiles * nb)) scratch.packed.resize(size_t(tiles * nb));
    packed_amx<B>* const packed = scratch.packed.data();
    packed_k<B> tmp;
    for_each_tile(nw, [&](int64_t r0, int64_t rows) {
        if constexpr (Interleaved) {  // whole groups of 16 rows
            const rows_interleaved group{w + size_t(r0) * w_row};
            for (int64_t b = 0; b < nb; ++b) pack_amx_super_block<B>(group, b, &tmp, &packed[r0 / k_tile_rows * nb + b]);
        } else {
            const uint8_t* row[k_tile_rows];
            tile_row_pointers(w + size_t(r0) * w_row, w_row, rows, row);
            for (int64_t b = 0; b < nb; ++b) pack_amx_super_block<B>(rows_in_place{row}, b, &tmp, &packed[r0 / k_tile_rows * nb + b]);
        }
    });
    // Q4_K/Q5_K: the pass's sub-block sum pairs, [b][t][k] (rows past the last repeat it)
    thread_local std::vector<int32_t> sums_of_pass;
    if (sums_of_pass.size() < size_t(nb * k_amx_tokens * 4)) sums_of_pass.resize(size_t(nb * k_amx_tokens * 4));
    int32_t* const sums = sums_of_pass.data();
    amx_token_passes(nx, amx_k_config, [&](int64_t i, int tokens) {
        const uint8_t* xi = x + size_t(i) * x_row;
        if constexpr (!std::is_same_v<B, block_q6_K>) {
            for (int t = 0; t < k_amx_tokens; ++t) {
                const block_q8_K* xq = reinterpret_cast<const block_q8_K*>(xi + size_t(std::min(t, tokens - 1)) * x_row);
                for (int64_t b = 0; b < nb; ++b) sub_block_sum_pairs(xq[b], sums + (b * k_amx_tokens + t) * 4);
            }
        }
        for_each_tile(nw, [&](int64_t r0, int64_t rows) {
            amx_pass_k<B>(packed + r0 / k_tile_rows * nb, nb, xi, x_row, xi + act_quants_at_k(nb), sums, tokens, y + i * y_stride + r0, y_stride,
                          tile_store_mask(rows));
        });
    });
}

}  // namespace

void from_float_q8_k_act_amx(const float* src, void* dst, int64_t n) {
    avx2::from_float_q8_k(src, dst, n);
    const int64_t nb = n / 256;
    const block_q8_K* y = static_cast<const block_q8_K*>(dst);
    uint8_t* q = static_cast<uint8_t*>(dst) + act_quants_at_k(nb);
    for (int64_t b = 0; b < nb; ++b) std::memcpy(q + 256 * b, y[b].qs, 256);
}

namespace {

template <typename B>
void vec_dot_k(int64_t n, float* s, const void* w, const void* x) {
    dot_rows<1>(n / 256, static_cast<const B*>(w), static_cast<const uint8_t*>(x), 0, s);
}

template <typename B>
void vec_dot_n_k(int64_t n, float* s, int64_t s_stride, const void* w, const void* x, size_t x_row, int64_t nx) {
    avx2::dot_n_rows<4>(nx, s, s_stride, x, x_row, [&](auto rows, const uint8_t* xj, float* out) {
        dot_rows<decltype(rows)::value>(n / 256, static_cast<const B*>(w), xj, x_row, out);
    });
}

}  // namespace

void vec_dot_q4_k_int8(int64_t n, float* s, const void* w, const void* x) { vec_dot_k<block_q4_K>(n, s, w, x); }
void vec_dot_q5_k_int8(int64_t n, float* s, const void* w, const void* x) { vec_dot_k<block_q5_K>(n, s, w, x); }
void vec_dot_q6_k_int8(int64_t n, float* s, const void* w, const void* x) { vec_dot_k<block_q6_K>(n, s, w, x); }
void vec_dot_n_q4_k_int8(int64_t n, float* s, int64_t ss, const void* w, const void* x, size_t xs, int64_t nx) { vec_dot_n_k<block_q4_K>(n, s, ss, w, x, xs, nx); }
void vec_dot_n_q5_k_int8(int64_t n, float* s, int64_t ss, const void* w, const void* x, size_t xs, int64_t nx) { vec_dot_n_k<block_q5_K>(n, s, ss, w, x, xs, nx); }
void vec_dot_n_q6_k_int8(int64_t n, float* s, int64_t ss, const void* w, const void* x, size_t xs, int64_t nx) { vec_dot_n_k<block_q6_K>(n, s, ss, w, x, xs, nx); }
void int8_tile_q4_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile_k<block_q4_K>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q5_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile_k<block_q5_K>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q6_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile_k<block_q6_K>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q4_k_interleaved(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                                int64_t y_stride) {
    int8_tile_k_interleaved<block_q4_K>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q5_k_interleaved(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                                int64_t y_stride) {
    int8_tile_k_interleaved<block_q5_K>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void amx_tile_q4_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    amx_tile_k<block_q4_K>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void amx_tile_q5_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    amx_tile_k<block_q5_K>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void amx_tile_q4_k_interleaved(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                               int64_t y_stride) {
    amx_tile_k<block_q4_K, true>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void amx_tile_q5_k_interleaved(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                               int64_t y_stride) {
    amx_tile_k<block_q5_K, true>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void amx_tile_q6_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    amx_tile_k<block_q6_K>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}

}  // namespace moerun::avx512
