// The NEON kernels of this folder and its dotprod/ and i8mm/ subfolders (declarations only; see
// register.cpp for the table rows). Only compiled for arm64.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../quant/blocks.h"
#include "../../quant/types.h"
#include "../kernels.h"

namespace moerun::neon {

// float.cpp: F32/F16 in the 16-lane orders of cpu/kernels.h (the AVX-512 path's), BF16
void vec_dot_f32(int64_t n, float* s, const void* x, const void* y);
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y);
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y);
void vec_dot_unrolled_f32(int64_t n, float* s, const void* x, const void* y);
void vec_dot_unrolled_f16(int64_t n, float* s, const void* x, const void* y);
// unrolled_tile (cpu/kernels.h): F32 keys x queries in the vector-dot order
void unrolled_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void vec_dot_n_f32(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_f16(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
void vec_dot_n_bf16(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny);
// gemm_tile (cpu/kernels.h): up to 4 x 2 outputs per call
void gemm_tile_f32(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void gemm_tile_f16(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
void to_float_bf16(const void* src, float* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);

// quant.cpp: the integer-dot rows (int8_dots.h) with a widening multiply (SMULL + SADALP), and
// the activation quantizers, byte for byte the reference's
void register_int8_rows(cpu_kernels* table);
void from_float_q8_0(const float* src, void* dst, int64_t n);
void from_float_q8_1(const float* src, void* dst, int64_t n);
void from_float_q8_k(const float* src, void* dst, int64_t n);

// iq_grid.cpp: the lattice, ternary and MXFP4 rows (iq_dots.h), same widening multiply
void register_iq_rows(cpu_kernels* table);

}  // namespace moerun::neon

namespace moerun::neon_dotprod {
// dotprod/quant.cpp: the same rows with SDOT (ARMv8.2 DotProd)
void register_int8_rows(cpu_kernels* table);
// dotprod/iq_grid.cpp: the lattice, ternary and MXFP4 rows with SDOT
void register_iq_rows(cpu_kernels* table);
}  // namespace moerun::neon_dotprod

namespace moerun::neon_i8mm {
// i8mm/tile.cpp: gemm_tile (cpu/kernels.h) for Q8_0 and Q4_0 weights, 2 x 2 outputs per SMMLA
void gemm_tile_q8_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
void gemm_tile_q4_0(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y, int64_t y_stride);
inline constexpr int k_tile_x = 4;  // activation rows per gemm_tile call
}  // namespace moerun::neon_i8mm
