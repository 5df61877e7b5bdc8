// AVX2 dots of the lattice formats (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M), the
// ternary formats (TQ1_0, TQ2_0) against Q8_K, and MXFP4 against Q8_0.
//
// Lattice formats: per 32 weights, the grid points are gathered into one register of unsigned
// bytes (|value|), their signs are moved onto the activations (_mm256_sign_epi8; Q8_K values are
// in -127..127, so negating never overflows), and maddubs + madd with the sub-block scales give
// exact int32 sums. Scales (and IQ2_S/IQ3_S signs, IQ1 deltas) are decoded once per super-block
// into vectors that one shuffle per sub-block spreads. Every format's reference adds one float
// term per block to a running sum; the kernels reduce the int32 lanes of 4 blocks at once
// (sum_block_terms) and add the terms one by one in the reference's order, so they equal it
// (quant/reference_iq_grid.cpp, reference_tq.cpp) bit for bit. That costs MXFP4 most (one float
// add, and its share of the lane shuffles, per 32 weights): its matvec is bound by the vector
// ports, the shuffle port first (measured figures: register.cpp).
#include "../../quant/blocks.h"
#include "../../quant/iq_grids.h"
#include "../iq_tables.h"
#include "block_terms.h"
#include "kernels.h"
#include "simd.h"

namespace moerun::avx2 {
namespace {

// One 32-weight sub-block as the lattice kernel takes it: unsigned magnitudes, a byte vector whose
// sign (or zero) multiplies each activation (not for IQ1, see iq1_points), and the int16 scale of
// each half of 16.
struct sub_block {
    __m256i w, sign, scale;
};

inline __m256i points8(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    return _mm256_set_epi64x(int64_t(d), int64_t(c), int64_t(b), int64_t(a));
}


// The 4 x 7 stored sign bits of an IQ2_XXS/IQ3_XXS word as 32 bytes of +-1.
inline __m256i parity_signs(uint32_t word) {
    return points8(k_iq_sign_bytes[word & 127], k_iq_sign_bytes[(word >> 7) & 127], k_iq_sign_bytes[(word >> 14) & 127], k_iq_sign_bytes[(word >> 21) & 127]);
}

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// IQ2_S / IQ3_S grid indices: 8 low bits in qs, the high bits in qh. A super-block's indices are
// built as int16 lanes in a few vector ops and stored (grid_indices); the kernels then read them
// back one by one as scalar loads (one load uop each, where per-point scalar code takes 4-5 ALU
// ops), asm("") stopping GCC from keeping them in registers and extracting each with vpextrw (two
// uops, on the shuffle port the points need).
template <size_t N>
struct grid_indices {
    alignas(32) uint16_t v[N];
    void read_back_from_memory() { asm("" : "+m"(v)); }
};
// 16 indices as int16 lanes: qs_lo (the qs bytes, zero-extended) or'ed with the high bits of
// each lane's qh byte (qh_spread) found at bit t of it, moved to bit 8 by mul = 2^(8 - t) per lane
// (lower bits stay below 8, upper ones go above the mask, 0x100 or 0x300).
inline __m256i grid_index16(__m256i qs_lo, __m256i qh_spread, __m256i mul, __m256i mask) {
    return _mm256_or_si256(qs_lo, _mm256_and_si256(_mm256_mullo_epi16(qh_spread, mul), mask));
}
// Two 32-bit grid entries as one 64-bit lane (two ALU ops here save a vpinsrd on the shuffle port).
inline uint64_t pair32(uint32_t lo, uint32_t hi) { return lo | uint64_t(hi) << 32; }

// shuffle_epi8 controls that broadcast within each 128-bit half: word w0 to the first half's 8
// lanes and w1 to the second's; bytes a, b, c, d to 8 lanes each.
inline __m256i words_spread(int w0, int w1) {
    return _mm256_set_m128i(_mm_set1_epi16(short(((2 * w1 + 1) << 8) | (2 * w1))), _mm_set1_epi16(short(((2 * w0 + 1) << 8) | (2 * w0))));
}
inline __m256i bytes_spread(int a, int b, int c, int d) {
    constexpr int64_t ones = 0x0101010101010101;
    return _mm256_setr_epi64x(a * ones, b * ones, c * ones, d * ones);
}
// shuffle_epi8 control: byte a zero-extended to int16 lanes 0..3 of each 128-bit half, b to 4..7
// of the first half, c to lanes 0..3 and d to 4..7 of the second.
inline __m256i words_of_bytes(int a, int b, int c, int d) {
    auto w = [](int x) { return int64_t(0x0001000100010001ull * uint64_t(0x8000 | x)); };
    return _mm256_setr_epi64x(w(a), w(b), w(c), w(d));
}
// Lane i of a 128-bit vector of 8 words, twice: the 16 lanes of Q8_K's bsums for 8 per-sub-block values.
inline __m256i words_to_pairs(__m128i v) { return _mm256_set_m128i(_mm_unpackhi_epi16(v, v), _mm_unpacklo_epi16(v, v)); }


// A super-block's sub-block scales (2 s + 1 of 4-bit s) as int16 lanes, kept so that one shuffle
// gives sub-block ib's scale vector for sum_i16_scaled.
// One scale per sub-block: word ib of both halves.
struct sub_block_scales {
    __m256i words;
    explicit sub_block_scales(__m128i ls8) : words(_mm256_set_m128i(ls8, ls8)) {}
    __m256i operator()(int ib) const { return _mm256_shuffle_epi8(words, words_spread(ib, ib)); }
};
// One scale per 16 weights, lane 2 ib + h of ls16: halves of sub-blocks 0..3 / 4..7 in both
// 128-bit halves of half[0] / half[1].
struct half_block_scales {
    __m256i half[2];
    explicit half_block_scales(__m256i ls16)
        : half{_mm256_permute2x128_si256(ls16, ls16, 0x00), _mm256_permute2x128_si256(ls16, ls16, 0x11)} {}
    __m256i operator()(int ib) const {
        const int m = ib % 4;
        return _mm256_shuffle_epi8(half[ib / 4], words_spread(2 * m, 2 * m + 1));
    }
};
// 2 s + 1 of the nibbles of n bytes (n <= 8, low nibble first) as int16 lanes 0..2n-1.
inline __m256i nibble_scales(__m128i bytes) {
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m128i nibbles = _mm_unpacklo_epi8(_mm_and_si128(bytes, m4), _mm_and_si128(_mm_srli_epi16(bytes, 4), m4));
    const __m256i s = _mm256_cvtepu8_epi16(nibbles);
    return _mm256_add_epi16(_mm256_add_epi16(s, s), _mm256_set1_epi16(1));
}

// The 32 sign bytes of an IQ2_S / IQ3_S super-block (4 per sub-block, bit j of byte l for weight
// 8l + j), sub-blocks 0..3 / 4..7 in both 128-bit halves of half[0] / half[1]; operator() gives
// sub-block ib's signs as +-1 bytes (one shuffle, and, compare, or; no GPR-to-vector move).
struct sign_bits {
    __m256i half[2];
    explicit sign_bits(const uint8_t* signs) {
        const __m256i v = load256(signs);
        half[0] = _mm256_permute2x128_si256(v, v, 0x00);
        half[1] = _mm256_permute2x128_si256(v, v, 0x11);
    }
    __m256i operator()(int ib) const {
        const int m = ib % 4;
        const __m256i bytes = _mm256_shuffle_epi8(half[ib / 4], bytes_spread(4 * m, 4 * m + 1, 4 * m + 2, 4 * m + 3));
        const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
        return _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit), _mm256_set1_epi8(1));
    }
};

// The IQ2/IQ3 formats expand each sub-block from the block alone.
template <typename F>
struct sub_by_sub {
    const typename F::block& b;
    explicit sub_by_sub(const typename F::block& blk) : b(blk) {}
    void sub(int ib, sub_block& s) const { F::sub(b, ib, s); }
    __m256i lanes(__m256i isum, const block_q8_K&) const { return isum; }
};

// Per format: the block type, its scale d, `prepared` (what is computed once per super-block:
// sub(ib, s) expands sub-block ib, lanes(isum, y) turns the scaled sub-block sums into the lanes
// of the block's integer), value(f) (the factor of d * y.d in the reference's term, from the
// integer as a float), the final factor of the sum, and whether it is an IQ1 format (unsigned
// points, no sign step).
struct iq2_xxs_fmt {
    using block = block_iq2_xxs;
    static constexpr float factor = 0.125f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
    static float value(float bsum) { return bsum; }
    using prepared = sub_by_sub<iq2_xxs_fmt>;
    static void sub(const block& b, int ib, sub_block& s) {
        // the 4 grid indices as byte loads (one load uop each; extracting them from one 64-bit load
        // takes 6 ALU ops)
        const uint8_t* idx = reinterpret_cast<const uint8_t*>(b.qs + 4 * ib);
        const uint32_t aux = load_u32(idx + 4);
        s.w = points8(k_iq2xxs_grid[idx[0]], k_iq2xxs_grid[idx[1]], k_iq2xxs_grid[idx[2]], k_iq2xxs_grid[idx[3]]);
        s.sign = parity_signs(aux);
        s.scale = _mm256_set1_epi16(short(2 * (aux >> 28) + 1));
    }
};

struct iq2_xs_fmt {
    using block = block_iq2_xs;
    static constexpr float factor = 0.125f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
    static float value(float bsum) { return bsum; }
    struct prepared {
        const block& b;
        half_block_scales scales;
        explicit prepared(const block& blk) : b(blk), scales(nibble_scales(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.scales)))) {}
        void sub(int ib, sub_block& s) const {
            const uint16_t* q = b.qs + 4 * ib;
            s.w = points8(k_iq2xs_grid[q[0] & 511], k_iq2xs_grid[q[1] & 511], k_iq2xs_grid[q[2] & 511], k_iq2xs_grid[q[3] & 511]);
            s.sign = points8(k_iq_sign_bytes[q[0] >> 9], k_iq_sign_bytes[q[1] >> 9], k_iq_sign_bytes[q[2] >> 9], k_iq_sign_bytes[q[3] >> 9]);
            s.scale = scales(ib);
        }
        __m256i lanes(__m256i isum, const block_q8_K&) const { return isum; }
    };
};

struct iq2_s_fmt {
    using block = block_iq2_s;
    static constexpr float factor = 0.125f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
    static float value(float bsum) { return bsum; }
    struct prepared {
        half_block_scales scales;
        sign_bits signs;
        grid_indices<32> idx;  // point 4 ib + k: qs[4 ib + k] | bits 2k, 2k + 1 of qh[ib] << 8
        explicit prepared(const block& b)
            : scales(nibble_scales(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.scales)))), signs(b.qs + 32) {
            const __m256i qh = _mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qh)));
            const __m256i mul = _mm256_setr_epi16(256, 64, 16, 4, 256, 64, 16, 4, 256, 64, 16, 4, 256, 64, 16, 4);
            const __m256i mask = _mm256_set1_epi16(0x300);
            for (int j = 0; j < 2; ++j) {  // sub-blocks 4j .. 4j + 3
                const __m256i spread = _mm256_shuffle_epi8(qh, words_of_bytes(4 * j, 4 * j + 1, 4 * j + 2, 4 * j + 3));
                const __m256i lo = _mm256_cvtepu8_epi16(load128(b.qs + 16 * j));
                _mm256_store_si256(reinterpret_cast<__m256i*>(idx.v + 16 * j), grid_index16(lo, spread, mul, mask));
            }
            idx.read_back_from_memory();
        }
        void sub(int ib, sub_block& s) const {
            const uint16_t* q = idx.v + 4 * ib;
            const auto& g = k_iq2s_grid;
            s.w = points8(g[q[0]], g[q[1]], g[q[2]], g[q[3]]);
            s.sign = signs(ib);
            s.scale = scales(ib);
        }
        __m256i lanes(__m256i isum, const block_q8_K&) const { return isum; }
    };
};

struct iq3_xxs_fmt {
    using block = block_iq3_xxs;
    static constexpr float factor = 0.25f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
    static float value(float bsum) { return bsum; }
    using prepared = sub_by_sub<iq3_xxs_fmt>;
    static void sub(const block& b, int ib, sub_block& s) {
        const uint8_t* q3 = b.qs + 8 * ib;
        const uint32_t aux = load_u32(b.qs + 64 + 4 * ib);
        const auto& g = k_iq3xxs_grid;
        s.w = _mm256_setr_epi32(int(g[q3[0]]), int(g[q3[1]]), int(g[q3[2]]), int(g[q3[3]]), int(g[q3[4]]), int(g[q3[5]]),
                                int(g[q3[6]]), int(g[q3[7]]));
        s.sign = parity_signs(aux);
        s.scale = _mm256_set1_epi16(short(2 * (aux >> 28) + 1));
    }
};

struct iq3_s_fmt {
    using block = block_iq3_s;
    static constexpr float factor = 1.0f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
    static float value(float bsum) { return bsum; }
    struct prepared {
        sub_block_scales scales;  // nibble ib of the 4 scale bytes
        sign_bits signs;
        grid_indices<64> idx;  // point 8 ib + k: qs[8 ib + k] | bit k of qh[ib] << 8
        explicit prepared(const block& b)
            : scales(_mm256_castsi256_si128(nibble_scales(_mm_cvtsi32_si128(int(load_u32(b.scales)))))), signs(b.signs) {
            const __m256i qh = _mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qh)));
            const __m256i mul = _mm256_setr_epi16(256, 128, 64, 32, 16, 8, 4, 2, 256, 128, 64, 32, 16, 8, 4, 2);
            const __m256i mask = _mm256_set1_epi16(0x100);
            for (int j = 0; j < 4; ++j) {  // sub-blocks 2j, 2j + 1: qh bytes 2j, 2j + 1 to the word lanes of each half
                const __m256i spread = _mm256_shuffle_epi8(qh, words_of_bytes(2 * j, 2 * j, 2 * j + 1, 2 * j + 1));
                const __m256i lo = _mm256_cvtepu8_epi16(load128(b.qs + 16 * j));
                _mm256_store_si256(reinterpret_cast<__m256i*>(idx.v + 16 * j), grid_index16(lo, spread, mul, mask));
            }
            idx.read_back_from_memory();
        }
        void sub(int ib, sub_block& s) const {
            const uint16_t* q = idx.v + 8 * ib;
            const auto& g = k_iq3s_grid;
            s.w = points8(pair32(g[q[0]], g[q[1]]), pair32(g[q[2]], g[q[3]]), pair32(g[q[4]], g[q[5]]), pair32(g[q[6]], g[q[7]]));
            s.sign = signs(ib);
            s.scale = scales(ib);
        }
        __m256i lanes(__m256i isum, const block_q8_K&) const { return isum; }
    };
};

// IQ1 weights are g + delta / 8 (g in -1, 0, 1 from the grid, delta +-1), and the reference sums
// sumi = dot(g, q) and sumi_delta = dot(delta, q) per scale, then takes sumi + sumi_delta / 8 in
// float. The kernels compute one integer instead, C = 8 sumi + sumi_delta, below 2^24, so
// float(C) / 8 is exact and equals the reference's float(sumi) + float(sumi_delta) / 8 (one
// rounding of the same exact value, itself exact here). The grid part is taken with the unsigned
// points g + 1 (k_iq1s_grid_plus1), less sum(q) from Q8_K's per-16 sums (bsums).


// IQ1_S: sub-block ib has one scale ls and one delta (bit 15 of qh[ib]), so the delta goes through
// bsums too: C = 8 sum_ib ls dot(g + 1, q) + sum_ib ls (delta - 8) bsum_ib.
struct iq1_s_fmt {
    using block = block_iq1_s;
    static constexpr float factor = 1.0f;
    static constexpr bool is_iq1 = true;
    static float d(const block& b) { return f16(b.d); }
    static float value(float c) { return c * k_iq1_delta; }
    struct prepared {
        const block& b;
        sub_block_scales scales;
        __m256i bsum_factor;  // bsums lanes 2 ib, 2 ib + 1: ls (delta - 8)
        static __m128i ls8(__m128i qh) {
            return _mm_add_epi16(_mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(qh, 12), _mm_set1_epi16(7)), 1), _mm_set1_epi16(1));
        }
        explicit prepared(const block& blk) : b(blk), scales(ls8(load128(blk.qh))) {
            const __m128i qh = load128(b.qh);
            const __m128i negative = _mm_srai_epi16(qh, 15);  // -1 where delta = -1
            const __m128i delta_minus_8 = _mm_add_epi16(_mm_set1_epi16(-7), _mm_add_epi16(negative, negative));
            bsum_factor = words_to_pairs(_mm_mullo_epi16(ls8(qh), delta_minus_8));
        }
        void sub(int ib, sub_block& s) const {
            // the grid indices in scalar code: extracting them from a vector costs shuffle uops the points need
            const auto& g = k_iq1s_grid_plus1;
            const uint8_t* qs = b.qs + 4 * ib;
            const int qh = b.qh[ib];
            s.w = points8(g[size_t(qs[0] | ((qh << 8) & 0x700))], g[size_t(qs[1] | ((qh << 5) & 0x700))],
                   g[size_t(qs[2] | ((qh << 2) & 0x700))], g[size_t(qs[3] | ((qh >> 1) & 0x700))]);
            s.scale = scales(ib);
        }
        __m256i lanes(__m256i isum, const block_q8_K& y) const {
            return _mm256_add_epi32(_mm256_slli_epi32(isum, 3), _mm256_madd_epi16(load256(y.bsums), bsum_factor));
        }
    };
};

// IQ1_M: a scale per 16 weights and a delta per 8 (finer than bsums), so its points are the
// unsigned bytes u = 8 (g + 1) + (delta + 1) in 0..18: dot(u, q) - 9 sum(q) = 8 sumi + sumi_delta,
// with the 9 sum(q) per scale from bsums.
struct iq1_m_fmt {
    using block = block_iq1_m;
    static constexpr float factor = 1.0f;
    static constexpr bool is_iq1 = true;
    static uint16_t word(const block& b, int w) {
        uint16_t v;
        std::memcpy(&v, b.scales + 2 * w, 2);
        return v;
    }
    static float d(const block& b) {
        return f16(uint16_t((word(b, 0) >> 12) | ((word(b, 1) >> 8) & 0x00f0) | ((word(b, 2) >> 4) & 0x0f00) | (word(b, 3) & 0xf000)));
    }
    static float value(float c) { return c * k_iq1_delta; }
    struct prepared {
        const block& b;
        __m256i plus[2];  // delta + 1 (0 or 2) of points 16 h .. 16 h + 15, in both halves
        half_block_scales scales;
        __m256i scales9;  // 9 ls per bsums lane
        explicit prepared(const block& blk) : b(blk), scales(ls16(blk)) {
            const __m128i qh = load128(b.qh);
            const __m128i qh_hi = _mm_srli_epi16(qh, 4);
            const __m128i m8 = _mm_set1_epi8(8);
            // bit 3 of each nibble set: delta -1. (flag ^ 8) >> 2 is 2 where it is clear, else 0
            // (bytes of at most 8, so the 16-bit shift moves no bit across bytes).
            const __m128i plus_lo = _mm_srli_epi16(_mm_xor_si128(_mm_and_si128(qh, m8), m8), 2);
            const __m128i plus_hi = _mm_srli_epi16(_mm_xor_si128(_mm_and_si128(qh_hi, m8), m8), 2);
            const __m128i p0 = _mm_unpacklo_epi8(plus_lo, plus_hi), p1 = _mm_unpackhi_epi8(plus_lo, plus_hi);
            plus[0] = _mm256_set_m128i(p0, p0);
            plus[1] = _mm256_set_m128i(p1, p1);
            const __m256i ls = ls16(b);
            scales9 = _mm256_add_epi16(_mm256_slli_epi16(ls, 3), ls);
        }
        // ls of lane 4w + k (2 ib + h): bits 3k..3k+2 of scale word w, to the top 3 bits by a multiply, then down
        static __m256i ls16(const block& b) {
            const __m256i words = _mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.scales)));
            const __m256i spread = _mm256_shuffle_epi8(words, _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 4, 5, 4, 5, 4, 5,
                                                                               4, 5, 6, 7, 6, 7, 6, 7, 6, 7));
            const __m256i top = _mm256_mullo_epi16(spread, _mm256_setr_epi16(1 << 13, 1 << 10, 1 << 7, 1 << 4, 1 << 13, 1 << 10, 1 << 7, 1 << 4, 1 << 13,
                                                                              1 << 10, 1 << 7, 1 << 4, 1 << 13, 1 << 10, 1 << 7, 1 << 4));
            return _mm256_add_epi16(_mm256_slli_epi16(_mm256_srli_epi16(top, 13), 1), _mm256_set1_epi16(1));
        }
        void sub(int ib, sub_block& s) const {
            const auto& g = k_iq1s_grid_plus1;
            const uint8_t* qs = b.qs + 4 * ib;
            const int h0 = b.qh[2 * ib], h1 = b.qh[2 * ib + 1];
            const int m = ib % 4;  // points 4m.. of the 16 in plus[ib / 4]
            const __m256i points = points8(g[size_t(qs[0] | ((h0 << 8) & 0x700))], g[size_t(qs[1] | ((h0 << 4) & 0x700))],
                                           g[size_t(qs[2] | ((h1 << 8) & 0x700))], g[size_t(qs[3] | ((h1 << 4) & 0x700))]);
            const __m256i u = _mm256_slli_epi16(points, 3);  // bytes <= 16: no carry across
            s.w = _mm256_add_epi8(u, _mm256_shuffle_epi8(plus[ib / 4], bytes_spread(4 * m, 4 * m + 1, 4 * m + 2, 4 * m + 3)));
            s.scale = scales(ib);
        }
        __m256i lanes(__m256i isum, const block_q8_K& y) const { return _mm256_sub_epi32(isum, _mm256_madd_epi16(load256(y.bsums), scales9)); }
    };
};

// R activation rows at once: each sub-block is expanded once for all of them.
template <typename F, int R>
inline void lattice_rows(int64_t nb, const typename F::block* x, const uint8_t* y, size_t y_stride, float* out) {
    const block_q8_K* yr[R];
    q8k_rows<R>(y, y_stride, yr);
    auto block = [&](int64_t i, __m256i* lanes) {
        const typename F::prepared p(x[i]);
        __m256i isum[R];
        for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
        MOERUN_UNROLL
        for (int ib = 0; ib < 8; ++ib) {
            sub_block s;
            p.sub(ib, s);
            for (int r = 0; r < R; ++r) {
                const __m256i q8 = load256(yr[r][i].qs + 32 * ib);
                const __m256i prod = F::is_iq1 ? mul_u8_i8(s.w, q8) : mul_u8_i8(s.w, _mm256_sign_epi8(q8, s.sign));
                isum[r] = _mm256_add_epi32(isum[r], sum_i16_scaled(prod, s.scale));
            }
        }
        for (int r = 0; r < R; ++r) lanes[r] = p.lanes(isum[r], yr[r][i]);
    };
    float sum[R] = {};
    sum_block_terms<R>(nb, sum, block, [&](int64_t i, int r, float f) { return F::d(x[i]) * yr[r][i].d * F::value(f); });
    for (int r = 0; r < R; ++r) out[r] = F::factor * sum[r];
}

// The m = 1 entry points are flattened: sum_block_terms inlined into them, with its closures
// and constants in registers. Called out of line, its call set-up (closures built on the stack,
// constants stored and reloaded) cost ~90 instructions a call, 11 per block of a 2048-wide
// TQ2_0 row whose block takes 44.
template <typename F>
[[gnu::flatten]] void lattice_dot(int64_t n, float* s, const void* x, const void* y) {
    lattice_rows<F, 1>(n / 256, static_cast<const typename F::block*>(x), static_cast<const uint8_t*>(y), 0, s);
}

template <typename F>
void lattice_dot_n(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        lattice_rows<F, decltype(rows)::value>(n / 256, static_cast<const typename F::block*>(x), yj, ys, out);
    });
}

// ---- ternary ----

// The ternary formats store t + 1 (0..2 or 0..3) as unsigned bytes: sum((t + 1) y) - sum(y) is
// the reference's sum(t y). Each block's maddubs pair sums are added in int16 (`acc16`; each lane
// at most 8 x 2 x 3 x 127 = 6096 in size), less the block's Q8_K sums per 16 (only the total of
// the lanes matters), then widened to 8 int32 lanes.
inline __m256i ternary_block_lanes(__m256i acc16, const block_q8_K& y) { return sum_i16(_mm256_sub_epi16(acc16, load256(y.bsums))); }

// TQ2_0: byte m of 32-byte chunk c holds elements 128c + 32l + m at bits 2l..2l+1. Fields 1 and
// 2 are masked in place, so their products come 4 and 16 times too large; they go to their own
// int16 sums acc_x4, acc_x16 (at most 2 x 2 x 48 x 128 = 24576 in size), shifted back exactly at
// the end. That leaves one shift per chunk (field 3) where shifting every field took 3: vector
// shifts share ports 0 and 1 with maddubs, which bound this kernel.
template <int R>
inline void tq2_rows(int64_t nb, const block_tq2_0* x, const uint8_t* y, size_t y_stride, float* out) {
    const block_q8_K* yr[R];
    q8k_rows<R>(y, y_stride, yr);
    const __m256i m3 = _mm256_set1_epi8(3);
    auto block = [&](int64_t i, __m256i* lanes) {
        __m256i acc_x1[R], acc_x4[R], acc_x16[R];
        for (int r = 0; r < R; ++r) acc_x1[r] = acc_x4[r] = acc_x16[r] = _mm256_setzero_si256();
        for (int c = 0; c < 2; ++c) {
            const __m256i v = load256(x[i].qs + 32 * c);
            const __m256i q0 = _mm256_and_si256(v, m3), q1x4 = _mm256_and_si256(v, _mm256_set1_epi8(0x0c));
            const __m256i q2x16 = _mm256_and_si256(v, _mm256_set1_epi8(0x30)), q3 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
            for (int r = 0; r < R; ++r) {
                const int8_t* q8 = yr[r][i].qs + 128 * c;
                acc_x1[r] = _mm256_add_epi16(acc_x1[r], _mm256_add_epi16(mul_u8_i8(q0, load256(q8)), mul_u8_i8(q3, load256(q8 + 96))));
                acc_x4[r] = _mm256_add_epi16(acc_x4[r], mul_u8_i8(q1x4, load256(q8 + 32)));
                acc_x16[r] = _mm256_add_epi16(acc_x16[r], mul_u8_i8(q2x16, load256(q8 + 64)));
            }
        }
        for (int r = 0; r < R; ++r) {
            const __m256i acc = _mm256_add_epi16(acc_x1[r], _mm256_add_epi16(_mm256_srai_epi16(acc_x4[r], 2), _mm256_srai_epi16(acc_x16[r], 4)));
            lanes[r] = ternary_block_lanes(acc, yr[r][i]);
        }
    };
    float sum[R] = {};
    sum_block_terms<R>(nb, sum, block, [&](int64_t i, int r, float isum) { return isum * (yr[r][i].d * f16(x[i].d)); });
    for (int r = 0; r < R; ++r) out[r] = sum[r];
}

// TQ1_0 packs 5 trits per byte as a base-3 fraction: trit k of byte b is (3 (b 3^k mod 256)) >> 8.
// With b in the high byte of a 16-bit lane (low byte 0), mullo by 3^k leaves exactly
// (b 3^k mod 256) << 8 there, and mulhi_epu16 by 3 takes (3 b') >> 8 into the low byte.
// `lo`, `hi`: the bytes of a 32-byte vector unpacked that way (unpack{lo,hi}_epi8(0, v)); pow_lo,
// pow_hi: 3^k per lane. packus puts the 32 trits back in the bytes' order.
inline __m256i tq1_trits(__m256i lo, __m256i hi, __m256i pow_lo, __m256i pow_hi) {
    const __m256i three = _mm256_set1_epi16(3);
    const __m256i t_lo = _mm256_mulhi_epu16(_mm256_mullo_epi16(lo, pow_lo), three);
    const __m256i t_hi = _mm256_mulhi_epu16(_mm256_mullo_epi16(hi, pow_hi), three);
    return _mm256_packus_epi16(t_lo, t_hi);
}

// 3^a for the first 16 bytes of a vector, 3^b for the last 16 (as int16 lanes of the unpacked halves).
inline __m256i pow3_halves(int a, int b) {
    static constexpr short pow3[5] = {1, 3, 9, 27, 81};
    return _mm256_set_m128i(_mm_set1_epi16(pow3[b]), _mm_set1_epi16(pow3[a]));
}

// TQ1_0: the 256 trits (0..2) of a block as bytes, in element order, in 8 registers:
// bytes 0..31 give elements 32k + m (trit k of byte m), bytes 32..47 give 160 + 16k + m, and
// qh's 4 bytes give 240 + 4k + j.
inline void tq1_unpack(const block_tq1_0& b, __m256i t[8]) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i v = load256(b.qs);
    const __m256i v_lo = _mm256_unpacklo_epi8(zero, v), v_hi = _mm256_unpackhi_epi8(zero, v);
    const __m256i three = _mm256_set1_epi16(3);
    t[0] = _mm256_packus_epi16(_mm256_mulhi_epu16(v_lo, three), _mm256_mulhi_epu16(v_hi, three));
    for (int k = 1; k < 5; ++k) t[k] = tq1_trits(v_lo, v_hi, pow3_halves(k, k), pow3_halves(k, k));
    const __m128i tail = load128(b.qs + 32);  // bytes 32..47, two trits per register
    const __m256i tt = _mm256_set_m128i(tail, tail);
    const __m256i tt_lo = _mm256_unpacklo_epi8(zero, tt), tt_hi = _mm256_unpackhi_epi8(zero, tt);
    t[5] = tq1_trits(tt_lo, tt_hi, pow3_halves(0, 1), pow3_halves(0, 1));
    t[6] = tq1_trits(tt_lo, tt_hi, pow3_halves(2, 3), pow3_halves(2, 3));
    // trit 4 of the tail, then qh[j] at byte 16 + 4k + j with 3^k (4 bytes per unpacked half-lane run)
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m256i last = _mm256_set_m128i(_mm_set1_epi32(int(qh)), tail);
    const __m256i pow_lo = _mm256_setr_epi16(81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 1, 1, 3, 3, 3, 3);
    const __m256i pow_hi = _mm256_setr_epi16(81, 81, 81, 81, 81, 81, 81, 81, 9, 9, 9, 9, 27, 27, 27, 27);
    t[7] = tq1_trits(_mm256_unpacklo_epi8(zero, last), _mm256_unpackhi_epi8(zero, last), pow_lo, pow_hi);
}

template <int R>
inline void tq1_rows(int64_t nb, const block_tq1_0* x, const uint8_t* y, size_t y_stride, float* out) {
    const block_q8_K* yr[R];
    q8k_rows<R>(y, y_stride, yr);
    auto block = [&](int64_t i, __m256i* lanes) {
        __m256i t[8];
        tq1_unpack(x[i], t);
        for (int r = 0; r < R; ++r) {
            __m256i acc16 = mul_u8_i8(t[0], load256(yr[r][i].qs));
            for (int k = 1; k < 8; ++k) acc16 = _mm256_add_epi16(acc16, mul_u8_i8(t[k], load256(yr[r][i].qs + 32 * k)));
            lanes[r] = ternary_block_lanes(acc16, yr[r][i]);
        }
    };
    float sum[R] = {};
    sum_block_terms<R>(nb, sum, block, [&](int64_t i, int r, float isum) { return isum * (f16(x[i].d) * yr[r][i].d); });
    for (int r = 0; r < R; ++r) out[r] = sum[r];
}

// ---- MXFP4 against Q8_0 (activation rows carry float scales, kernels.h) ----

// unpack_nibbles' order (low nibbles in bytes 0..15, high in 16..31) from a 128-bit broadcast
// load and a per-dword shift: no vinserti128, whose shuffle port the LUT shuffle needs.
inline __m256i unpack_nibbles_bcast(const uint8_t* qs) {
    const __m256i v = _mm256_broadcastsi128_si256(load128(qs));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
}

template <int R>
inline void mxfp4_rows(int64_t nb, const block_mxfp4* x, const uint8_t* y, size_t y_stride, float* out) {
    const __m256i lut = _mm256_broadcastsi128_si256(load128(k_mxfp4_values.data()));
    const block_q8_0* yr[R];
    const float* yd[R];
    for (int r = 0; r < R; ++r) {
        yr[r] = reinterpret_cast<const block_q8_0*>(y + size_t(r) * y_stride);
        yd[r] = q8_0_act_scales(yr[r], nb);
    }
    auto block = [&](int64_t i, __m256i* lanes) {
        const __m256i q = _mm256_shuffle_epi8(lut, unpack_nibbles_bcast(x[i].qs));
        const __m256i uq = _mm256_sign_epi8(q, q);  // |q|; the sign moves to the activations
        for (int r = 0; r < R; ++r) lanes[r] = sum_i16(mul_u8_i8(uq, _mm256_sign_epi8(load256(yr[r][i].qs), q)));
    };
    float sum[R] = {};
    // yd * e * isum as the reference, 4 blocks per vector
    auto e = [&](int64_t b) { return k_e8m0_half[x[b].e]; };
    auto terms4 = [&](int64_t i, int r, __m128 isum) {
        return _mm_mul_ps(_mm_mul_ps(_mm_loadu_ps(yd[r] + i), _mm_setr_ps(e(i), e(i + 1), e(i + 2), e(i + 3))), isum);
    };
    sum_block_terms<R>(nb, sum, block, terms4, [&](int64_t i, int r, float isum) { return yd[r][i] * e(i) * isum; });
    for (int r = 0; r < R; ++r) out[r] = sum[r];
}

}  // namespace

void vec_dot_iq2_xxs(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq2_xxs_fmt>(n, s, x, y); }
void vec_dot_iq2_xs(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq2_xs_fmt>(n, s, x, y); }
void vec_dot_iq2_s(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq2_s_fmt>(n, s, x, y); }
void vec_dot_iq3_xxs(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq3_xxs_fmt>(n, s, x, y); }
void vec_dot_iq3_s(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq3_s_fmt>(n, s, x, y); }
void vec_dot_iq1_s(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq1_s_fmt>(n, s, x, y); }
void vec_dot_iq1_m(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq1_m_fmt>(n, s, x, y); }

void vec_dot_n_iq2_xxs(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) { lattice_dot_n<iq2_xxs_fmt>(n, s, ss, x, y, ys, ny); }
void vec_dot_n_iq2_xs(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) { lattice_dot_n<iq2_xs_fmt>(n, s, ss, x, y, ys, ny); }
void vec_dot_n_iq2_s(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) { lattice_dot_n<iq2_s_fmt>(n, s, ss, x, y, ys, ny); }
void vec_dot_n_iq3_xxs(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) { lattice_dot_n<iq3_xxs_fmt>(n, s, ss, x, y, ys, ny); }
void vec_dot_n_iq3_s(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) { lattice_dot_n<iq3_s_fmt>(n, s, ss, x, y, ys, ny); }
void vec_dot_n_iq1_s(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) { lattice_dot_n<iq1_s_fmt>(n, s, ss, x, y, ys, ny); }
void vec_dot_n_iq1_m(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) { lattice_dot_n<iq1_m_fmt>(n, s, ss, x, y, ys, ny); }

[[gnu::flatten]] void vec_dot_tq1_0(int64_t n, float* s, const void* x, const void* y) { tq1_rows<1>(n / 256, static_cast<const block_tq1_0*>(x), static_cast<const uint8_t*>(y), 0, s); }
[[gnu::flatten]] void vec_dot_tq2_0(int64_t n, float* s, const void* x, const void* y) { tq2_rows<1>(n / 256, static_cast<const block_tq2_0*>(x), static_cast<const uint8_t*>(y), 0, s); }
[[gnu::flatten]] void vec_dot_mxfp4(int64_t n, float* s, const void* x, const void* y) { mxfp4_rows<1>(n / 32, static_cast<const block_mxfp4*>(x), static_cast<const uint8_t*>(y), 0, s); }
void vec_dot_n_tq1_0(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        tq1_rows<decltype(rows)::value>(n / 256, static_cast<const block_tq1_0*>(x), yj, ys, out);
    });
}
void vec_dot_n_tq2_0(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        tq2_rows<decltype(rows)::value>(n / 256, static_cast<const block_tq2_0*>(x), yj, ys, out);
    });
}
void vec_dot_n_mxfp4(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        mxfp4_rows<decltype(rows)::value>(n / 32, static_cast<const block_mxfp4*>(x), yj, ys, out);
    });
}

}  // namespace moerun::avx2
