// AVX2 dots of the lattice formats (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M), the
// ternary formats (TQ1_0, TQ2_0) against Q8_K, and MXFP4 against Q8_0.
//
// Lattice formats: per 32 weights, the grid points are gathered into one register of unsigned
// bytes (|value|), their signs are moved onto the activations (_mm256_sign_epi8; Q8_K values are
// in -127..127, so negating never overflows), and maddubs + madd with the sub-block scales give
// exact int32 sums. Each super-block's integer sum is reduced and scaled in float exactly as the
// reference (quant/reference_iq_grid.cpp) does, so these kernels equal it bit for bit.
#include "../../quant/blocks.h"
#include "../../quant/iq_grids.h"
#include "../iq_tables.h"
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

// 4 sign bytes (one per 8 weights, bit j of byte l for weight 8l + j) as +-1 bytes.
inline __m256i signs_pm1(uint32_t bits) { return _mm256_or_si256(bits_to_bytes(bits), _mm256_set1_epi8(1)); }

// k_iq_signs expanded: 7 stored sign bits -> 8 bytes of +-1 (the 8th by parity), one load per group.
inline constexpr std::array<uint64_t, 128> k_sign_bytes = [] {
    std::array<uint64_t, 128> t{};
    for (int i = 0; i < 128; ++i) {
        for (int j = 0; j < 8; ++j) t[size_t(i)] |= uint64_t((k_iq_signs[size_t(i)] >> j) & 1 ? 0xff : 0x01) << (8 * j);
    }
    return t;
}();

// The 4 x 7 stored sign bits of an IQ2_XXS/IQ3_XXS word as 32 bytes of +-1.
inline __m256i parity_signs(uint32_t word) {
    return points8(k_sign_bytes[word & 127], k_sign_bytes[(word >> 7) & 127], k_sign_bytes[(word >> 14) & 127], k_sign_bytes[(word >> 21) & 127]);
}

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Per format: the block type, its scale d, the sub-block expansion, the final factor of the sum
// and whether it is an IQ1 format (unsigned points with their delta, see iq1_points).
struct iq2_xxs_fmt {
    using block = block_iq2_xxs;
    static constexpr float factor = 0.125f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
    static void sub(const block& b, int ib, sub_block& s) {
        uint32_t aux[2];
        std::memcpy(aux, b.qs + 4 * ib, 8);
        const uint8_t* idx = reinterpret_cast<const uint8_t*>(aux);
        s.w = points8(k_iq2xxs_grid[idx[0]], k_iq2xxs_grid[idx[1]], k_iq2xxs_grid[idx[2]], k_iq2xxs_grid[idx[3]]);
        s.sign = parity_signs(aux[1]);
        s.scale = _mm256_set1_epi16(short(2 * (aux[1] >> 28) + 1));
    }
};

struct iq2_xs_fmt {
    using block = block_iq2_xs;
    static constexpr float factor = 0.125f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
    static void sub(const block& b, int ib, sub_block& s) {
        const uint16_t* q = b.qs + 4 * ib;
        s.w = points8(k_iq2xs_grid[q[0] & 511], k_iq2xs_grid[q[1] & 511], k_iq2xs_grid[q[2] & 511], k_iq2xs_grid[q[3] & 511]);
        s.sign = points8(k_sign_bytes[q[0] >> 9], k_sign_bytes[q[1] >> 9], k_sign_bytes[q[2] >> 9], k_sign_bytes[q[3] >> 9]);
        s.scale = scales_2x16(2 * (b.scales[ib] & 0xf) + 1, 2 * (b.scales[ib] >> 4) + 1);
    }
};

struct iq2_s_fmt {
    using block = block_iq2_s;
    static constexpr float factor = 0.125f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
    static void sub(const block& b, int ib, sub_block& s) {
        const uint8_t* qs = b.qs + 4 * ib;
        const int qh = b.qh[ib];
        s.w = points8(k_iq2s_grid[size_t(qs[0] | ((qh << 8) & 0x300))], k_iq2s_grid[size_t(qs[1] | ((qh << 6) & 0x300))],
                      k_iq2s_grid[size_t(qs[2] | ((qh << 4) & 0x300))], k_iq2s_grid[size_t(qs[3] | ((qh << 2) & 0x300))]);
        s.sign = signs_pm1(load_u32(b.qs + 32 + 4 * ib));
        s.scale = scales_2x16(2 * (b.scales[ib] & 0xf) + 1, 2 * (b.scales[ib] >> 4) + 1);
    }
};

struct iq3_xxs_fmt {
    using block = block_iq3_xxs;
    static constexpr float factor = 0.25f;
    static constexpr bool is_iq1 = false;
    static float d(const block& b) { return f16(b.d); }
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
    static void sub(const block& b, int ib, sub_block& s) {
        const uint8_t* qs = b.qs + 8 * ib;
        const int qh = b.qh[ib];
        auto g = [&](int k) { return int(k_iq3s_grid[size_t(qs[k] | (((qh >> k) & 1) << 8))]); };
        s.w = _mm256_setr_epi32(g(0), g(1), g(2), g(3), g(4), g(5), g(6), g(7));
        s.sign = signs_pm1(load_u32(b.signs + 4 * ib));
        s.scale = _mm256_set1_epi16(short(2 * ((b.scales[ib / 2] >> (4 * (ib % 2))) & 0xf) + 1));
    }
};

// IQ1 weights are g + delta / 8 (g in -1, 0, 1 from the grid, delta +-1), and the reference sums
// sumi = dot(g, q) and sumi_delta = dot(delta, q) per scale, then takes sumi + sumi_delta / 8 in
// float. The kernels take one dot instead, of the unsigned bytes u = 8 (g + 1) + (delta + 1) in
// 0..18: dot(u, q) - 9 sum(q) = 8 sumi + sumi_delta, with sum(q) from Q8_K's per-16 sums
// (bsums). That integer, C, is below 2^24, so float(C) / 8 is exact and equals the reference's
// float(sumi) + float(sumi_delta) / 8 (one rounding of the same exact value, itself exact here).
// `plus` holds delta + 1 per byte (0 or 2).
inline void iq1_points(sub_block& s, uint64_t a, uint64_t b, uint64_t c, uint64_t d, __m256i plus) {
    s.w = _mm256_add_epi8(_mm256_slli_epi16(points8(a, b, c, d), 3), plus);  // bytes <= 2: no carry across
}

// Per sub-block (IQ1_S) or per 16 (IQ1_M), lane by lane with bsums: 9 x the int16 scale.
inline __m256i nine_times(__m256i ls) { return _mm256_add_epi16(_mm256_slli_epi16(ls, 3), ls); }

struct iq1_s_fmt {
    using block = block_iq1_s;
    static constexpr float factor = 1.0f;
    static constexpr bool is_iq1 = true;
    static float d(const block& b) { return f16(b.d); }
    static void sub(const block& b, int ib, sub_block& s) {
        const uint8_t* qs = b.qs + 4 * ib;
        const int qh = b.qh[ib];
        const auto& g = k_iq1s_grid_plus1;
        iq1_points(s, g[size_t(qs[0] | ((qh << 8) & 0x700))], g[size_t(qs[1] | ((qh << 5) & 0x700))],
                   g[size_t(qs[2] | ((qh << 2) & 0x700))], g[size_t(qs[3] | ((qh >> 1) & 0x700))],
                   _mm256_set1_epi8(qh & 0x8000 ? 0 : 2));
        s.scale = _mm256_set1_epi16(short(2 * ((qh >> 12) & 7) + 1));
    }
    // 9 x each sub-block's scale, for its two bsums lanes.
    static __m256i bsum_scales9(const block& b) {
        const __m128i qh = load128(b.qh);
        const __m128i ls = _mm_add_epi16(_mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(qh, 12), _mm_set1_epi16(7)), 1), _mm_set1_epi16(1));
        return nine_times(_mm256_set_m128i(_mm_unpackhi_epi16(ls, ls), _mm_unpacklo_epi16(ls, ls)));
    }
};

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
    static void sub(const block& b, int ib, sub_block& s) {
        const uint8_t* qs = b.qs + 4 * ib;
        const int h0 = b.qh[2 * ib], h1 = b.qh[2 * ib + 1];
        const auto& g = k_iq1s_grid_plus1;
        auto plus8 = [](int neg) { return neg ? int64_t(0) : int64_t(0x0202020202020202); };  // delta + 1 for 8 bytes
        iq1_points(s, g[size_t(qs[0] | ((h0 << 8) & 0x700))], g[size_t(qs[1] | ((h0 << 4) & 0x700))],
                   g[size_t(qs[2] | ((h1 << 8) & 0x700))], g[size_t(qs[3] | ((h1 << 4) & 0x700))],
                   _mm256_setr_epi64x(plus8(h0 & 0x08), plus8(h0 & 0x80), plus8(h1 & 0x08), plus8(h1 & 0x80)));
        const int sc = word(b, ib / 2) >> (6 * (ib % 2));
        s.scale = scales_2x16(2 * (sc & 7) + 1, 2 * ((sc >> 3) & 7) + 1);
    }
    // 9 x the scale of each 16 weights, lane 2 ib + h for half h of sub-block ib (bsums' order):
    // bits 3k..3k+2 of word w for lane 4w + k.
    static __m256i bsum_scales9(const block& b) {
        const __m256i words = _mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.scales)));
        const __m256i spread = _mm256_shuffle_epi8(words, _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 4, 5, 4, 5, 4, 5,
                                                                           4, 5, 6, 7, 6, 7, 6, 7, 6, 7));
        // field k to the top 3 bits (a multiply by 2^(13 - 3k)), then down
        const __m256i top = _mm256_mullo_epi16(spread, _mm256_setr_epi16(1 << 13, 1 << 10, 1 << 7, 1 << 4, 1 << 13, 1 << 10, 1 << 7, 1 << 4, 1 << 13,
                                                                          1 << 10, 1 << 7, 1 << 4, 1 << 13, 1 << 10, 1 << 7, 1 << 4));
        const __m256i ls = _mm256_add_epi16(_mm256_slli_epi16(_mm256_srli_epi16(top, 13), 1), _mm256_set1_epi16(1));
        return nine_times(ls);
    }
};

// R activation rows at once: each sub-block is expanded once for all of them.
template <typename F, int R>
inline void lattice_rows(int64_t nb, const typename F::block* x, const uint8_t* y, size_t y_stride, float* out) {
    float sum[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        sum[r] = 0;
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        __m256i isum[R];
        for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            sub_block s;
            F::sub(x[i], ib, s);
            for (int r = 0; r < R; ++r) {
                const __m256i q8 = load256(yr[r][i].qs + 32 * ib);
                const __m256i p = F::is_iq1 ? mul_u8_i8(s.w, q8) : mul_u8_i8(s.w, _mm256_sign_epi8(q8, s.sign));
                isum[r] = _mm256_add_epi32(isum[r], sum_i16_scaled(p, s.scale));
            }
        }
        const float d = F::d(x[i]);
        if constexpr (F::is_iq1) {  // C = dot(u, q) - 9 sum(q) per scale (iq1_points)
            const __m256i scales9 = F::bsum_scales9(x[i]);
            for (int r = 0; r < R; ++r) {
                const __m256i nine_q = _mm256_madd_epi16(load256(yr[r][i].bsums), scales9);
                sum[r] += d * yr[r][i].d * (float(hsum_i32(_mm256_sub_epi32(isum[r], nine_q))) * k_iq1_delta);
            }
        } else {
            for (int r = 0; r < R; ++r) sum[r] += d * yr[r][i].d * float(hsum_i32(isum[r]));
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
    dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        lattice_rows<F, decltype(rows)::value>(n / 256, static_cast<const typename F::block*>(x), yj, ys, out);
    });
}

// ---- ternary ----

// Sum of a Q8_K block's 256 quants, from its 16 group sums.
inline int q8k_sum(const block_q8_K& y) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums));
    return hsum_i32(_mm256_madd_epi16(b, _mm256_set1_epi16(1)));
}

// TQ2_0: q in 0..3 as unsigned bytes, sum(q * y) - sum(y) = sum((q - 1) * y).
template <int R>
inline void tq2_rows(int64_t nb, const block_tq2_0* x, const uint8_t* y, size_t y_stride, float* out) {
    float sum[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        sum[r] = 0;
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < nb; ++i) {
        __m256i isum[R];
        for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
        for (int c = 0; c < 2; ++c) {
            const __m256i v = load256(x[i].qs + 32 * c);
            for (int l = 0; l < 4; ++l) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(v, 2 * l), m3);
                for (int r = 0; r < R; ++r) {
                    isum[r] = _mm256_add_epi32(isum[r], sum_i16(mul_u8_i8(q, load256(yr[r][i].qs + 128 * c + 32 * l))));
                }
            }
        }
        const float d = f16(x[i].d);
        for (int r = 0; r < R; ++r) sum[r] += float(hsum_i32(isum[r]) - q8k_sum(yr[r][i])) * (yr[r][i].d * d);
    }
    for (int r = 0; r < R; ++r) out[r] = sum[r];
}

// TQ1_0 trits: for 16 bytes widened to int16 in a and b, trit pa of a and trit pb of b (pa, pb
// powers of 3) as 32 bytes in element order: (byte * 3^k mod 256) * 3 >> 8.
inline __m256i trits_2x16(__m256i a, __m256i b, int pa, int pb) {
    const __m256i lo8 = _mm256_set1_epi16(0xff);
    auto trit = [&](__m256i v, int p) {
        const __m256i shifted = _mm256_and_si256(_mm256_mullo_epi16(v, _mm256_set1_epi16(short(p))), lo8);
        return _mm256_srli_epi16(_mm256_mullo_epi16(shifted, _mm256_set1_epi16(3)), 8);
    };
    return _mm256_permute4x64_epi64(_mm256_packus_epi16(trit(a, pa), trit(b, pb)), 0xD8);
}

// TQ1_0: the 256 trits (0..2) of a block as bytes, in element order, in 8 registers.
inline void tq1_unpack(const block_tq1_0& b, __m256i t[8]) {
    static constexpr int pow3[5] = {1, 3, 9, 27, 81};
    const __m256i lo = _mm256_cvtepu8_epi16(load128(b.qs)), hi = _mm256_cvtepu8_epi16(load128(b.qs + 16));
    for (int k = 0; k < 5; ++k) t[k] = trits_2x16(lo, hi, pow3[k], pow3[k]);  // elements 32k..32k+31
    const __m256i tail = _mm256_cvtepu8_epi16(load128(b.qs + 32));             // bytes 32..47: runs of 16
    t[5] = trits_2x16(tail, tail, pow3[0], pow3[1]);                           // elements 160..191
    t[6] = trits_2x16(tail, tail, pow3[2], pow3[3]);                           // 192..223
    alignas(32) uint8_t last[32];                                              // 224..239, then qh's 240..255
    _mm_store_si128(reinterpret_cast<__m128i*>(last), _mm256_castsi256_si128(trits_2x16(tail, tail, pow3[4], pow3[4])));
    for (int k = 0; k < 4; ++k) {
        for (int j = 0; j < 4; ++j) last[16 + 4 * k + j] = uint8_t((int(uint8_t(b.qh[j] * pow3[k])) * 3) >> 8);
    }
    t[7] = _mm256_load_si256(reinterpret_cast<const __m256i*>(last));
}

template <int R>
inline void tq1_rows(int64_t nb, const block_tq1_0* x, const uint8_t* y, size_t y_stride, float* out) {
    float sum[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        sum[r] = 0;
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        __m256i t[8], isum[R];
        tq1_unpack(x[i], t);
        for (int r = 0; r < R; ++r) {
            isum[r] = _mm256_setzero_si256();
            for (int k = 0; k < 8; ++k) isum[r] = _mm256_add_epi32(isum[r], sum_i16(mul_u8_i8(t[k], load256(yr[r][i].qs + 32 * k))));
        }
        const float d = f16(x[i].d);
        for (int r = 0; r < R; ++r) sum[r] += float(hsum_i32(isum[r]) - q8k_sum(yr[r][i])) * (d * yr[r][i].d);
    }
    for (int r = 0; r < R; ++r) out[r] = sum[r];
}

// ---- MXFP4 against Q8_0 (activation rows carry float scales, kernels.h) ----

template <int R>
inline void mxfp4_rows(int64_t nb, const block_mxfp4* x, const uint8_t* y, size_t y_stride, float* out) {
    const __m256i lut = _mm256_broadcastsi128_si256(load128(k_mxfp4_values.data()));
    float sum[R];
    const block_q8_0* yr[R];
    const float* yd[R];
    for (int r = 0; r < R; ++r) {
        sum[r] = 0;
        yr[r] = reinterpret_cast<const block_q8_0*>(y + size_t(r) * y_stride);
        yd[r] = q8_0_act_scales(yr[r], nb);
    }
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i q = _mm256_shuffle_epi8(lut, unpack_nibbles(x[i].qs));
        const __m256i uq = _mm256_sign_epi8(q, q);  // |q|; the sign moves to the activations
        const float e = e8m0_to_fp32_half(x[i].e);
        for (int r = 0; r < R; ++r) {
            const int isum = hsum_i32(sum_i16(mul_u8_i8(uq, _mm256_sign_epi8(load256(yr[r][i].qs), q))));
            sum[r] += yd[r][i] * e * float(isum);
        }
    }
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

void vec_dot_tq1_0(int64_t n, float* s, const void* x, const void* y) { tq1_rows<1>(n / 256, static_cast<const block_tq1_0*>(x), static_cast<const uint8_t*>(y), 0, s); }
void vec_dot_tq2_0(int64_t n, float* s, const void* x, const void* y) { tq2_rows<1>(n / 256, static_cast<const block_tq2_0*>(x), static_cast<const uint8_t*>(y), 0, s); }
void vec_dot_mxfp4(int64_t n, float* s, const void* x, const void* y) { mxfp4_rows<1>(n / 32, static_cast<const block_mxfp4*>(x), static_cast<const uint8_t*>(y), 0, s); }
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
