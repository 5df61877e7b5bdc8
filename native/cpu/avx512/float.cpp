// AVX-512 kernels for the float types. Dots keep 4 independent 16-lane accumulators and finish
// the remainder with masked loads. The BF16 dot uses vdpbf16ps where the CPU has AVX512_BF16.
#include "kernels.h"
#include "simd.h"

namespace moerun::avx512 {

namespace {

inline __m512 load_f32(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load_f16(const uint16_t* p, __mmask16 m) { return _mm512_maskz_cvtph_ps(m, _mm256_maskz_loadu_epi16(m, p)); }
inline __m512 load_bf16(const uint16_t* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

template <typename E, __m512 (*load)(const E*, __mmask16)>
float dot(int64_t n, const E* a, const E* b) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (int k = 0; k < 4; ++k) acc[k] = _mm512_fmadd_ps(load(a + i + 16 * k, 0xFFFF), load(b + i + 16 * k, 0xFFFF), acc[k]);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        acc[0] = _mm512_fmadd_ps(load(a + i, m), load(b + i, m), acc[0]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

}  // namespace

void vec_dot_f32(int64_t n, float* s, const void* x, const void* y) {
    *s = dot<float, load_f32>(n, static_cast<const float*>(x), static_cast<const float*>(y));
}
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y) {
    *s = dot<uint16_t, load_bf16>(n, static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(y));
}

// vdpbf16ps: each fp32 lane accumulates the exact products of two bf16 pairs (32 elements per
// instruction). Inputs are never denormal in practice; the instruction treats them as zero.
void vec_dot_bf16_dpbf16(int64_t n, float* s, const void* vx, const void* vy) {
    const uint16_t* a = static_cast<const uint16_t*>(vx);
    const uint16_t* b = static_cast<const uint16_t*>(vy);
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (int k = 0; k < 2; ++k) {
            acc[k] = _mm512_dpbf16_ps(acc[k], (__m512bh)load512(a + i + 32 * k), (__m512bh)load512(b + i + 32 * k));
        }
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? __mmask32(0xFFFFFFFF) : __mmask32((1u << (n - i)) - 1);
        acc[0] = _mm512_dpbf16_ps(acc[0], (__m512bh)_mm512_maskz_loadu_epi16(m, a + i), (__m512bh)_mm512_maskz_loadu_epi16(m, b + i));
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

void to_float_f16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, load_f16(h + i, m));
    }
}

void from_float_f16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(h + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT));
    }
}

}  // namespace moerun::avx512
