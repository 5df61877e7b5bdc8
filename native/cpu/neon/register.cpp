// arm64 kernel rows: plain NEON (every ARMv8-A CPU), then SDOT (dotprod) and SMMLA (i8mm), each
// registration on top of the one before (cpu/dispatch.cpp). On other architectures only this file
// of the folder is built, and the registrations are empty: the rows stay as they were.
// Attention scores over an F32 cache: unrolled_tile (float.cpp, the template of cpu/simd_orders.h)
// passes over each key once per 4 queries, a quarter of the 16 lanes per pass so that the 16
// accumulators fit the registers; bit for bit vec_dot_unrolled under qemu, speed not measured
// (no arm64 hardware here). Values: the gemm_tile over the transposed value rows.
#include "../dispatch.h"
#include "kernels.h"

namespace moerun {

void cpu_register_neon(cpu_kernels* table) {
#if defined(__aarch64__)
    using T = tensor_type;
    auto at = [&](T id) -> cpu_kernels& { return table[uint32_t(id)]; };

    // F32 and F16 in the 16-lane orders (cpu/kernels.h), as four float32x4 per vector.
    at(T::F32).vec_dot = neon::vec_dot_f32;
    at(T::F32).vec_dot_n = neon::vec_dot_n_f32;
    at(T::F32).vec_dot_unrolled = neon::vec_dot_unrolled_f32;
    at(T::F32).unrolled_tile = neon::unrolled_tile_f32;  // attention scores, 4 queries per key pass
    at(T::F32).gemm_lanes = 16;
    at(T::F32).gemm_tile = neon::gemm_tile_f32;
    at(T::F32).gemm_tile_x = 2;
    at(T::F16).vec_dot = neon::vec_dot_f16;
    at(T::F16).vec_dot_n = neon::vec_dot_n_f16;
    at(T::F16).vec_dot_unrolled = neon::vec_dot_unrolled_f16;
    at(T::F16).gemm_lanes = 16;
    at(T::F16).gemm_tile = neon::gemm_tile_f16;
    at(T::F16).gemm_tile_x = 2;
    at(T::F16).to_float = neon::to_float_f16;
    at(T::F16).from_float = neon::from_float_f16;
    at(T::BF16).vec_dot = neon::vec_dot_bf16;
    at(T::BF16).vec_dot_n = neon::vec_dot_n_bf16;
    at(T::BF16).to_float = neon::to_float_bf16;
    at(T::BF16).from_float = neon::from_float_bf16;

    at(T::Q8_0).from_float = neon::from_float_q8_0;
    at(T::Q8_1).from_float = neon::from_float_q8_1;
    at(T::Q8_K).from_float = neon::from_float_q8_k;
    // Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_XS: vec_dot and vec_dot_n
    neon::register_int8_rows(table);
    // IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ1_S IQ1_M TQ1_0 TQ2_0 MXFP4: vec_dot and vec_dot_n, bit for
    // bit the reference. Speed not measured (no arm64 hardware here); executed instructions per 32
    // weights with SDOT, against llama.cpp's NEON dots (scripts/neon-insn-count.sh -O3, GCC 12.2):
    // IQ2_XXS 33.0 (36.4), IQ2_XS 38.5 (38.5), IQ2_S 46.8 (54.9), IQ3_XXS 46.4 (48.5), IQ3_S 49.6
    // (55.4), IQ1_S 33.9 (44.9), IQ1_M 48.8 (55.4), TQ1_0 16.3 (16.0), TQ2_0 9.8 (10.4), MXFP4 20.5 (26.5).
    neon::register_iq_rows(table);
#else
    (void)table;
#endif
}

void cpu_register_neon_dotprod(cpu_kernels* table) {
#if defined(__aarch64__)
    neon_dotprod::register_int8_rows(table);  // the same rows with SDOT
    neon_dotprod::register_iq_rows(table);
#else
    (void)table;
#endif
}

void cpu_register_neon_i8mm(cpu_kernels* table) {
#if defined(__aarch64__)
    // Prompt batches of Q8_0 and Q4_0 weights in 2 x 2 SMMLA tiles (matmul's gemm_tile path; a
    // single activation row, as in decoding, stays on SDOT). Every output equals vec_dot's.
    using T = tensor_type;
    table[uint32_t(T::Q8_0)].gemm_tile = neon_i8mm::gemm_tile_q8_0;
    table[uint32_t(T::Q8_0)].gemm_tile_x = neon_i8mm::k_tile_x;
    table[uint32_t(T::Q4_0)].gemm_tile = neon_i8mm::gemm_tile_q4_0;
    table[uint32_t(T::Q4_0)].gemm_tile_x = neon_i8mm::k_tile_x;
#else
    (void)table;
#endif
}

}  // namespace moerun
