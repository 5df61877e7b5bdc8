// AVX-512 VNNI kernels for the 32-element formats: two blocks per 512-bit register, their
// products summed by vpdpbusd (u8 x s8, four products per int32 lane, no int16 saturation);
// lanes 0-7 belong to the first block and 8-15 to the second, scaled by their own d_x * d_y.
#include "../../quant/blocks.h"
#include "kernels.h"
#include "simd.h"

namespace moerun::avx512 {

namespace {

// Sum over blocks of d_x * d_y * dot(expand(x), y); `expand` gives a block's 32 quants as int8
// (or as u8 when `unsigned_x`).
template <typename B, typename Y, bool unsigned_x, typename Expand>
inline float dot_blocks(int64_t nb, const B* x, const Y* y, Expand expand) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i += 2) {
        const bool pair = i + 1 < nb;
        const __m512i qx = join(expand(x[i]), pair ? expand(x[i + 1]) : _mm256_setzero_si256());
        const __m512i qy = join(load256(y[i].qs), pair ? load256(y[i + 1].qs) : _mm256_setzero_si256());
        const __m512i zero = _mm512_setzero_si512();
        const __m512i p = unsigned_x ? _mm512_dpbusd_epi32(zero, qx, qy)
                                     : _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(qx), apply_sign(qy, qx));
        const __m512 d = join_ps(f16(x[i].d) * f16(y[i].d), pair ? f16(x[i + 1].d) * f16(y[i + 1].d) : 0.0f);
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

inline __m256i q5_high(const uint8_t* qh) {
    return _mm256_and_si256(avx2::bits_to_bytes(load_u32(qh)), _mm256_set1_epi8(0x10));
}

template <typename B, typename Y>
inline float mins(int64_t nb, const B* x, const Y* y) {
    float m = 0;
    for (int64_t i = 0; i < nb; ++i) m += f16(x[i].m) * f16(y[i].s);
    return m;
}

}  // namespace

void vec_dot_q4_0(int64_t n, float* s, const void* vx, const void* vy) {
    const __m256i off = _mm256_set1_epi8(8);
    *s = dot_blocks<block_q4_0, block_q8_0, false>(n / 32, static_cast<const block_q4_0*>(vx), static_cast<const block_q8_0*>(vy),
        [&](const block_q4_0& b) { return _mm256_sub_epi8(avx2::unpack_nibbles(b.qs), off); });
}

void vec_dot_q4_1(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q4_1* x = static_cast<const block_q4_1*>(vx);
    const block_q8_1* y = static_cast<const block_q8_1*>(vy);
    *s = dot_blocks<block_q4_1, block_q8_1, true>(n / 32, x, y, [](const block_q4_1& b) { return avx2::unpack_nibbles(b.qs); }) +
         mins(n / 32, x, y);
}

void vec_dot_q5_0(int64_t n, float* s, const void* vx, const void* vy) {
    const __m256i off = _mm256_set1_epi8(16);
    *s = dot_blocks<block_q5_0, block_q8_0, false>(n / 32, static_cast<const block_q5_0*>(vx), static_cast<const block_q8_0*>(vy),
        [&](const block_q5_0& b) { return _mm256_sub_epi8(_mm256_or_si256(avx2::unpack_nibbles(b.qs), q5_high(b.qh)), off); });
}

void vec_dot_q5_1(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q5_1* x = static_cast<const block_q5_1*>(vx);
    const block_q8_1* y = static_cast<const block_q8_1*>(vy);
    *s = dot_blocks<block_q5_1, block_q8_1, true>(n / 32, x, y,
             [](const block_q5_1& b) { return _mm256_or_si256(avx2::unpack_nibbles(b.qs), q5_high(b.qh)); }) +
         mins(n / 32, x, y);
}

void vec_dot_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    *s = dot_blocks<block_q8_0, block_q8_0, false>(n / 32, static_cast<const block_q8_0*>(vx), static_cast<const block_q8_0*>(vy),
        [](const block_q8_0& b) { return load256(b.qs); });
}

void vec_dot_iq4_nl(int64_t n, float* s, const void* vx, const void* vy) {
    const __m256i lut = _mm256_broadcastsi128_si256(load128(k_iq4nl_values));
    *s = dot_blocks<block_iq4_nl, block_q8_0, false>(n / 32, static_cast<const block_iq4_nl*>(vx), static_cast<const block_q8_0*>(vy),
        [&](const block_iq4_nl& b) { return _mm256_shuffle_epi8(lut, avx2::unpack_nibbles(b.qs)); });
}

}  // namespace moerun::avx512
