// AVX2 kernels for the float types: F32/F16/BF16 dots and F16/BF16 conversion.
// F32 and F16 dots sum in llama.cpp's two orders with L = 8 (see cpu/kernels.h): the GEMM order
// (vec_dot, vec_dot_n) and the vector-dot order (vec_dot_unrolled). BF16 keeps 4 independent
// accumulators (products exact in float), reduced, with the remainder past 32 scalar.
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "../../quant/reference.h"
#include "kernels.h"
#include "simd.h"

namespace moerun::avx2 {

namespace {

inline float cvt_bf16(uint16_t h) { return bf16_to_f32(h); }

// ---- GEMM order: one 8-lane accumulator per output, lanes added by hsum's tree ----


// An RM x RN tile: weight rows w[0..RM) against activation rows x[0..RN). At 4 x 3 the 12
// accumulators, 3 activation vectors and one weight vector fill the 16 registers (activations
// loaded first, as llama.cpp's tile does when RM > RN). A remainder past a multiple of 8 (which
// llama.cpp's GEMM never sees) counts as a zero-padded vector.
template <int RM, int RN, typename E, __m256 (*load)(const E*)>
void gemm_tile(int64_t n, const E* const* w, const E* const* x, float* y, int64_t y_stride) {
    __m256 acc[RN][RM];
    MOERUN_UNROLL
    for (int j = 0; j < RN; ++j)
        MOERUN_UNROLL
        for (int r = 0; r < RM; ++r) acc[j][r] = _mm256_setzero_ps();
    // The main loop, then at most one zero-padded step.
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv[RN];
        MOERUN_UNROLL
        for (int j = 0; j < RN; ++j) xv[j] = load(x[j] + i);
        MOERUN_UNROLL
        for (int r = 0; r < RM; ++r) {
            const __m256 wv = load(w[r] + i);
            MOERUN_UNROLL
            for (int j = 0; j < RN; ++j) acc[j][r] = _mm256_fmadd_ps(wv, xv[j], acc[j][r]);
        }
    }
    if (i < n) {
        __m256 xv[RN];
        MOERUN_UNROLL
        for (int j = 0; j < RN; ++j) xv[j] = load_partial<E, load>(x[j] + i, n - i);
        MOERUN_UNROLL
        for (int r = 0; r < RM; ++r) {
            const __m256 wv = load_partial<E, load>(w[r] + i, n - i);
            MOERUN_UNROLL
            for (int j = 0; j < RN; ++j) acc[j][r] = _mm256_fmadd_ps(wv, xv[j], acc[j][r]);
        }
    }
    MOERUN_UNROLL
    for (int j = 0; j < RN; ++j)
        MOERUN_UNROLL
        for (int r = 0; r < RM; ++r) y[j * y_stride + r] = hsum(acc[j][r]);
}

constexpr int k_tile_x = 3;  // activation rows per tile

// gemm_tile_fn: the tile kernel for (nw, nx), from a table of all 4 x 3 instantiations.
template <typename E, __m256 (*load)(const E*)>
void gemm_tile_any(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                   int64_t y_stride) {
    using fn = void (*)(int64_t, const E* const*, const E* const*, float*, int64_t);
    static constexpr auto table = []<int... I>(std::integer_sequence<int, I...>) {
        return std::array<fn, sizeof...(I)>{&gemm_tile<I / k_tile_x + 1, I % k_tile_x + 1, E, load>...};
    }(std::make_integer_sequence<int, 4 * k_tile_x>{});
    const E* wr[4];
    const E* xr[k_tile_x];
    for (int64_t r = 0; r < nw; ++r) wr[r] = reinterpret_cast<const E*>(static_cast<const uint8_t*>(w) + size_t(r) * w_row);
    for (int64_t j = 0; j < nx; ++j) xr[j] = reinterpret_cast<const E*>(static_cast<const uint8_t*>(x) + size_t(j) * x_row);
    table[size_t((nw - 1) * k_tile_x + (nx - 1))](n, wr, xr, y, y_stride);
}

// vec_dot_n through 1 x 3 tiles.
template <typename E, __m256 (*load)(const E*)>
void gemm_dot_n(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny) {
    for (int64_t j = 0; j < ny; j += k_tile_x) {
        gemm_tile_any<E, load>(n, x, 0, 1, static_cast<const uint8_t*>(y) + size_t(j) * y_stride, y_stride,
                               std::min<int64_t>(k_tile_x, ny - j), s + j * s_stride, s_stride);
    }
}

// ---- BF16: four accumulators, scalar remainder ----

template <typename E, __m256 (*load)(const E*), float (*scalar)(E)>
float dot(int64_t n, const E* a, const E* b) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(load(a + i + 8 * k), load(b + i + 8 * k), acc[k]);
    }
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load(a + i), load(b + i), acc[0]);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) s += scalar(a[i]) * scalar(b[i]);
    return s;
}

// dot() for R rows b[0..R-1] against one row a (vec_dot_n): a's vectors are loaded (and
// converted) once for all rows; each row keeps dot()'s four accumulators and order, so out[r] is
// bit for bit dot(n, a, b[r]). R = 2 keeps the 8 accumulators and 4 a-vectors in 16 registers.
template <int R, typename E, __m256 (*load)(const E*), float (*scalar)(E)>
void dot_rows(int64_t n, const E* a, const E* const* b, float* out) {
    __m256 acc[R][4];
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < 4; ++k) acc[r][k] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 va[4];
        for (int k = 0; k < 4; ++k) va[k] = load(a + i + 8 * k);
        for (int r = 0; r < R; ++r)
            for (int k = 0; k < 4; ++k) acc[r][k] = _mm256_fmadd_ps(va[k], load(b[r] + i + 8 * k), acc[r][k]);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 va = load(a + i);
        for (int r = 0; r < R; ++r) acc[r][0] = _mm256_fmadd_ps(va, load(b[r] + i), acc[r][0]);
    }
    for (int r = 0; r < R; ++r) {
        float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3])));
        for (int64_t t = i; t < n; ++t) s += scalar(a[t]) * scalar(b[r][t]);
        out[r] = s;
    }
}

// Row groups of up to G through rows_fn(R, a, b, out).
template <int G, typename E, typename RowsFn>
void dot_n(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny, RowsFn rows_fn) {
    for_row_groups<G>(ny, [&](auto rows, int64_t j) {
        constexpr int R = decltype(rows)::value;
        const E* b[R];
        for (int r = 0; r < R; ++r) b[r] = reinterpret_cast<const E*>(static_cast<const uint8_t*>(y) + size_t(j + r) * y_stride);
        float out[R];
        rows_fn(rows, static_cast<const E*>(x), b, out);
        for (int r = 0; r < R; ++r) s[(j + r) * s_stride] = out[r];
    });
}
}  // namespace

void vec_dot_f32(int64_t n, float* s, const void* x, const void* y) {
    const float* a = static_cast<const float*>(x);
    const float* b = static_cast<const float*>(y);
    gemm_tile<1, 1, float, load_f32>(n, &a, &b, s, 1);
}
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y) {
    const uint16_t* a = static_cast<const uint16_t*>(x);
    const uint16_t* b = static_cast<const uint16_t*>(y);
    gemm_tile<1, 1, uint16_t, load_f16>(n, &a, &b, s, 1);
}
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y) {
    *s = dot<uint16_t, load_bf16, cvt_bf16>(n, static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(y));
}

void vec_dot_n_f32(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    gemm_dot_n<float, load_f32>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_f16(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    gemm_dot_n<uint16_t, load_f16>(n, s, ss, x, y, ys, ny);
}
void gemm_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t ys) {
    gemm_tile_any<float, load_f32>(n, w, w_row, nw, x, x_row, nx, y, ys);
}
void gemm_tile_f16(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t ys) {
    gemm_tile_any<uint16_t, load_f16>(n, w, w_row, nw, x, x_row, nx, y, ys);
}
void vec_dot_n_bf16(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n<2, uint16_t>(n, s, ss, x, y, ys, ny, [&](auto rows, const uint16_t* a, const uint16_t* const* b, float* out) {
        dot_rows<decltype(rows)::value, uint16_t, load_bf16, cvt_bf16>(n, a, b, out);
    });
}

// The vector-dot order (cpu/simd_orders.h). Its tiles take each key row against 2 queries at a
// time: 8 accumulators of the 16 registers.
void vec_dot_unrolled_f32(int64_t n, float* s, const void* x, const void* y) { simd_orders::vec_dot_unrolled<f32x8_ops>(n, s, x, y); }
void vec_dot_unrolled_f16(int64_t n, float* s, const void* x, const void* y) { simd_orders::vec_dot_unrolled<f16x8_ops>(n, s, x, y); }
void unrolled_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                       int64_t y_stride) {
    simd_orders::unrolled_tile<f32x8_ops, 2>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}

void to_float_f16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16(h + i));
    for (; i < n; ++i) dst[i] = f16(h[i]);
}

void from_float_f16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) h[i] = to_f16(src[i]);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16(h + i));
    for (; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
}

// Round to nearest even on the 16 dropped bits; NaNs stay NaN (quiet bit set), as fp32_to_bf16.
void from_float_bf16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int k = 0; k < 2; ++k) {
            const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src + i + 8 * k));
            const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
            const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
            const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
            const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
            r[k] = _mm256_blendv_epi8(rounded, nan, is_nan);
        }
        // 32-bit lanes hold values < 65536: pack unsigned, then restore the element order.
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), packed);
    }
    if (i < n) ref::from_float_bf16(src + i, h + i, n - i);
}

}  // namespace moerun::avx2
