// Integer GEMM tiles for AVX2 without VNNI (AMD Zen 3, Intel Haswell to Comet Lake): Q8_0 and Q4_0
// against Q8_0 activations, Q4_K, Q5_K and Q6_K against Q8_K. Every result, tile or vec_dot, is
// bit for bit the scalar reference's (quant/reference_q.cpp, reference_k.cpp): exact integer sums
// per block, then the reference's float steps one block at a time, added to a sum that starts at 0
// as separate multiplies and adds (this tree builds with -ffp-contract=off):
//   Q8_0, Q4_0:  sum += (d_w * d_a) * float(isum)
//   Q4_K, Q5_K:  sum += (d * d_a) * float(isum) - (dmin * d_a) * float(msum)
//   Q6_K:        sum += (d * d_a) * float(isum)
//
// Prompt batches (4 or more activation rows): the tile's 8 weight rows are unpacked once per call
// into an interleaved per-thread copy, 32 quants of the 8 rows in 8 registers (dword g of row r in
// lane r of register g). Each 4 quants of all 8 rows then take one vpmaddubsw against 4 activation
// bytes broadcast from memory, and every row's sum stays in its own lane: no horizontal sums.
// vpmaddubsw multiplies unsigned by signed bytes into saturating int16 pairs, so the operands keep
// to ranges whose pairs cannot saturate:
//   Q8_0, Q4_0: signed quants, |w| times sign(a, w) (|w| <= 128, |a| <= 127: pairs <= 32512).
//     Q8_0's pairs go to int32 at once (vpmaddwd with ones); Q4_0's (|w| <= 8: pairs <= 2032) are
//     summed in int16 over the block's 8 groups first.
//   K-quants: the unsigned quants (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63) summed in int16 over 8, 4
//     and 2 groups (at most 8 * 3810, 4 * 7874, 2 * 16002), then weighted by the rows' sub-block
//     scales in vpmaddwd. The mins (Q4_K, Q5_K) and Q6_K's -32 go through the activations' block
//     sums (bsums), as in the reference's integer identity.
// Decode (1 to 3 activation rows): packing costs more than it saves, so each row's block is
// unpacked in place, as in vec_dot, and the 8 rows' int32 lanes are reduced together into one
// register (reduce_rows) for the same vectorized float steps. Q4_0 reads two rows to a register
// instead, with unsigned quants (kernels_q32::direct_q4_0).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "../../quant/blocks.h"
#include "../tile_prefetch.h"
#include "kernels.h"
#include "simd.h"

namespace moerun::avx2 {

namespace {

constexpr int k_tile_rows = 8;    // weight rows per tile: one int32 / float lane each
constexpr int k_tile_tokens = 4;  // activation rows per pass over a packed tile (4 ran faster than 6)

inline __m256i broadcast_i32(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Bits `shift`.. of every byte, masked: (v >> shift) & mask per byte.
inline __m256i bits(__m256i v, int shift, int mask) { return _mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(char(mask))); }

// out[g] = dword g of v[r] in lane r, for g, r < 8 (an 8 x 8 transpose of 32-bit elements).
inline void transpose_8x8(const __m256i v[8], __m256i out[8]) {
    __m256i t[8], u[8];
    MOERUN_UNROLL
    for (int i = 0; i < 4; ++i) {  // per 128-bit half: rows 2i, 2i + 1 interleaved
        t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    MOERUN_UNROLL
    for (int i = 0; i < 2; ++i) {  // per half: dwords (0, 4), (1, 5), (2, 6), (3, 7) of rows 4i..4i+3
        u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    MOERUN_UNROLL
    for (int g = 0; g < 4; ++g) {
        out[g] = _mm256_permute2x128_si256(u[g], u[4 + g], 0x20);
        out[g + 4] = _mm256_permute2x128_si256(u[g], u[4 + g], 0x31);
    }
}

// Lane r = the sum of p[r]'s 8 int32 lanes: neighbouring registers added pairwise (unpack 32, then
// 64 bits), then the two 128-bit halves.
inline __m256i reduce_rows(const __m256i p[8]) {
    __m256i a[4], b[2];
    MOERUN_UNROLL
    for (int i = 0; i < 4; ++i) a[i] = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2 * i], p[2 * i + 1]), _mm256_unpackhi_epi32(p[2 * i], p[2 * i + 1]));
    MOERUN_UNROLL
    for (int i = 0; i < 2; ++i) b[i] = _mm256_add_epi32(_mm256_unpacklo_epi64(a[2 * i], a[2 * i + 1]), _mm256_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(b[0], b[1], 0x20), _mm256_permute2x128_si256(b[0], b[1], 0x31));
}

// vpmaddwd's per-row weights: both_halves(a, b) puts int16 a in the low and b in the high half of
// a lane (a == b: one weight for both pairs), pairs_of loads 8 such lanes, lane r for row r.
inline int32_t both_halves(int a, int b) { return int32_t(uint32_t(uint16_t(int16_t(a))) | uint32_t(uint16_t(int16_t(b))) << 16); }
inline __m256i pairs_of(const int32_t v[8]) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v)); }

// The 8 rows' half-precision field at byte `offset` of block b, as floats.
template <typename B>
inline __m256 row_halves(const uint8_t* const* row, int64_t b, size_t offset) {
    alignas(16) uint16_t h[k_tile_rows];
    for (int r = 0; r < k_tile_rows; ++r) std::memcpy(&h[r], row[r] + size_t(b) * sizeof(B) + offset, 2);
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
}

// K-quant decode reads the tile's 8 rows side by side, 8 streams the hardware prefetchers follow
// less well than one: each row's bytes 1 KiB past super-block b are asked for, a line per 64
// bytes. (Row after row instead, with a horizontal sum per super-block, ran Q6_K decode at 38
// GFLOP/s against 54, k = n = 2048, 1 thread. Q8_0/Q4_0 blocks share lines: no prefetch, which
// measured faster there.)
template <typename B>
inline void prefetch_ahead(const uint8_t* row, int64_t b) {
    const char* p = reinterpret_cast<const char*>(row + size_t(b) * sizeof(B) + 1024);
    for (size_t o = 0; o < sizeof(B); o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

// ---- the activation rows ----

// A Q8_0 activation row of this path: the blocks, then their scales as floats (q8_0_act_scales).
struct q8_0_act {
    const block_q8_0* q = nullptr;
    const float* d = nullptr;
    q8_0_act() = default;
    q8_0_act(const uint8_t* row, int64_t nb) : q(reinterpret_cast<const block_q8_0*>(row)), d(q8_0_act_scales(row, nb)) {}
    const int8_t* qs(int64_t b) const { return q[b].qs; }
    float scale(int64_t b) const { return d[b]; }
};
// A Q8_K activation row: the blocks alone (d is a float, bsums the sums of 16 quants).
struct q8_k_act {
    const block_q8_K* q = nullptr;
    q8_k_act() = default;
    q8_k_act(const uint8_t* row, int64_t) : q(reinterpret_cast<const block_q8_K*>(row)) {}
    const int8_t* qs(int64_t b) const { return q[b].qs; }
    const int16_t* bsums(int64_t b) const { return q[b].bsums; }
    float scale(int64_t b) const { return q[b].d; }
};

// ---- Q8_0 and Q4_0: 32-quant blocks, signed quants ----

struct packed_q32 {
    __m256i q[8];  // dword g of row r in lane r: quants 4g..4g+3, signed
    __m256 d;      // the rows' scales
};

// The float step: acc + (d_w * d_a) * float(isum), per lane.
inline __m256 step_q32(__m256 acc, __m256 d, float da, __m256i isum) {
    return _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_set1_ps(da)), _mm256_cvtepi32_ps(isum)));
}

// Q8_0 and Q4_0 through one set of kernels. `sum16`: the block's pairs can be summed in int16.
template <typename B, bool sum16>
struct kernels_q32 {
    using block = B;
    using act = q8_0_act;
    using packed = packed_q32;
    static constexpr int block_size = 32;

    // The block's 32 quants as signed bytes, in element order.
    static __m256i quants(const B& w) {
        if constexpr (std::is_same_v<B, block_q8_0>) return load256(w.qs);
        else return _mm256_sub_epi8(unpack_nibbles(w.qs), _mm256_set1_epi8(8));
    }

    static void pack(const uint8_t* const* row, int64_t b, packed& out) {
        __m256i v[k_tile_rows];
        MOERUN_UNROLL
        for (int r = 0; r < k_tile_rows; ++r) v[r] = quants(reinterpret_cast<const B*>(row[r])[b]);
        transpose_8x8(v, out.q);
        out.d = row_halves<B>(row, b, offsetof(B, d));
    }

    // T activation rows against block b of a packed tile.
    template <int T>
    MOERUN_ALWAYS_INLINE static void tokens(const packed& p, const act* a, int64_t b, __m256 acc[T]) {
        const __m256i ones = _mm256_set1_epi16(1);
        __m256i isum[T];
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
        MOERUN_UNROLL
        for (int g = 0; g < 8; ++g) {
            const __m256i w = p.q[g], w_abs = _mm256_abs_epi8(w);  // |-128| reads as 128 unsigned
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) {
                const __m256i pairs = _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(broadcast_i32(a[t].qs(b) + 4 * g), w));
                isum[t] = sum16 ? _mm256_add_epi16(isum[t], pairs) : _mm256_add_epi32(isum[t], _mm256_madd_epi16(pairs, ones));
            }
        }
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            if constexpr (sum16) isum[t] = _mm256_madd_epi16(isum[t], ones);
            acc[t] = step_q32(acc[t], p.d, a[t].scale(b), isum[t]);
        }
    }

    // One row's block b against T activation rows: int32 lanes summing to each isum.
    template <int T>
    MOERUN_ALWAYS_INLINE static void row_lanes(const B& w, const act* a, int64_t b, __m256i out[T]) {
        const __m256i q = quants(w), q_abs = _mm256_abs_epi8(q);
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            out[t] = _mm256_madd_epi16(_mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(load256(a[t].qs(b)), q)), _mm256_set1_epi16(1));
        }
    }

    // Tiles read in place (decode): the 8 rows' lanes reduced into one register per activation row.
    template <int T>
    MOERUN_ALWAYS_INLINE static void direct(const uint8_t* const* row, int64_t b, const act* a, __m256 acc[T]) {
        if constexpr (std::is_same_v<B, block_q4_0>) return direct_q4_0<T>(row, b, a, acc);
        __m256i lanes[T][k_tile_rows];
        for (int r = 0; r < k_tile_rows; ++r) {
            __m256i l[T];
            row_lanes<T>(reinterpret_cast<const B*>(row[r])[b], a, b, l);
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) lanes[t][r] = l[t];
        }
        const __m256 d = row_halves<B>(row, b, offsetof(B, d));
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) acc[t] = step_q32(acc[t], d, a[t].scale(b), reduce_rows(lanes[t]));
    }

    // Q4_0 decode, two rows to a register: group g holds rows g and 4 + g in its 128-bit halves,
    // whose one AND and one shift+AND give quants 0..15 and 16..31, dotted with the activation
    // block's halves broadcast to both. The quants stay unsigned (0..15, pairs <= 3810) and the
    // reference's q - 8 comes off as 8 * (pair sums of the activations), computed once per block
    // for the 8 rows (int16 pairs stay within 11,684). Lane l of group g then holds 4 partial sums
    // of row 4l + g; unpack-and-add across the groups puts row r in lane r. 5 operations a row and
    // block, against 10 for the signed quants of row_lanes.
    template <int T>
    MOERUN_ALWAYS_INLINE static void direct_q4_0(const uint8_t* const* row, int64_t b, const act* a, __m256 acc[T]) {
        const size_t at = size_t(b) * sizeof(B) + offsetof(B, qs);
        __m256i lo[4], hi[4];
        MOERUN_UNROLL
        for (int g = 0; g < 4; ++g) {
            const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(load128(row[g] + at)), load128(row[4 + g] + at), 1);
            lo[g] = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
            hi[g] = bits(v, 4, 0x0F);
        }
        const __m256 d = row_halves<B>(row, b, offsetof(B, d));
        const __m256i ones = _mm256_set1_epi16(1), eight = _mm256_set1_epi8(8);
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            const __m256i xa = _mm256_broadcastsi128_si256(load128(a[t].qs(b))), xb = _mm256_broadcastsi128_si256(load128(a[t].qs(b) + 16));
            const __m256i offset = _mm256_add_epi16(_mm256_maddubs_epi16(eight, xa), _mm256_maddubs_epi16(eight, xb));
            __m256i s[4];
            MOERUN_UNROLL
            for (int g = 0; g < 4; ++g) {
                const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo[g], xa), _mm256_maddubs_epi16(hi[g], xb));
                s[g] = _mm256_madd_epi16(_mm256_sub_epi16(pairs, offset), ones);
            }
            const __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(s[0], s[1]), _mm256_unpackhi_epi32(s[0], s[1]));
            const __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(s[2], s[3]), _mm256_unpackhi_epi32(s[2], s[3]));
            acc[t] = step_q32(acc[t], d, a[t].scale(b), _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1)));
        }
    }

    // vec_dot: one weight row, each block's lanes added in integers.
    static float dot(int64_t nb, const B* w, const act& a) {
        float sum = 0;
        for (int64_t b = 0; b < nb; ++b) {
            __m256i l[1];
            row_lanes<1>(w[b], &a, b, l);
            sum += f16(w[b].d) * a.scale(b) * float(hsum_i32(l[0]));
        }
        return sum;
    }
};

using kernels_q8_0 = kernels_q32<block_q8_0, false>;
using kernels_q4_0 = kernels_q32<block_q4_0, true>;

// ---- Q4_K, Q5_K and Q6_K: 256-quant super-blocks, unsigned quants ----

struct packed_qk {
    __m256i q[64];   // group j (32 quants) in q[8j..8j+7]: dword g of row r in lane r, unsigned
    __m256i sc[16];  // sub-block scales, each row's in both int16 halves of its lane
    __m256i aux[8];  // Q4_K/Q5_K: min k in both halves; Q6_K: scales 2k and 2k + 1
    __m256 d, dmin;  // the rows' d (and dmin)
};

// Each format: its 32-quant groups unpacked per row, its sub-block scales, and `group_sum`, how
// many 4-quant steps the int16 pairs take before they must go to int32.
struct format_q4_k {
    using block = block_q4_K;
    static constexpr int group_sum = 8;  // 8 * 2 * 15 * 127 <= 32767
    static constexpr bool has_mins = true;
    static void groups(const block& w, __m256i q[8]) {
        MOERUN_UNROLL
        for (int c = 0; c < 4; ++c) {  // 32 bytes: group 2c in the low nibbles, 2c + 1 in the high
            const __m256i v = load256(w.qs + 32 * c);
            q[2 * c] = bits(v, 0, 0xF);
            q[2 * c + 1] = bits(v, 4, 0xF);
        }
    }
};
struct format_q5_k {
    using block = block_q5_K;
    static constexpr int group_sum = 4;  // 4 * 2 * 31 * 127 <= 32767
    static constexpr bool has_mins = true;
    static void groups(const block& w, __m256i q[8]) {
        const __m256i qh = load256(w.qh);  // bit j of byte l: bit 4 of element l of group j
        MOERUN_UNROLL
        for (int c = 0; c < 4; ++c) {
            const __m256i v = load256(w.qs + 32 * c);
            q[2 * c] = _mm256_or_si256(bits(v, 0, 0xF), _mm256_slli_epi16(bits(qh, 2 * c, 1), 4));
            q[2 * c + 1] = _mm256_or_si256(bits(v, 4, 0xF), _mm256_slli_epi16(bits(qh, 2 * c + 1, 1), 4));
        }
    }
};
struct format_q6_k {
    using block = block_q6_K;
    static constexpr int group_sum = 2;  // 2 * 2 * 63 * 127 <= 32767
    static constexpr bool has_mins = false;
    static void groups(const block& w, __m256i q[8]) {
        MOERUN_UNROLL
        for (int h = 0; h < 2; ++h) {  // 128 quants: low 4 bits from ql, high 2 from qh
            const __m256i ql0 = load256(w.ql + 64 * h), ql1 = load256(w.ql + 64 * h + 32), qh = load256(w.qh + 32 * h);
            q[4 * h] = _mm256_or_si256(bits(ql0, 0, 0xF), _mm256_slli_epi16(bits(qh, 0, 3), 4));
            q[4 * h + 1] = _mm256_or_si256(bits(ql1, 0, 0xF), _mm256_slli_epi16(bits(qh, 2, 3), 4));
            q[4 * h + 2] = _mm256_or_si256(bits(ql0, 4, 0xF), _mm256_slli_epi16(bits(qh, 4, 3), 4));
            q[4 * h + 3] = _mm256_or_si256(bits(ql1, 4, 0xF), _mm256_slli_epi16(bits(qh, 6, 3), 4));
        }
    }
};

// The float step of a super-block, per lane (K-quants): acc + ((d * d_a) * isum - (dmin * d_a) * msum)
// with mins (Q4_K, Q5_K), acc + (d * d_a) * isum without (Q6_K).
inline __m256 step_qk(__m256 acc, __m256 d, __m256 dmin, float da, __m256i isum, __m256i msum) {
    const __m256 vda = _mm256_set1_ps(da);
    const __m256 v = _mm256_mul_ps(_mm256_mul_ps(d, vda), _mm256_cvtepi32_ps(isum));
    return _mm256_add_ps(acc, _mm256_sub_ps(v, _mm256_mul_ps(_mm256_mul_ps(dmin, vda), _mm256_cvtepi32_ps(msum))));
}
inline __m256 step_qk(__m256 acc, __m256 d, float da, __m256i isum) {
    return _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_set1_ps(da)), _mm256_cvtepi32_ps(isum)));
}

template <typename F>
struct kernels_qk {
    using block = typename F::block;
    using act = q8_k_act;
    using packed = packed_qk;
    static constexpr int block_size = 256;
    static constexpr bool has_mins = F::has_mins;

    // Sub-block scales of group j's 4-quant step g (Q6_K: two 16-quant sub-blocks per group).
    static constexpr int scale_index(int j, int g) { return has_mins ? j : 2 * j + g / 4; }

    static void pack(const uint8_t* const* row, int64_t b, packed& out) {
        int32_t sc[16][k_tile_rows], aux[8][k_tile_rows];
        for (int r = 0; r < k_tile_rows; ++r) {
            const block& w = reinterpret_cast<const block*>(row[r])[b];
            if constexpr (has_mins) {
                uint8_t s[8], m[8];
                unpack_scales_min_k4(w.scales, s, m);
                for (int j = 0; j < 8; ++j) {
                    sc[j][r] = both_halves(s[j], s[j]);
                    aux[j][r] = both_halves(m[j], m[j]);
                }
            } else {
                for (int j = 0; j < 16; ++j) sc[j][r] = both_halves(w.scales[j], w.scales[j]);
                for (int k = 0; k < 8; ++k) aux[k][r] = both_halves(w.scales[2 * k], w.scales[2 * k + 1]);
            }
        }
        for (int j = 0; j < (has_mins ? 8 : 16); ++j) out.sc[j] = pairs_of(sc[j]);
        for (int k = 0; k < 8; ++k) out.aux[k] = pairs_of(aux[k]);
        __m256i q[k_tile_rows][8];
        for (int r = 0; r < k_tile_rows; ++r) F::groups(reinterpret_cast<const block*>(row[r])[b], q[r]);
        for (int j = 0; j < 8; ++j) {
            __m256i v[k_tile_rows];
            MOERUN_UNROLL
            for (int r = 0; r < k_tile_rows; ++r) v[r] = q[r][j];
            transpose_8x8(v, out.q + 8 * j);
        }
        out.d = row_halves<block>(row, b, offsetof(block, d));
        if constexpr (has_mins) out.dmin = row_halves<block>(row, b, offsetof(block, dmin));
    }

    // Each row's mins term (Q4_K/Q5_K: sum_k m_k * (bsums[2k] + bsums[2k + 1])) or Q6_K's offset
    // (sum_k scale_k * bsums[k], times 32 below), from the packed per-row factors: exact int32.
    template <int T>
    MOERUN_ALWAYS_INLINE static void aux_sums(const packed& p, const act* a, int64_t b, __m256i out[T]) {
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) out[t] = _mm256_setzero_si256();
        MOERUN_UNROLL
        for (int k = 0; k < 8; ++k) {
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) out[t] = _mm256_add_epi32(out[t], _mm256_madd_epi16(p.aux[k], broadcast_i32(a[t].bsums(b) + 2 * k)));
        }
    }

    template <int T>
    MOERUN_ALWAYS_INLINE static void tokens(const packed& p, const act* a, int64_t b, __m256 acc[T]) {
        __m256i isum[T], pairs[T];
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {
            MOERUN_UNROLL
            for (int g = 0; g < 8; ++g) {
                const __m256i w = p.q[8 * j + g];
                MOERUN_UNROLL
                for (int t = 0; t < T; ++t) {
                    const __m256i v = _mm256_maddubs_epi16(w, broadcast_i32(a[t].qs(b) + 32 * j + 4 * g));
                    pairs[t] = g % F::group_sum == 0 ? v : _mm256_add_epi16(pairs[t], v);
                }
                if (g % F::group_sum == F::group_sum - 1) {
                    const __m256i scale = p.sc[scale_index(j, g)];
                    MOERUN_UNROLL
                    for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(pairs[t], scale));
                }
            }
        }
        __m256i aux[T];
        aux_sums<T>(p, a, b, aux);
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            if constexpr (has_mins) {
                acc[t] = step_qk(acc[t], p.d, p.dmin, a[t].scale(b), isum[t], aux[t]);
            } else {
                acc[t] = step_qk(acc[t], p.d, a[t].scale(b), _mm256_sub_epi32(isum[t], _mm256_slli_epi32(aux[t], 5)));
            }
        }
    }

    // One row's super-block b against T activation rows: int32 lanes summing to each isum (Q6_K:
    // its offset included) and, with mins, to each msum.
    template <int T>
    MOERUN_ALWAYS_INLINE static void row_lanes(const block& w, const act* a, int64_t b, __m256i isum[T], __m256i msum[T]) {
        __m256i q[8];
        F::groups(w, q);
        __m256i sm = _mm256_setzero_si256();  // Q4_K/Q5_K: the scales and mins in both 128-bit halves (scales_mins_k4)
        __m256i s_lo = sm, s_hi = sm;          // Q6_K: its scales 0-7, and 8-15, as int16 in both halves
        if constexpr (has_mins) {
            sm = _mm256_broadcastsi128_si256(scales_mins_k4(w.scales));
            // Lane k: m_k * (bsums[2k] + bsums[2k + 1]), with m_k in both int16 halves.
            const int (&m)[8] = k_min_byte;
            const __m256i m16 = _mm256_shuffle_epi8(sm, _mm256_setr_epi32(word_pair_of_byte(m[0]), word_pair_of_byte(m[1]), word_pair_of_byte(m[2]),
                                                                          word_pair_of_byte(m[3]), word_pair_of_byte(m[4]), word_pair_of_byte(m[5]),
                                                                          word_pair_of_byte(m[6]), word_pair_of_byte(m[7])));
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) msum[t] = _mm256_madd_epi16(load256(a[t].bsums(b)), m16);
        } else {
            // Lane k: scale_2k * bsums[2k] + scale_2k+1 * bsums[2k + 1], times 32, taken off isum.
            const __m256i s16 = _mm256_cvtepi8_epi16(load128(w.scales));
            s_lo = _mm256_permute2x128_si256(s16, s16, 0x00);
            s_hi = _mm256_permute2x128_si256(s16, s16, 0x11);
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(load256(a[t].bsums(b)), s16), 5));
        }
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            if constexpr (has_mins) isum[t] = _mm256_setzero_si256();
        }
        MOERUN_UNROLL
        for (int j = 0; j < 8; ++j) {
            // Q6_K: scale 2j in the low half (its sub-block 2j), 2j + 1 in the high half, spread
            // from the int16 scales by one vpshufb (16 scalar loads and 8 inserts before).
            const __m256i s = has_mins ? _mm256_shuffle_epi8(sm, _mm256_set1_epi32(word_pair_of_byte(k_scale_byte[j])))
                                       : _mm256_shuffle_epi8(j < 4 ? s_lo : s_hi, scale_pair_spread(j % 4));
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], load256(a[t].qs(b) + 32 * j)), s));
        }
    }

    template <int T>
    MOERUN_ALWAYS_INLINE static void direct(const uint8_t* const* row, int64_t b, const act* a, __m256 acc[T]) {
        __m256i isum[T][k_tile_rows], msum[T][k_tile_rows];
        for (int r = 0; r < k_tile_rows; ++r) {
            prefetch_ahead<block>(row[r], b);
            __m256i is[T], ms[T];
            row_lanes<T>(reinterpret_cast<const block*>(row[r])[b], a, b, is, ms);
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) {
                isum[t][r] = is[t];
                if constexpr (has_mins) msum[t][r] = ms[t];
            }
        }
        const __m256 d = row_halves<block>(row, b, offsetof(block, d));
        if constexpr (has_mins) {
            const __m256 dmin = row_halves<block>(row, b, offsetof(block, dmin));
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = step_qk(acc[t], d, dmin, a[t].scale(b), reduce_rows(isum[t]), reduce_rows(msum[t]));
        } else {
            MOERUN_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = step_qk(acc[t], d, a[t].scale(b), reduce_rows(isum[t]));
        }
    }

    static float dot(int64_t nb, const block* w, const act& a) {
        float sum = 0;
        for (int64_t b = 0; b < nb; ++b) {
            __m256i is[1], ms[1];
            row_lanes<1>(w[b], &a, b, is, ms);
            const float d = f16(w[b].d), da = a.scale(b);
            if constexpr (has_mins) {
                sum += d * da * float(hsum_i32(is[0])) - f16(w[b].dmin) * da * float(hsum_i32(ms[0]));
            } else {
                sum += d * da * float(hsum_i32(is[0]));
            }
        }
        return sum;
    }
};

using kernels_q4_k = kernels_qk<format_q4_k>;
using kernels_q5_k = kernels_qk<format_q5_k>;
using kernels_q6_k = kernels_qk<format_q6_k>;

// ---- the tile driver, shared by every format ----
//
// The formats' per-block steps (direct, row_lanes, tokens, aux_sums) are forced inline into it
// (MOERUN_ALWAYS_INLINE): out of line, GCC passed their vector state through the stack each
// block. bench_matmul --threads 1 --n 256 --k 2048 on the avx2 path (Zen 5, 2 alternating runs):
// Q8_0 m 1 59-61 -> 77 GFLOP/s, Q4_K m 2 90-98 -> 109, Q6_K m 64 165-174 -> 177-178, the rest unchanged.

// Per-thread packed tile, grown to the longest row seen. Its element types are local to this
// file, so the vector code instantiated here (with AVX2 flags) is never shared with other files
// through the linker.
template <typename K>
typename K::packed* tile_scratch(int64_t nb) {
    thread_local std::vector<typename K::packed> packed;
    if (packed.size() < size_t(nb)) packed.resize(size_t(nb));
    return packed.data();
}

inline void store_rows(float* y, __m256i mask, __m256 v) { _mm256_maskstore_ps(y, mask, v); }

// T activation rows, in place (packed == nullptr: decode, with the tile two ahead prefetched
// meanwhile, tile_prefetch.h; the rows are w_row bytes apart) or against a packed tile.
template <typename K, int T>
void tile_pass(const typename K::packed* packed, const uint8_t* const* row, size_t w_row, int64_t nb, const uint8_t* x, size_t x_row,
               float* y, int64_t y_stride, __m256i mask) {
    typename K::act a[T];
    __m256 acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        a[t] = typename K::act(x + size_t(t) * x_row, nb);
        acc[t] = _mm256_setzero_ps();
    }
    if (packed) {
        for (int64_t b = 0; b < nb; ++b) K::template tokens<T>(packed[b], a, b, acc);
    } else {
        tile_prefetch ahead(row[0], w_row, k_tile_rows, nb);
        for (int64_t b = 0; b < nb; ++b) {
            ahead.step();
            K::template direct<T>(row, b, a, acc);
        }
    }
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) store_rows(y + t * y_stride, mask, acc[t]);
}

// vec_dot: one weight row, the same integer lanes and float steps, each block's lanes added in
// integers.
template <typename K>
void vec_dot(int64_t n, float* s, const void* w, const void* x) {
    const int64_t nb = n / K::block_size;
    *s = K::dot(nb, static_cast<const typename K::block*>(w), typename K::act(static_cast<const uint8_t*>(x), nb));
}

// The last 1..T activation rows (`rest`) against a packed tile, in one pass.
template <typename K, int T>
void tile_pass_rest(int64_t rest, const typename K::packed* packed, const uint8_t* const* row, int64_t nb, const uint8_t* x, size_t x_row,
                    float* y, int64_t y_stride, __m256i mask) {
    if constexpr (T > 0) {
        if (rest == T) return tile_pass<K, T>(packed, row, 0, nb, x, x_row, y, y_stride, mask);
        tile_pass_rest<K, T - 1>(rest, packed, row, nb, x, x_row, y, y_stride, mask);
    }
}

template <typename K>
void int8_tile(int64_t n, const void* vw, size_t w_row, int64_t nw, const void* vx, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    const int64_t nb = n / K::block_size;
    const uint8_t* row[k_tile_rows];  // rows past the tile's last repeat it; their lanes are not stored
    for (int r = 0; r < k_tile_rows; ++r) row[r] = static_cast<const uint8_t*>(vw) + size_t(std::min<int64_t>(r, nw - 1)) * w_row;
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(nw)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const uint8_t* x = static_cast<const uint8_t*>(vx);
    switch (nx) {  // decode: packing costs more than it saves
        case 1: tile_pass<K, 1>(nullptr, row, w_row, nb, x, x_row, y, y_stride, mask); return;
        case 2: tile_pass<K, 2>(nullptr, row, w_row, nb, x, x_row, y, y_stride, mask); return;
        case 3: tile_pass<K, 3>(nullptr, row, w_row, nb, x, x_row, y, y_stride, mask); return;
        default: break;
    }
    typename K::packed* packed = tile_scratch<K>(nb);
    for (int64_t b = 0; b < nb; ++b) K::pack(row, b, packed[b]);
    int64_t i = 0;
    for (; i + k_tile_tokens <= nx; i += k_tile_tokens) {
        tile_pass<K, k_tile_tokens>(packed, row, 0, nb, x + size_t(i) * x_row, x_row, y + i * y_stride, y_stride, mask);
    }
    if (i < nx) tile_pass_rest<K, k_tile_tokens - 1>(nx - i, packed, row, nb, x + size_t(i) * x_row, x_row, y + i * y_stride, y_stride, mask);
}

}  // namespace

void vec_dot_q8_0_int8(int64_t n, float* s, const void* w, const void* x) { vec_dot<kernels_q8_0>(n, s, w, x); }
void vec_dot_q4_0_int8(int64_t n, float* s, const void* w, const void* x) { vec_dot<kernels_q4_0>(n, s, w, x); }
void vec_dot_q4_k_int8(int64_t n, float* s, const void* w, const void* x) { vec_dot<kernels_q4_k>(n, s, w, x); }
void vec_dot_q5_k_int8(int64_t n, float* s, const void* w, const void* x) { vec_dot<kernels_q5_k>(n, s, w, x); }
void vec_dot_q6_k_int8(int64_t n, float* s, const void* w, const void* x) { vec_dot<kernels_q6_k>(n, s, w, x); }

void int8_tile_q8_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile<kernels_q8_0>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q4_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile<kernels_q4_0>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q4_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile<kernels_q4_k>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q5_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile<kernels_q5_k>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q6_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile<kernels_q6_k>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}

}  // namespace moerun::avx2
