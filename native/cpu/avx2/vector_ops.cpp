// AVX2 row operations in llama.cpp's AVX2 order (L = 8), with its AVX2 vector exp.
#include <algorithm>
#include <cmath>

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

void softmax(float* x, int64_t n) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
    const __m256 vmax = _mm256_set1_ps(max);
    double sum = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = exp_v(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        _mm256_storeu_ps(x + i, v);
        sum += double(hsum(v));
    }
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
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

namespace {

// GEMM order over j for Q queries: per query, 8 accumulators (lane j % 8), each a vector over 8
// consecutive e, then the lanes added by hsum's tree: (l + l+4), then (0 + 2) + (1 + 3). Per
// 8-wide e chunk, LB lanes at a time (Q * LB accumulators in registers, each V row loaded once for
// the Q queries), the finished lanes kept in `lanes` for the tree; e past the last whole chunk
// element by element, in the same order. Rows j < min n are taken by every query; the ragged end
// (j < n[q] for some) query by query. V rows of F32 or F16.
template <int Q, int LB, typename E, __m256 (*load)(const E*), float (*scalar)(E)>
void weighted_sum_block(const float* const* p, const int64_t* n, const E* v, size_t v_stride, int64_t dim, float* const* out) {
    const float* pq[Q];
    int64_t n_min = n[0], n_max = n[0];
    for (int q = 0; q < Q; ++q) {
        pq[q] = p[q];
        n_min = std::min(n_min, n[q]);
        n_max = std::max(n_max, n[q]);
    }
    int64_t e = 0;
    for (; e + 8 <= dim; e += 8) {
        __m256 lanes[8][Q];
        for (int l0 = 0; l0 < 8; l0 += LB) {
            __m256 acc[LB][Q];
            MOERUN_UNROLL
            for (int b = 0; b < LB; ++b)
                MOERUN_UNROLL
                for (int q = 0; q < Q; ++q) acc[b][q] = _mm256_setzero_ps();
            int64_t j0 = l0;
            for (; j0 + LB <= n_min; j0 += 8) {
                MOERUN_UNROLL
                for (int b = 0; b < LB; ++b) {
                    const __m256 vj = load(v + size_t(j0 + b) * v_stride + size_t(e));
                    MOERUN_UNROLL
                    for (int q = 0; q < Q; ++q) acc[b][q] = _mm256_fmadd_ps(_mm256_set1_ps(pq[q][j0 + b]), vj, acc[b][q]);
                }
            }
            for (; j0 < n_max; j0 += 8) {  // constant indices into acc (unrolled), so it stays in registers
                MOERUN_UNROLL
                for (int b = 0; b < LB; ++b) {
                    if (j0 + b >= n_max) break;
                    const __m256 vj = load(v + size_t(j0 + b) * v_stride + size_t(e));
                    MOERUN_UNROLL
                    for (int q = 0; q < Q; ++q) {
                        if (j0 + b < n[q]) acc[b][q] = _mm256_fmadd_ps(_mm256_set1_ps(pq[q][j0 + b]), vj, acc[b][q]);
                    }
                }
            }
            MOERUN_UNROLL
            for (int b = 0; b < LB; ++b)
                MOERUN_UNROLL
                for (int q = 0; q < Q; ++q) lanes[l0 + b][q] = acc[b][q];
        }
        for (int q = 0; q < Q; ++q) {
            __m256 t[4];
            for (int l = 0; l < 4; ++l) t[l] = _mm256_add_ps(lanes[l][q], lanes[l + 4][q]);
            _mm256_storeu_ps(out[q] + e, _mm256_add_ps(_mm256_add_ps(t[0], t[2]), _mm256_add_ps(t[1], t[3])));
        }
    }
    for (int q = 0; q < Q; ++q) {
        for (int64_t f = e; f < dim; ++f) {
            float acc[8] = {};
            for (int64_t j = 0; j < n[q]; ++j) acc[j & 7] = std::fma(pq[q][j], scalar(v[size_t(j) * v_stride + size_t(f)]), acc[j & 7]);
            for (int l = 0; l < 4; ++l) acc[l] += acc[l + 4];
            out[q][f] = (acc[0] + acc[2]) + (acc[1] + acc[3]);
        }
    }
}

// Queries in blocks of up to 8, with 8 accumulators in registers (of the 16).
template <typename E, __m256 (*load)(const E*), float (*scalar)(E)>
void weighted_sum_t(int64_t n_queries, const float* const* p, const int64_t* n, const E* v, size_t v_stride, int64_t dim,
                    float* const* out) {
    for (int64_t q = 0; q < n_queries; q += 8) {
        const float* const* pq = p + q;
        float* const* oq = out + q;
        switch (std::min<int64_t>(8, n_queries - q)) {
            case 1: weighted_sum_block<1, 8, E, load, scalar>(pq, n + q, v, v_stride, dim, oq); break;
            case 2: weighted_sum_block<2, 4, E, load, scalar>(pq, n + q, v, v_stride, dim, oq); break;
            case 3: weighted_sum_block<3, 2, E, load, scalar>(pq, n + q, v, v_stride, dim, oq); break;
            case 4: weighted_sum_block<4, 2, E, load, scalar>(pq, n + q, v, v_stride, dim, oq); break;
            case 5: weighted_sum_block<5, 1, E, load, scalar>(pq, n + q, v, v_stride, dim, oq); break;
            case 6: weighted_sum_block<6, 1, E, load, scalar>(pq, n + q, v, v_stride, dim, oq); break;
            case 7: weighted_sum_block<7, 1, E, load, scalar>(pq, n + q, v, v_stride, dim, oq); break;
            default: weighted_sum_block<8, 1, E, load, scalar>(pq, n + q, v, v_stride, dim, oq); break;
        }
    }
}

inline __m256 load_f32(const float* q) { return _mm256_loadu_ps(q); }
inline __m256 load_f16(const uint16_t* q) { return _mm256_cvtph_ps(load128(q)); }
inline float id(float x) { return x; }

}  // namespace

void weighted_sum(int64_t n_queries, const float* const* p, const int64_t* n, const float* v, size_t v_stride, int64_t dim,
                  float* const* out) {
    weighted_sum_t<float, load_f32, id>(n_queries, p, n, v, v_stride, dim, out);
}
void weighted_sum_f16(int64_t n_queries, const float* const* p, const int64_t* n, const uint16_t* v, size_t v_stride, int64_t dim,
                      float* const* out) {
    weighted_sum_t<uint16_t, load_f16, f16>(n_queries, p, n, v, v_stride, dim, out);
}

}  // namespace avx2
}  // namespace moerun
