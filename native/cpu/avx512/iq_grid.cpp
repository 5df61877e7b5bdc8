// AVX-512 (BW + VNNI) dots of the lattice formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and
// IQ1_M against Q8_K: two 32-weight sub-blocks per register, so each of a super-block's four steps
// does one 64-byte multiply for 64 weights per activation row.
//
// One driver (lattice_rows) runs them all; a format says what a step's 64 weights are:
// - w: unsigned bytes, grid points looked up one by one (8 points of 8 bytes, or 16 of 4 for IQ3;
//   indices of more than 8 bits put together with pdep);
// - neg (IQ2, IQ3): a mask register of the activations to negate (masked subtract; AVX-512 has no
//   512-bit vpsignb). Stored sign bytes are that mask as they are (IQ2_S, IQ3_S); 7 stored bits per
//   8 weights (IQ2_XXS, IQ2_XS, IQ3_XXS) are spread with pdep, the 8th bit their parity;
// - scale: each int16 lane's sub-block scale, one vpermw from a per-super-block scale vector, taken
//   by vpdpwssd (VNNI) with the int16 pair products.
// IQ1 points have no signs: the grid plus one (0..2), or for IQ1_M 8 (g + 1) + (delta + 1), and
// the rest of the sum is Q8_K's per-16 activation sums (bsums) times the scales, one short vector
// step per super-block (the format's context.total).
// Integer sums are exact and each super-block's sum is scaled in float exactly as the reference
// (quant/reference_iq_grid.cpp) does, so these kernels equal it bit for bit.
#include "../../quant/blocks.h"
#include "../iq_tables.h"
#include "kernels.h"
#include "simd.h"

// Every AVX-512 CPU has BMI2 (Skylake-X and Zen 4 on), with a fast pdep/pext on all of them: the
// functions that use it are compiled for it (an attribute, so GCC and clang both take it).
#define MOERUN_BMI2 __attribute__((target("bmi2")))

namespace moerun::avx512 {
namespace {

// Weight rows stream from DRAM in decode; these kernels spend so long per byte that the hardware
// prefetcher falls behind, so each super-block prefetches the bytes this far ahead (16 lines;
// 1,024 beat 512 and 2,048 in bench_dot_peer on rows that do not fit the caches).
constexpr int k_prefetch_bytes = 1024;

inline uint32_t load_u32(const void* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint64_t load_u64(const void* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// One step of a super-block: 64 weights (sub-blocks 2p and 2p + 1) as unsigned bytes, the mask of
// activations to negate (bit j for weight j; unused by IQ1), and the int16 scale of each of the
// 32 lanes of their 64-byte product.
struct step {
    __m512i w;
    __mmask64 neg;
    __m512i scale;
};

// A step's lane scales from a super-block's scale vector (one vpermw): lane L takes int16 lane
// at + (first + L / per) * stride of `scales`. per = 16: a scale per 32 weights (first = 2p);
// per = 8: a scale per 16 weights (first = 4p).
inline __m512i step_scales(__m512i scales, int per, int first, int at, int stride) {
    const __m512i iota = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                                          6, 5, 4, 3, 2, 1, 0);
    const __m512i group = per == 16 ? _mm512_srli_epi16(iota, 4) : _mm512_srli_epi16(iota, 3);
    const __m512i idx = _mm512_add_epi16(_mm512_mullo_epi16(group, _mm512_set1_epi16(short(stride))), _mm512_set1_epi16(short(at + first * stride)));
    return _mm512_permutexvar_epi16(idx, scales);
}

// 2 ls + 1 for the nibbles of up to 8 bytes (low nibble first): int16 lane 2j from byte j's low
// nibble, 2j + 1 from its high one (IQ2_XS/IQ2_S per 16 weights, IQ3_S per 32).
inline __m512i nibble_scales(uint64_t bytes) {
    const __m128i v = _mm_cvtsi64_si128(int64_t(bytes));
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m256i ls = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4)));
    return _mm512_castsi256_si512(_mm256_add_epi16(_mm256_slli_epi16(ls, 1), _mm256_set1_epi16(1)));
}

// Grid points i0..i7 in one register, point j in bytes 8j..8j+7.
inline __m512i points8(const uint64_t* g, size_t i0, size_t i1, size_t i2, size_t i3, size_t i4, size_t i5, size_t i6, size_t i7) {
    const __m256i lo = _mm256_set_epi64x(int64_t(g[i3]), int64_t(g[i2]), int64_t(g[i1]), int64_t(g[i0]));
    const __m256i hi = _mm256_set_epi64x(int64_t(g[i7]), int64_t(g[i6]), int64_t(g[i5]), int64_t(g[i4]));
    return join(lo, hi);
}
// The same for four 16-bit index fields in each of two words (IQ2_S, IQ1_S, IQ1_M).
inline __m512i points8(const uint64_t* g, uint64_t a, uint64_t b) {
    return points8(g, a & 0xffff, (a >> 16) & 0xffff, (a >> 32) & 0xffff, a >> 48, b & 0xffff, (b >> 16) & 0xffff, (b >> 32) & 0xffff, b >> 48);
}

// 16 points of 4 bytes (IQ3), point j (index idx(j)) in bytes 4j..4j+3. Scalar loads paired into
// 64-bit words: one vpgatherdd instead took IQ3_XXS 1.7x as long.
template <typename Index>
inline __m512i points16(const uint32_t* g, Index idx) {
    auto two = [&](int j) { return int64_t(g[idx(j)] | uint64_t(g[idx(j + 1)]) << 32); };
    return join(_mm256_set_epi64x(two(6), two(4), two(2), two(0)), _mm256_set_epi64x(two(14), two(12), two(10), two(8)));
}

// Four indices as 16-bit fields: bytes of `low` (4 index bytes) in bits 0-7, the bits of `high`
// deposited into `high_mask` on top.
MOERUN_BMI2 inline uint64_t indices4(uint32_t low, uint64_t high, uint64_t high_mask) {
    return _pdep_u64(low, 0x00ff00ff00ff00ffull) | _pdep_u64(high, high_mask);
}

// The sign mask of 64 weights from two sign words of 4 x 7 bits (bits 0-27; higher bits are
// ignored): bit 8l + j for weight 8l + j, the 8th bit of each byte the parity of its 7.
MOERUN_BMI2 inline __mmask64 parity_sign_mask(uint32_t a, uint32_t b) {
    const uint64_t bits = uint64_t(a & 0x0fffffff) | (uint64_t(b & 0x0fffffff) << 28);
    const uint64_t e = _pdep_u64(bits, 0x7f7f7f7f7f7f7f7full);
    uint64_t p = e ^ (e >> 4);  // bit 0 of each byte: the parity of that byte's bits
    p ^= p >> 2;
    p ^= p >> 1;
    return _cvtu64_mask64(e | ((p & 0x0101010101010101ull) << 7));
}

// ---- the 2-bit and 3-bit formats: magnitudes and signs ----

// Their per-super-block context: the scale vector; a row's super-block sum is its lanes' sum (in
// int32, exact, as the reference's).
struct scale_vector {
    __m512i scales;
    float total(__m512i acc, const block_q8_K&) const { return float(_mm512_reduce_add_epi32(acc)); }
};

// IQ2_XXS: per sub-block two words, 4 grid-index bytes, then 28 sign bits | ls << 28.
struct iq2_xxs_fmt {
    using block = block_iq2_xxs;
    static constexpr float factor = 0.125f;
    static constexpr bool has_signs = true;
    static float d(const block& b) { return f16(b.d); }
    struct context : scale_vector {  // 2 ls + 1 of sub-block ib from the top nibble of its second word: int16 lane 4 ib + 3
        explicit context(const block& b) {
            const __m512i words = load512(b.qs);
            scales = _mm512_add_epi32(_mm512_slli_epi32(_mm512_srli_epi32(words, 28), 17), _mm512_set1_epi32(1 << 16));
        }
    };
    MOERUN_BMI2 static step at(const block& b, const context& c, int p) {
        const uint8_t* ia = reinterpret_cast<const uint8_t*>(b.qs) + 16 * p;  // sub-block 2p's index bytes; 2p + 1's at ia + 8
        return {points8(k_iq2xxs_grid.data(), ia[0], ia[1], ia[2], ia[3], ia[8], ia[9], ia[10], ia[11]),
                parity_sign_mask(load_u32(ia + 4), load_u32(ia + 12)), step_scales(c.scales, 16, 2 * p, 3, 4)};
    }
};

// IQ2_XS: per 8 weights a word, 9-bit grid index | 7 sign bits << 9; a nibble scale per 16 weights.
struct iq2_xs_fmt {
    using block = block_iq2_xs;
    static constexpr float factor = 0.125f;
    static constexpr bool has_signs = true;
    static float d(const block& b) { return f16(b.d); }
    struct context : scale_vector {
        explicit context(const block& b) : scale_vector{nibble_scales(load_u64(b.scales))} {}
    };
    MOERUN_BMI2 static step at(const block& b, const context& c, int p) {
        // the 9-bit indices by one vector and, read back one by one (the shifts and masks of two
        // 64-bit words took 1.1x as long); the sign fields by pext
        alignas(16) uint16_t idx[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(idx), _mm_and_si128(load128(b.qs + 8 * p), _mm_set1_epi16(511)));
        const uint64_t qa = load_u64(b.qs + 8 * p), qb = load_u64(b.qs + 8 * p + 4);
        constexpr uint64_t sign_fields = 0xfe00fe00fe00fe00ull;
        return {points8(k_iq2xs_grid.data(), idx[0], idx[1], idx[2], idx[3], idx[4], idx[5], idx[6], idx[7]),
                parity_sign_mask(uint32_t(_pext_u64(qa, sign_fields)), uint32_t(_pext_u64(qb, sign_fields))), step_scales(c.scales, 8, 4 * p, 0, 1)};
    }
};

// IQ2_S: 8 low index bits per 8 weights in qs, their top 2 in qh, and a sign byte each.
struct iq2_s_fmt {
    using block = block_iq2_s;
    static constexpr float factor = 0.125f;
    static constexpr bool has_signs = true;
    static float d(const block& b) { return f16(b.d); }
    struct context : scale_vector {
        explicit context(const block& b) : scale_vector{nibble_scales(load_u64(b.scales))} {}
    };
    MOERUN_BMI2 static step at(const block& b, const context& c, int p) {
        constexpr uint64_t top2 = 0x0300030003000300ull;
        const uint64_t ia = indices4(load_u32(b.qs + 8 * p), b.qh[2 * p], top2);
        const uint64_t ib = indices4(load_u32(b.qs + 8 * p + 4), b.qh[2 * p + 1], top2);
        return {points8(k_iq2s_grid.data(), ia, ib), _cvtu64_mask64(load_u64(b.qs + 32 + 8 * p)), step_scales(c.scales, 8, 4 * p, 0, 1)};
    }
};

// IQ3_XXS: 8 index bytes per sub-block (points of 4), then per sub-block a word of 28 sign bits | ls << 28.
struct iq3_xxs_fmt {
    using block = block_iq3_xxs;
    static constexpr float factor = 0.25f;
    static constexpr bool has_signs = true;
    static float d(const block& b) { return f16(b.d); }
    struct context : scale_vector {  // 2 ls + 1 of sub-block ib: int16 lane 2 ib
        explicit context(const block& b) {
            const __m256i words = load256(b.qs + 64);
            scales = _mm512_castsi256_si512(_mm256_add_epi32(_mm256_slli_epi32(_mm256_srli_epi32(words, 28), 1), _mm256_set1_epi32(1)));
        }
    };
    MOERUN_BMI2 static step at(const block& b, const context& c, int p) {
        const uint8_t* sg = b.qs + 64 + 8 * p;
        const uint8_t* q3 = b.qs + 16 * p;
        return {points16(k_iq3xxs_grid.data(), [&](int j) { return q3[j]; }), parity_sign_mask(load_u32(sg), load_u32(sg + 4)),
                step_scales(c.scales, 16, 2 * p, 0, 2)};
    }
};

// IQ3_S: 8 low index bits per 4 weights in qs, bit 8 in qh, a sign bit per weight, a nibble scale per sub-block.
struct iq3_s_fmt {
    using block = block_iq3_s;
    static constexpr float factor = 1.0f;
    static constexpr bool has_signs = true;
    static float d(const block& b) { return f16(b.d); }
    struct context : scale_vector {
        explicit context(const block& b) : scale_vector{nibble_scales(load_u32(b.scales))} {}
    };
    MOERUN_BMI2 static step at(const block& b, const context& c, int p) {
        const uint8_t* qs = b.qs + 16 * p;
        const uint32_t qh = b.qh[2 * p] | uint32_t(b.qh[2 * p + 1]) << 8;  // bit 8 of index j: bit j
        constexpr uint64_t bit8 = 0x0100010001000100ull;
        const uint64_t f[4] = {indices4(load_u32(qs), qh, bit8), indices4(load_u32(qs + 4), qh >> 4, bit8), indices4(load_u32(qs + 8), qh >> 8, bit8),
                               indices4(load_u32(qs + 12), qh >> 12, bit8)};
        return {points16(k_iq3s_grid.data(), [&](int j) { return (f[j / 4] >> (16 * (j % 4))) & 0xffff; }), _cvtu64_mask64(load_u64(b.signs + 8 * p)), step_scales(c.scales, 16, 2 * p, 0, 1)};
    }
};

// ---- the 1-bit formats: no signs; the points plus one (0..2, cpu/iq_tables.h) as unsigned bytes ----

// IQ1_S: per sub-block 4 index bytes in qs and, in its qh word, 3 high bits each, ls, the delta
// sign. Its delta is per sub-block, so per scale it sums dot(g + 1, q) - sum(q) and delta * sum(q)
// from Q8_K's per-16 sums (bsums), one short vector step per super-block. (IQ1_M's way, one dot of
// u bytes from k_iq1_u_grid, took it 1.15x as long: the 32 KiB table, not the 16 KiB one.)
struct iq1_s_fmt {
    using block = block_iq1_s;
    static constexpr float factor = 1.0f;
    static constexpr bool has_signs = false;
    static float d(const block& b) { return f16(b.d); }
    struct context {
        __m512i scales;               // ls = 2 * scale field + 1 of sub-block ib in int16 lane ib
        __m256i ls_pairs, lsd_pairs;  // ls, and ls with the delta's sign, for both of its bsums lanes
        explicit context(const block& b) {
            const __m128i qh = load128(b.qh);
            const __m128i ls = _mm_add_epi16(_mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(qh, 12), _mm_set1_epi16(7)), 1), _mm_set1_epi16(1));
            const __m128i neg = _mm_srai_epi16(qh, 15);
            const __m128i lsd = _mm_sub_epi16(_mm_xor_si128(ls, neg), neg);
            scales = _mm512_castsi128_si512(ls);
            ls_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(ls, ls), _mm_unpacklo_epi16(ls, ls));
            lsd_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(lsd, lsd), _mm_unpacklo_epi16(lsd, lsd));
        }
        // float(sumi) + delta * float(sumi_delta), as the reference
        float total(__m512i acc, const block_q8_K& y) const {
            const __m256i bsums = load256(y.bsums);
            const __m256i plus1 = _mm256_madd_epi16(bsums, ls_pairs);  // sum over ib of ls * sum(q)
            const int isum = _mm512_reduce_add_epi32(_mm512_sub_epi32(acc, _mm512_zextsi256_si512(plus1)));
            const int dsum = avx2::hsum_i32(_mm256_madd_epi16(bsums, lsd_pairs));
            return float(isum) + k_iq1_delta * float(dsum);
        }
    };
    MOERUN_BMI2 static step at(const block& b, const context& c, int p) {
        constexpr uint64_t top3 = 0x0700070007000700ull;  // bits 3l..3l+2 of the qh word over index l
        const uint64_t ia = indices4(load_u32(b.qs + 8 * p), b.qh[2 * p], top3), ib = indices4(load_u32(b.qs + 8 * p + 4), b.qh[2 * p + 1], top3);
        return {points8(k_iq1s_grid_plus1.data(), ia, ib), 0, step_scales(c.scales, 16, 2 * p, 0, 1)};
    }
};

// IQ1_M's delta is per 8 weights, so it takes one dot of the bytes u = 8 (g + 1) + (delta + 1)
// instead (avx2/iq_grid.cpp's iq1_points: dot(u, q) - 9 sum(q) per scale is 8 x the reference's
// sumi + sumi_delta / 8, exactly). k_iq1_u_grid holds u by the 11-bit grid index with the delta's
// sign on top (bit 11 set: delta -1), 4,096 points in 32 KiB, so a step does no arithmetic on
// the points (times 8 and plus 2 under a mask per step took 1.2x as long).
inline constexpr std::array<uint64_t, 4096> k_iq1_u_grid = [] {
    std::array<uint64_t, 4096> t{};
    for (size_t i = 0; i < 2048; ++i) {
        t[i] = (k_iq1s_grid_plus1[i] << 3) + 0x0202020202020202ull;  // bytes <= 2: no carry across
        t[i + 2048] = k_iq1s_grid_plus1[i] << 3;
    }
    return t;
}();

// IQ1_M: per 8 weights an index byte in qs and a qh nibble (3 high index bits, then the delta
// sign: bit 11 of a k_iq1_u_grid index as it stands); 3-bit scales per 16 weights in the low 12
// bits of 4 words whose top nibbles are d.
struct iq1_m_fmt {
    using block = block_iq1_m;
    static constexpr float factor = 1.0f;
    static constexpr bool has_signs = false;
    static float d(const block& b) {
        const uint64_t w = load_u64(b.scales);  // d's nibbles are bits 12-15 of each word
        return f16(uint16_t((w >> 12 & 0x000f) | (w >> 24 & 0x00f0) | (w >> 36 & 0x0f00) | (w >> 48 & 0xf000)));
    }
    struct context {
        __m512i scales;   // 2 ls + 1 of weights 16k..16k+15 in int16 lane k (bsums' order)
        __m256i scales9;  // 9 x that
        explicit context(const block& b) {
            // lane 4w + k: bits 3k..3k+2 of word w
            const __m256i words = _mm256_castsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.scales)));
            const __m256i spread = _mm256_permutexvar_epi16(_mm256_setr_epi16(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), words);
            const __m256i field = _mm256_srlv_epi16(spread, _mm256_setr_epi16(0, 3, 6, 9, 0, 3, 6, 9, 0, 3, 6, 9, 0, 3, 6, 9));
            const __m256i ls = _mm256_add_epi16(_mm256_slli_epi16(_mm256_and_si256(field, _mm256_set1_epi16(7)), 1), _mm256_set1_epi16(1));
            scales = _mm512_castsi256_si512(ls);
            scales9 = _mm256_add_epi16(_mm256_slli_epi16(ls, 3), ls);
        }
        // (dot(u, q) - 9 sum(q) per scale) / 8: float(C) / 8 is exact for |C| < 2^24
        float total(__m512i acc, const block_q8_K& y) const {
            const __m256i nine_q = _mm256_madd_epi16(load256(y.bsums), scales9);
            return float(_mm512_reduce_add_epi32(_mm512_sub_epi32(acc, _mm512_zextsi256_si512(nine_q)))) * k_iq1_delta;
        }
    };
    MOERUN_BMI2 static step at(const block& b, const context& c, int p) {
        const uint32_t qh = load_u32(b.qh + 4 * p);  // 8 nibbles, one per 8 weights
        constexpr uint64_t nibbles = 0x0f000f000f000f00ull;  // each to bits 8-11 of a 16-bit field
        const uint64_t ia = indices4(load_u32(b.qs + 8 * p), qh & 0xffff, nibbles), ib = indices4(load_u32(b.qs + 8 * p + 4), qh >> 16, nibbles);
        return {points8(k_iq1_u_grid.data(), ia, ib), 0, step_scales(c.scales, 8, 4 * p, 0, 1)};
    }
};

// R activation rows at once: each step's weights are expanded once for all of them.
template <typename F, int R>
MOERUN_BMI2 inline void lattice_rows(int64_t nb, const typename F::block* x, const uint8_t* y, size_t y_stride, float* out) {
    float sum[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        sum[r] = 0;
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        for (size_t line = 0; line < sizeof(typename F::block); line += 64) {  // every line of the block that far ahead
            _mm_prefetch(reinterpret_cast<const char*>(x + i) + k_prefetch_bytes + line, _MM_HINT_T0);
        }
        const typename F::context c(x[i]);
        __m512i acc[R];
        for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p) {
            const step s = F::at(x[i], c, p);
            for (int r = 0; r < R; ++r) {
                __m512i q8 = load512(yr[r][i].qs + 64 * p);
                if constexpr (F::has_signs) q8 = _mm512_mask_sub_epi8(q8, s.neg, _mm512_setzero_si512(), q8);
                acc[r] = _mm512_dpwssd_epi32(acc[r], _mm512_maddubs_epi16(s.w, q8), s.scale);
            }
        }
        const float d = F::d(x[i]);
        for (int r = 0; r < R; ++r) {
            sum[r] += d * yr[r][i].d * c.total(acc[r], yr[r][i]);
        }
    }
    for (int r = 0; r < R; ++r) out[r] = F::factor * sum[r];
}

template <typename F>
void lattice_dot(int64_t n, float* s, const void* x, const void* y) {
    lattice_rows<F, 1>(n / 256, static_cast<const typename F::block*>(x), static_cast<const uint8_t*>(y), 0, s);
}

template <typename F>
void lattice_dot_n(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        lattice_rows<F, decltype(rows)::value>(n / 256, static_cast<const typename F::block*>(x), yj, ys, out);
    });
}

}  // namespace

void vec_dot_iq2_xxs_vnni(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq2_xxs_fmt>(n, s, x, y); }
void vec_dot_iq2_xs_vnni(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq2_xs_fmt>(n, s, x, y); }
void vec_dot_iq2_s_vnni(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq2_s_fmt>(n, s, x, y); }
void vec_dot_iq3_xxs_vnni(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq3_xxs_fmt>(n, s, x, y); }
void vec_dot_iq3_s_vnni(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq3_s_fmt>(n, s, x, y); }
void vec_dot_iq1_s_vnni(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq1_s_fmt>(n, s, x, y); }
void vec_dot_iq1_m_vnni(int64_t n, float* s, const void* x, const void* y) { lattice_dot<iq1_m_fmt>(n, s, x, y); }

void vec_dot_n_iq2_xxs_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    lattice_dot_n<iq2_xxs_fmt>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_iq2_xs_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    lattice_dot_n<iq2_xs_fmt>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_iq2_s_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    lattice_dot_n<iq2_s_fmt>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_iq3_xxs_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    lattice_dot_n<iq3_xxs_fmt>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_iq3_s_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    lattice_dot_n<iq3_s_fmt>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_iq1_s_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    lattice_dot_n<iq1_s_fmt>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_iq1_m_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    lattice_dot_n<iq1_m_fmt>(n, s, ss, x, y, ys, ny);
}

}  // namespace moerun::avx512
