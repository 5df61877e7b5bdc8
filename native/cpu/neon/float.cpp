// NEON kernels for the float types. F32 and F16 dots sum in llama.cpp's orders with L = 16 lanes
// (cpu/kernels.h), a 16-lane vector being four float32x4 (lanes 0-3, 4-7, 8-11, 12-15): the same
// orders as the AVX-512 path, so these dots equal its dots bit for bit (the row ops, softmax and
// SwiGLU, are still the plain-C ones here). llama.cpp's own NEON build sums in 4-lane orders;
// nothing here can run it to compare.
// BF16 dots keep four 16-lane accumulators, zero-padding the remainder.
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../simd_orders.h"
#include "kernels.h"

namespace moerun::neon {

namespace {

struct v16 {
    float32x4_t q[4];
};

inline v16 zero16() { return {{vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)}}; }

inline float32x4_t f16_lo(uint16x8_t h) { return vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h))); }
inline float32x4_t f16_hi(uint16x8_t h) { return vcvt_high_f32_f16(vreinterpretq_f16_u16(h)); }
inline float32x4_t bf16_lo(uint16x8_t h) { return vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)); }
inline float32x4_t bf16_hi(uint16x8_t h) { return vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)); }

inline void fma16(v16& acc, const v16& a, const v16& b) {
    for (int k = 0; k < 4; ++k) acc.q[k] = vfmaq_f32(acc.q[k], a.q[k], b.q[k]);
}
inline v16 add16(const v16& a, const v16& b) {
    return {{vaddq_f32(a.q[0], b.q[0]), vaddq_f32(a.q[1], b.q[1]), vaddq_f32(a.q[2], b.q[2]), vaddq_f32(a.q[3], b.q[3])}};
}

// 16 lanes added pairwise down to 4 (lane l + lane l + width/2), then (0 + 2) + (1 + 3).
inline float hsum_gemm(const v16& v) {
    const float32x4_t s = vaddq_f32(vaddq_f32(v.q[0], v.q[2]), vaddq_f32(v.q[1], v.q[3]));
    const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

inline float f16_to_f32(uint16_t h) {
    __fp16 v;
    std::memcpy(&v, &h, 2);
    return float(v);
}

// The vector ops of the float orders (cpu/simd_orders.h), L = 16 lanes in one v16.
struct v16_ops {
    using vec = v16;
    static constexpr int lanes = 16, width = 16;
    static vec zero() { return zero16(); }
    static vec add(const vec& a, const vec& b) { return add16(a, b); }
    static vec fmadd(const vec& a, const vec& b, vec acc) {
        fma16(acc, a, b);
        return acc;
    }
    static float hsum_unrolled(const vec* s) { return hsum_gemm(s[0]); }
};

// Element types: 16 elements from p as a v16.
struct f32_elem : v16_ops {
    using elem = float;
    static v16 load(const float* p) { return {{vld1q_f32(p), vld1q_f32(p + 4), vld1q_f32(p + 8), vld1q_f32(p + 12)}}; }
    static float scalar(float x) { return x; }
};
struct f16_elem : v16_ops {
    using elem = uint16_t;
    static v16 load(const uint16_t* p) {
        const uint16x8_t a = vld1q_u16(p), b = vld1q_u16(p + 8);
        return {{f16_lo(a), f16_hi(a), f16_lo(b), f16_hi(b)}};
    }
    static float scalar(uint16_t h) { return f16_to_f32(h); }
};
struct bf16_elem {
    using elem = uint16_t;
    static v16 load(const uint16_t* p) {
        const uint16x8_t a = vld1q_u16(p), b = vld1q_u16(p + 8);
        return {{bf16_lo(a), bf16_hi(a), bf16_lo(b), bf16_hi(b)}};
    }
};

// The vector-dot order of F32 a quarter of the 16 lanes at a time (a float32x4_t: lanes 4c..4c+3
// of each 16-element step, one pass per quarter), for unrolled_tile: a pass keeps 4 accumulators
// per query, so 4 queries (16 accumulators) and the key's 4 vectors fit the 32 registers, where a
// whole v16 order takes 16 accumulators for one query. Every output is the v16 order's bit for
// bit: the quarters never mix until hsum_gemm.
struct f32_quarter_ops {
    using vec = float32x4_t;
    using elem = float;
    static constexpr int lanes = 16, width = 4;
    static vec zero() { return vdupq_n_f32(0); }
    static vec add(vec a, vec b) { return vaddq_f32(a, b); }
    static vec fmadd(vec a, vec b, vec acc) { return vfmaq_f32(acc, a, b); }
    static vec load(const float* p) { return vld1q_f32(p); }
    static float scalar(float x) { return x; }
    static float hsum_unrolled(const vec* quarters) { return hsum_gemm(v16{{quarters[0], quarters[1], quarters[2], quarters[3]}}); }
};

// The last n - i < 16 elements, zero-padded (as AVX-512's masked loads).
template <class E>
inline v16 load_tail(const typename E::elem* p, int64_t count) {
    typename E::elem buf[16] = {};
    std::memcpy(buf, p, size_t(count) * sizeof(buf[0]));
    return E::load(buf);
}

// GEMM order for an RM x RN tile (RM, RN <= 2: 16 accumulators of the 32 registers): one 16-lane
// accumulator per output, the remainder past a multiple of 16 zero-padded.
template <class E, int RM, int RN>
void gemm_tile(int64_t n, const typename E::elem* const* w, const typename E::elem* const* x, float* y, int64_t y_stride) {
    v16 acc[RN][RM];
    for (int j = 0; j < RN; ++j)
        for (int r = 0; r < RM; ++r) acc[j][r] = zero16();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16 wv[RM];
        for (int r = 0; r < RM; ++r) wv[r] = E::load(w[r] + i);
        for (int j = 0; j < RN; ++j) {
            const v16 xv = E::load(x[j] + i);
            for (int r = 0; r < RM; ++r) fma16(acc[j][r], wv[r], xv);
        }
    }
    if (i < n) {
        v16 wv[RM];
        for (int r = 0; r < RM; ++r) wv[r] = load_tail<E>(w[r] + i, n - i);
        for (int j = 0; j < RN; ++j) {
            const v16 xv = load_tail<E>(x[j] + i, n - i);
            for (int r = 0; r < RM; ++r) fma16(acc[j][r], wv[r], xv);
        }
    }
    for (int j = 0; j < RN; ++j)
        for (int r = 0; r < RM; ++r) y[j * y_stride + r] = hsum_gemm(acc[j][r]);
}

constexpr int k_tile_x = 2;  // activation rows per gemm_tile call

// gemm_tile_fn: nw <= 4 weight rows in pairs, nx <= 2 activation rows.
template <class E>
void gemm_tile_any(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                   int64_t y_stride) {
    using P = const typename E::elem*;
    P xr[2] = {static_cast<P>(x), reinterpret_cast<P>(static_cast<const uint8_t*>(x) + x_row)};
    for (int64_t r = 0; r < nw; r += 2) {
        P wr[2] = {reinterpret_cast<P>(static_cast<const uint8_t*>(w) + size_t(r) * w_row),
                   reinterpret_cast<P>(static_cast<const uint8_t*>(w) + size_t(r + 1) * w_row)};
        const bool two_w = r + 1 < nw;
        if (two_w && nx == 2) gemm_tile<E, 2, 2>(n, wr, xr, y + r, y_stride);
        else if (two_w) gemm_tile<E, 2, 1>(n, wr, xr, y + r, y_stride);
        else if (nx == 2) gemm_tile<E, 1, 2>(n, wr, xr, y + r, y_stride);
        else gemm_tile<E, 1, 1>(n, wr, xr, y + r, y_stride);
    }
}

// vec_dot_n through 1 x 2 tiles: every output in vec_dot's order.
template <class E>
void gemm_dot_n(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny) {
    for (int64_t j = 0; j < ny; j += k_tile_x) {
        gemm_tile_any<E>(n, x, 0, 1, static_cast<const uint8_t*>(y) + size_t(j) * y_stride, y_stride, std::min<int64_t>(k_tile_x, ny - j),
                         s + j * s_stride, s_stride);
    }
}

template <class E>
void gemm_dot(int64_t n, float* s, const void* x, const void* y) {
    const auto* a = static_cast<const typename E::elem*>(x);
    const auto* b = static_cast<const typename E::elem*>(y);
    gemm_tile<E, 1, 1>(n, &a, &b, s, 1);
}

}  // namespace

void vec_dot_f32(int64_t n, float* s, const void* x, const void* y) { gemm_dot<f32_elem>(n, s, x, y); }
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y) { gemm_dot<f16_elem>(n, s, x, y); }
void vec_dot_n_f32(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    gemm_dot_n<f32_elem>(n, s, ss, x, y, ys, ny);
}
void vec_dot_n_f16(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    gemm_dot_n<f16_elem>(n, s, ss, x, y, ys, ny);
}
void gemm_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t ys) {
    gemm_tile_any<f32_elem>(n, w, w_row, nw, x, x_row, nx, y, ys);
}
void gemm_tile_f16(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t ys) {
    gemm_tile_any<f16_elem>(n, w, w_row, nw, x, x_row, nx, y, ys);
}

// The vector-dot order (cpu/simd_orders.h), as the AVX-512 path sums it. Its tiles take each key
// row against up to 4 queries at a time, a quarter of the lanes per pass (f32_quarter_ops).
void vec_dot_unrolled_f32(int64_t n, float* s, const void* x, const void* y) { simd_orders::vec_dot_unrolled<f32_elem>(n, s, x, y); }
void vec_dot_unrolled_f16(int64_t n, float* s, const void* x, const void* y) { simd_orders::vec_dot_unrolled<f16_elem>(n, s, x, y); }
void unrolled_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                       int64_t y_stride) {
    simd_orders::unrolled_tile<f32_quarter_ops, 4>(n, w, w_row, nw, x, x_row, nx, y, y_stride);
}

// BF16: four accumulators over steps of 64, then 16 at a time (zero-padded) into the first;
// (0 + 1) + (2 + 3), then hsum_gemm. vec_dot_n loops over it (BF16 weights are rare).
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y) {
    const uint16_t* a = static_cast<const uint16_t*>(x);
    const uint16_t* b = static_cast<const uint16_t*>(y);
    v16 acc[4] = {zero16(), zero16(), zero16(), zero16()};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (int k = 0; k < 4; ++k) fma16(acc[k], bf16_elem::load(a + i + 16 * k), bf16_elem::load(b + i + 16 * k));
    }
    for (; i + 16 <= n; i += 16) fma16(acc[0], bf16_elem::load(a + i), bf16_elem::load(b + i));
    if (i < n) fma16(acc[0], load_tail<bf16_elem>(a + i, n - i), load_tail<bf16_elem>(b + i, n - i));
    *s = hsum_gemm(add16(add16(acc[0], acc[1]), add16(acc[2], acc[3])));
}
void vec_dot_n_bf16(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    for (int64_t j = 0; j < ny; ++j) vec_dot_bf16(n, s + j * ss, x, static_cast<const uint8_t*>(y) + size_t(j) * ys);
}

void to_float_f16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t v = vld1q_u16(h + i);
        vst1q_f32(dst + i, f16_lo(v));
        vst1q_f32(dst + i + 4, f16_hi(v));
    }
    for (; i < n; ++i) dst[i] = f16_to_f32(h[i]);
}

// Round to nearest even, as the reference (FCVTN under the default FPCR rounding mode).
void from_float_f16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t v = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(src + i)), vld1q_f32(src + i + 4));
        vst1q_u16(h + i, vreinterpretq_u16_f16(v));
    }
    for (; i < n; ++i) {
        const __fp16 v = __fp16(src[i]);
        std::memcpy(h + i, &v, 2);
    }
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t v = vld1q_u16(h + i);
        vst1q_f32(dst + i, bf16_lo(v));
        vst1q_f32(dst + i + 4, bf16_hi(v));
    }
    for (; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}

// The reference's rounding (quant/types.h fp32_to_bf16): to nearest even, NaN made quiet.
void from_float_bf16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t u = vreinterpretq_u32_f32(vld1q_f32(src + i));
        const uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
        const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), odd)), 16);
        const uint32x4_t quiet = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(64));
        const uint32x4_t is_nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
        vst1_u16(h + i, vmovn_u32(vbslq_u32(is_nan, quiet, rounded)));
    }
    for (; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}

}  // namespace moerun::neon
