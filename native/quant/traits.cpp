// The reference traits table: one row per GGUF type id. Adding a format = a block struct in
// blocks.h, reference kernels, one row here, and SIMD kernels in cpu/ (registered there).
#include <array>
#include <cstdio>

#include "blocks.h"
#include "reference.h"

namespace moerun {
namespace {

using T = tensor_type;

std::array<type_traits, k_tensor_type_count> make_reference_table() {
    std::array<type_traits, k_tensor_type_count> t{};
    auto row = [&](T id, const char* name, int64_t block, size_t size, bool quantized) -> type_traits& {
        type_traits& r = t[uint32_t(id)];
        r.name = name;
        r.block_size = block;
        r.type_size = size;
        r.is_quantized = quantized;
        return r;
    };
    // Layout rows for every id GGUF defines, so files can be parsed and sized even when a type
    // cannot be computed with; kernels are attached below for the types we support.
    row(T::F32, "F32", 1, 4, false);
    row(T::F16, "F16", 1, 2, false);
    row(T::Q4_0, "Q4_0", 32, 18, true);
    row(T::Q4_1, "Q4_1", 32, 20, true);
    row(T::Q5_0, "Q5_0", 32, 22, true);
    row(T::Q5_1, "Q5_1", 32, 24, true);
    row(T::Q8_0, "Q8_0", 32, 34, true);
    row(T::Q8_1, "Q8_1", 32, 36, true);
    row(T::Q2_K, "Q2_K", 256, 84, true);
    row(T::Q3_K, "Q3_K", 256, 110, true);
    row(T::Q4_K, "Q4_K", 256, 144, true);
    row(T::Q5_K, "Q5_K", 256, 176, true);
    row(T::Q6_K, "Q6_K", 256, 210, true);
    row(T::Q8_K, "Q8_K", 256, 292, true);
    row(T::IQ2_XXS, "IQ2_XXS", 256, 66, true);
    row(T::IQ2_XS, "IQ2_XS", 256, 74, true);
    row(T::IQ3_XXS, "IQ3_XXS", 256, 98, true);
    row(T::IQ1_S, "IQ1_S", 256, 50, true);
    row(T::IQ4_NL, "IQ4_NL", 32, 18, true);
    row(T::IQ3_S, "IQ3_S", 256, 110, true);
    row(T::IQ2_S, "IQ2_S", 256, 82, true);
    row(T::IQ4_XS, "IQ4_XS", 256, 136, true);
    row(T::I8, "I8", 1, 1, false);
    row(T::I16, "I16", 1, 2, false);
    row(T::I32, "I32", 1, 4, false);
    row(T::I64, "I64", 1, 8, false);
    row(T::F64, "F64", 1, 8, false);
    row(T::IQ1_M, "IQ1_M", 256, 56, true);
    row(T::BF16, "BF16", 1, 2, false);
    row(T::TQ1_0, "TQ1_0", 256, 54, true);
    row(T::TQ2_0, "TQ2_0", 256, 66, true);
    row(T::MXFP4, "MXFP4", 32, 17, true);

    auto kernels = [&](T id, to_float_fn to, from_float_fn from, vec_dot_fn dot, T dot_type) {
        type_traits& r = t[uint32_t(id)];
        r.to_float = to;
        r.from_float = from;
        r.vec_dot = dot;
        r.vec_dot_type = dot_type;
    };
    // Float weights multiply activations converted to their own type, as ggml does, so F16 and
    // BF16 files give llama.cpp's logits to rounding.
    kernels(T::F32, ref::to_float_f32, ref::from_float_f32, ref::vec_dot_f32, T::F32);
    kernels(T::F16, ref::to_float_f16, ref::from_float_f16, ref::vec_dot_f16, T::F16);
    kernels(T::BF16, ref::to_float_bf16, ref::from_float_bf16, ref::vec_dot_bf16, T::BF16);
    // Quantized weights dot against activations quantized per block, as ggml pairs them.
    kernels(T::Q4_0, ref::to_float_q4_0, ref::from_float_q4_0, ref::vec_dot_q4_0, T::Q8_0);
    kernels(T::Q4_1, ref::to_float_q4_1, ref::from_float_q4_1, ref::vec_dot_q4_1, T::Q8_1);
    kernels(T::Q5_0, ref::to_float_q5_0, ref::from_float_q5_0, ref::vec_dot_q5_0, T::Q8_0);
    kernels(T::Q5_1, ref::to_float_q5_1, ref::from_float_q5_1, ref::vec_dot_q5_1, T::Q8_1);
    kernels(T::Q8_0, ref::to_float_q8_0, ref::from_float_q8_0, ref::vec_dot_q8_0, T::Q8_0);
    kernels(T::Q8_1, ref::to_float_q8_1, ref::from_float_q8_1, nullptr, T::Q8_1);
    kernels(T::Q2_K, ref::to_float_q2_k, ref::from_float_q2_k, ref::vec_dot_q2_k, T::Q8_K);
    kernels(T::Q3_K, ref::to_float_q3_k, ref::from_float_q3_k, ref::vec_dot_q3_k, T::Q8_K);
    kernels(T::Q4_K, ref::to_float_q4_k, ref::from_float_q4_k, ref::vec_dot_q4_k, T::Q8_K);
    kernels(T::Q5_K, ref::to_float_q5_k, ref::from_float_q5_k, ref::vec_dot_q5_k, T::Q8_K);
    kernels(T::Q6_K, ref::to_float_q6_k, ref::from_float_q6_k, ref::vec_dot_q6_k, T::Q8_K);
    kernels(T::Q8_K, ref::to_float_q8_k, ref::from_float_q8_k, nullptr, T::Q8_K);
    kernels(T::IQ4_NL, ref::to_float_iq4_nl, ref::from_float_iq4_nl, ref::vec_dot_iq4_nl, T::Q8_0);
    kernels(T::IQ4_XS, ref::to_float_iq4_xs, ref::from_float_iq4_xs, ref::vec_dot_iq4_xs, T::Q8_K);
    // Lattice formats: IQ2_XXS, IQ2_XS and IQ1_S are written only with an importance matrix, as in
    // llama.cpp (no from_float); the others with or without one.
    kernels(T::IQ2_XXS, ref::to_float_iq2_xxs, nullptr, ref::vec_dot_iq2_xxs, T::Q8_K);
    kernels(T::IQ2_XS, ref::to_float_iq2_xs, nullptr, ref::vec_dot_iq2_xs, T::Q8_K);
    kernels(T::IQ2_S, ref::to_float_iq2_s, ref::from_float_iq2_s, ref::vec_dot_iq2_s, T::Q8_K);
    kernels(T::IQ3_XXS, ref::to_float_iq3_xxs, ref::from_float_iq3_xxs, ref::vec_dot_iq3_xxs, T::Q8_K);
    kernels(T::IQ3_S, ref::to_float_iq3_s, ref::from_float_iq3_s, ref::vec_dot_iq3_s, T::Q8_K);
    kernels(T::IQ1_S, ref::to_float_iq1_s, nullptr, ref::vec_dot_iq1_s, T::Q8_K);
    kernels(T::IQ1_M, ref::to_float_iq1_m, ref::from_float_iq1_m, ref::vec_dot_iq1_m, T::Q8_K);
    t[uint32_t(T::Q4_0)].from_float_imatrix = ref::from_float_imatrix_q4_0;
    t[uint32_t(T::Q4_1)].from_float_imatrix = ref::from_float_imatrix_q4_1;
    t[uint32_t(T::Q5_0)].from_float_imatrix = ref::from_float_imatrix_q5_0;
    t[uint32_t(T::Q5_1)].from_float_imatrix = ref::from_float_imatrix_q5_1;
    t[uint32_t(T::Q2_K)].from_float_imatrix = ref::from_float_imatrix_q2_k;
    t[uint32_t(T::IQ4_NL)].from_float_imatrix = ref::from_float_imatrix_iq4_nl;
    t[uint32_t(T::IQ4_XS)].from_float_imatrix = ref::from_float_imatrix_iq4_xs;
    t[uint32_t(T::Q3_K)].from_float_imatrix = ref::from_float_imatrix_q3_k;
    t[uint32_t(T::Q4_K)].from_float_imatrix = ref::from_float_imatrix_q4_k;
    t[uint32_t(T::Q5_K)].from_float_imatrix = ref::from_float_imatrix_q5_k;
    t[uint32_t(T::Q6_K)].from_float_imatrix = ref::from_float_imatrix_q6_k;
    t[uint32_t(T::IQ2_XXS)].from_float_imatrix = ref::from_float_imatrix_iq2_xxs;
    t[uint32_t(T::IQ2_XS)].from_float_imatrix = ref::from_float_imatrix_iq2_xs;
    t[uint32_t(T::IQ2_S)].from_float_imatrix = ref::from_float_imatrix_iq2_s;
    t[uint32_t(T::IQ3_XXS)].from_float_imatrix = ref::from_float_imatrix_iq3_xxs;
    t[uint32_t(T::IQ3_S)].from_float_imatrix = ref::from_float_imatrix_iq3_s;
    t[uint32_t(T::IQ1_S)].from_float_imatrix = ref::from_float_imatrix_iq1_s;
    t[uint32_t(T::IQ1_M)].from_float_imatrix = ref::from_float_imatrix_iq1_m;
    kernels(T::TQ1_0, ref::to_float_tq1_0, ref::from_float_tq1_0, ref::vec_dot_tq1_0, T::Q8_K);
    kernels(T::TQ2_0, ref::to_float_tq2_0, ref::from_float_tq2_0, ref::vec_dot_tq2_0, T::Q8_K);
    kernels(T::MXFP4, ref::to_float_mxfp4, ref::from_float_mxfp4, ref::vec_dot_mxfp4, T::Q8_0);
    return t;
}

}  // namespace

const type_traits& type_traits_reference(tensor_type type) {
    static const std::array<type_traits, k_tensor_type_count> table = make_reference_table();
    static const type_traits unknown{};
    const uint32_t id = uint32_t(type);
    return id < k_tensor_type_count ? table[id] : unknown;
}

const char* tensor_type_name(tensor_type type) {
    const type_traits& t = type_traits_reference(type);
    if (t.name) return t.name;
    static thread_local char buf[32];
    std::snprintf(buf, sizeof buf, "type %u", uint32_t(type));
    return buf;
}

}  // namespace moerun
