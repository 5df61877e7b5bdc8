// AVX2 kernels for the 256-element formats against Q8_K: Q2_K, Q3_K, IQ4_XS (Q4_K, Q5_K and Q6_K:
// int8_gemm.cpp, whose integer sums take the reference's float steps).
//
// Per super-block, each group of 32 quants is expanded to bytes, multiplied with the activations
// (maddubs -> int16 pair sums), weighted by the integer sub-block scales in the int16 -> int32
// step (madd), and accumulated in int32; one float multiply by d_x * d_y per super-block.
// Formats with an offset (Q3_K's -4, Q6_K's -32) use the unsigned quants and subtract
// offset * scale * bsums, the activation sums Q8_K carries; Q2_K's mins work the same way.
#include "../../quant/blocks.h"
#include "kernels.h"
#include "simd.h"

namespace moerun::avx2 {

namespace {

// Bits `shift`.. of every byte, masked: (v >> shift) & mask per byte.
inline __m256i bits(__m256i v, int shift, int mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(char(mask)));
}

}  // namespace

void vec_dot_q3_k(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q3_K* x = static_cast<const block_q3_K*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 256; ++i) {
        const __m256i sc16 = q3k_scales16(x[i].scales);
        const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00), sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
        const __m256i hmask = load256(x[i].hmask);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i q2 = load256(x[i].qs + 32 * h);
            for (int k = 0; k < 4; ++k) {
                const int g = 4 * h + k;
                // Unsigned quant 0..7 = low 2 bits | bit 2 from hmask; the -4 is applied below.
                const __m256i q = _mm256_or_si256(bits(q2, 2 * k, 3), _mm256_slli_epi16(bits(hmask, g, 1), 2));
                const __m256i p = mul_u8_i8(q, load256(y[i].qs + 32 * g));
                isum = _mm256_add_epi32(isum, sum_i16_scaled(p, _mm256_shuffle_epi8(g < 4 ? sc_lo : sc_hi, scale_pair_spread(g % 4))));
            }
        }
        // The -4 offset through the block sums (the same int as a scalar loop's). The scales are
        // unpacked in a register (q3k_scales16): from a stack array, as before, the loads waited
        // on the stores, and the vec_dot ran at 36 GFLOP/s (k 2048, one thread, Zen 5).
        const int offset = hsum_i32(_mm256_madd_epi16(load256(y[i].bsums), sc16));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * y[i].d),
                              _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, _mm256_setr_epi32(4 * offset, 0, 0, 0, 0, 0, 0, 0))), acc);
    }
    *s = hsum(acc);
}

namespace {

// Q3_K for R rows (vec_dot_n): scales and quants unpacked once per super-block for all rows. Each
// row's offset, 4 * sum_j scale_j * bsums_j, is the same int as vec_dot_q3_k's, taken from the same
// lane, so the results are bit for bit vec_dot_q3_k's.
template <int R>
inline void dot_q3_k_rows(int64_t nb, const block_q3_K* x, const uint8_t* y, size_t y_stride, float* out) {
    __m256 acc[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        acc[r] = _mm256_setzero_ps();
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i sc16 = q3k_scales16(x[i].scales);
        const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00), sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
        const __m256i hmask = load256(x[i].hmask);
        __m256i isum[R];
        for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i q2 = load256(x[i].qs + 32 * h);
            for (int k = 0; k < 4; ++k) {
                const int g = 4 * h + k;
                const __m256i q = _mm256_or_si256(bits(q2, 2 * k, 3), _mm256_slli_epi16(bits(hmask, g, 1), 2));
                const __m256i scale = _mm256_shuffle_epi8(g < 4 ? sc_lo : sc_hi, scale_pair_spread(g % 4));
                for (int r = 0; r < R; ++r) {
                    isum[r] = _mm256_add_epi32(isum[r], sum_i16_scaled(mul_u8_i8(q, load256(yr[r][i].qs + 32 * g)), scale));
                }
            }
        }
        const float d = f16(x[i].d);
        for (int r = 0; r < R; ++r) {
            const int offset = 4 * hsum_i32(_mm256_madd_epi16(load256(yr[r][i].bsums), sc16));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * yr[r][i].d),
                                     _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[r], _mm256_setr_epi32(offset, 0, 0, 0, 0, 0, 0, 0))), acc[r]);
        }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// Q2_K for R rows: each 32-quant group unpacked once per super-block for all rows. The mins term,
// -dmin * d_y * sum_j min_j * bsums_j, goes into each row's accumulator lane by lane.
template <int R>
inline void dot_q2_k_rows(int64_t nb, const block_q2_K* x, const uint8_t* y, size_t y_stride, float* out) {
    __m256 acc[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        acc[r] = _mm256_setzero_ps();
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(load128(x[i].scales), 4), _mm_set1_epi8(0xF)));
        const float dmin = f16(x[i].dmin), d = f16(x[i].d);
        __m256i isum[R];
        for (int r = 0; r < R; ++r) {
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * yr[r][i].d), _mm256_cvtepi32_ps(_mm256_madd_epi16(load256(yr[r][i].bsums), m16)), acc[r]);
            isum[r] = _mm256_setzero_si256();
        }
        for (int h = 0; h < 2; ++h) {
            const __m256i q2 = load256(x[i].qs + 32 * h);
            for (int k = 0; k < 4; ++k) {
                const int g = 4 * h + k;  // group of 32 elements
                const __m256i sc = scales_2x16(x[i].scales[2 * g] & 0xF, x[i].scales[2 * g + 1] & 0xF);
                const __m256i q = bits(q2, 2 * k, 3);
                for (int r = 0; r < R; ++r) {
                    isum[r] = _mm256_add_epi32(isum[r], sum_i16_scaled(mul_u8_i8(q, load256(yr[r][i].qs + 32 * g)), sc));
                }
            }
        }
        for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * yr[r][i].d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
    }
    for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

}  // namespace

// Every vec_dot below is its rows kernel for one row, so vec_dot and vec_dot_n agree bit for bit.

void vec_dot_q2_k(int64_t n, float* s, const void* x, const void* y) {
    dot_q2_k_rows<1>(n / 256, static_cast<const block_q2_K*>(x), static_cast<const uint8_t*>(y), 0, s);
}
void vec_dot_n_q2_k(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        dot_q2_k_rows<decltype(rows)::value>(n / 256, static_cast<const block_q2_K*>(x), yj, ys, out);
    });
}

void vec_dot_n_q3_k(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        dot_q3_k_rows<decltype(rows)::value>(n / 256, static_cast<const block_q3_K*>(x), yj, ys, out);
    });
}

namespace {

// IQ4_XS for R rows: each 32-quant sub-block looked up once (and its sign taken once) for all rows;
// the integer lanes and the float steps are vec_dot's, so each row is bit for bit its result.
template <int R>
inline void dot_iq4_xs_rows(int64_t nb, const block_iq4_xs* x, const uint8_t* y, size_t y_stride, float* out) {
    const __m256i lut = _mm256_broadcastsi128_si256(load128(k_iq4nl_values));
    __m256 acc[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        acc[r] = _mm256_setzero_ps();
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        __m256i isum[R];
        for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const int ls = (((x[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((x[i].scales_h >> (2 * ib)) & 3) << 4)) - 32;
            const __m256i q = _mm256_shuffle_epi8(lut, unpack_nibbles(x[i].qs + 16 * ib));
            const __m256i uq = _mm256_sign_epi8(q, q);  // |q|; the sign moves to the activations (mul_i8_i8)
            const __m256i scale = _mm256_set1_epi16(short(ls));
            for (int r = 0; r < R; ++r) {
                const __m256i p = _mm256_maddubs_epi16(uq, _mm256_sign_epi8(load256(yr[r][i].qs + 32 * ib), q));
                isum[r] = _mm256_add_epi32(isum[r], sum_i16_scaled(p, scale));
            }
        }
        const float d = f16(x[i].d);
        for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * yr[r][i].d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
    }
    for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

}  // namespace

void vec_dot_iq4_xs(int64_t n, float* s, const void* x, const void* y) {
    dot_iq4_xs_rows<1>(n / 256, static_cast<const block_iq4_xs*>(x), static_cast<const uint8_t*>(y), 0, s);
}
void vec_dot_n_iq4_xs(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        dot_iq4_xs_rows<decltype(rows)::value>(n / 256, static_cast<const block_iq4_xs*>(x), yj, ys, out);
    });
}

}  // namespace moerun::avx2
