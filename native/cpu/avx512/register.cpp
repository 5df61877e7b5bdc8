// AVX-512 (F, BW, VL, DQ; VNNI and BF16 where present) kernels. Compiled with -mavx512* flags;
// only called after cpuid says so. Runs after cpu_register_avx2, so rows not set here keep the
// AVX2 kernels (the activation quantizers Q8_0/Q8_1/Q8_K, BF16 conversion).
#include "../dispatch.h"
#include "kernels.h"

namespace moerun {

void cpu_register_avx512(type_traits* table) {
    using T = tensor_type;
    auto at = [&](T id) -> type_traits& { return table[uint32_t(id)]; };
    const cpu_features& f = cpu_detect();

    at(T::F32).vec_dot = avx512::vec_dot_f32;
    at(T::F16).vec_dot = avx512::vec_dot_f16;
    at(T::F16).to_float = avx512::to_float_f16;
    at(T::F16).from_float = avx512::from_float_f16;
    at(T::BF16).vec_dot = f.avx512bf16 ? avx512::vec_dot_bf16_dpbf16 : avx512::vec_dot_bf16;

    at(T::Q2_K).vec_dot = avx512::vec_dot_q2_k;
    at(T::Q3_K).vec_dot = avx512::vec_dot_q3_k;
    at(T::Q4_K).vec_dot = avx512::vec_dot_q4_k;
    at(T::Q5_K).vec_dot = avx512::vec_dot_q5_k;
    at(T::Q6_K).vec_dot = avx512::vec_dot_q6_k;
    at(T::IQ4_XS).vec_dot = avx512::vec_dot_iq4_xs;

    if (f.avx512vnni) {  // vpdpbusd; without it the AVX2 maddubs kernels are as good
        at(T::Q4_0).vec_dot = avx512::vec_dot_q4_0;
        at(T::Q4_1).vec_dot = avx512::vec_dot_q4_1;
        at(T::Q5_0).vec_dot = avx512::vec_dot_q5_0;
        at(T::Q5_1).vec_dot = avx512::vec_dot_q5_1;
        at(T::Q8_0).vec_dot = avx512::vec_dot_q8_0;
        at(T::IQ4_NL).vec_dot = avx512::vec_dot_iq4_nl;
    }
}

}  // namespace moerun
