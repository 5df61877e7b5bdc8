// Element-wise and row-wise operations of the forward pass (scalar; the matmuls dominate).
// Numerics follow ggml's CPU ops where it matters for matching llama.cpp's logits.
#pragma once

#include <cstdint>

#include "model.h"

namespace moerun {

// out = x / rms(x) * weight, over rows of n. weight may be null (plain RMS normalization).
void rms_norm_rows(const float* x, const float* weight, float* out, int64_t rows, int64_t n, float eps);

// Rotates the first n_rot dims of each head of one token at position `pos`, in place.
// x holds n_heads heads of head_dim floats.
void rope_apply(float* x, int n_heads, int head_dim, int n_rot, int pos, const model_config& c);

// gate = silu(gate) * up, n elements.
void swiglu(float* gate, const float* up, int64_t n);

// In-place softmax of n scores; returns nothing, normalizes to sum 1.
void softmax(float* x, int64_t n);

}  // namespace moerun
