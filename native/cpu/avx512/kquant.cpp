// AVX-512 kernels for Q2_K and Q6_K against Q8_K: 64 quants per register, matched with 64
// contiguous activations. Products are int16 pair sums (vpmaddubsw) weighted by the integer
// sub-block scales as they widen to int32 (vpmaddwd); one float scale per super-block. As in the
// AVX2 kernels, the Q6_K offset and the Q2_K mins go through the Q8_K block sums.
// These are the kernels of CPUs without AVX512_VNNI: with it, Q4_K, Q5_K and Q6_K go through the
// int8 GEMM of int8_gemm_k.cpp (bit for bit the reference), and the 512-bit Q4_K/Q5_K VNNI dots
// that were here are gone (see git history). Q3_K, Q4_K, Q5_K and IQ4_XS without VNNI keep their
// AVX2 kernels: their 512-bit versions measured slower on both Zen 4 and Sapphire Rapids (Q4_K
// m=1: 45 vs 51 GFLOP/s on SPR, 62 vs 69 on Zen 4).
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
void vec_dot_n_q6_k(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        dot_q6_k_rows<decltype(rows)::value, false>(n / 256, static_cast<const block_q6_K*>(x), yj, ys, out);
    });
}

}  // namespace moerun::avx512
