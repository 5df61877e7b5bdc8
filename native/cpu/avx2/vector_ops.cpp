// AVX2 row operations in llama.cpp's AVX2 order (L = 8), with its AVX2 vector exp.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace moerun {
namespace avx2 {
namespace {

// exp(x) for 8 lanes: x = n ln2 + b with n = round(x / ln2) (by the 1.5 * 2^23 shift) and ln2 in
// two parts, exp(b) - 1 ~ a degree-5 polynomial j, and exp(x) = 2^n (1 + j), with 2^n built in
// the exponent bits. |n| > 126 scales in two steps; |n| > 192 gives 0 or inf. These are the
// constants and operation order of llama.cpp's AVX2 build (Arm's optimized-routines expf), so the
// result is its result bit for bit; within 1.5 ulp of expf.
inline __m256 exp_v(__m256 x) {
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 big = _mm256_cmp_ps(abs_ps(n), _mm256_set1_ps(126), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    if (!_mm256_movemask_ps(big)) return _mm256_fmadd_ps(j, k, k);
    // 2^n = s1 * s2 with s1 = 2^(+-127) where n is large.
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32(int(0x82000000u)));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 huge = _mm256_cmp_ps(abs_ps(n), _mm256_set1_ps(192), _CMP_GT_OQ);
    const __m256 scaled = _mm256_blendv_ps(_mm256_fmadd_ps(k, j, k), _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1), big);
    return _mm256_blendv_ps(scaled, _mm256_mul_ps(s1, s1), huge);
}

}  // namespace

void softmax(float* x, int64_t n, float cutoff) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    float max = -INFINITY;
    for (float l : lanes) max = std::fmax(max, l);
    for (; i < n; ++i) max = std::fmax(max, x[i]);
    const __m256 vm = _mm256_set1_ps(max), vcut = _mm256_set1_ps(cutoff);
    double sum = 0;
    for (i = 0; i + 8 <= n; i += 8) {
        // Lanes below the cutoff take exp of the cutoff, then 0: none computes a subnormal. NaN
        // lanes stay NaN (an unordered compare keeps them; max_ps returns its second operand).
        const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        const __m256 keep = _mm256_cmp_ps(d, vcut, _CMP_NLT_UQ);
        const __m256 v = _mm256_and_ps(keep, exp_v(_mm256_max_ps(vcut, d)));
        _mm256_storeu_ps(x + i, v);
        sum += double(hsum(v));
    }
    for (; i < n; ++i) {
        const float d = x[i] - max;
        x[i] = d < cutoff ? 0.0f : std::exp(d);
        sum += double(x[i]);
    }
    const __m256 inv = _mm256_set1_ps(float(1.0 / sum));
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; ++i) x[i] *= _mm256_cvtss_f32(inv);
}

void swiglu(float* gate, const float* up, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(gate + i);
        const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_v(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// Up to 4 x 8 elements of y stay in registers while the rows pass, then 8 at a time, then the
// last n % 8 with the same fused step one by one.
void weighted_rows(float* y, const float* v, int64_t v_stride, const float* p, int64_t rows, int64_t n) {
    int64_t e = 0;
    for (; e + 32 <= n; e += 32) {
        __m256 acc[4];
        for (int k = 0; k < 4; ++k) acc[k] = _mm256_loadu_ps(y + e + 8 * k);
        for (int64_t j = 0; j < rows; ++j) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const float* vj = v + j * v_stride + e;
            for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(vj + 8 * k), pj, acc[k]);
        }
        for (int k = 0; k < 4; ++k) _mm256_storeu_ps(y + e + 8 * k, acc[k]);
    }
    for (; e + 8 <= n; e += 8) {
        __m256 acc = _mm256_loadu_ps(y + e);
        for (int64_t j = 0; j < rows; ++j) acc = _mm256_fmadd_ps(_mm256_loadu_ps(v + j * v_stride + e), _mm256_set1_ps(p[j]), acc);
        _mm256_storeu_ps(y + e, acc);
    }
    for (; e < n; ++e) {
        for (int64_t j = 0; j < rows; ++j) y[e] = std::fma(v[j * v_stride + e], p[j], y[e]);
    }
}

// 8 x 8 blocks through registers (three rounds of 16/32/64-bit interleaves), the edges element
// by element.
void transpose_u16(const uint8_t* src, size_t src_stride, uint8_t* dst, size_t dst_stride, int64_t rows, int64_t cols) {
    const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
    for (int64_t r = 0; r < rows8; r += 8) {
        for (int64_t c = 0; c < cols8; c += 8) {
            __m128i a[8], b[8];
            for (int i = 0; i < 8; ++i) a[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + size_t(r + i) * src_stride + size_t(c) * 2));
            for (int i = 0; i < 4; ++i) {
                b[2 * i] = _mm_unpacklo_epi16(a[2 * i], a[2 * i + 1]);      // rows 2i, 2i+1: columns 0-3 interleaved
                b[2 * i + 1] = _mm_unpackhi_epi16(a[2 * i], a[2 * i + 1]);  // columns 4-7
            }
            for (int i = 0; i < 2; ++i) {
                for (int h = 0; h < 2; ++h) {
                    a[4 * i + 2 * h] = _mm_unpacklo_epi32(b[4 * i + h], b[4 * i + 2 + h]);
                    a[4 * i + 2 * h + 1] = _mm_unpackhi_epi32(b[4 * i + h], b[4 * i + 2 + h]);
                }
            }
            // a[4i + k]: rows 4i..4i+3 of columns 2k, 2k+1 (k = 0..3)
            for (int k = 0; k < 4; ++k) {
                const __m128i lo = _mm_unpacklo_epi64(a[k], a[4 + k]), hi = _mm_unpackhi_epi64(a[k], a[4 + k]);
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + size_t(c + 2 * k) * dst_stride + size_t(r) * 2), lo);
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + size_t(c + 2 * k + 1) * dst_stride + size_t(r) * 2), hi);
            }
        }
        for (int64_t c = cols8; c < cols; ++c) {
            for (int64_t i = r; i < r + 8; ++i) std::memcpy(dst + size_t(c) * dst_stride + size_t(i) * 2, src + size_t(i) * src_stride + size_t(c) * 2, 2);
        }
    }
    for (int64_t r = rows8; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) std::memcpy(dst + size_t(c) * dst_stride + size_t(r) * 2, src + size_t(r) * src_stride + size_t(c) * 2, 2);
    }
}

}  // namespace avx2
}  // namespace moerun
