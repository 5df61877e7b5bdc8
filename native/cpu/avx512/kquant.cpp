// AVX-512 kernels for Q2_K and Q6_K against Q8_K: 64 quants per register, matched with 64
// contiguous activations. Products are int16 pair sums (vpmaddubsw) weighted by the integer
// sub-block scales as they widen to int32 (vpmaddwd); one float scale per super-block. As in the
// AVX2 kernels, the Q6_K offset and the Q2_K mins go through the Q8_K block sums.
// Q3_K, Q4_K, Q5_K and IQ4_XS keep their AVX2 kernels: their 512-bit versions measured slower on
// both Zen 4 and Sapphire Rapids (Q4_K m=1: 45 vs 51 GFLOP/s on SPR, 62 vs 69 on Zen 4; see git
// history for the removed code).
// Every loop over the R activation rows is fully unrolled (MOERUN_UNROLL): otherwise GCC keeps the
// per-row accumulators in memory. Measured on Zen 4 (bench_matmul, 1 thread, m 64): Q4_K 95 -> 131,
// Q8_0 62 -> 81, Q5_K 110 -> 115 GFLOP/s. (The AVX2 kernels, with 16 registers, gained nothing.)
#include "../../quant/blocks.h"
#include "kernels.h"
#include "simd.h"

namespace moerun::avx512 {

namespace {

inline __m256i bits(__m256i v, int shift, int mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(char(mask)));
}

// acc += d * (isum - Q6_K's offset), the offset 32 * sum_j scale[j] * bsums[j] taken lane by lane
// (8 lanes of two sub-blocks): the same exact integer total, without a horizontal sum per
// super-block and row.
inline __m512 accumulate_q6_k(__m512 acc, float d, __m512i isum, const int16_t* bsums, __m256i scales16) {
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(load256(bsums), scales16), 5);
    return _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_sub_epi32(isum, _mm512_zextsi256_si512(offset))), acc);
}

}  // namespace

namespace {

// With `vnni`, vpdpwssd fuses the scale multiply (vpmaddwd) and the int32 add: the same exact
// integer lanes, one instruction fewer per 64 quants and row.
template <bool vnni>
inline __m512i add_scaled_n(__m512i acc, __m512i p16, __m512i scale16) {
    if constexpr (vnni) return _mm512_dpwssd_epi32(acc, p16, scale16);
    else return add_scaled(acc, p16, scale16);
}

// Q2_K for R rows: the 2-bit quants of a super-block unpacked once, 64 per register, for all rows.
// The mins term, -dmin * d_y * sum_j min_j * bsums_j, goes into each row's accumulator lane by lane.
template <int R, bool vnni>
inline void dot_q2_k_rows(int64_t nb, const block_q2_K* x, const uint8_t* y, size_t y_stride, float* out) {
    __m512 acc[R];
    const block_q8_K* yr[R];
    MOERUN_UNROLL
    for (int r = 0; r < R; ++r) {
        acc[r] = _mm512_setzero_ps();
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        const __m128i scales = load128(x[i].scales);
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scales, 4), _mm_set1_epi8(0xF)));
        const float dmin = f16(x[i].dmin), d = f16(x[i].d);
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) {
            const __m256i mv = _mm256_madd_epi16(load256(yr[r][i].bsums), m16);
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(-dmin * yr[r][i].d), _mm512_zextps256_ps512(_mm256_cvtepi32_ps(mv)), acc[r]);
        }
        const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(scales, _mm_set1_epi8(0xF))));
        __m512i isum[R];
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m256i q2 = load256(x[i].qs + 32 * h);
            for (int pair = 0; pair < 2; ++pair) {  // groups 4h+2pair, 4h+2pair+1 = 64 elements
                const __m512i q = join(bits(q2, 4 * pair, 3), bits(q2, 4 * pair + 2, 3));
                const __m512i sc = spread_scales(sc16, 8 * h + 4 * pair, 8);
                MOERUN_UNROLL
                for (int r = 0; r < R; ++r) {
                    isum[r] = add_scaled_n<vnni>(isum[r], mul_u8_i8(q, load512(yr[r][i].qs + 128 * h + 64 * pair)), sc);
                }
            }
        }
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(d * yr[r][i].d), _mm512_cvtepi32_ps(isum[r]), acc[r]);
    }
    MOERUN_UNROLL
    for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
}

// Q6_K for R rows: 64 quants per register (the unsigned quants 0..63; the -32 goes through the
// block sums, accumulate_q6_k), unpacked once for all rows.
template <int R, bool vnni>
inline void dot_q6_k_rows(int64_t nb, const block_q6_K* x, const uint8_t* y, size_t y_stride, float* out) {
    __m512 acc[R];
    const block_q8_K* yr[R];
    MOERUN_UNROLL
    for (int r = 0; r < R; ++r) {
        acc[r] = _mm512_setzero_ps();
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        const __m512i sc16 = scales_to_i16(x[i].scales);
        __m512i isum[R];
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m256i ql0 = load256(x[i].ql + 64 * h), ql1 = load256(x[i].ql + 64 * h + 32);
            const __m256i qh = load256(x[i].qh + 32 * h);
            const __m512i q01 = join(_mm256_or_si256(bits(ql0, 0, 0xF), _mm256_slli_epi16(bits(qh, 0, 3), 4)),
                                     _mm256_or_si256(bits(ql1, 0, 0xF), _mm256_slli_epi16(bits(qh, 2, 3), 4)));
            const __m512i q23 = join(_mm256_or_si256(bits(ql0, 4, 0xF), _mm256_slli_epi16(bits(qh, 4, 3), 4)),
                                     _mm256_or_si256(bits(ql1, 4, 0xF), _mm256_slli_epi16(bits(qh, 6, 3), 4)));
            const __m512i s01 = spread_scales(sc16, 8 * h, 8), s23 = spread_scales(sc16, 8 * h + 4, 8);
            MOERUN_UNROLL
            for (int r = 0; r < R; ++r) {
                isum[r] = add_scaled_n<vnni>(isum[r], mul_u8_i8(q01, load512(yr[r][i].qs + 128 * h)), s01);
                isum[r] = add_scaled_n<vnni>(isum[r], mul_u8_i8(q23, load512(yr[r][i].qs + 128 * h + 64)), s23);
            }
        }
        const float d = f16(x[i].d);
        const __m256i sc = _mm512_castsi512_si256(sc16);
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) acc[r] = accumulate_q6_k(acc[r], d * yr[r][i].d, isum[r], yr[r][i].bsums, sc);
    }
    MOERUN_UNROLL
    for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
}

}  // namespace

// Q2_K and Q6_K: vec_dot is the rows kernel for one row, so vec_dot and vec_dot_n agree bit for bit
// (the VNNI and plain integer lanes are the same).
void vec_dot_q2_k(int64_t n, float* s, const void* x, const void* y) {
    dot_q2_k_rows<1, false>(n / 256, static_cast<const block_q2_K*>(x), static_cast<const uint8_t*>(y), 0, s);
}
namespace {
template <bool vnni>
void vec_dot_n_q2_k_t(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        dot_q2_k_rows<decltype(rows)::value, vnni>(n / 256, static_cast<const block_q2_K*>(x), yj, ys, out);
    });
}
}  // namespace
void vec_dot_n_q2_k(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    vec_dot_n_q2_k_t<false>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_q2_k_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    vec_dot_n_q2_k_t<true>(n, s, ss, x, y, ys, ny);
}

void vec_dot_q6_k(int64_t n, float* s, const void* x, const void* y) {
    dot_q6_k_rows<1, false>(n / 256, static_cast<const block_q6_K*>(x), static_cast<const uint8_t*>(y), 0, s);
}
namespace {
template <bool vnni>
void vec_dot_n_q6_k_t(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        dot_q6_k_rows<decltype(rows)::value, vnni>(n / 256, static_cast<const block_q6_K*>(x), yj, ys, out);
    });
}
}  // namespace
void vec_dot_n_q6_k(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    vec_dot_n_q6_k_t<false>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_q6_k_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    vec_dot_n_q6_k_t<true>(n, s, ss, x, y, ys, ny);
}

namespace {

inline __m256i bits256(__m256i v, int shift, int mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(char(mask)));
}

template <int R, typename B, typename Quants>
inline void dot_q45_k_rows_vnni(int64_t nb, const B* x, const uint8_t* y, size_t y_stride, float* out, Quants quants) {
    __m256 acc[R];
    const block_q8_K* yr[R];
    MOERUN_UNROLL
    for (int r = 0; r < R; ++r) {
        acc[r] = _mm256_setzero_ps();
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    // Mins byte j -> int16 lanes 2j and 2j+1 (each pair of 16-element block sums shares a min).
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (int64_t i = 0; i < nb; ++i) {
        uint8_t sc[8], m[8];
        unpack_scales_min_k4(x[i].scales, sc, m);
        const float dmin = f16(x[i].dmin), d = f16(x[i].d);
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)), dup));
        // The mins term, -dmin * d_y * sum(min_j * bsum_j), goes into the float accumulator lane by
        // lane (8 lanes of two bsums each), with no horizontal sum per super-block.
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) {
            const __m256i mv = _mm256_madd_epi16(load256(yr[r][i].bsums), m16);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * yr[r][i].d), _mm256_cvtepi32_ps(mv), acc[r]);
        }
        __m256i isum[R][2];
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) isum[r][0] = isum[r][1] = _mm256_setzero_si256();
        MOERUN_UNROLL
        for (int c = 0; c < 4; ++c) {
            __m256i lo, hi;
            quants(x[i], c, lo, hi);
            const __m256i s0 = _mm256_set1_epi16(sc[2 * c]), s1 = _mm256_set1_epi16(sc[2 * c + 1]);
            MOERUN_UNROLL
            for (int r = 0; r < R; ++r) {
                isum[r][0] = _mm256_dpwssd_epi32(isum[r][0], _mm256_maddubs_epi16(lo, load256(yr[r][i].qs + 64 * c)), s0);
                isum[r][1] = _mm256_dpwssd_epi32(isum[r][1], _mm256_maddubs_epi16(hi, load256(yr[r][i].qs + 64 * c + 32)), s1);
            }
        }
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) {
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * yr[r][i].d), _mm256_cvtepi32_ps(_mm256_add_epi32(isum[r][0], isum[r][1])), acc[r]);
        }
    }
    MOERUN_UNROLL
    for (int r = 0; r < R; ++r) out[r] = avx2::hsum(acc[r]);
}

// Q4_K chunk c (64 quants): the low nibbles of its 32 bytes, then the high ones. (A lambda, not a
// function: its own type, so the kernel templates inline it.)
constexpr auto q4_k_chunk = [](const block_q4_K& b, int c, __m256i& lo, __m256i& hi) {
    const __m256i q = load256(b.qs + 32 * c);
    lo = bits256(q, 0, 0xF);
    hi = bits256(q, 4, 0xF);
};

}  // namespace

void vec_dot_q4_k_vnni(int64_t n, float* s, const void* x, const void* y) {
    dot_q45_k_rows_vnni<1>(n / 256, static_cast<const block_q4_K*>(x), static_cast<const uint8_t*>(y), 0, s, q4_k_chunk);
}
void vec_dot_n_q4_k_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    // 8 rows first: 16 accumulators, the block's quants and scales fit the 32 registers.
    avx2::dot_n_rows<4, 8>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        dot_q45_k_rows_vnni<decltype(rows)::value>(n / 256, static_cast<const block_q4_K*>(x), yj, ys, out, q4_k_chunk);
    });
}

// ---- Q4_K / Q5_K for several activation rows at 512 bits (AVX512_VNNI) ----
//
// dot_q45_k_rows_vnni with each 64-element chunk in one register: the low-nibble group in the
// low 256 bits, the high-nibble group in the high 256 bits, against the chunk's 64 contiguous
// activations; half the instructions per quant (Zen 4 runs a 512-bit op as two 256-bit halves,
// so the gain is in issue and loads). The int32 lanes j and j + 8 are the 256-bit kernel's two
// accumulators, added before the float step: bit for bit avx2::vec_dot_q4_k / q5_k.
// Measured on Zen 4 (bench_matmul, 1 thread, m 64): Q5_K 65 -> 110 GFLOP/s over the 256-bit
// kernel (whose per-chunk qh unpacking for 8 rows runs out of registers), Q4_K 133 -> 121, so
// only Q5_K takes it.
namespace {

template <int R, typename B, typename Quants>
inline void dot_q45_k_rows_512(int64_t nb, const B* x, const uint8_t* y, size_t y_stride, float* out, Quants quants) {
    __m256 acc[R];
    const block_q8_K* yr[R];
    MOERUN_UNROLL
    for (int r = 0; r < R; ++r) {
        acc[r] = _mm256_setzero_ps();
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (int64_t i = 0; i < nb; ++i) {
        uint8_t sc[8], m[8];
        unpack_scales_min_k4(x[i].scales, sc, m);
        const float dmin = f16(x[i].dmin), d = f16(x[i].d);
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)), dup));
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) {  // the mins term lane by lane, as dot_q45_k_rows_vnni
            const __m256i mv = _mm256_madd_epi16(load256(yr[r][i].bsums), m16);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * yr[r][i].d), _mm256_cvtepi32_ps(mv), acc[r]);
        }
        // Scales as int16: sc[2c] in the low 256 bits of chunk c's register, sc[2c + 1] in the high.
        const __m512i sc16 = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc))));
        __m512i isum[R][2];
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) isum[r][0] = isum[r][1] = _mm512_setzero_si512();
        MOERUN_UNROLL
        for (int c = 0; c < 4; ++c) {
            const __m512i q = quants(x[i], c);
            const __m512i s = _mm512_permutexvar_epi16(
                _mm512_inserti64x4(_mm512_set1_epi16(short(2 * c)), _mm256_set1_epi16(short(2 * c + 1)), 1), sc16);
            MOERUN_UNROLL
            for (int r = 0; r < R; ++r) {
                isum[r][c & 1] = _mm512_dpwssd_epi32(isum[r][c & 1], _mm512_maddubs_epi16(q, load512(yr[r][i].qs + 64 * c)), s);
            }
        }
        MOERUN_UNROLL
        for (int r = 0; r < R; ++r) {
            const __m512i t = _mm512_add_epi32(isum[r][0], isum[r][1]);
            const __m256i v = _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * yr[r][i].d), _mm256_cvtepi32_ps(v), acc[r]);
        }
    }
    MOERUN_UNROLL
    for (int r = 0; r < R; ++r) out[r] = avx2::hsum(acc[r]);
}

// Chunk c's 32 bytes of nibbles: low nibbles in the low 256 bits, high nibbles in the high.
inline __m512i nibbles512(const uint8_t* qs) {
    const __m512i q = _mm512_broadcast_i64x4(load256(qs));
    return _mm512_and_si512(_mm512_srlv_epi64(q, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)), _mm512_set1_epi8(0xF));
}

// Q5_K chunk c (64 quants in one register): qh bit 2c -> bit 4 of the low-group bytes, bit 2c + 1
// -> bit 4 of the high-group bytes. (A lambda, so the kernel templates inline it.)
constexpr auto q5_k_chunk = [](const block_q5_K& b, int c) {
    const __m512i qh = _mm512_broadcast_i64x4(load256(b.qh));
    const __m512i h = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(2 * c, 2 * c, 2 * c, 2 * c, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1)),
                                       _mm512_set1_epi8(1));
    return _mm512_or_si512(nibbles512(b.qs + 32 * c), _mm512_slli_epi16(h, 4));
};

}  // namespace

void vec_dot_q5_k_512(int64_t n, float* s, const void* x, const void* y) {
    dot_q45_k_rows_512<1>(n / 256, static_cast<const block_q5_K*>(x), static_cast<const uint8_t*>(y), 0, s, q5_k_chunk);
}
void vec_dot_n_q5_k_512(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4, 8>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        dot_q45_k_rows_512<decltype(rows)::value>(n / 256, static_cast<const block_q5_K*>(x), yj, ys, out, q5_k_chunk);
    });
}

}  // namespace moerun::avx512
