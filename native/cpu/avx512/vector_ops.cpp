// AVX-512 row operations in llama.cpp's AVX-512 order (L = 16), with its AVX-512 vector exp.
#include <algorithm>
#include <cmath>

#include "kernels.h"
#include "simd.h"

namespace moerun {
namespace avx512 {
namespace {

// exp(x) for 16 lanes: x = n ln2 + b with n = round(x / ln2) (by the 1.5 * 2^23 shift) and ln2 in
// two parts, exp(b) ~ 1 + a degree-5 polynomial, times 2^n by vscalefps; |n| > 192 gives 0 or
// inf. The constants and operation order of llama.cpp's AVX-512 build (Arm's optimized-routines
// expf), so the result is its result bit for bit. (Its AVX2 version rounds differently.)
inline __m512 exp_v(__m512 x) {
    const __m512 shift = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), shift);
    const __m512 n = _mm512_sub_ps(z, shift);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 huge = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (!huge) return res;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 limit = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
    return _mm512_mask_blend_ps(huge, res, limit);
}

}  // namespace

void softmax(float* x, int64_t n, float cutoff) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    float max = _mm512_reduce_max_ps(vmax);
    for (; i < n; ++i) max = std::fmax(max, x[i]);
    const __m512 vm = _mm512_set1_ps(max), vcut = _mm512_set1_ps(cutoff);
    double sum = 0;
    for (i = 0; i + 16 <= n; i += 16) {
        // Lanes below the cutoff take exp of the cutoff, then 0: none computes a subnormal. NaN
        // lanes stay NaN (an unordered compare keeps them; max_ps returns its second operand).
        const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
        const __mmask16 keep = _mm512_cmp_ps_mask(d, vcut, _CMP_NLT_UQ);
        const __m512 v = _mm512_maskz_mov_ps(keep, exp_v(_mm512_max_ps(vcut, d)));
        _mm512_storeu_ps(x + i, v);
        sum += double(hsum_gemm(v));
    }
    for (; i < n; ++i) {
        const float d = x[i] - max;
        x[i] = d < cutoff ? 0.0f : std::exp(d);
        sum += double(x[i]);
    }
    const float inv = float(1.0 / sum);
    for (i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_set1_ps(inv)));
    }
}

void swiglu(float* gate, const float* up, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(gate + i);
        const __m512 silu = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_v(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
    }
    for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// Up to 4 x 16 elements of y stay in registers while the rows pass (the rows of a block of
// positions are in L1: cpu/backend.cpp dequantizes them once for all queries), then the rest.
void weighted_rows(float* y, const float* v, int64_t v_stride, const float* p, int64_t rows, int64_t n) {
    int64_t e = 0;
    for (; e + 64 <= n; e += 64) {
        __m512 acc[4];
        for (int k = 0; k < 4; ++k) acc[k] = _mm512_loadu_ps(y + e + 16 * k);
        for (int64_t j = 0; j < rows; ++j) {
            const __m512 pj = _mm512_set1_ps(p[j]);
            const float* vj = v + j * v_stride + e;
            for (int k = 0; k < 4; ++k) acc[k] = _mm512_fmadd_ps(_mm512_loadu_ps(vj + 16 * k), pj, acc[k]);
        }
        for (int k = 0; k < 4; ++k) _mm512_storeu_ps(y + e + 16 * k, acc[k]);
    }
    for (; e < n; e += 16) {
        const __mmask16 m = n - e >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - e)) - 1);
        __m512 acc = _mm512_maskz_loadu_ps(m, y + e);
        for (int64_t j = 0; j < rows; ++j) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, v + j * v_stride + e), _mm512_set1_ps(p[j]), acc);
        _mm512_mask_storeu_ps(y + e, m, acc);
    }
}

}  // namespace avx512
}  // namespace moerun
