// Element-wise and row-wise operations of the forward pass. Numerics follow ggml's CPU ops to the
// bit (F16 models round activations to F16, so every last bit upstream matters); softmax and
// SwiGLU run the active ISA's versions in cpu/vector_ops.h.
#pragma once

#include <cstdint>

#include "../backend/model_desc.h"

namespace moerun {

// out = x / rms(x) * weight, over rows of n. weight may be null (plain RMS normalization).
void rms_norm_rows(const float* x, const float* weight, float* out, int64_t rows, int64_t n, float eps);

// Rotates the first n_rot dims of each head of one token at position `pos`, in place.
// x holds n_heads heads of head_dim floats.
void rope_apply(float* x, int n_heads, int head_dim, int n_rot, int pos, const model_config& c);

// gate = silu(gate) * up over `rows` rows of n elements (each row chunked from its start).
void swiglu_rows(float* gate, const float* up, int64_t rows, int64_t n);

// In-place softmax of n scores, normalized to sum 1.
void softmax(float* x, int64_t n);

// Rows per task when a row-wise step (the ops above, copies, adds) of rows of n elements runs on
// the thread pool: ~16K elements a task, a few microseconds of work, worth a thread's wake-up; a
// decode step's one row stays on the calling thread. Each row is computed as alone, so results
// do not depend on the split.
inline int64_t rows_per_task(int64_t n) { return n >= (int64_t(1) << 14) ? 1 : (int64_t(1) << 14) / (n > 0 ? n : 1); }

}  // namespace moerun
