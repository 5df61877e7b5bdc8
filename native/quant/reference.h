// Scalar reference kernels: the definition of every format's semantics. SIMD kernels in cpu/ are
// tested against these; they are also the fallback on CPUs without a faster path.
#pragma once

#include "types.h"

namespace moerun::ref {

void to_float_f32(const void* src, float* dst, int64_t n);
void from_float_f32(const float* src, void* dst, int64_t n);
void vec_dot_f32(int64_t n, float* s, const void* x, const void* y);

void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y);

void to_float_bf16(const void* src, float* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y);

// Quantized formats (blocks in blocks.h). reference_q.cpp: the 32-element legacy formats;
// reference_k.cpp: K-quants and Q8_K; reference_iq.cpp: IQ4_NL, IQ4_XS; reference_iq_grid.cpp: the
// lattice formats IQ1_S..IQ3_S; reference_tq.cpp: TQ1_0, TQ2_0, MXFP4. Each vec_dot takes
// activations of the type's vec_dot_type (see traits.cpp). Q8_1 and Q8_K are activation-only.
void to_float_q4_0(const void* src, float* dst, int64_t n);
void from_float_q4_0(const float* src, void* dst, int64_t n);
void vec_dot_q4_0(int64_t n, float* s, const void* x, const void* y);

void to_float_q4_1(const void* src, float* dst, int64_t n);
void from_float_q4_1(const float* src, void* dst, int64_t n);
void vec_dot_q4_1(int64_t n, float* s, const void* x, const void* y);

void to_float_q5_0(const void* src, float* dst, int64_t n);
void from_float_q5_0(const float* src, void* dst, int64_t n);
void vec_dot_q5_0(int64_t n, float* s, const void* x, const void* y);

void to_float_q5_1(const void* src, float* dst, int64_t n);
void from_float_q5_1(const float* src, void* dst, int64_t n);
void vec_dot_q5_1(int64_t n, float* s, const void* x, const void* y);

void to_float_q8_0(const void* src, float* dst, int64_t n);
void from_float_q8_0(const float* src, void* dst, int64_t n);
void vec_dot_q8_0(int64_t n, float* s, const void* x, const void* y);

void to_float_q8_1(const void* src, float* dst, int64_t n);
void from_float_q8_1(const float* src, void* dst, int64_t n);

void to_float_q2_k(const void* src, float* dst, int64_t n);
void from_float_q2_k(const float* src, void* dst, int64_t n);
void vec_dot_q2_k(int64_t n, float* s, const void* x, const void* y);

void to_float_q3_k(const void* src, float* dst, int64_t n);
void from_float_q3_k(const float* src, void* dst, int64_t n);
void vec_dot_q3_k(int64_t n, float* s, const void* x, const void* y);

void to_float_q4_k(const void* src, float* dst, int64_t n);
void from_float_q4_k(const float* src, void* dst, int64_t n);
void vec_dot_q4_k(int64_t n, float* s, const void* x, const void* y);

void to_float_q5_k(const void* src, float* dst, int64_t n);
void from_float_q5_k(const float* src, void* dst, int64_t n);
void vec_dot_q5_k(int64_t n, float* s, const void* x, const void* y);

void to_float_q6_k(const void* src, float* dst, int64_t n);
void from_float_q6_k(const float* src, void* dst, int64_t n);
void vec_dot_q6_k(int64_t n, float* s, const void* x, const void* y);

// With an importance matrix (imatrix[n]: one weight per column), as llama-quantize --imatrix.
void from_float_imatrix_q2_k(const float* src, void* dst, int64_t n, const float* imatrix);
void from_float_imatrix_q3_k(const float* src, void* dst, int64_t n, const float* imatrix);
void from_float_imatrix_q4_k(const float* src, void* dst, int64_t n, const float* imatrix);
void from_float_imatrix_q5_k(const float* src, void* dst, int64_t n, const float* imatrix);
void from_float_imatrix_q6_k(const float* src, void* dst, int64_t n, const float* imatrix);
void from_float_imatrix_q4_0(const float* src, void* dst, int64_t n, const float* imatrix);  // reference_k.cpp
void from_float_imatrix_q4_1(const float* src, void* dst, int64_t n, const float* imatrix);
void from_float_imatrix_q5_0(const float* src, void* dst, int64_t n, const float* imatrix);
void from_float_imatrix_q5_1(const float* src, void* dst, int64_t n, const float* imatrix);
void from_float_imatrix_iq4_nl(const float* src, void* dst, int64_t n, const float* imatrix);  // reference_iq.cpp
void from_float_imatrix_iq4_xs(const float* src, void* dst, int64_t n, const float* imatrix);

void to_float_q8_k(const void* src, float* dst, int64_t n);
void from_float_q8_k(const float* src, void* dst, int64_t n);

void to_float_iq4_nl(const void* src, float* dst, int64_t n);
void from_float_iq4_nl(const float* src, void* dst, int64_t n);
void vec_dot_iq4_nl(int64_t n, float* s, const void* x, const void* y);

void to_float_iq4_xs(const void* src, float* dst, int64_t n);
void from_float_iq4_xs(const float* src, void* dst, int64_t n);
void vec_dot_iq4_xs(int64_t n, float* s, const void* x, const void* y);

// Lattice formats: quantizers with or without an importance matrix, except IQ2_XXS, IQ2_XS and
// IQ1_S, which llama.cpp quantizes only with one (from_float_imatrix only).
// Ternary and FP4: llama.cpp's quantizers.
void to_float_iq2_xxs(const void* src, float* dst, int64_t n);
void from_float_imatrix_iq2_xxs(const float* src, void* dst, int64_t n, const float* imatrix);  // reference_iq2_quantize.cpp
void vec_dot_iq2_xxs(int64_t n, float* s, const void* x, const void* y);
void to_float_iq2_xs(const void* src, float* dst, int64_t n);
void from_float_imatrix_iq2_xs(const float* src, void* dst, int64_t n, const float* imatrix);  // reference_iq2_quantize.cpp
void vec_dot_iq2_xs(int64_t n, float* s, const void* x, const void* y);
void to_float_iq2_s(const void* src, float* dst, int64_t n);
void from_float_iq2_s(const float* src, void* dst, int64_t n);  // reference_iq2_quantize.cpp
void from_float_imatrix_iq2_s(const float* src, void* dst, int64_t n, const float* imatrix);
void vec_dot_iq2_s(int64_t n, float* s, const void* x, const void* y);
void to_float_iq3_xxs(const void* src, float* dst, int64_t n);
void from_float_iq3_xxs(const float* src, void* dst, int64_t n);  // reference_iq3_quantize.cpp
void from_float_imatrix_iq3_xxs(const float* src, void* dst, int64_t n, const float* imatrix);
void vec_dot_iq3_xxs(int64_t n, float* s, const void* x, const void* y);
void to_float_iq3_s(const void* src, float* dst, int64_t n);
void from_float_iq3_s(const float* src, void* dst, int64_t n);  // reference_iq3_quantize.cpp
void from_float_imatrix_iq3_s(const float* src, void* dst, int64_t n, const float* imatrix);
void vec_dot_iq3_s(int64_t n, float* s, const void* x, const void* y);
void to_float_iq1_s(const void* src, float* dst, int64_t n);
void from_float_imatrix_iq1_s(const float* src, void* dst, int64_t n, const float* imatrix);  // reference_iq2_quantize.cpp
void vec_dot_iq1_s(int64_t n, float* s, const void* x, const void* y);
void to_float_iq1_m(const void* src, float* dst, int64_t n);
void from_float_iq1_m(const float* src, void* dst, int64_t n);  // reference_iq2_quantize.cpp
void from_float_imatrix_iq1_m(const float* src, void* dst, int64_t n, const float* imatrix);
void vec_dot_iq1_m(int64_t n, float* s, const void* x, const void* y);
void to_float_tq1_0(const void* src, float* dst, int64_t n);
void from_float_tq1_0(const float* src, void* dst, int64_t n);
void vec_dot_tq1_0(int64_t n, float* s, const void* x, const void* y);
void to_float_tq2_0(const void* src, float* dst, int64_t n);
void from_float_tq2_0(const float* src, void* dst, int64_t n);
void vec_dot_tq2_0(int64_t n, float* s, const void* x, const void* y);
void to_float_mxfp4(const void* src, float* dst, int64_t n);
void from_float_mxfp4(const float* src, void* dst, int64_t n);
void vec_dot_mxfp4(int64_t n, float* s, const void* x, const void* y);

}  // namespace moerun::ref
