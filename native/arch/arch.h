// Architecture registry. One small file per architecture maps GGUF metadata and tensor names onto
// the shared model_config / model_weights; the forward pass is shared.
#pragma once

#include <string_view>

#include "../runtime/model.h"

namespace moerun {

struct arch_loader {
    const char* name;  // GGUF general.architecture
    void (*load)(model& m);  // fills m.config and m.weights from m.file; throws moerun::error
};

// nullptr when the architecture is not supported.
const arch_loader* arch_find(std::string_view name);

// ---- helpers shared by the architecture files (arch/common.cpp) ----

// Metadata `<arch>.<suffix>`; required ones throw bad_format naming the key when missing.
int64_t arch_get_int(const model& m, const char* suffix);
int64_t arch_get_int_or(const model& m, const char* suffix, int64_t fallback);
float arch_get_float_or(const model& m, const char* suffix, float fallback);

// Tensor by name with an exact shape (ne0 first; unused trailing dims are 1). `required` false
// returns an empty tensor when absent. Matrices (used in matmul) must have a dot kernel; vectors
// must be F32. Errors name the tensor, its shape/type and what was expected.
enum class tensor_use { matrix, vector };
tensor arch_tensor(const model& m, const std::string& name, std::initializer_list<int64_t> shape, tensor_use use,
                   bool required = true);

// Hyper-parameters every transformer has (block count, sizes, heads, norm eps, RoPE), read with
// llama.cpp's defaults.
void arch_read_common_hparams(model& m);

}  // namespace moerun
