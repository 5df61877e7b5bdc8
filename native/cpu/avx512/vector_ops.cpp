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

void softmax(float* x, int64_t n) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
    const __m512 vmax = _mm512_set1_ps(max);
    double sum = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = exp_v(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmax));
        _mm512_storeu_ps(x + i, v);
        sum += double(hsum_gemm(v));
    }
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
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

namespace {

// GEMM order over j for Q queries: per query, 16 accumulators (lane j % 16), each a vector over 16
// consecutive e, then the lanes added by hsum_gemm's tree: (l + l+8), (l + l+4), then
// (0 + 2) + (1 + 3). Per 16-wide e chunk, LB lanes at a time (Q * LB accumulators in registers,
// each V row loaded once for the Q queries), the finished lanes kept in `lanes` for the tree.
// Rows j < min n are taken by every query; the ragged end (j < n[q] for some) query by query.
// V rows of F32 or F16.
template <int Q, int LB, typename E, __m512 (*load)(const E*, __mmask16)>
void weighted_sum_block(const float* const* p, const int64_t* n, const E* v, size_t v_stride, int64_t dim, float* const* out) {
    const float* pq[Q];
    int64_t n_min = n[0], n_max = n[0];
    for (int q = 0; q < Q; ++q) {
        pq[q] = p[q];
        n_min = std::min(n_min, n[q]);
        n_max = std::max(n_max, n[q]);
    }
    for (int64_t e = 0; e < dim; e += 16) {
        const __mmask16 m = dim - e >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (dim - e)) - 1);
        __m512 lanes[16][Q];
        for (int l0 = 0; l0 < 16; l0 += LB) {
            __m512 acc[LB][Q];
            MOERUN_UNROLL
            for (int b = 0; b < LB; ++b)
                MOERUN_UNROLL
                for (int q = 0; q < Q; ++q) acc[b][q] = _mm512_setzero_ps();
            int64_t j0 = l0;
            for (; j0 + LB <= n_min; j0 += 16) {
                MOERUN_UNROLL
                for (int b = 0; b < LB; ++b) {
                    const __m512 vj = load(v + size_t(j0 + b) * v_stride + size_t(e), m);
                    MOERUN_UNROLL
                    for (int q = 0; q < Q; ++q) acc[b][q] = _mm512_fmadd_ps(_mm512_set1_ps(pq[q][j0 + b]), vj, acc[b][q]);
                }
            }
            for (; j0 < n_max; j0 += 16) {  // constant indices into acc (unrolled), so it stays in registers
                MOERUN_UNROLL
                for (int b = 0; b < LB; ++b) {
                    if (j0 + b >= n_max) break;
                    const __m512 vj = load(v + size_t(j0 + b) * v_stride + size_t(e), m);
                    MOERUN_UNROLL
                    for (int q = 0; q < Q; ++q) {
                        if (j0 + b < n[q]) acc[b][q] = _mm512_fmadd_ps(_mm512_set1_ps(pq[q][j0 + b]), vj, acc[b][q]);
                    }
                }
            }
            MOERUN_UNROLL
            for (int b = 0; b < LB; ++b)
                MOERUN_UNROLL
                for (int q = 0; q < Q; ++q) lanes[l0 + b][q] = acc[b][q];
        }
        for (int q = 0; q < Q; ++q) {
            __m512 t[8];
            for (int l = 0; l < 8; ++l) t[l] = _mm512_add_ps(lanes[l][q], lanes[l + 8][q]);
            for (int l = 0; l < 4; ++l) t[l] = _mm512_add_ps(t[l], t[l + 4]);
            _mm512_mask_storeu_ps(out[q] + e, m, _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3])));
        }
    }
}

// Queries in blocks of up to 8, with 16 or 8 accumulators in registers (of the 32).
template <typename E, __m512 (*load)(const E*, __mmask16)>
void weighted_sum_t(int64_t n_queries, const float* const* p, const int64_t* n, const E* v, size_t v_stride, int64_t dim,
                    float* const* out) {
    for (int64_t q = 0; q < n_queries; q += 8) {
        const float* const* pq = p + q;
        float* const* oq = out + q;
        switch (std::min<int64_t>(8, n_queries - q)) {
            case 1: weighted_sum_block<1, 16, E, load>(pq, n + q, v, v_stride, dim, oq); break;
            case 2: weighted_sum_block<2, 8, E, load>(pq, n + q, v, v_stride, dim, oq); break;
            case 3: weighted_sum_block<3, 4, E, load>(pq, n + q, v, v_stride, dim, oq); break;
            case 4: weighted_sum_block<4, 4, E, load>(pq, n + q, v, v_stride, dim, oq); break;
            case 5: weighted_sum_block<5, 2, E, load>(pq, n + q, v, v_stride, dim, oq); break;
            case 6: weighted_sum_block<6, 2, E, load>(pq, n + q, v, v_stride, dim, oq); break;
            case 7: weighted_sum_block<7, 2, E, load>(pq, n + q, v, v_stride, dim, oq); break;
            default: weighted_sum_block<8, 2, E, load>(pq, n + q, v, v_stride, dim, oq); break;
        }
    }
}

inline __m512 load_f32(const float* q, __mmask16 m) { return _mm512_maskz_loadu_ps(m, q); }
inline __m512 load_f16(const uint16_t* q, __mmask16 m) { return _mm512_maskz_cvtph_ps(m, _mm256_maskz_loadu_epi16(m, q)); }

}  // namespace

void weighted_sum(int64_t n_queries, const float* const* p, const int64_t* n, const float* v, size_t v_stride, int64_t dim,
                  float* const* out) {
    weighted_sum_t<float, load_f32>(n_queries, p, n, v, v_stride, dim, out);
}
void weighted_sum_f16(int64_t n_queries, const float* const* p, const int64_t* n, const uint16_t* v, size_t v_stride, int64_t dim,
                      float* const* out) {
    weighted_sum_t<uint16_t, load_f16>(n_queries, p, n, v, v_stride, dim, out);
}

}  // namespace avx512
}  // namespace moerun
