// The AVX-512 kernels of this folder (declarations only; see register.cpp for which rows use them).
#pragma once

#include <cstddef>
#include <cstdint>

namespace moerun::avx512 {

// float.cpp
void vec_dot_f32(int64_t n, float* s, const void* x, const void* y);
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y);
void vec_dot_unrolled_f32(int64_t n, float* s, const void* x, const void* y);
void vec_dot_unrolled_f16(int64_t n, float* s, const void* x, const void* y);
// unrolled_tile (cpu/kernels.h) for F32: any nw x nx, 4 activation rows per pass over a weight row
void unrolled_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y);
void vec_dot_bf16_dpbf16(int64_t n, float* s, const void* x, const void* y);  // needs AVX512_BF16
// vec_dot_n (see cpu/kernels.h), bit for bit the vec_dot of this path row by row.
void vec_dot_n_f32(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_f16(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
// gemm_tile (cpu/kernels.h): up to 4 x 6 outputs per call
void gemm_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void gemm_tile_f16(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void vec_dot_n_bf16(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_bf16_dpbf16(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);

// kquant.cpp: K-quants, 64 quants per register
void vec_dot_q2_k(int64_t n, float* s, const void* x, const void* y);
void vec_dot_n_q2_k(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_q2_k_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_q6_k(int64_t n, float* s, const void* x, const void* y);
// vec_dot_n (see cpu/kernels.h): equal to the vec_dot above row by row, bit for bit
void vec_dot_n_q6_k(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);

// int8_gemm.cpp: Q8_0 and Q4_0 against Q8_0 activations (AVX512_VNNI), in the reference's float
// order: vec_dot, vec_dot_n and int8_tile (cpu/kernels.h, up to 16 weight rows) equal
// ref::vec_dot_q8_0 / ref::vec_dot_q4_0 bit for bit. Their activation rows come from
// from_float_q8_0_act: the blocks, each block's scale as a float, then -128 * the sum of its quants.
inline constexpr size_t k_q8_0_act_extra = sizeof(float) + sizeof(int32_t);  // per block
void from_float_q8_0_act(const float* src, void* dst, int64_t n);
// The amx path's activation rows (cpu/kernels.h, act_aligned_quants): as above (Q8_K: the
// blocks), then the quants again from a 64-byte aligned offset.
void from_float_q8_0_act_amx(const float* src, void* dst, int64_t n);
void from_float_q8_k_act_amx(const float* src, void* dst, int64_t n);
void vec_dot_q8_0_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q4_0_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_n_q8_0_int8(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_q4_0_int8(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void int8_tile_q8_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void int8_tile_q4_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
// The same tiles on the AMX tile unit (amx path only), up to k_amx_rows_per_call weight rows a
// call (packed once for all the call's token passes); Q8_0/Q4_0 with up to 16 activation rows
// turn the roles (the weights as A, the tokens packed), and the fewest rows run the AVX-512 tiles
// above. Which counts take which: amx_tile (int8_gemm.cpp), amx_tile_k (int8_gemm_k.cpp).
inline constexpr int k_amx_rows_per_call = 64;
void amx_tile_q8_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void amx_tile_q4_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void amx_tile_q4_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void amx_tile_q5_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
// The same tiles over interleaved weights (cpu/interleave.h): int8_tile_interleaved on the amx path.
void amx_tile_q4_k_interleaved(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                               int64_t y_stride);
void amx_tile_q5_k_interleaved(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                               int64_t y_stride);
void amx_tile_q6_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);

// int8_gemm_k.cpp: Q4_K, Q5_K and Q6_K against Q8_K (AVX512_VNNI), in the reference's order:
// vec_dot, vec_dot_n and int8_tile (up to 16 weight rows) equal ref::vec_dot_q4_k / q5_k / q6_k
// bit for bit.
void vec_dot_q4_k_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q5_k_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_q6_k_int8(int64_t n, float* s, const void* x, const void* y);
void vec_dot_n_q4_k_int8(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_q5_k_int8(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_q6_k_int8(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void int8_tile_q4_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void int8_tile_q5_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void int8_tile_q6_k(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
// int8_tile over interleaved rows (cpu/interleave.h; nw a multiple of 16), bit for bit int8_tile
// on the same rows in place.
void int8_tile_q4_k_interleaved(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                                int64_t y_stride);
void int8_tile_q5_k_interleaved(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                                int64_t y_stride);

// iq_grid.cpp: lattice formats against Q8_K, two sub-blocks per register (AVX512_VNNI and BMI2);
// bit for bit the reference, like the AVX2 kernels they replace
void vec_dot_iq2_xxs_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq2_xs_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq2_s_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq3_xxs_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq3_s_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq1_s_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_iq1_m_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_n_iq2_xxs_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq2_xs_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq2_s_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq3_xxs_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq3_s_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq1_s_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_iq1_m_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);

// ternary.cpp: TQ1_0 and TQ2_0 against Q8_K, MXFP4 against Q8_0 (AVX512_VNNI); bit for bit the
// reference, like the AVX2 kernels they replace
void vec_dot_tq1_0_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_tq2_0_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_mxfp4_vnni(int64_t n, float* s, const void* x, const void* y);
void vec_dot_n_tq1_0_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_tq2_0_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_mxfp4_vnni(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);

// vector_ops.cpp: the row operations of cpu/vector_ops.h for this path
void softmax(float* x, int64_t n, float cutoff);
void swiglu(float* gate, const float* up, int64_t n);
void weighted_rows(float* y, const float* v, int64_t v_stride, const float* p, int64_t rows, int64_t n);

}  // namespace moerun::avx512
