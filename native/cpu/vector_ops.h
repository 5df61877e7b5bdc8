// Row operations of the forward pass that llama.cpp's CPU backend computes with SIMD: softmax,
// SwiGLU and attention's probability-weighted sum of values. Each ISA path has its own version
// in llama.cpp's order and with its vector exp, so that float models give llama.cpp's logits
// bit for bit (see "summation orders" in cpu/kernels.h); the scalar path is its plain-C build.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moerun {

struct vector_ops {
    // L: 16 (AVX-512), 8 (AVX2), 0 (scalar). Softmax and SwiGLU take L-element chunks with the
    // vector exp and the remainder with expf; weighted_sum uses the GEMM order over L lanes.
    int lanes = 0;
    // x[0..n) <- softmax(x): exp(x - max) chunk by chunk, each chunk's sum (lanes added by the
    // GEMM tree) accumulated in double, then every element times float(1 / sum).
    void (*softmax)(float* x, int64_t n) = nullptr;
    // gate[i] <- silu(gate[i]) * up[i] for i < n, silu(x) = x / (1 + exp(-x)). One row: llama.cpp
    // chunks each row from its start.
    void (*swiglu)(float* gate, const float* up, int64_t n) = nullptr;
    // Attention's values for several queries at once: for q < n_queries and e < dim,
    // out[q][e] = sum over j < n[q] of p[q][j] * v_j[e], v_j = v + j * v_stride floats, in the
    // GEMM order over j (lane j % L, the lanes added by the GEMM tree), as llama.cpp multiplies
    // probabilities by its transposed value cache. Each query's result depends on its own p, n and
    // the rows only (bit for bit the same query alone); each V chunk is loaded once for all the
    // queries (the query heads sharing a kv head, and consecutive tokens, whose n differ).
    void (*weighted_sum)(int64_t n_queries, const float* const* p, const int64_t* n, const float* v, size_t v_stride, int64_t dim,
                         float* const* out) = nullptr;
    // weighted_sum over an F16 value cache (v_stride in elements). llama.cpp rounds the
    // probabilities to F16 first (its F16 matmul's activation type); callers pass p so rounded.
    void (*weighted_sum_f16)(int64_t n_queries, const float* const* p, const int64_t* n, const uint16_t* v, size_t v_stride,
                             int64_t dim, float* const* out) = nullptr;
    // Whether llama.cpp's build for this path contracts `a*b + c*d` into fma(a, b, c*d) (RoPE).
    bool contracts_fma = false;
};

// The active path's operations (cpu/dispatch.cpp).
const vector_ops& vector_ops_active();

// Per path: the scalar reference, and the registrations in cpu/avx2/ and cpu/avx512/.
vector_ops vector_ops_reference();
void cpu_register_avx2_vector_ops(vector_ops* ops);
void cpu_register_avx512_vector_ops(vector_ops* ops);

}  // namespace moerun
