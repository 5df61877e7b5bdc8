// Whole-tensor conversion between F32 and any type with kernels, threaded over rows. Used by the
// quantizer (lib/quantize.ts) and by tests.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels.h"

namespace moerun {

// An importance matrix for quantize_rows: one vector of row_len column weights per 2-D matrix of
// the tensor (llama-quantize's values: imatrix.h's sums / counts), for rows_per_matrix rows each.
// The rows being encoded start at row first_row of the tensor.
struct row_importance {
    const float* values = nullptr;  // (n_matrices, row_len)
    int64_t n_values = 0;           // n_matrices * row_len
    int64_t rows_per_matrix = 0;
    int64_t first_row = 0;
};

// Encodes n_rows rows of row_len floats as `type`. With an importance matrix, each row is encoded
// as llama.cpp's quantizer does with quant_weights: the types whose quantizer ignores it (F32, F16,
// BF16, Q8_0, TQ1_0, TQ2_0, MXFP4) the same as without; the others with their importance-weighted
// search (error(unsupported) where moerun has none yet). Types llama.cpp quantizes only with one
// (IQ2_XXS, IQ2_XS, IQ1_S) need it. Throws error(invalid_argument/unsupported).
std::vector<uint8_t> quantize_rows(tensor_type type, const float* src, int64_t n_rows, int64_t row_len, int n_threads,
                                   const row_importance* importance = nullptr);

// Decodes n_rows rows of row_len elements of `type` into floats.
std::vector<float> dequantize_rows(tensor_type type, const uint8_t* src, size_t src_bytes, int64_t n_rows, int64_t row_len, int n_threads);

// Type by name ("Q4_K", "f16", case-insensitive); throws error(invalid_argument) if unknown.
tensor_type tensor_type_from_name(const char* name);

}  // namespace moerun
