// Q8_0 and Q4_0 weights as an int8 GEMM (AVX512_VNNI): tiles of 16 weight rows against any number
// of Q8_0 activation rows, in the scalar reference's float order, so every result equals
// ref::vec_dot_q8_0 / ref::vec_dot_q4_0 bit for bit.
//
// A tile's 16 rows are unpacked once, for all its activations, into an interleaved copy in a
// per-thread buffer (16 rows x 32 quants + 16 scales per block, 576 bytes): dword g of row r in
// lane r of register g. One vpdpbusd then takes 4 quants of all 16 rows against 4 activation bytes
// broadcast from memory, so a block and a token cost 8 vpdpbusd and 4 float operations for 512
// products, with no horizontal sums (the kernels this replaces reduced 8 lanes per row, token
// and block). Nothing is kept beyond the call: the file's weights are never copied whole.
//
// vpdpbusd multiplies unsigned by signed bytes, so the weights are packed biased by 128 (Q8_0:
// q + 128; Q4_0: q - 8 + 128) and each activation block carries -128 * (sum of its quants), which
// starts the block's int32 sum (from_float_q8_0_act below). The per-block integer sums are exact;
// the float steps are the reference's: ((d_w * d_a) * float(isum)), added block by block to a sum
// that starts at 0, as separate multiplies and adds (this tree builds with -ffp-contract=off).
#include "../../quant/blocks.h"
#include "../avx2/kernels.h"  // avx2::from_float_q8_0_act, avx2::q8_0_act_scales
#include "int8_gemm.h"
#include "kernels.h"
#include "simd.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

namespace moerun::avx512 {

namespace {

// Where a Q8_0 activation row's block corrections start: after its float scales.
inline const int32_t* act_corrections(const void* row, int64_t nb) {
    return reinterpret_cast<const int32_t*>(avx2::q8_0_act_scales(row, nb) + nb);
}

// One block of a tile: q[g] holds quants 4g..4g+3 of each row as biased unsigned bytes (row r in
// dword lane r), d the rows' scales as floats.
struct packed_block {
    __m512i q[8];
    __m512 d;
};

// Packs the quants of block b of the tile's 16 rows (row[r]: the rows' first bytes; rows past the
// tile's last repeat it). The scales go apart (copy_scales).
template <typename B>
inline void pack_quants(const uint8_t* const* row, int64_t b, packed_block* out) {
    const size_t at = size_t(b) * sizeof(B) + offsetof(B, qs);
    if constexpr (std::is_same_v<B, block_q8_0>) {
        transpose_16x4(row, at, out->q);           // quants 0..15
        transpose_16x4(row, at + 16, out->q + 4);  // quants 16..31
        const __m512i bias = _mm512_set1_epi8(char(0x80));
        MOERUN_UNROLL
        for (int g = 0; g < 8; ++g) out->q[g] = _mm512_xor_si512(out->q[g], bias);
    } else {  // Q4_0: byte j holds element j (low nibble) and element j + 16 (high)
        __m512i v[4];
        transpose_16x4(row, at, v);
        const __m512i low = _mm512_set1_epi8(0x0F), bias = _mm512_set1_epi8(120);  // q - 8 + 128
        MOERUN_UNROLL
        for (int g = 0; g < 4; ++g) {
            out->q[g] = _mm512_add_epi8(_mm512_and_si512(v[g], low), bias);
            out->q[g + 4] = _mm512_add_epi8(_mm512_and_si512(_mm512_srli_epi16(v[g], 4), low), bias);
        }
    }
}

// The tile's block scales, copied row by row (plain 2-byte moves) and read 16 at a time. Building
// each block's vector from 16 scattered halves directly costs a gather per block, which ran decode
// 8x slower on Zen 5.
struct block_scales {
    uint16_t d[k_tile_rows];  // row r's half-precision d
};
template <typename B>
inline void copy_scales(const uint8_t* const* row, int64_t nb, block_scales* out) {
    for (int r = 0; r < k_tile_rows; ++r) {
        const B* w = reinterpret_cast<const B*>(row[r]);
        for (int64_t b = 0; b < nb; ++b) out[b].d[r] = w[b].d;
    }
}
inline __m512 scales_of(const block_scales& s) { return _mm512_cvtph_ps(load256(s.d)); }

// Per-thread scratch of the tiles, grown to the longest row seen. Its element types are local to
// this file, so the vector code instantiated here (with AVX-512 flags) is never shared with other
// files through the linker.
struct tile_scratch {
    std::vector<packed_block> packed;  // 576 bytes per block
    std::vector<block_scales> scales;  // 32 bytes per block
};

// T activation rows against a packed tile: y[t * y_stride + r] for the rows in `store`.
template <int T>
inline void tile_tokens(const packed_block* pw, int64_t nb, const uint8_t* x, size_t x_row, float* y, int64_t y_stride,
                        __mmask16 store) {
    const block_q8_0* xq[T];
    const float* xd[T];
    const int32_t* xc[T];
    __m512 acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        const uint8_t* row = x + size_t(t) * x_row;
        xq[t] = reinterpret_cast<const block_q8_0*>(row);
        xd[t] = avx2::q8_0_act_scales(row, nb);
        xc[t] = act_corrections(row, nb);
        acc[t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; ++b) {
        const packed_block& p = pw[b];
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            __m512i isum = _mm512_set1_epi32(xc[t][b]);
            MOERUN_UNROLL
            for (int g = 0; g < 8; ++g) isum = _mm512_dpbusd_epi32(isum, p.q[g], _mm512_set1_epi32(load_i32(xq[t][b].qs + 4 * g)));
            const __m512 scale = _mm512_mul_ps(p.d, _mm512_set1_ps(xd[t][b]));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(isum)));
        }
    }
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
}

// Block b's 32 quants of one row, biased to unsigned bytes (see pack_quants).
inline __m256i biased_quants(const block_q8_0& b) { return _mm256_xor_si256(load256(b.qs), _mm256_set1_epi8(char(0x80))); }
inline __m256i biased_quants(const block_q4_0& b) { return _mm256_add_epi8(avx2::unpack_nibbles(b.qs), _mm256_set1_epi8(120)); }

// The 16 int32 sums of 8 registers of vpdpbusd lanes, p[i] = [row i | row i + 4] for i < 4 and
// [row 4 + i | row 8 + i] for i >= 4 (8 lanes a row), in row order: lanes of neighbouring
// registers added pairwise (unpack 32, then 64 bits), then the 128-bit lanes reordered and added.
inline __m512i row_sums(const __m512i p[8]) {
    __m512i q[4], c[2];
    MOERUN_UNROLL
    for (int i = 0; i < 4; ++i) q[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2 * i], p[2 * i + 1]), _mm512_unpackhi_epi32(p[2 * i], p[2 * i + 1]));
    MOERUN_UNROLL
    for (int j = 0; j < 2; ++j) c[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(q[2 * j], q[2 * j + 1]), _mm512_unpackhi_epi64(q[2 * j], q[2 * j + 1]));
    // c[0]'s 128-bit lanes: rows 0-3 (first half of each row's lanes), rows 0-3 (second half),
    // rows 4-7, rows 4-7; c[1] the same for rows 8-15.
    return _mm512_add_epi32(_mm512_shuffle_i32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_i32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// T (few) activation rows against the tile's rows read in place, for decode: each block's rows
// are loaded two to a register and reduced with row_sums (21 operations per block and activation
// row for all 16 rows, against ~65 to pack the block). The same integer sums and float steps as
// tile_tokens.
template <typename B, int T>
void tile_direct(const uint8_t* const* row, int64_t nb, const block_scales* scales, const uint8_t* x, size_t x_row, float* y,
                 int64_t y_stride, __mmask16 store) {
    static constexpr int k_pair[8][2] = {{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}};
    const block_q8_0* xq[T];
    const float* xd[T];
    const int32_t* xc[T];
    __m512 acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        const uint8_t* r = x + size_t(t) * x_row;
        xq[t] = reinterpret_cast<const block_q8_0*>(r);
        xd[t] = avx2::q8_0_act_scales(r, nb);
        xc[t] = act_corrections(r, nb);
        acc[t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; ++b) {
        __m512i w[8];
        MOERUN_UNROLL
        for (int i = 0; i < 8; ++i) {
            const B* lo = reinterpret_cast<const B*>(row[k_pair[i][0]]) + b;
            const B* hi = reinterpret_cast<const B*>(row[k_pair[i][1]]) + b;
            w[i] = join(biased_quants(*lo), biased_quants(*hi));
        }
        const __m512 d = scales_of(scales[b]);
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            const __m512i qy = _mm512_broadcast_i64x4(load256(xq[t][b].qs));
            __m512i p[8];
            MOERUN_UNROLL
            for (int i = 0; i < 8; ++i) p[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[i], qy);
            const __m512i isum = _mm512_add_epi32(row_sums(p), _mm512_set1_epi32(xc[t][b]));
            const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(xd[t][b]));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(isum)));
        }
    }
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
}

// ---- Q4_0 decode: the 16 rows read in place, four rows to a register ----
//
// Group g of the tile holds rows g, 4 + g, 8 + g, 12 + g in its 128-bit lanes 0..3, 16 quant bytes
// each: one AND gives quants 0..15 of four rows and a shift and AND quants 16..31, each against its
// half of the activation block broadcast to every lane. After the four groups' vpdpbusd, lane l of
// group g holds 4 partial sums of row 4l + g; adding them across groups (unpack 32, then 64 bits)
// puts row r in dword r, in natural order. The quants stay unsigned (0..15): the reference's
// q - 8 becomes -8 * (sum of the activation block), which is the activation's -128 * sum
// (from_float_q8_0_act) divided by 16, exactly. 17 operations a block for the quants of 16 rows,
// against 8 unpacks and joins of two rows each (~88) in tile_direct.
//
// The rows' scales come four blocks at a time from the same pass over the rows (no separate pass
// that would wait for memory while nothing computes): 64 bytes from each row's block b hold the
// halves of blocks b..b+3 at words 0, 9, 18 and 27; two-source word permutes and inserts gather
// them into 16-row vectors (16 loads, 10 permutes, 6 inserts per four blocks).
struct q4_0_scale_gather {
    __m512i first_pass, last_pass[2];
    q4_0_scale_gather() {
        alignas(64) int16_t a[32] = {}, z[2][32] = {};
        for (int blk = 0; blk < 4; ++blk) {
            a[blk] = int16_t(9 * blk);           // words 0..3: the first row's four halves
            a[4 + blk] = int16_t(32 + 9 * blk);  // words 4..7: the second row's
        }
        // After the inserts, register h (rows 8h..8h+7) has row 8h + i's block j at word 4i + j.
        for (int k = 0; k < 2; ++k)
            for (int half = 0; half < 2; ++half)
                for (int r = 0; r < 16; ++r) z[k][16 * half + r] = int16_t((r < 8 ? 0 : 32) + 4 * (r % 8) + 2 * k + half);
        first_pass = _mm512_load_si512(a);
        last_pass[0] = _mm512_load_si512(z[0]);
        last_pass[1] = _mm512_load_si512(z[1]);
    }
};

// d[j] = the 16 rows' scales of block b + j (j < 4) as floats.
inline void q4_0_scales4(const uint8_t* const* row, int64_t b, const q4_0_scale_gather& g, __m512 d[4]) {
    const size_t at = size_t(b) * sizeof(block_q4_0);
    __m128i pair[8];
    MOERUN_UNROLL
    for (int p = 0; p < 8; ++p) {
        const __m512i lo = load512(row[2 * p] + at), hi = load512(row[2 * p + 1] + at);
        pair[p] = _mm512_castsi512_si128(_mm512_permutex2var_epi16(lo, g.first_pass, hi));
    }
    __m512i half[2];
    MOERUN_UNROLL
    for (int h = 0; h < 2; ++h) {
        const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(pair[4 * h]), pair[4 * h + 1], 1);
        const __m256i c = _mm256_inserti128_si256(_mm256_castsi128_si256(pair[4 * h + 2]), pair[4 * h + 3], 1);
        half[h] = join(a, c);
    }
    MOERUN_UNROLL
    for (int k = 0; k < 2; ++k) {
        const __m512i z = _mm512_permutex2var_epi16(half[0], g.last_pass[k], half[1]);
        d[2 * k] = _mm512_cvtph_ps(_mm512_castsi512_si256(z));
        d[2 * k + 1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(z, 1));
    }
}

// The quants of block b of rows g, 4 + g, 8 + g, 12 + g in 128-bit lanes 0..3.
inline __m512i q4_0_group(const uint8_t* const* row, size_t at, int g) {
    __m512i v = _mm512_castsi128_si512(load128(row[g] + at));
    v = _mm512_inserti32x4(v, load128(row[4 + g] + at), 1);
    v = _mm512_inserti32x4(v, load128(row[8 + g] + at), 2);
    return _mm512_inserti32x4(v, load128(row[12 + g] + at), 3);
}

// Block b of the 16 rows against T activation rows: acc[t] += (d * d_x) * float(isum) per row.
template <int T>
inline void q4_0_direct_block(const uint8_t* const* row, int64_t b, __m512 d, const block_q8_0* const* xq, const float* const* xd,
                              const int32_t* const* xc, __m512 acc[T]) {
    const size_t at = size_t(b) * sizeof(block_q4_0) + offsetof(block_q4_0, qs);
    const __m512i low = _mm512_set1_epi8(0x0F);
    __m512i lo[4], hi[4];
    MOERUN_UNROLL
    for (int g = 0; g < 4; ++g) {
        const __m512i v = q4_0_group(row, at, g);
        lo[g] = _mm512_and_si512(v, low);
        hi[g] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    }
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        const __m512i xa = _mm512_broadcast_i32x4(load128(xq[t][b].qs)), xb = _mm512_broadcast_i32x4(load128(xq[t][b].qs + 16));
        __m512i s[4];
        MOERUN_UNROLL
        for (int g = 0; g < 4; ++g) s[g] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[g], xa), hi[g], xb);
        const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(s[0], s[1]), _mm512_unpackhi_epi32(s[0], s[1]));
        const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(s[2], s[3]), _mm512_unpackhi_epi32(s[2], s[3]));
        const __m512i rows = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
        const __m512i isum = _mm512_add_epi32(rows, _mm512_set1_epi32(xc[t][b] / 16));  // -8 * sum(x)
        const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(xd[t][b]));
        acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(isum)));
    }
}

template <int T>
void tile_direct_q4_0(const uint8_t* const* row, int64_t nb, const uint8_t* x, size_t x_row, float* y, int64_t y_stride, __mmask16 store) {
    static const q4_0_scale_gather gather;
    const block_q8_0* xq[T];
    const float* xd[T];
    const int32_t* xc[T];
    __m512 acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) {
        const uint8_t* r = x + size_t(t) * x_row;
        xq[t] = reinterpret_cast<const block_q8_0*>(r);
        xd[t] = avx2::q8_0_act_scales(r, nb);
        xc[t] = act_corrections(r, nb);
        acc[t] = _mm512_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        __m512 d[4];
        q4_0_scales4(row, b, gather, d);
        MOERUN_UNROLL
        for (int j = 0; j < 4; ++j) q4_0_direct_block<T>(row, b + j, d[j], xq, xd, xc, acc);
    }
    for (; b < nb; ++b) {  // rows of k % 128 != 0: the last blocks' scales one by one
        alignas(32) uint16_t h[k_tile_rows];
        for (int r = 0; r < k_tile_rows; ++r) h[r] = reinterpret_cast<const block_q4_0*>(row[r])[b].d;
        q4_0_direct_block<T>(row, b, _mm512_cvtph_ps(load256(h)), xq, xd, xc, acc);
    }
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
}

template <typename B>
void int8_tile(int64_t n, const void* vw, size_t w_row, int64_t nw, const void* vx, size_t x_row, int64_t nx, float* y,
               int64_t y_stride) {
    const int64_t nb = n / 32;
    thread_local tile_scratch scratch;
    if (scratch.packed.size() < size_t(nb)) {
        scratch.packed.resize(size_t(nb));
        scratch.scales.resize(size_t(nb));
    }
    packed_block* const packed = scratch.packed.data();
    const block_scales* const scales = scratch.scales.data();
    const uint8_t* row[k_tile_rows];
    tile_row_pointers(vw, w_row, nw, row);
    const __mmask16 store = tile_store_mask(nw);
    const uint8_t* x = static_cast<const uint8_t*>(vx);
    if constexpr (std::is_same_v<B, block_q4_0>) {
        switch (nx) {  // decode: packing costs more than it saves
            case 1: tile_direct_q4_0<1>(row, nb, x, x_row, y, y_stride, store); return;
            case 2: tile_direct_q4_0<2>(row, nb, x, x_row, y, y_stride, store); return;
            case 3: tile_direct_q4_0<3>(row, nb, x, x_row, y, y_stride, store); return;
            default: break;
        }
    }
    copy_scales<B>(row, nb, scratch.scales.data());
    switch (nx) {  // decode: packing costs more than it saves
        case 1: tile_direct<B, 1>(row, nb, scales, x, x_row, y, y_stride, store); return;
        case 2: tile_direct<B, 2>(row, nb, scales, x, x_row, y, y_stride, store); return;
        case 3: tile_direct<B, 3>(row, nb, scales, x, x_row, y, y_stride, store); return;
        default: break;
    }
    for (int64_t b = 0; b < nb; ++b) {
        pack_quants<B>(row, b, &packed[b]);
        packed[b].d = scales_of(scales[b]);
    }

    // 8 activation rows per pass: 8 accumulators, 8 block sums in flight and the 8 packed quant
    // registers fit the 32 registers.
    for_token_passes(nx, [&](auto tokens, int64_t i) {
        tile_tokens<decltype(tokens)::value>(packed, nb, x + size_t(i) * x_row, x_row, y + i * y_stride, y_stride, store);
    });
}

// One weight row (vec_dot, vec_dot_n: attention over a Q8_0 cache, single rows): the same integer
// sums and float steps without packing, each block's 8 lanes added in integers.
template <typename B>
float dot_row(int64_t nb, const B* w, const uint8_t* x) {
    const block_q8_0* xq = reinterpret_cast<const block_q8_0*>(x);
    const float* xd = avx2::q8_0_act_scales(x, nb);
    const int32_t* xc = act_corrections(x, nb);
    float sum = 0;
    for (int64_t b = 0; b < nb; ++b) {
        const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), biased_quants(w[b]), load256(xq[b].qs));
        const int32_t isum = avx2::hsum_i32(p) + xc[b];
        sum += f16(w[b].d) * xd[b] * float(isum);
    }
    return sum;
}

template <typename B>
void dot_n(int64_t n, float* s, int64_t s_stride, const void* w, const void* x, size_t x_row, int64_t nx) {
    for (int64_t j = 0; j < nx; ++j) {
        s[j * s_stride] = dot_row(n / 32, static_cast<const B*>(w), static_cast<const uint8_t*>(x) + size_t(j) * x_row);
    }
}

}  // namespace

void from_float_q8_0_act(const float* src, void* dst, int64_t n) {
    avx2::from_float_q8_0_act(src, dst, n);
    const int64_t nb = n / 32;
    const block_q8_0* y = static_cast<const block_q8_0*>(dst);
    int32_t* c = const_cast<int32_t*>(act_corrections(dst, nb));
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; ++b) c[b] = -128 * avx2::hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, load256(y[b].qs)));
}

void vec_dot_q8_0_int8(int64_t n, float* s, const void* w, const void* x) { *s = dot_row(n / 32, static_cast<const block_q8_0*>(w), static_cast<const uint8_t*>(x)); }
void vec_dot_q4_0_int8(int64_t n, float* s, const void* w, const void* x) { *s = dot_row(n / 32, static_cast<const block_q4_0*>(w), static_cast<const uint8_t*>(x)); }
void vec_dot_n_q8_0_int8(int64_t n, float* s, int64_t ss, const void* w, const void* x, size_t xs, int64_t nx) { dot_n<block_q8_0>(n, s, ss, w, x, xs, nx); }
void vec_dot_n_q4_0_int8(int64_t n, float* s, int64_t ss, const void* w, const void* x, size_t xs, int64_t nx) { dot_n<block_q4_0>(n, s, ss, w, x, xs, nx); }
void int8_tile_q8_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile<block_q8_0>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void int8_tile_q4_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    int8_tile<block_q4_0>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}

}  // namespace moerun::avx512
