// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only called after cpuid says so.
// Rows not named here keep the scalar reference kernels.
//
// Q8_0, Q4_0, Q4_K, Q5_K and Q6_K: the int8 GEMM of int8_gemm.cpp (vpmaddubsw + vpmaddwd, no VNNI:
// Zen 3 and older Intel run it), tiles of 8 weight rows for every batch size, bit for bit the
// scalar reference like vec_dot. Zen 5 with MOERUN_CPU=avx2, bench_matmul --n 2048 (k = 2048),
// GFLOP/s, best of 5 runs interleaved with the 8-lane kernels they replace (in brackets), on this
// shared 2-core machine at load 3-4:
//   m = 64, 2 threads: Q8_0 247 (185), Q4_0 292 (151), Q4_K 271 (211), Q5_K 324 (208), Q6_K 293 (176)
//   m = 16, 2 threads: Q8_0 256 (195), Q4_0 221 (158), Q4_K 269 (217), Q5_K 280 (222), Q6_K 225 (200)
//   m = 64, 1 thread:  Q8_0 121 (90), Q4_0 141 (76), Q4_K 142 (106), Q5_K 157 (99), Q6_K 155 (96)
//   m = 1, 1 thread:   Q8_0 69 (75), Q4_0 55 (52), Q4_K 80 (88), Q5_K 59 (64), Q6_K 55 (59)
//                      (Q4_K 83-85 since its scales are unpacked in registers, 3c49cf4, load 5)
// Decode pays for the reference's float order (a reduction per block or super-block): 5-10%
// slower at m = 1 on one thread; 2-thread m = 1 figures swung 2x from run to run here.
// Attention: the F32 unrolled_tile (float.cpp: each key row against 2 queries per pass, 8
// accumulators of the 16 registers; the template of cpu/simd_orders.h, shared with AVX-512 and
// NEON) for scores, the gemm_tile over the transposed value rows for values, as on AVX-512.
#include "../dispatch.h"
#include "../vector_ops.h"
#include "kernels.h"

namespace moerun {

void cpu_register_avx2(cpu_kernels* table) {
#if defined(__x86_64__) || defined(_M_X64)
    using T = tensor_type;
    auto at = [&](T id) -> cpu_kernels& { return table[uint32_t(id)]; };

    // F32 and F16 in llama.cpp's 8-lane orders (cpu/kernels.h), which its AVX2 builds use.
    at(T::F32).vec_dot = avx2::vec_dot_f32;
    at(T::F32).vec_dot_unrolled = avx2::vec_dot_unrolled_f32;
    at(T::F32).unrolled_tile = avx2::unrolled_tile_f32;
    at(T::F32).gemm_lanes = 8;
    at(T::F32).gemm_tile = avx2::gemm_tile_f32;
    at(T::F32).gemm_tile_x = 3;
    at(T::F16).vec_dot = avx2::vec_dot_f16;
    at(T::F16).vec_dot_unrolled = avx2::vec_dot_unrolled_f16;
    at(T::F16).gemm_lanes = 8;
    at(T::F16).gemm_tile = avx2::gemm_tile_f16;
    at(T::F16).gemm_tile_x = 3;
    at(T::F16).to_float = avx2::to_float_f16;
    at(T::F16).from_float = avx2::from_float_f16;
    at(T::BF16).vec_dot = avx2::vec_dot_bf16;
    at(T::BF16).to_float = avx2::to_float_bf16;
    at(T::BF16).from_float = avx2::from_float_bf16;
    at(T::F32).vec_dot_n = avx2::vec_dot_n_f32;
    at(T::F16).vec_dot_n = avx2::vec_dot_n_f16;
    at(T::BF16).vec_dot_n = avx2::vec_dot_n_bf16;

    at(T::Q8_0).from_float = avx2::from_float_q8_0;
    at(T::Q8_0).to_float = avx2::to_float_q8_0;
    // Q8_0 activation rows carry their block scales as floats for every kernel of this path and
    // the AVX-512 one (cpu/kernels.h).
    at(T::Q8_0).from_float_act = avx2::from_float_q8_0_act;
    at(T::Q8_0).act_extra_per_block = sizeof(float);
    at(T::Q8_1).from_float = avx2::from_float_q8_1;
    at(T::Q8_K).from_float = avx2::from_float_q8_k;

    at(T::Q4_1).vec_dot = avx2::vec_dot_q4_1;
    at(T::Q5_0).vec_dot = avx2::vec_dot_q5_0;
    at(T::Q5_1).vec_dot = avx2::vec_dot_q5_1;
    at(T::IQ4_NL).vec_dot = avx2::vec_dot_iq4_nl;
    at(T::Q4_1).vec_dot_n = avx2::vec_dot_n_q4_1;
    at(T::Q5_0).vec_dot_n = avx2::vec_dot_n_q5_0;
    at(T::Q5_1).vec_dot_n = avx2::vec_dot_n_q5_1;
    at(T::IQ4_NL).vec_dot_n = avx2::vec_dot_n_iq4_nl;
    at(T::Q2_K).vec_dot = avx2::vec_dot_q2_k;
    at(T::Q3_K).vec_dot = avx2::vec_dot_q3_k;
    at(T::IQ4_XS).vec_dot = avx2::vec_dot_iq4_xs;
    at(T::Q2_K).vec_dot_n = avx2::vec_dot_n_q2_k;
    at(T::Q3_K).vec_dot_n = avx2::vec_dot_n_q3_k;
    at(T::IQ4_XS).vec_dot_n = avx2::vec_dot_n_iq4_xs;
    // Q8_0, Q4_0, Q4_K, Q5_K and Q6_K as an int8 GEMM without VNNI (int8_gemm.cpp): tiles of 8
    // weight rows for every batch size, and vec_dot, all bit for bit the scalar reference.
    // vec_dot_n stays unset (matmul takes the tiles; other callers loop over vec_dot).
    at(T::Q8_0).vec_dot = avx2::vec_dot_q8_0_int8;
    at(T::Q8_0).int8_tile = avx2::int8_tile_q8_0;
    at(T::Q4_0).vec_dot = avx2::vec_dot_q4_0_int8;
    at(T::Q4_0).int8_tile = avx2::int8_tile_q4_0;
    at(T::Q4_K).vec_dot = avx2::vec_dot_q4_k_int8;
    at(T::Q4_K).int8_tile = avx2::int8_tile_q4_k;
    at(T::Q5_K).vec_dot = avx2::vec_dot_q5_k_int8;
    at(T::Q5_K).int8_tile = avx2::int8_tile_q5_k;
    at(T::Q6_K).vec_dot = avx2::vec_dot_q6_k_int8;
    at(T::Q6_K).int8_tile = avx2::int8_tile_q6_k;
    for (T id : {T::Q8_0, T::Q4_0, T::Q4_K, T::Q5_K, T::Q6_K}) {
        at(id).vec_dot_n = nullptr;
        at(id).int8_tile_rows = 8;
    }
    // The lattice, ternary and FP4 formats (iq_grid.cpp): bit for bit the reference.
    // MOERUN_CPU=avx2 bench_dot_peer BINS haswell --types IQ3_S,TQ2_0,MXFP4,IQ2_S,IQ2_XXS --m 1
    // (k = 2048, n = 1408, 1 thread), llama.cpp's time over ours (< 1: we are slower), builds of
    // 8c5093f (before) and 9fcecbd (after) interleaved, 3 rounds each, Sapphire Rapids VM (2 vCPUs
    // shared, load 3.5-4.8):
    //   IQ3_S 0.71-0.97 -> 1.34-1.35, TQ2_0 0.82-0.84 -> 0.93-0.95, MXFP4 0.90-0.98 -> 0.97-0.98,
    //   IQ2_S 0.80-0.94 -> 1.01-1.32, IQ2_XXS 0.82-0.94 -> 1.00-1.09
    //   --n 131072 (from DRAM), one run each, swings of 20-30% between runs: IQ3_S 0.61 -> 1.23,
    //   TQ2_0 1.10 -> 1.57, MXFP4 0.96 -> 1.05, IQ2_S 0.74 -> 0.99, IQ2_XXS 0.87 -> 1.07
    // Instructions (callgrind, --only moerun|ggml --reps 20), ours before -> after (ggml's):
    //   IQ3_S 137.4M -> 82.8M (81.4M), IQ2_S 81.6M -> 51.3M (75.4M), TQ2_0 12.4M -> 10.5M (10.6M),
    //   MXFP4 35.3M -> 33.6M (41.9M), IQ2_XXS 79.4M -> 67.2M (75.0M).
    // TQ2_0 and MXFP4 still trail here at n = 1408: both are bound by the vector ports, and pay
    // for the reference's float order (a chain of one add per block) where llama.cpp keeps vector
    // float sums. Issue 19's Zen 5 figures (IQ3_S 0.66, TQ2_0 0.79, MXFP4 0.81, IQ2_S 0.85,
    // IQ2_XXS 0.91) are not re-measured.
    at(T::IQ2_XXS).vec_dot = avx2::vec_dot_iq2_xxs;
    at(T::IQ2_XXS).vec_dot_n = avx2::vec_dot_n_iq2_xxs;
    at(T::IQ2_XS).vec_dot = avx2::vec_dot_iq2_xs;
    at(T::IQ2_XS).vec_dot_n = avx2::vec_dot_n_iq2_xs;
    at(T::IQ2_S).vec_dot = avx2::vec_dot_iq2_s;
    at(T::IQ2_S).vec_dot_n = avx2::vec_dot_n_iq2_s;
    at(T::IQ3_XXS).vec_dot = avx2::vec_dot_iq3_xxs;
    at(T::IQ3_XXS).vec_dot_n = avx2::vec_dot_n_iq3_xxs;
    at(T::IQ3_S).vec_dot = avx2::vec_dot_iq3_s;
    at(T::IQ3_S).vec_dot_n = avx2::vec_dot_n_iq3_s;
    at(T::IQ1_S).vec_dot = avx2::vec_dot_iq1_s;
    at(T::IQ1_S).vec_dot_n = avx2::vec_dot_n_iq1_s;
    at(T::IQ1_M).vec_dot = avx2::vec_dot_iq1_m;
    at(T::IQ1_M).vec_dot_n = avx2::vec_dot_n_iq1_m;
    at(T::TQ1_0).vec_dot = avx2::vec_dot_tq1_0;
    at(T::TQ1_0).vec_dot_n = avx2::vec_dot_n_tq1_0;
    at(T::TQ2_0).vec_dot = avx2::vec_dot_tq2_0;
    at(T::TQ2_0).vec_dot_n = avx2::vec_dot_n_tq2_0;
    at(T::MXFP4).vec_dot = avx2::vec_dot_mxfp4;
    at(T::MXFP4).vec_dot_n = avx2::vec_dot_n_mxfp4;
#else
    (void)table;  // other architectures build only this file: the scalar references stay
#endif
}

void cpu_register_avx2_vector_ops(vector_ops* ops) {
#if defined(__x86_64__) || defined(_M_X64)
    ops->lanes = 8;
    ops->softmax = avx2::softmax;
    ops->swiglu = avx2::swiglu;
    ops->weighted_rows = avx2::weighted_rows;
    ops->transpose_u16 = avx2::transpose_u16;
    ops->contracts_fma = true;  // llama.cpp's AVX2 builds have FMA, and GCC contracts
#else
    (void)ops;
#endif
}

}  // namespace moerun
