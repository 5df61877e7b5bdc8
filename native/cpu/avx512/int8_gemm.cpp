// Q8_0 and Q4_0 weights as an int8 GEMM (AVX512_VNNI, and on the amx path the AMX tile unit for
// the integer sums): tiles of 16 weight rows against any number of Q8_0 activation rows, in the
// scalar reference's float order, so every result equals ref::vec_dot_q8_0 / ref::vec_dot_q4_0 bit
// for bit.
//
// A tile's 16 rows are unpacked once, for all its activations, into an interleaved copy in a
// per-thread buffer (16 rows x 32 quants + 16 scales per block, 576 bytes): dword g of row r in
// lane r of register g. One vpdpbusd then takes 4 quants of all 16 rows against 4 activation bytes
// broadcast from memory, so a block and a token cost 8 vpdpbusd and 4 float operations for 512
// products, with no horizontal sums (the kernels this replaces reduced 8 lanes per row, token
// and block). Nothing is kept beyond the call: the file's weights are never copied whole. With 1..3
// activation rows (decode) the tile reads its rows in place instead (tile_direct).
//
// vpdpbusd multiplies unsigned by signed bytes, so the weights are packed biased by 128 (Q8_0:
// q + 128; Q4_0: q - 8 + 128) and each activation block carries -128 * (sum of its quants), which
// starts the block's int32 sum (from_float_q8_0_act below). The per-block integer sums are exact;
// the float steps are the reference's: ((d_w * d_a) * float(isum)), added block by block to a sum
// that starts at 0, as separate multiplies and adds (this tree builds with -ffp-contract=off).
#include "../../quant/blocks.h"
#include "../tile_prefetch.h"
#include "../avx2/kernels.h"  // avx2::from_float_q8_0_act, avx2::q8_0_act_scales
#include "amx.h"
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
// tile's last repeat it), biased by 128 for vpdpbusd or, for the AMX tiles' TDPBSSD, Signed (Q8_0:
// q, Q4_0: q - 8; biased = signed ^ 0x80). The scales go apart (scales_of_blocks).
template <typename B, bool Signed = false>
inline void pack_quants(const uint8_t* const* row, int64_t b, packed_block* out) {
    const size_t at = size_t(b) * sizeof(B) + offsetof(B, qs);
    if constexpr (std::is_same_v<B, block_q8_0>) {
        transpose_16x4(row, at, out->q);           // quants 0..15
        transpose_16x4(row, at + 16, out->q + 4);  // quants 16..31
        if constexpr (!Signed) {
            const __m512i bias = _mm512_set1_epi8(char(0x80));
            MOERUN_UNROLL
            for (int g = 0; g < 8; ++g) out->q[g] = _mm512_xor_si512(out->q[g], bias);
        }
    } else {  // Q4_0: byte j holds element j (low nibble) and element j + 16 (high)
        __m512i v[4];
        transpose_16x4(row, at, v);
        const __m512i low = _mm512_set1_epi8(0x0F), bias = _mm512_set1_epi8(Signed ? -8 : 120);  // q - 8 (+ 128)
        MOERUN_UNROLL
        for (int g = 0; g < 4; ++g) {
            out->q[g] = _mm512_add_epi8(_mm512_and_si512(v[g], low), bias);
            out->q[g + 4] = _mm512_add_epi8(_mm512_and_si512(_mm512_srli_epi16(v[g], 4), low), bias);
        }
    }
}

// The tile's block scales, read with the quants a few blocks at a time (a separate scalar pass
// over the halves took half of Q4_0 decode's time, waiting on memory while nothing computed; a
// gather per block ran decode 8x slower on Zen 5): one 64-byte load per row at block b holds the
// halves of blocks b..b+G-1 (Q4_0: G = 4, at words 0, 9, 18, 27; Q8_0: G = 2, at words 0 and 17),
// and two-source word permutes with inserts gather them into 16-row vectors.

// Blocks whose scales one 64-byte load at a block's start holds.
template <typename B>
constexpr int k_scale_blocks = (64 - 2) / int(sizeof(B)) + 1;
static_assert(k_scale_blocks<block_q4_0> == 4 && k_scale_blocks<block_q8_0> == 2, "the gathers below assume these");

// Permute indices of the scale gather for blocks of type B (built once).
template <typename B>
struct scale_gather {
    static constexpr int G = k_scale_blocks<B>;
    static constexpr int half_words = int(sizeof(B)) / 2;  // a block's stride in words
    __m512i pair_pass;     // rows 2p, 2p + 1 -> words 0..G-1 and G..2G-1
    __m512i last_pass[2];  // the gathered pairs -> 16 rows of block j at words 16 (j % 2) + r
    scale_gather() {
        alignas(64) int16_t a[32] = {}, z[2][32] = {};
        for (int j = 0; j < G; ++j) {
            a[j] = int16_t(half_words * j);
            a[G + j] = int16_t(32 + half_words * j);
        }
        // After the pairs are put together (scales_of_blocks), row r's block j is at word
        //   G = 4: 4 (r % 8) + j of register r / 8 (two registers, 8 rows each);
        //   G = 2: 2 r + j of one register.
        for (int k = 0; k < 2; ++k)
            for (int half = 0; half < 2; ++half)
                for (int r = 0; r < 16; ++r) {
                    const int j = 2 * k + half;
                    z[k][16 * half + r] = int16_t(G == 4 ? (r < 8 ? 0 : 32) + 4 * (r % 8) + j : 2 * r + half);
                }
        pair_pass = _mm512_load_si512(a);
        last_pass[0] = _mm512_load_si512(z[0]);
        last_pass[1] = _mm512_load_si512(z[1]);
    }
};

// d[j] = the 16 rows' scales of block b + j as floats, j < G.
template <typename B>
inline void scales_of_blocks(const uint8_t* const* row, int64_t b, const scale_gather<B>& g, __m512 d[k_scale_blocks<B>]) {
    constexpr int G = k_scale_blocks<B>;
    const size_t at = size_t(b) * sizeof(B);
    __m128i pair[8];  // G = 4: words 0..7 used; G = 2: words 0..3
    MOERUN_UNROLL
    for (int p = 0; p < 8; ++p) {
        pair[p] = _mm512_castsi512_si128(_mm512_permutex2var_epi16(load512(row[2 * p] + at), g.pair_pass, load512(row[2 * p + 1] + at)));
    }
    if constexpr (G == 4) {
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
    } else {
        __m128i quad[4];
        MOERUN_UNROLL
        for (int q = 0; q < 4; ++q) quad[q] = _mm_unpacklo_epi64(pair[2 * q], pair[2 * q + 1]);
        const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(quad[0]), quad[1], 1);
        const __m256i c = _mm256_inserti128_si256(_mm256_castsi128_si256(quad[2]), quad[3], 1);
        const __m512i z = _mm512_permutexvar_epi16(g.last_pass[0], join(a, c));
        d[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(z));
        d[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(z, 1));
    }
}

template <typename B>
const scale_gather<B>& gather_of() {
    static const scale_gather<B> g;
    return g;
}

// The 16 rows' scales of block b, one half at a time (the last nb % G blocks).
template <typename B>
inline __m512 scales_of_block(const uint8_t* const* row, int64_t b) {
    alignas(32) uint16_t h[k_tile_rows];
    for (int r = 0; r < k_tile_rows; ++r) h[r] = reinterpret_cast<const B*>(row[r])[b].d;
    return _mm512_cvtph_ps(load256(h));
}

// Per-thread scratch of the tiles, grown to the longest row seen. Its element types are local to
// this file, so the vector code instantiated here (with AVX-512 flags) is never shared with other
// files through the linker.
struct tile_scratch {
    std::vector<packed_block> packed;  // 576 bytes per block
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

// ---- decode: the tile's 16 rows read in place, four rows to a register ----
//
// With 1..3 activation rows, packing a tile costs more than it saves. Group g of the tile then
// holds rows g, 4 + g, 8 + g, 12 + g in the four 128-bit lanes of two registers, quants 0..15 and
// 16..31 (Q4_0: one load, low and high nibbles), each dotted with its half of the activation
// block broadcast to every lane (vpdpbusd). Lane l of group g then holds 4 partial sums of row
// 4l + g; adding them across the groups (unpack 32, then 64 bits) puts row r in dword r. Per
// block of 16 rows: 16 (Q8_0: 32) loads of 16 bytes, 8 vpdpbusd, 6 for the sums and 8 (Q8_0: XOR) or 12 (Q4_0: AND,
// shift) to unpack. The tile two ahead streams in meanwhile (tile_prefetch.h: 16 lockstep row
// streams are not what the hardware prefetchers follow).

// The 16 bytes at `at` of rows g, 4 + g, 8 + g, 12 + g in 128-bit lanes 0..3.
inline __m512i group_bytes(const uint8_t* const* row, size_t at, int g) {
    __m512i v = _mm512_castsi128_si512(load128(row[g] + at));
    v = _mm512_inserti32x4(v, load128(row[4 + g] + at), 1);
    v = _mm512_inserti32x4(v, load128(row[8 + g] + at), 2);
    return _mm512_inserti32x4(v, load128(row[12 + g] + at), 3);
}

// Block b of the 16 rows against T activation rows: acc[t] += (d * d_x) * float(isum) per row.
// Q8_0's quants are biased by 128 (isum starts at the activation's -128 * sum); Q4_0's stay
// unsigned 0..15, so the reference's q - 8 becomes -8 * sum = (-128 * sum) / 16, exactly.
template <typename B, int T>
inline void direct_block(const uint8_t* const* row, int64_t b, __m512 d, const block_q8_0* const* xq, const float* const* xd,
                         const int32_t* const* xc, __m512 acc[T]) {
    const size_t at = size_t(b) * sizeof(B) + offsetof(B, qs);
    __m512i lo[4], hi[4];  // quants 0..15 and 16..31 of each group's four rows
    MOERUN_UNROLL
    for (int g = 0; g < 4; ++g) {
        if constexpr (std::is_same_v<B, block_q8_0>) {
            const __m512i bias = _mm512_set1_epi8(char(0x80));
            lo[g] = _mm512_xor_si512(group_bytes(row, at, g), bias);
            hi[g] = _mm512_xor_si512(group_bytes(row, at + 16, g), bias);
        } else {
            const __m512i v = group_bytes(row, at, g), low = _mm512_set1_epi8(0x0F);
            lo[g] = _mm512_and_si512(v, low);
            hi[g] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        }
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
        const int32_t correction = std::is_same_v<B, block_q8_0> ? xc[t][b] : xc[t][b] / 16;
        const __m512i isum = _mm512_add_epi32(rows, _mm512_set1_epi32(correction));
        const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(xd[t][b]));
        acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(isum)));
    }
}

template <typename B, int T>
void tile_direct(const uint8_t* const* row, size_t w_row, int64_t nb, const uint8_t* x, size_t x_row, float* y, int64_t y_stride,
                 __mmask16 store) {
    constexpr int G = k_scale_blocks<B>;
    const scale_gather<B>& gather = gather_of<B>();
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
    tile_prefetch ahead(row[0], w_row, k_tile_rows, nb / G);
    for (; b + G <= nb; b += G) {
        ahead.step();
        __m512 d[G];
        scales_of_blocks<B>(row, b, gather, d);
        MOERUN_UNROLL
        for (int j = 0; j < G; ++j) direct_block<B, T>(row, b + j, d[j], xq, xd, xc, acc);
    }
    for (; b < nb; ++b) direct_block<B, T>(row, b, scales_of_block<B>(row, b), xq, xd, xc, acc);
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
}

// Unpacks the tile's rows (row[r]; rows past the last repeat it) into packed[0..nb), once for
// all the activation rows (Signed: see pack_quants).
template <typename B, bool Signed = false>
void pack_tile(const uint8_t* const* row, int64_t nb, packed_block* packed) {
    constexpr int G = k_scale_blocks<B>;
    int64_t b = 0;
    for (; b + G <= nb; b += G) {
        __m512 d[G];
        scales_of_blocks<B>(row, b, gather_of<B>(), d);
        MOERUN_UNROLL
        for (int j = 0; j < G; ++j) {
            pack_quants<B, Signed>(row, b + j, &packed[b + j]);
            packed[b + j].d = d[j];
        }
    }
    for (; b < nb; ++b) {
        pack_quants<B, Signed>(row, b, &packed[b]);
        packed[b].d = scales_of_block<B>(row, b);
    }
}

template <typename B>
void int8_tile(int64_t n, const void* vw, size_t w_row, int64_t nw, const void* vx, size_t x_row, int64_t nx, float* y,
               int64_t y_stride) {
    const int64_t nb = n / 32;
    const uint8_t* row[k_tile_rows];
    tile_row_pointers(vw, w_row, nw, row);
    const __mmask16 store = tile_store_mask(nw);
    const uint8_t* x = static_cast<const uint8_t*>(vx);
    switch (nx) {  // decode: packing costs more than it saves
        case 1: tile_direct<B, 1>(row, w_row, nb, x, x_row, y, y_stride, store); return;
        case 2: tile_direct<B, 2>(row, w_row, nb, x, x_row, y, y_stride, store); return;
        case 3: tile_direct<B, 3>(row, w_row, nb, x, x_row, y, y_stride, store); return;
        default: break;
    }
    thread_local tile_scratch scratch;
    if (scratch.packed.size() < size_t(nb)) scratch.packed.resize(size_t(nb));
    packed_block* const packed = scratch.packed.data();
    pack_tile<B>(row, nb, packed);

    // 8 activation rows per pass: 8 accumulators, 8 block sums in flight and the 8 packed quant
    // registers fit the 32 registers.
    for_token_passes(nx, [&](auto tokens, int64_t i) {
        tile_tokens<decltype(tokens)::value>(packed, nb, x + size_t(i) * x_row, x_row, y + i * y_stride, y_stride, store);
    });
}

// ---- AMX (amx.h): the same packed blocks as B tiles ----
//
// Per block and 16 activation rows, one TDPBSSD: C (tokens x 16 weight rows, int32) = A (the
// tokens' 32 quants) . B (packed_block::q packed Signed: 8 rows of 64 bytes in exactly B's
// layout), so isum = C exactly. C goes to memory, and per token the float steps of tile_tokens
// follow: acc += (d * d_x) * float(isum). The tokens' scales d_x come from a table gathered once
// per call (token_scales), so that each is a broadcast at a fixed offset from one address (read
// through 16 row pointers, the pointers spilled and were reloaded for every broadcast). Two sets
// of tile registers alternate between blocks (tiles are not renamed), and the vector units take
// block b's sums while the tile unit computes the next.
//
// A tiles load from the activation rows' aligned copy of their quants (act_quants_at, written by
// from_float_q8_0_act_amx): in place, the 32 quants at 2 + 34 b of each Q8_0 row cross a cache
// line in every other block, and a 16-row tile load of such rows took 2-3x the time of an
// aligned one (13.6 against 4.8 ns, in L1).

// Tile registers: set 0 is A 0, B 1, C 2; set 1 is A 3, B 4, C 5.
inline amx_config amx_q8_config(int tokens) {
    amx_config c;
    for (int set = 0; set < 2; ++set) {
        c.set(3 * set, tokens, 32);      // A: a block's 32 quants per token
        c.set(3 * set + 1, 8, 64);       // B: 8 groups of 4 quants x 16 weight rows
        c.set(3 * set + 2, tokens, 64);  // C: 16 int32 per token
    }
    return c;
}

// Where a Q8_0 activation row of the amx path keeps its quants aligned (cpu/kernels.h).
inline size_t act_quants_at(int64_t nb) { return act_quants_offset(size_t(nb) * sizeof(block_q8_0), size_t(nb) * k_q8_0_act_extra); }

// Block b's sums of the pass's tokens (A: their quants of the block, x_row apart) into
// c_out[token][row]. The activation rows are not written during a call, so only the packed
// weights need fences.
inline void amx_block_set0(const uint8_t* a, size_t x_row, const packed_block& p, amx_c_tile& c_out) {
    amx_fence(p);
    _tile_zero(2);
    MOERUN_AMX_LOAD(0, a, x_row);
    MOERUN_AMX_LOAD(1, p.q, 64);
    _tile_dpbssd(2, 0, 1);
    MOERUN_AMX_STORE(2, c_out);
    amx_fence(p);
}
inline void amx_block_set1(const uint8_t* a, size_t x_row, const packed_block& p, amx_c_tile& c_out) {
    amx_fence(p);
    _tile_zero(5);
    MOERUN_AMX_LOAD(3, a, x_row);
    MOERUN_AMX_LOAD(4, p.q, 64);
    _tile_dpbssd(5, 3, 4);
    MOERUN_AMX_STORE(5, c_out);
    amx_fence(p);
}

// A block's 16 scales, of 16 weight rows (amx_small) or 16 activation rows (amx_pass).
struct packed_scales {
    alignas(64) float d[16];
};

// The activation rows' scales by passes of 16 rows, block-major: out[p * nb + b].d[t] = d_x of
// row 16 p + t at block b (rows past the last repeat it).
inline void token_scales(const uint8_t* x, size_t x_row, int64_t nx, int64_t nb, packed_scales* out) {
    for (int64_t p = 0; p < (nx + k_amx_tokens - 1) / k_amx_tokens; ++p) {
        const float* xd[k_amx_tokens];
        for (int t = 0; t < k_amx_tokens; ++t) xd[t] = avx2::q8_0_act_scales(x + size_t(std::min<int64_t>(p * k_amx_tokens + t, nx - 1)) * x_row, nb);
        for (int64_t b = 0; b < nb; ++b)
            for (int t = 0; t < k_amx_tokens; ++t) out[p * nb + b].d[t] = xd[t][b];
    }
}

// One pass of `tokens` (1..16) activation rows (a: their aligned quants, x_row apart) over all
// blocks of one packed tile, dx their scales (token_scales): y[t * y_stride + r], the sums taken
// 4 blocks behind the tile unit (tile_pipeline). The float steps always run 16 tokens (rows past
// the pass's last are not stored), so there is one instantiation; the tiles read only the pass's
// rows.
constexpr int k_amx_lead = 4;

inline void amx_pass(const packed_block* pw, int64_t nb, const uint8_t* a, size_t x_row, int tokens, const packed_scales* dx, float* y,
                     int64_t y_stride, __mmask16 store) {
    constexpr int T = k_amx_tokens;
    __m512 acc[T];
    MOERUN_UNROLL
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    amx_c_tile c[k_amx_lead + 1];  // token t's sums in row t
    auto issue = [&](int64_t b, int slot) {
        if (b & 1) {
            amx_block_set1(a + 32 * b, x_row, pw[b], c[slot]);
        } else {
            amx_block_set0(a + 32 * b, x_row, pw[b], c[slot]);
        }
    };
    auto take = [&](int64_t b, int slot) {
        const __m512 d = pw[b].d;
        const float* d_x = dx[b].d;
        MOERUN_UNROLL
        for (int t = 0; t < T; ++t) {
            const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(d_x[t]));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(amx_load_row(c[slot].v[t]))));
        }
    };
    tile_pipeline<k_amx_lead>(nb, issue, take);
    MOERUN_UNROLL  // constant indices: acc stays in registers (a loop to `tokens` put it in memory)
    for (int t = 0; t < T; ++t) {
        if (t < tokens) _mm512_mask_storeu_ps(y + t * y_stride, store, acc[t]);
    }
}

// Per-thread scratch of amx_tile_rows (local types: see tile_scratch).
struct amx_scratch {
    std::vector<packed_block> packed;  // the call's tiles, nb blocks each
    std::vector<packed_scales> dx;     // token_scales
};

// nw (<= k_amx_rows_per_call) weight rows against more than 16 activation rows: the rows packed
// once per 16 as B tiles, then passes of 16 tokens over all the tiles, and a rest of fewer than
// k_tile_tokens on the vector units (tile_tokens, the same blocks biased).
template <typename B>
void amx_tile_rows(int64_t n, const uint8_t* w, size_t w_row, int64_t nw, const uint8_t* x, size_t x_row, int64_t nx, float* y,
                   int64_t y_stride) {
    const int64_t nb = n / 32;
    const int64_t tiles = (nw + k_tile_rows - 1) / k_tile_rows;  // tile g: rows 16 g.., packed at packed + g nb
    thread_local amx_scratch scratch;
    if (scratch.packed.size() < size_t(tiles * nb)) scratch.packed.resize(size_t(tiles * nb));
    const size_t need_dx = size_t((nx + k_amx_tokens - 1) / k_amx_tokens * nb);
    if (scratch.dx.size() < need_dx) scratch.dx.resize(need_dx);
    packed_block* const packed = scratch.packed.data();
    const packed_scales* const dx = scratch.dx.data();
    token_scales(x, x_row, nx, nb, scratch.dx.data());
    for_each_tile(nw, [&](int64_t r0, int64_t rows) {
        const uint8_t* row[k_tile_rows];
        tile_row_pointers(w + size_t(r0) * w_row, w_row, rows, row);
        pack_tile<B, true>(row, nb, packed + r0 / k_tile_rows * nb);
    });
    const int64_t rest = nx % k_amx_tokens < k_tile_tokens ? nx % k_amx_tokens : 0;  // on the vector units
    amx_token_passes(nx - rest, amx_q8_config, [&](int64_t i, int tokens) {
        const uint8_t* a = x + size_t(i) * x_row + act_quants_at(nb);
        for_each_tile(nw, [&](int64_t r0, int64_t rows) {
            amx_pass(packed + r0 / k_tile_rows * nb, nb, a, x_row, tokens, dx + (i / k_amx_tokens) * nb, y + i * y_stride + r0, y_stride,
                     tile_store_mask(rows));
        });
    });
    if (rest == 0) return;
    const __m512i bias = _mm512_set1_epi8(char(0x80));
    for (int64_t b = 0; b < tiles * nb; ++b)
        for (__m512i& q : packed[b].q) q = _mm512_xor_si512(q, bias);
    for_each_tile(nw, [&](int64_t r0, int64_t rows) {
        for_token_passes(rest, [&](auto t, int64_t j) {
            const int64_t i = nx - rest + j;
            tile_tokens<decltype(t)::value>(packed + r0 / k_tile_rows * nb, nb, x + size_t(i) * x_row, x_row, y + i * y_stride + r0, y_stride,
                                            tile_store_mask(rows));
        });
    });
}

// ---- AMX for few activation rows (expert batches): the weights as A, the activations packed ----
//
// With 10-16 activation rows (an MoE expert's share of a prompt), packing 16 weight rows costs
// more than the few tokens' products. Here the roles turn: per block, C (16 weight rows x 16
// tokens) = A (the weight rows' 32 quants: Q8_0 read in place from the file's rows, Q4_0 unpacked
// to q - 8 row by row, no transposes) . B (the tokens' quants, packed once per call into B's
// layout for all the call's weight rows, up to k_amx_rows_per_call). Both signed (TDPBSSD), so
// isum = C exactly, and per weight row the float steps run across the tokens:
// acc_r += (d_r * d_x) * float(isum), d_x the tokens' scales as one vector.

// The call's activations, per block: B (8 rows of 64 bytes: dword g of token t at bytes 4t..) and
// the 16 tokens' scales.
struct packed_tokens {
    __m512i q[8];
    __m512 d;
};

// Tile registers: set 0 is A 0, B 1, C 2; set 1 is A 3, B 4, C 5 (as amx_q8_config, A and C
// with `rows` weight rows).
inline amx_config amx_small_config(int rows) {
    amx_config c;
    for (int set = 0; set < 2; ++set) {
        c.set(3 * set, rows, 32);
        c.set(3 * set + 1, 8, 64);
        c.set(3 * set + 2, rows, 64);
    }
    return c;
}

inline void amx_small_set0(const uint8_t* a, size_t a_row, const packed_tokens& p, amx_c_tile& c_out) {
    amx_fence(p);
    _tile_zero(2);
    MOERUN_AMX_LOAD(0, a, a_row);
    MOERUN_AMX_LOAD(1, p.q, 64);
    _tile_dpbssd(2, 0, 1);
    MOERUN_AMX_STORE(2, c_out);
    amx_fence(p);
}
inline void amx_small_set1(const uint8_t* a, size_t a_row, const packed_tokens& p, amx_c_tile& c_out) {
    amx_fence(p);
    _tile_zero(5);
    MOERUN_AMX_LOAD(3, a, a_row);
    MOERUN_AMX_LOAD(4, p.q, 64);
    _tile_dpbssd(5, 3, 4);
    MOERUN_AMX_STORE(5, c_out);
    amx_fence(p);
}

// Packs the nx (<= 16) activation rows' blocks (rows past the last repeat it; their columns of C
// are not stored).
inline void pack_tokens(const uint8_t* x, size_t x_row, int64_t nx, int64_t nb, packed_tokens* out) {
    const uint8_t* row[16];
    const float* xd[16];
    for (int t = 0; t < 16; ++t) {
        row[t] = x + size_t(std::min<int64_t>(t, nx - 1)) * x_row;
        xd[t] = avx2::q8_0_act_scales(row[t], nb);
    }
    for (int64_t b = 0; b < nb; ++b) {
        const size_t at = size_t(b) * sizeof(block_q8_0) + offsetof(block_q8_0, qs);
        transpose_16x4(row, at, out[b].q);
        transpose_16x4(row, at + 16, out[b].q + 4);
        alignas(64) float d[16];
        for (int t = 0; t < 16; ++t) d[t] = xd[t][b];
        out[b].d = _mm512_load_ps(d);
    }
}

// out[b] = the scales of block b of the 16 rows, for b < nb (scales_of_blocks, G blocks a load).
template <typename B>
void scales_of_rows(const uint8_t* const* row, int64_t nb, packed_scales* out) {
    constexpr int G = k_scale_blocks<B>;
    int64_t b = 0;
    for (; b + G <= nb; b += G) {
        __m512 d[G];
        scales_of_blocks<B>(row, b, gather_of<B>(), d);
        MOERUN_UNROLL
        for (int j = 0; j < G; ++j) _mm512_store_ps(out[b + j].d, d[j]);
    }
    for (; b < nb; ++b) _mm512_store_ps(out[b].d, scales_of_block<B>(row, b));
}

// One group of up to 16 weight rows (row[r], rows past the last repeat it) against the packed
// tokens: y[t * y_stride + r] for t < nx, r < nrows.
template <typename B>
void amx_small_group(const uint8_t* const* row, size_t w_row, int nrows, const packed_tokens* pt, int64_t nb, int64_t nx, float* y,
                     int64_t y_stride) {
    // A tiles: Q8_0 rows in place (w_row apart); Q4_0 rows unpacked to q - 8, 32 bytes a row, per block.
    constexpr bool in_place = std::is_same_v<B, block_q8_0>;
    alignas(64) int8_t unpacked[k_amx_lead + 1][16][32];
    amx_c_tile c[k_amx_lead + 1];  // weight row r's sums in row r
    thread_local std::vector<packed_scales> scales;  // the rows' block scales, 16 per block
    if (scales.size() < size_t(nb)) scales.resize(size_t(nb));
    scales_of_rows<B>(row, nb, scales.data());
    __m512 acc[16];
    MOERUN_UNROLL
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
    auto issue = [&](int64_t b, int slot) {
        const uint8_t* a;
        size_t a_row;
        if constexpr (in_place) {
            a = row[0] + size_t(b) * sizeof(B) + offsetof(B, qs);
            a_row = w_row;
        } else {
            for (int r = 0; r < nrows; ++r) {
                const __m256i q = avx2::unpack_nibbles(reinterpret_cast<const B*>(row[r])[b].qs);
                _mm256_store_si256(reinterpret_cast<__m256i*>(unpacked[slot][r]), _mm256_sub_epi8(q, _mm256_set1_epi8(8)));
            }
            a = reinterpret_cast<const uint8_t*>(unpacked[slot]);
            a_row = 32;
        }
        amx_fence(unpacked[slot]);
        if (b & 1) {
            amx_small_set1(a, a_row, pt[b], c[slot]);
        } else {
            amx_small_set0(a, a_row, pt[b], c[slot]);
        }
        amx_fence(unpacked[slot]);
    };
    auto take = [&](int64_t b, int slot) {
        const __m512 dx = pt[b].d;
        const float* dw = scales[size_t(b)].d;
        MOERUN_UNROLL
        for (int r = 0; r < 16; ++r) {
            const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(dw[r]), dx);
            acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(amx_load_row(c[slot].v[r]))));
        }
    };
    tile_pipeline<k_amx_lead>(nb, issue, take);
    alignas(64) float out[16][16];
    MOERUN_UNROLL
    for (int r = 0; r < 16; ++r) _mm512_store_ps(out[r], acc[r]);
    for (int64_t t = 0; t < nx; ++t)
        for (int r = 0; r < nrows; ++r) y[t * y_stride + r] = out[r][t];
}

// nw (<= k_amx_rows_per_call) weight rows against 4..16 activation rows.
template <typename B>
void amx_small(int64_t n, const void* vw, size_t w_row, int64_t nw, const uint8_t* x, size_t x_row, int64_t nx, float* y,
               int64_t y_stride) {
    const int64_t nb = n / 32;
    thread_local std::vector<packed_tokens> scratch;  // local type: see tile_scratch
    if (scratch.size() < size_t(nb)) scratch.resize(size_t(nb));
    pack_tokens(x, x_row, nx, nb, scratch.data());
    amx_scope tiles;
    int configured = 0;
    for (int64_t r0 = 0; r0 < nw; r0 += 16) {
        const int nrows = int(std::min<int64_t>(16, nw - r0));
        if (nrows != configured) {
            tiles.load(amx_small_config(nrows));
            configured = nrows;
        }
        const uint8_t* row[k_tile_rows];
        tile_row_pointers(static_cast<const uint8_t*>(vw) + size_t(r0) * w_row, w_row, nrows, row);
        amx_small_group<B>(row, w_row, nrows, scratch.data(), nb, nx, y + r0, y_stride);
    }
}

// The amx path's tile, up to k_amx_rows_per_call weight rows: with more than 16 activation rows
// amx_tile_rows, with k_amx_small_min_tokens<B>..16 amx_small, with fewer the AVX-512 tile per 16
// weight rows. In cache, k 2048, 64 weight rows, the Sapphire Rapids VM (its
// speed varied up to 2x between runs), the AVX-512 tile's time over this one, two runs:
//   Q8_0 m 4 0.72-0.80x, 8 0.94-1.07x, 12 1.37-1.41x, 16 1.48-1.63x, 24 1.06x, 32 1.29x
//   Q4_0 m 4 0.49-0.50x, 8 0.73-0.78x, 12 0.96-1.02x, 16 1.19-1.37x, 24 0.80x, 32 1.42x
// (16 weight rows a call, before amx_small: Q8_0 m 16 1.19-1.31x, Q4_0 1.16-1.29x).
template <typename B>
constexpr int64_t k_amx_small_min_tokens = std::is_same_v<B, block_q8_0> ? 10 : 12;

template <typename B>
void amx_tile(int64_t n, const void* vw, size_t w_row, int64_t nw, const void* vx, size_t x_row, int64_t nx, float* y,
              int64_t y_stride) {
    const uint8_t* w = static_cast<const uint8_t*>(vw);
    if (nx >= k_amx_small_min_tokens<B> && nx <= k_amx_tokens) {
        return amx_small<B>(n, vw, w_row, nw, static_cast<const uint8_t*>(vx), x_row, nx, y, y_stride);
    }
    if (nx <= k_amx_tokens) {
        for_each_tile(nw, [&](int64_t r0, int64_t rows) { int8_tile<B>(n, w + size_t(r0) * w_row, w_row, rows, vx, x_row, nx, y + r0, y_stride); });
        return;
    }
    amx_tile_rows<B>(n, w, w_row, nw, static_cast<const uint8_t*>(vx), x_row, nx, y, y_stride);
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

void from_float_q8_0_act_amx(const float* src, void* dst, int64_t n) {
    from_float_q8_0_act(src, dst, n);
    const int64_t nb = n / 32;
    const block_q8_0* y = static_cast<const block_q8_0*>(dst);
    uint8_t* q = static_cast<uint8_t*>(dst) + act_quants_at(nb);
    for (int64_t b = 0; b < nb; ++b) std::memcpy(q + 32 * b, y[b].qs, 32);
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
void amx_tile_q8_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    amx_tile<block_q8_0>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}
void amx_tile_q4_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    amx_tile<block_q4_0>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}

}  // namespace moerun::avx512
