// AVX-512 (F, BW, VL, DQ; BF16 where present) kernels. Compiled with -mavx512* flags; only called
// after cpuid says so. Runs after cpu_register_avx2: rows not set here keep the AVX2 kernels.
//
// Only kernels measured faster than their AVX2 versions are installed: F32, BF16 (vdpbf16ps),
// Q2_K and Q6_K, on both AMD Zen 4 (512-bit ops as two 256-bit halves) and Intel Sapphire Rapids.
// 512-bit Q3_K/IQ4_XS dots were written and passed test_kernels but ran 5-40% slower than AVX2
// (see git history, 5908cb7).
// Q8_0 and Q4_0 (VNNI): the int8 GEMM of int8_gemm.cpp for every batch size. Zen 5, bench_matmul
// --threads 2 --n 2048, GFLOP/s, interleaved in one run (load average 4-5):
//   m = 64: Q8_0 435 (the four-blocks-per-step AVX-512 kernel it replaces: 91; AVX2: 54),
//           Q4_0 446-938 (67-92; AVX2 58)
//   m = 1 (--threads 1): Q8_0 78 (80), Q4_0 66 (57), both within this machine's noise. Since
//           b4336b2/b42cc20 the tile reads 1-3 activation rows in place, four weight rows to a
//           register, scales gathered in the same pass: Q8_0 87-91 (was 64 on that day), Q4_0
//           142-149 (60), n 2048-5632, load 2.8-3.4, interleaved with the build before.
// The lattice formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (VNNI + BMI2,
// iq_grid.cpp). bench_dot_peer (k 2048, one thread, Zen 5, load 3.3-4.3), ms per call, this
// kernel / AVX2's, and llama.cpp zen4's time over this kernel's:
//   matvec, n 1408 (cached):      IQ2_XXS 0.13/0.17 1.23x, IQ2_XS 0.15/0.21 1.13x, IQ2_S 0.12/0.26 1.30x,
//     IQ3_XXS 0.20/0.23 1.15x, IQ3_S 0.25/0.37 1.11x, IQ1_S 0.13/0.26 1.27x, IQ1_M 0.13/0.39 1.09x
//   m = 64 (vec_dot_n, 4 rows a pass): 1.9-4.1x faster than AVX2's, 2.6-3.5x llama.cpp's
//   matvec, n 131072 (from DRAM, two runs): IQ2_XXS 1.25-1.28x, IQ2_XS 1.15-1.28x (load 10), IQ2_S 1.30-1.39x,
//     IQ3_XXS 1.14-1.17x, IQ3_S 0.91-1.05x, IQ1_S 1.14-1.20x, IQ1_M 1.05-1.08x (AVX2: 0.36-1.09x)
// TQ1_0, TQ2_0 and MXFP4 (VNNI, ternary.cpp). bench_dot_peer zen4 --m 1,8,64 (k 2048, n 1408,
// one thread, Zen 5, min of 3 interleaved runs, load 6.6-7.4), ms per call, AVX2 / this kernel,
// and llama.cpp zen4's time over this kernel's:
//   TQ1_0  m 1: 0.075/0.055 (1.58x llama.cpp)  m 8: 0.358/0.241 (2.95x)  m 64: 3.14/2.26 (2.77x)
//   TQ2_0  m 1: 0.043/0.032 (1.03x)            m 8: 0.321/0.181 (1.43x)  m 64: 2.79/1.75 (1.29x)
//   MXFP4  m 1: 0.128/0.110 (0.94x)            m 8: 0.760/0.547 (1.56x)  m 64: 6.65/4.68 (1.58x)
// bench_matmul --n 2048 --m 1,8,64, GFLOP/s, best of 3 interleaved, load 5.5-6.3: TQ1_0 1.33x,
// 1.52x, 1.48x AVX2's; TQ2_0 1.32x, 1.72x, 1.80x; MXFP4 1.20x, 1.46x, 1.39x.
// Q4_K, Q5_K and Q6_K (VNNI): the int8 GEMM of int8_gemm_k.cpp, bit for bit the reference (the
// float-lane AVX-512 kernels it replaces were not). Zen 5, bench_matmul --n 2048, GFLOP/s, best of
// 9 interleaved runs against those kernels (in parentheses), load average 3.7-6.4:
//   m = 64, --threads 2: Q4_K 814 (275), Q5_K 966 (300), Q6_K 831 (334); Q8_0 883 in the same runs
//   m = 16, --threads 2: Q4_K 656 (297), Q5_K 742 (363), Q6_K 746 (337)
//   m = 1, --threads 1: Q4_K 125, Q5_K 106, Q6_K 126-129 (n 2048 and 5632, best of 2-3, load 5-6;
//           the float-lane kernels: 98, 97, 99 at load 2.9-3.6). Single rows take the horizontal
//           sums of 2 (Q6_K 4) super-blocks at once for the reference's order; the tile runs up to 2
//           (Q6_K 3) activation rows in place (int8_gemm_k.cpp has the figures). Reading a tile's 16
//           rows in place instead (983138a) measured 131/103/97 here with the rows in cache, but cut
//           real decode from DRAM by a third (Ling-mini-2.0 Q4_K_M, run_model -t 2, interleaved,
//           load 1.5: 31-35 tok/s against 42-48 with the row kernel), so the row kernel stays.
//   npm run bench, ling-mini-2.0 10 layers, Q4_K_M, 2 threads, pp512: 2.58x llama.cpp at load
//   5.3-3.9, 2.48x at load 9.4-7.7 (1.17x before, on a quiet machine; a quiet rerun is to do).
// Attention (cpu/backend.cpp): scores by the F32 unrolled_tile (float.cpp: each key row against 4
// queries per pass, the template of cpu/simd_orders.h) or the F16 gemm_tile; values by the
// gemm_tile over the cache's transposed value rows.
#include "../dispatch.h"
#include "../vector_ops.h"
#include "kernels.h"

namespace moerun {

void cpu_register_avx512(cpu_kernels* table) {
#if defined(__x86_64__) || defined(_M_X64)
    using T = tensor_type;
    auto at = [&](T id) -> cpu_kernels& { return table[uint32_t(id)]; };
    const cpu_features& f = cpu_detect();

    // F32 and F16 in llama.cpp's 16-lane orders (cpu/kernels.h), which its AVX-512 builds use.
    at(T::F32).vec_dot = avx512::vec_dot_f32;
    at(T::F32).vec_dot_n = avx512::vec_dot_n_f32;
    at(T::F32).vec_dot_unrolled = avx512::vec_dot_unrolled_f32;
    at(T::F32).unrolled_tile = avx512::unrolled_tile_f32;
    at(T::F32).gemm_lanes = 16;
    at(T::F32).gemm_tile = avx512::gemm_tile_f32;
    at(T::F32).gemm_tile_x = 6;
    at(T::F16).vec_dot = avx512::vec_dot_f16;
    at(T::F16).vec_dot_n = avx512::vec_dot_n_f16;
    at(T::F16).vec_dot_unrolled = avx512::vec_dot_unrolled_f16;
    at(T::F16).gemm_lanes = 16;
    at(T::F16).gemm_tile = avx512::gemm_tile_f16;
    at(T::F16).gemm_tile_x = 6;
    at(T::F16).to_float = avx512::to_float_f16;
    at(T::F16).from_float = avx512::from_float_f16;
    at(T::BF16).vec_dot = f.avx512bf16 ? avx512::vec_dot_bf16_dpbf16 : avx512::vec_dot_bf16;
    at(T::BF16).vec_dot_n = f.avx512bf16 ? avx512::vec_dot_n_bf16_dpbf16 : avx512::vec_dot_n_bf16;

    at(T::Q2_K).vec_dot = avx512::vec_dot_q2_k;
    at(T::Q2_K).vec_dot_n = f.avx512vnni ? avx512::vec_dot_n_q2_k_vnni : avx512::vec_dot_n_q2_k;
    at(T::Q6_K).vec_dot = avx512::vec_dot_q6_k;
    at(T::Q6_K).vec_dot_n = avx512::vec_dot_n_q6_k;
    if (f.avx512vnni) {  // Q4_K, Q5_K and Q6_K as an int8 GEMM, bit for bit the reference (int8_gemm_k.cpp)
        at(T::Q4_K).vec_dot = avx512::vec_dot_q4_k_int8;
        at(T::Q4_K).vec_dot_n = avx512::vec_dot_n_q4_k_int8;
        at(T::Q4_K).int8_tile = avx512::int8_tile_q4_k;
        at(T::Q4_K).int8_tile_rows = 16;
        at(T::Q4_K).int8_tile_interleaved = avx512::int8_tile_q4_k_interleaved;
        at(T::Q5_K).vec_dot = avx512::vec_dot_q5_k_int8;
        at(T::Q5_K).vec_dot_n = avx512::vec_dot_n_q5_k_int8;
        at(T::Q5_K).int8_tile = avx512::int8_tile_q5_k;
        at(T::Q5_K).int8_tile_rows = 16;
        at(T::Q5_K).int8_tile_interleaved = avx512::int8_tile_q5_k_interleaved;
        at(T::Q6_K).vec_dot = avx512::vec_dot_q6_k_int8;
        at(T::Q6_K).vec_dot_n = avx512::vec_dot_n_q6_k_int8;
        at(T::Q6_K).int8_tile = avx512::int8_tile_q6_k;
        at(T::Q6_K).int8_tile_rows = 16;
    }
    if (f.avx512vnni) {  // Q8_0 and Q4_0 as an int8 GEMM, bit for bit the reference (int8_gemm.cpp)
        at(T::Q8_0).from_float_act = avx512::from_float_q8_0_act;
        at(T::Q8_0).act_extra_per_block = avx512::k_q8_0_act_extra;
        at(T::Q8_0).vec_dot = avx512::vec_dot_q8_0_int8;
        at(T::Q8_0).vec_dot_n = avx512::vec_dot_n_q8_0_int8;
        at(T::Q8_0).int8_tile = avx512::int8_tile_q8_0;
        at(T::Q8_0).int8_tile_rows = 16;
        at(T::Q4_0).vec_dot = avx512::vec_dot_q4_0_int8;
        at(T::Q4_0).vec_dot_n = avx512::vec_dot_n_q4_0_int8;
        at(T::Q4_0).int8_tile = avx512::int8_tile_q4_0;
        at(T::Q4_0).int8_tile_rows = 16;
    }
    if (f.avx512vnni) {  // the lattice formats, two sub-blocks per register (iq_grid.cpp)
        at(T::IQ2_XXS).vec_dot = avx512::vec_dot_iq2_xxs_vnni;
        at(T::IQ2_XXS).vec_dot_n = avx512::vec_dot_n_iq2_xxs_vnni;
        at(T::IQ2_XS).vec_dot = avx512::vec_dot_iq2_xs_vnni;
        at(T::IQ2_XS).vec_dot_n = avx512::vec_dot_n_iq2_xs_vnni;
        at(T::IQ2_S).vec_dot = avx512::vec_dot_iq2_s_vnni;
        at(T::IQ2_S).vec_dot_n = avx512::vec_dot_n_iq2_s_vnni;
        at(T::IQ3_XXS).vec_dot = avx512::vec_dot_iq3_xxs_vnni;
        at(T::IQ3_XXS).vec_dot_n = avx512::vec_dot_n_iq3_xxs_vnni;
        at(T::IQ3_S).vec_dot = avx512::vec_dot_iq3_s_vnni;
        at(T::IQ3_S).vec_dot_n = avx512::vec_dot_n_iq3_s_vnni;
        at(T::IQ1_S).vec_dot = avx512::vec_dot_iq1_s_vnni;
        at(T::IQ1_S).vec_dot_n = avx512::vec_dot_n_iq1_s_vnni;
        at(T::IQ1_M).vec_dot = avx512::vec_dot_iq1_m_vnni;
        at(T::IQ1_M).vec_dot_n = avx512::vec_dot_n_iq1_m_vnni;
    }
    if (f.avx512vnni) {  // the ternary formats and MXFP4 (ternary.cpp)
        at(T::TQ1_0).vec_dot = avx512::vec_dot_tq1_0_vnni;
        at(T::TQ1_0).vec_dot_n = avx512::vec_dot_n_tq1_0_vnni;
        at(T::TQ2_0).vec_dot = avx512::vec_dot_tq2_0_vnni;
        at(T::TQ2_0).vec_dot_n = avx512::vec_dot_n_tq2_0_vnni;
        at(T::MXFP4).vec_dot = avx512::vec_dot_mxfp4_vnni;
        at(T::MXFP4).vec_dot_n = avx512::vec_dot_n_mxfp4_vnni;
    }
#else
    (void)table;  // other architectures build only this file: the scalar references stay
#endif
}

// AMX: runs after cpu_register_avx512 on CPUs with AMX-TILE and AMX-INT8 whose OS granted the tile
// state (cpu/dispatch.cpp). Only prompt-batch tiles change, and the activation rows of Q8_0 and
// Q8_K, which carry their quants once more, aligned, for the tiles' loads (cpu/kernels.h); vec_dot
// stays the AVX-512 one, and every tile equals it bit for bit (exact int32 sums, the same float
// steps).
// Fewer activation rows than 12 (Q8_0, Q4_0) or 32 (K-quants) keep the AVX-512 tiles, which win
// there: a tile pass costs the same for 1 token as for 16, and the K-quant packing is dearer.
// In cache, 16 weight rows, k 2048, 1 thread, min of 30 interleaved rounds (a 2-core Sapphire
// Rapids VM whose speed varied by up to 2x from run to run, so these are ranges over runs), the
// AVX-512 tile's time over this one: m 64: Q8_0 1.26-1.48x, Q4_0 1.19-1.34x, Q4_K 1.24-1.35x,
// Q5_K 1.28-1.64x, Q6_K 1.41-2.18x; m 512: Q8_0 1.26x, Q4_0 1.37x, Q4_K 1.70x, Q5_K 1.70x,
// Q6_K 1.60x (best 488 GFLOP/s, Q6_K m 256). End to end, run_model --prompt 512 -t 2,
// MOERUN_CPU=avx512 vs amx interleaved x3: TinyLlama-1.1B shape Q4_K_M 92.8-97.3 vs 108.2-112.3
// tok/s, Ling-mini-2.0 10 layers Q4_K_M 167.9-172.4 vs 179.3-186.4 (its experts see ~16 tokens
// each, below the K-quant threshold). Through matmul the AMX tiles gain less from a second thread
// than the AVX-512 ones: bench_matmul --types Q4_K --m 512 --n 5632 --budget 1, 3 interleaved
// rounds, GFLOP/s: 1 thread 156-197 (AVX-512 115-125), 2 threads 213-264 (201-232). Two copies of
// the in-cache bench on the two vCPUs do not slow each other, so the tile units are not shared;
// what the second thread loses to (the weights' and activations' way through L2/L3) is not found.
void cpu_register_amx(cpu_kernels* table) {
#if defined(__x86_64__) || defined(_M_X64)
    using T = tensor_type;
    auto at = [&](T id) -> cpu_kernels& { return table[uint32_t(id)]; };
    at(T::Q8_0).from_float_act = avx512::from_float_q8_0_act_amx;
    at(T::Q8_0).act_aligned_quants = true;
    at(T::Q8_K).from_float_act = avx512::from_float_q8_k_act_amx;
    at(T::Q8_K).act_aligned_quants = true;
    at(T::Q8_0).int8_tile = avx512::amx_tile_q8_0;
    at(T::Q8_0).int8_tile_rows = avx512::k_amx_rows_per_call;
    at(T::Q4_0).int8_tile = avx512::amx_tile_q4_0;
    at(T::Q4_0).int8_tile_rows = avx512::k_amx_rows_per_call;
    at(T::Q4_K).int8_tile = avx512::amx_tile_q4_k;
    at(T::Q4_K).int8_tile_rows = avx512::k_amx_rows_per_call;
    at(T::Q5_K).int8_tile = avx512::amx_tile_q5_k;
    at(T::Q5_K).int8_tile_rows = avx512::k_amx_rows_per_call;
    at(T::Q6_K).int8_tile = avx512::amx_tile_q6_k;
    at(T::Q6_K).int8_tile_rows = avx512::k_amx_rows_per_call;
    // Interleaved Q4_K/Q5_K weights: the AMX tiles pack from the groups; decode and small batches
    // run the AVX512_VNNI interleaved tile.
    at(T::Q4_K).int8_tile_interleaved = avx512::amx_tile_q4_k_interleaved;
    at(T::Q5_K).int8_tile_interleaved = avx512::amx_tile_q5_k_interleaved;
#else
    (void)table;
#endif
}

void cpu_register_avx512_vector_ops(vector_ops* ops) {
#if defined(__x86_64__) || defined(_M_X64)
    ops->lanes = 16;
    ops->softmax = avx512::softmax;
    ops->swiglu = avx512::swiglu;
    ops->weighted_rows = avx512::weighted_rows;
    ops->contracts_fma = true;  // llama.cpp's AVX512 builds have FMA, and GCC contracts
#else
    (void)ops;
#endif
}

}  // namespace moerun
