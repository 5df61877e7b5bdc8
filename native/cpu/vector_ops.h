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
    // vector exp and the remainder with expf.
    int lanes = 0;
    // x[0..n) <- softmax(x): exp(x - max) chunk by chunk, each chunk's sum (lanes added by the
    // GEMM tree) accumulated in double, then every element times float(1 / sum). Elements with
    // x - max < cutoff are 0 instead (-INFINITY: none; exp(-inf) is 0 either way). Attention
    // uses a cutoff so that no exp or probability is subnormal (cpu/backend.cpp).
    void (*softmax)(float* x, int64_t n, float cutoff) = nullptr;
    // gate[i] <- silu(gate[i]) * up[i] for i < n, silu(x) = x / (1 + exp(-x)). One row: llama.cpp
    // chunks each row from its start.
    void (*swiglu)(float* gate, const float* up, int64_t n) = nullptr;
    // y[e] += p[j] * v[j * v_stride + e] for j = 0, 1, ..., rows - 1 in that order, e < n: the
    // probability-weighted sum of value rows of an attention over a cache whose values are not
    // transposed (cpu/backend.cpp). Each y[e] sees the same operations however the rows are split
    // over calls. The SIMD paths fuse each step (fma, as llama.cpp's ggml_vec_mad_f32); the
    // reference multiplies, then adds.
    void (*weighted_rows)(float* y, const float* v, int64_t v_stride, const float* p, int64_t rows, int64_t n) = nullptr;
    // Transposes 16-bit elements: element c of source row r (src + r * src_stride bytes) to element
    // r of destination row c (dst + c * dst_stride bytes), r < rows, c < cols. MLA attention over
    // an F16 cache transposes its latent values with it each call (cpu/backend.cpp).
    void (*transpose_u16)(const uint8_t* src, size_t src_stride, uint8_t* dst, size_t dst_stride, int64_t rows, int64_t cols) = nullptr;
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
