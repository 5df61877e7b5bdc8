// AVX-512 kernels for the float types. F32 and F16 dots sum in llama.cpp's two orders with
// L = 16 (see cpu/kernels.h): the GEMM order (vec_dot, vec_dot_n) and the vector-dot order
// (vec_dot_unrolled). BF16 dots keep 4 independent 16-lane accumulators and finish the remainder
// with masked loads, with vdpbf16ps where the CPU has AVX512_BF16.
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "kernels.h"
#include "simd.h"

namespace moerun::avx512 {

namespace {

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

// dot() for R rows b[0..R-1] against one row a (vec_dot_n): a's vectors loaded once for all rows,
// each row with dot()'s four accumulators and order (bit for bit dot(n, a, b[r])).
template <int R, typename E, __m512 (*load)(const E*, __mmask16)>
void dot_rows(int64_t n, const E* a, const E* const* b, float* out) {
    __m512 acc[R][4];
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 va[4];
        for (int k = 0; k < 4; ++k) va[k] = load(a + i + 16 * k, 0xFFFF);
        for (int r = 0; r < R; ++r)
            for (int k = 0; k < 4; ++k) acc[r][k] = _mm512_fmadd_ps(va[k], load(b[r] + i + 16 * k, 0xFFFF), acc[r][k]);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        const __m512 va = load(a + i, m);
        for (int r = 0; r < R; ++r) acc[r][0] = _mm512_fmadd_ps(va, load(b[r] + i, m), acc[r][0]);
    }
    for (int r = 0; r < R; ++r) {
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3])));
    }
}

// vec_dot_bf16_dpbf16 for R rows.
template <int R>
void dot_rows_dpbf16(int64_t n, const uint16_t* a, const uint16_t* const* b, float* out) {
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (int k = 0; k < 2; ++k) {
            const __m512bh va = (__m512bh)load512(a + i + 32 * k);
            for (int r = 0; r < R; ++r) acc[r][k] = _mm512_dpbf16_ps(acc[r][k], va, (__m512bh)load512(b[r] + i + 32 * k));
        }
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? __mmask32(0xFFFFFFFF) : __mmask32((1u << (n - i)) - 1);
        const __m512bh va = (__m512bh)_mm512_maskz_loadu_epi16(m, a + i);
        for (int r = 0; r < R; ++r) acc[r][0] = _mm512_dpbf16_ps(acc[r][0], va, (__m512bh)_mm512_maskz_loadu_epi16(m, b[r] + i));
    }
    for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
}

// GEMM order for an RM x RN tile: weight rows w[0..RM) against activation rows x[0..RN), one
// 16-lane accumulator per output (24 + 4 + 1 of the 32 registers at 4 x 6). A remainder past a
// multiple of 16 (which llama.cpp's GEMM never sees) is a zero-padded vector.
template <int RM, int RN, typename E, __m512 (*load)(const E*, __mmask16)>
void gemm_tile(int64_t n, const E* const* w, const E* const* x, float* y, int64_t y_stride) {
    __m512 acc[RN][RM];
    MOERUN_UNROLL
    for (int j = 0; j < RN; ++j)
        MOERUN_UNROLL
        for (int r = 0; r < RM; ++r) acc[j][r] = _mm512_setzero_ps();
    // The main loop with a constant mask (plain loads), then at most one masked step.
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 wv[RM];
        MOERUN_UNROLL
        for (int r = 0; r < RM; ++r) wv[r] = load(w[r] + i, 0xFFFF);
        MOERUN_UNROLL
        for (int j = 0; j < RN; ++j) {
            const __m512 xv = load(x[j] + i, 0xFFFF);
            MOERUN_UNROLL
            for (int r = 0; r < RM; ++r) acc[j][r] = _mm512_fmadd_ps(wv[r], xv, acc[j][r]);
        }
    }
    if (i < n) {
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        __m512 wv[RM];
        MOERUN_UNROLL
        for (int r = 0; r < RM; ++r) wv[r] = load(w[r] + i, m);
        MOERUN_UNROLL
        for (int j = 0; j < RN; ++j) {
            const __m512 xv = load(x[j] + i, m);
            MOERUN_UNROLL
            for (int r = 0; r < RM; ++r) acc[j][r] = _mm512_fmadd_ps(wv[r], xv, acc[j][r]);
        }
    }
    MOERUN_UNROLL
    for (int j = 0; j < RN; ++j)
        MOERUN_UNROLL
        for (int r = 0; r < RM; ++r) y[j * y_stride + r] = hsum_gemm(acc[j][r]);
}

constexpr int k_tile_x = 6;  // activation rows per tile

// gemm_tile_fn: the tile kernel for (nw, nx), from a table of all 4 x 6 instantiations.
template <typename E, __m512 (*load)(const E*, __mmask16)>
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

// vec_dot_n through 1 x 6 tiles.
template <typename E, __m512 (*load)(const E*, __mmask16)>
void gemm_dot_n(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny) {
    for (int64_t j = 0; j < ny; j += k_tile_x) {
        gemm_tile_any<E, load>(n, x, 0, 1, static_cast<const uint8_t*>(y) + size_t(j) * y_stride, y_stride,
                               std::min<int64_t>(k_tile_x, ny - j), s + j * s_stride, s_stride);
    }
}

// Groups of 4 rows through `rows_fn<R>`.
template <typename E, typename RowsFn>
void dot_n(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny, RowsFn rows_fn) {
    avx2::for_row_groups<4>(ny, [&](auto rows, int64_t j) {
        constexpr int R = decltype(rows)::value;
        const E* b[R];
        for (int r = 0; r < R; ++r) b[r] = reinterpret_cast<const E*>(static_cast<const uint8_t*>(y) + size_t(j + r) * y_stride);
        float out[R];
        rows_fn(rows, static_cast<const E*>(x), b, out);
        for (int r = 0; r < R; ++r) s[(j + r) * s_stride] = out[r];
    });
}

}  // namespace

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
    dot_n<uint16_t>(n, s, ss, x, y, ys, ny, [&](auto rows, const uint16_t* a, const uint16_t* const* b, float* out) {
        dot_rows<decltype(rows)::value, uint16_t, load_bf16>(n, a, b, out);
    });
}
void vec_dot_n_bf16_dpbf16(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n<uint16_t>(n, s, ss, x, y, ys, ny, [&](auto rows, const uint16_t* a, const uint16_t* const* b, float* out) {
        dot_rows_dpbf16<decltype(rows)::value>(n, a, b, out);
    });
}
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

// The vector-dot order (cpu/simd_orders.h). Its tiles take each key row against up to 4 queries
// at a time: 16 accumulators of the 32 registers.
void vec_dot_unrolled_f32(int64_t n, float* s, const void* x, const void* y) { simd_orders::vec_dot_unrolled<f32x16_ops>(n, s, x, y); }
void vec_dot_unrolled_f16(int64_t n, float* s, const void* x, const void* y) { simd_orders::vec_dot_unrolled<f16x16_ops>(n, s, x, y); }
void unrolled_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                       int64_t y_stride) {
    simd_orders::unrolled_tile<f32x16_ops, 4>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
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
