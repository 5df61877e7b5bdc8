// gemm_tile (cpu/kernels.h) for the 32-element formats without a min term (Q4_0, Q8_0) with SMMLA:
// one instruction multiplies a 2 x 8 int8 matrix by another's transpose, so 8 bytes of two weight
// rows against the same 8 bytes of two activation rows give four exact dot products:
//   vmmlaq_s32(r, [w0 c | w1 c], [a0 c | a1 c]) adds [w0.a0, w0.a1, w1.a0, w1.a1] (c: one 8-byte chunk).
// Four chunks make a block; four blocks' 2 x 2 results are transposed into one int32x4 per output
// and scaled as int8_dots.h's 32-element order does, so every output equals the dotprod path's
// vec_dot bit for bit. Compiled with -march=armv8.2-a+dotprod+i8mm; run only where the OS reports I8MM.
#include "../dotprod/sdot.h"
#include "../int8_dots.h"
#include "../kernels.h"

namespace moerun::neon_i8mm {

namespace {

using neon_int8::f16x4;
using neon_dotprod::sdot;
using neon_int8::static_for;

inline int64x2_t s64(int32x4_t v) { return vreinterpretq_s64_s32(v); }
inline int32x4_t s32(int64x2_t v) { return vreinterpretq_s32_s64(v); }
inline int8x16_t zip1_64(int8x16_t a, int8x16_t b) { return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b))); }
inline int8x16_t zip2_64(int8x16_t a, int8x16_t b) { return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b))); }

// Rows r[b] = the four outputs of block b; afterwards r[o] = output o's four blocks.
inline void transpose4(int32x4_t r[4]) {
    const int32x4_t t0 = vtrn1q_s32(r[0], r[1]), t1 = vtrn2q_s32(r[0], r[1]);
    const int32x4_t t2 = vtrn1q_s32(r[2], r[3]), t3 = vtrn2q_s32(r[2], r[3]);
    r[0] = s32(vtrn1q_s64(s64(t0), s64(t2)));
    r[1] = s32(vtrn1q_s64(s64(t1), s64(t3)));
    r[2] = s32(vtrn2q_s64(s64(t0), s64(t2)));
    r[3] = s32(vtrn2q_s64(s64(t1), s64(t3)));
}

// Blocks g..g+N-1 of weight rows w0, w1 against 2 * NA activation rows a[]: acc[i][j] for weight
// row i and activation row j.
template <class F, int NA, int N>
inline void group_2xn(const typename F::block* w0, const typename F::block* w1, const typename F::act* const* a, int64_t g,
                      float32x4_t (*acc)[4]) {
    int32x4_t res[NA][4];
    uint16x4_t dw[2] = {vdup_n_u16(0), vdup_n_u16(0)}, da[2 * NA];
    for (int j = 0; j < 2 * NA; ++j) da[j] = vdup_n_u16(0);
    for (int p = 0; p < NA; ++p)
        for (int b = 0; b < 4; ++b) res[p][b] = vdupq_n_s32(0);
    static_for<N>([&](auto b) {
        int8x16_t lo0, hi0, lo1, hi1;
        F::expand(w0[g + b], lo0, hi0);
        F::expand(w1[g + b], lo1, hi1);
        const int8x16_t c[4] = {zip1_64(lo0, lo1), zip2_64(lo0, lo1), zip1_64(hi0, hi1), zip2_64(hi0, hi1)};
        dw[0] = vld1_lane_u16(&w0[g + b].d, dw[0], b);
        dw[1] = vld1_lane_u16(&w1[g + b].d, dw[1], b);
        static_for<NA>([&](auto p) {
            const int8_t* qa = a[2 * p][g + b].qs;
            const int8_t* qb = a[2 * p + 1][g + b].qs;
            int32x4_t r = vdupq_n_s32(0);
            static_for<4>([&](auto k) { r = vmmlaq_s32(r, c[k], vcombine_s8(vld1_s8(qa + 8 * k), vld1_s8(qb + 8 * k))); });
            res[p][b] = r;
            da[2 * p] = vld1_lane_u16(&a[2 * p][g + b].d, da[2 * p], b);
            da[2 * p + 1] = vld1_lane_u16(&a[2 * p + 1][g + b].d, da[2 * p + 1], b);
        });
    });
    const float32x4_t dw4[2] = {f16x4(dw[0]), f16x4(dw[1])};
    static_for<NA>([&](auto p) {
        transpose4(res[p]);  // res[p][2i + t] = weight row i against activation row 2p + t
        static_for<4>([&](auto o) {
            constexpr int i = o / 2, j = 2 * p + o % 2;
            acc[i][j] = vfmaq_f32(acc[i][j], vcvtq_f32_s32(res[p][o]), vmulq_f32(dw4[i], f16x4(da[j])));
        });
    });
}

// Two weight rows against 2 * NA activation rows (the odd ones may repeat a row; out[i][j]).
template <class F, int NA>
void tile_2xn(int64_t n, const typename F::block* w0, const typename F::block* w1, const typename F::act* const* a, float (*out)[4]) {
    float32x4_t acc[2][4];
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = vdupq_n_f32(0);
    const int64_t nb = n / 32;
    int64_t g = 0;
    for (; g + 4 <= nb; g += 4) group_2xn<F, NA, 4>(w0, w1, a, g, acc);
    switch (nb - g) {
        case 3: group_2xn<F, NA, 3>(w0, w1, a, g, acc); break;
        case 2: group_2xn<F, NA, 2>(w0, w1, a, g, acc); break;
        case 1: group_2xn<F, NA, 1>(w0, w1, a, g, acc); break;
        default: break;
    }
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2 * NA; ++j) out[i][j] = vaddvq_f32(acc[i][j]);
}

// nw <= 4 weight rows x nx <= k_tile_x activation rows. A single weight or activation row leaves
// half of each SMMLA unused, so those go through SDOT (int8_dots.h, the same order).
template <class F>
void gemm_tile(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride) {
    using B = typename F::block;
    using A = typename F::act;
    const uint8_t* wb = static_cast<const uint8_t*>(w);
    const uint8_t* xb = static_cast<const uint8_t*>(x);
    if (nx == 1 || nw == 1) {
        for (int64_t r = 0; r < nw; ++r) {
            const uint8_t* wr = wb + size_t(r) * w_row;
            for (int64_t j = 0; j < nx; ++j) neon_int8::dot_rows32<sdot, F, 1>(n, wr, xb + size_t(j) * x_row, 0, y + j * y_stride + r);
        }
        return;
    }
    const A* a[4];
    for (int64_t j = 0; j < 4; ++j) a[j] = reinterpret_cast<const A*>(xb + size_t(std::min(j, nx - 1)) * x_row);
    for (int64_t r = 0; r < nw; r += 2) {
        const B* w0 = reinterpret_cast<const B*>(wb + size_t(r) * w_row);
        const B* w1 = reinterpret_cast<const B*>(wb + size_t(std::min(r + 1, nw - 1)) * w_row);
        float out[2][4];
        if (nx <= 2) tile_2xn<F, 1>(n, w0, w1, a, out);
        else tile_2xn<F, 2>(n, w0, w1, a, out);
        for (int i = 0; i < 2 && r + i < nw; ++i)
            for (int64_t j = 0; j < nx; ++j) y[j * y_stride + r + i] = out[i][j];
    }
}

}  // namespace

void gemm_tile_q8_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t ys) {
    gemm_tile<neon_int8::fmt_q8_0>(n, w, w_row, nw, x, x_row, nx, y, ys);
}
void gemm_tile_q4_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t ys) {
    gemm_tile<neon_int8::fmt_q4_0>(n, w, w_row, nw, x, x_row, nx, y, ys);
}

}  // namespace moerun::neon_i8mm
