// Tensor element type ids: GGUF's (= ggml's `ggml_type`), so a tensor's type field in a file is
// one of these. What each type's blocks hold and how they are computed is quant/'s business.
#pragma once

#include <cstdint>

namespace moerun {

enum class tensor_type : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};
constexpr uint32_t k_tensor_type_count = 40;  // one past the largest id above

}  // namespace moerun
