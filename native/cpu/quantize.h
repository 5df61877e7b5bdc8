// Whole-tensor conversion between F32 and any type with kernels, threaded over rows. Used by the
// quantizer (lib/quantize.ts) and by tests.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels.h"

namespace moerun {

// Encodes n_rows rows of row_len floats as `type`. Throws error(invalid_argument/unsupported).
std::vector<uint8_t> quantize_rows(tensor_type type, const float* src, int64_t n_rows, int64_t row_len, int n_threads);

// Decodes n_rows rows of row_len elements of `type` into floats.
std::vector<float> dequantize_rows(tensor_type type, const uint8_t* src, size_t src_bytes, int64_t n_rows, int64_t row_len, int n_threads);

// Type by name ("Q4_K", "f16", case-insensitive); throws error(invalid_argument) if unknown.
tensor_type tensor_type_from_name(const char* name);

}  // namespace moerun
