// The AVX2 kernels of this folder (declarations only; see register.cpp for the table rows).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../quant/blocks.h"
#include "../kernels.h"

namespace moerun::avx2 {

// float.cpp
void vec_dot_f32(int64_t n, float* s, const void* x, const void* y);
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y);
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y);
void vec_dot_unrolled_f32(int64_t n, float* s, const void* x, const void* y);
void vec_dot_unrolled_f16(int64_t n, float* s, const void* x, const void* y);
// unrolled_tile (cpu/kernels.h) for F32: any nw x nx, 2 activation rows per pass over a weight row
void unrolled_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void vec_dot_n_f32(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_f16(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
// gemm_tile (cpu/kernels.h): up to 4 x 3 outputs per call
void gemm_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void gemm_tile_f16(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void vec_dot_n_bf16(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
void to_float_bf16(const void* src, float* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);

// quant.cpp: 32-element formats and the activation quantizers
void from_float_q8_0(const float* src, void* dst, int64_t n);
void to_float_q8_0(const void* src, float* dst, int64_t n);
// Q8_0 activation rows of the SIMD paths (cpu/kernels.h, from_float_act): the blocks, then each block's
// scale as a float, which the kernels read instead of converting the half per block and row.
void from_float_q8_0_act(const float* src, void* dst, int64_t n);
inline const float* q8_0_act_scales(const void* row, int64_t nb) {
    return reinterpret_cast<const float*>(static_cast<const uint8_t*>(row) + act_extra_offset(size_t(nb) * sizeof(block_q8_0)));
}
void from_float_q8_1(const float* src, void* dst, int64_t n);
void from_float_q8_k(const float* src, void* dst, int64_t n);
void vec_dot_q4_1(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_0(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_1(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq4_nl(int64_t n, float* s, const void* x, const void* y);
// vec_dot_n (see cpu/kernels.h): equal to the vec_dot above row by row, bit for bit
void vec_dot_n_q4_1(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_q5_0(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_q5_1(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq4_nl(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);

// kquant.cpp: 256-element formats against Q8_K
void vec_dot_q2_k(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q3_k(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq4_xs(int64_t n, float* s, const void* x, const void* y);
void vec_dot_n_q2_k(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_q3_k(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq4_xs(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);

// iq_grid.cpp: lattice (IQ1/IQ2/IQ3) and ternary formats against Q8_K, MXFP4 against Q8_0; each vec_dot_n
// equals its vec_dot, and both the reference, bit for bit
void vec_dot_iq2_xxs(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq2_xs(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq2_s(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq3_xxs(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq3_s(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq1_s(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq1_m(int64_t n, float* s, const void* x, const void* y);
void vec_dot_tq1_0(int64_t n, float* s, const void* x, const void* y);
void vec_dot_tq2_0(int64_t n, float* s, const void* x, const void* y);
void vec_dot_mxfp4(int64_t n, float* s, const void* x, const void* y);
void vec_dot_n_iq2_xxs(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq2_xs(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq2_s(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq3_xxs(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq3_s(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq1_s(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq1_m(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_tq1_0(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_tq2_0(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_mxfp4(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);

// int8_gemm.cpp: Q8_0/Q4_0 (against Q8_0) and Q4_K/Q5_K/Q6_K (against Q8_K) in the scalar reference's
// float order, bit for bit: int8_tile (cpu/kernels.h) tiles of up to 8 weight rows, and vec_dot
void vec_dot_q8_0_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_0_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_k_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_k_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q6_k_int8(int64_t n, float* s, const void* x, const void* y);
void int8_tile_q8_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void int8_tile_q4_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void int8_tile_q4_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void int8_tile_q5_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void int8_tile_q6_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);

// vector_ops.cpp: the row operations of cpu/vector_ops.h for this path
void softmax(float* x, int64_t n, float cutoff);
void swiglu(float* gate, const float* up, int64_t n);
void weighted_rows(float* y, const float* v, int64_t v_stride, const float* p, int64_t rows, int64_t n);
void transpose_u16(const uint8_t* src, size_t src_stride, uint8_t* dst, size_t dst_stride, int64_t rows, int64_t cols);

}  // namespace moerun::avx2
