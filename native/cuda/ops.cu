// The forward pass's other operations: norms, RoPE, element-wise ops, the KV cache, attention
// and expert routing. Each follows the CPU backend's arithmetic (cpu/ops.cpp, cpu/ffn.cpp,
// cpu/backend.cpp) closely enough for NMSE <= 1e-7 against it: sums of squares in double, the
// RoPE angle by repeated multiplication, F16 caches' queries and probabilities rounded to halves.
#include <algorithm>
#include <climits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../base/tensor_type.h"
#include "common.cuh"
#include "dot.cuh"
#include "route.cuh"

using moerun::tensor_type;

namespace {

// ---- norms and element-wise ----

// One block per row; squares in float, summed in double, as ggml. With y (add_rms_norm), the
// row is first x += y, each thread adding the elements it then reads back.
__global__ void rms_norm_rows(float* x, const float* y, const float* weight, float* out, int64_t n, int64_t stride, float eps) {
    float* xr = x + int64_t(blockIdx.x) * stride;
    float* yr = out + int64_t(blockIdx.x) * stride;
    if (y) {
        const float* add = y + int64_t(blockIdx.x) * stride;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] += add[i];
    }
    double sum = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += double(xr[i] * xr[i]);
    sum = mc::block_sum(sum);
    const float mean = float(sum / double(n));
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = weight ? (xr[i] * scale) * weight[i] : xr[i] * scale;
}

__global__ void swiglu_kernel(float* gate, const float* up, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) gate[i] = mc::silu(gate[i]) * up[i];
}

__global__ void copy_kernel(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    const int64_t r = i / cols, c = i % cols;
    dst[r * dst_stride + c] = src[r * src_stride + c];
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

__global__ void add_bias_kernel(float* y, const float* b, int64_t rows, int64_t dim) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < rows * dim) y[i] += b[i % dim];
}

// x[t] *= sigmoid(g[t]), sigmoid as the CPU computes it: silu(g) / g, 0.5 at g = 0.
__global__ void scale_by_sigmoid_kernel(float* x, const float* g, int64_t d, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float gv = g[i / d];
    x[i] *= gv == 0.0f ? 0.5f : gv / (1.0f + expf(-gv)) / gv;
}

// ---- RoPE: one thread per (token, head, rotated pair) ----

__global__ void rope_kernel(float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, mc::step_pos at, mc_rope p) {
    const int pos0 = mc::resolve(at);
    const int pairs = n_rot / 2;
    const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (id >= int64_t(n_tokens) * n_heads * pairs) return;
    const int pair = int(id % pairs);
    const int h = int((id / pairs) % n_heads);
    const int t = int(id / (int64_t(pairs) * n_heads));
    mc::rope_pair(x + int64_t(t) * token_stride + int64_t(h) * head_dim, pair, n_rot, pos0 + t, p);
}

// ---- KV cache and attention ----

// Element i of n rows of keys (the first n * k_dim) and then of values, as cache elements; row r
// goes to cache row at * rows_per_pos + r.
struct kv_rows {
    const float* src;
    int64_t stride;
    int dim;
    uint8_t* cache;
    uint64_t row_bytes;
};
// Element e of a cache row of `type` (F32, F16 or BF16) = x, rounded to nearest even.
__device__ inline void store_cache_element(uint8_t* row, int64_t e, float x, uint32_t type) {
    if (type == uint32_t(tensor_type::F32)) reinterpret_cast<float*>(row)[e] = x;
    else if (type == uint32_t(tensor_type::F16)) reinterpret_cast<__half*>(row)[e] = __float2half_rn(x);
    else reinterpret_cast<uint16_t*>(row)[e] = uint16_t(__float_as_uint(mc::round_bf16(x)) >> 16);
}

__global__ void kv_store_kernel(uint32_t type, mc::step_pos at, int rows_per_pos, int64_t n, kv_rows k, kv_rows v) {
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const bool is_v = i >= n * k.dim;
    const kv_rows& rows = is_v ? v : k;
    if (is_v) i -= n * k.dim;
    if (i >= n * rows.dim) return;
    const int64_t r = i / rows.dim, e = i % rows.dim;
    uint8_t* row = rows.cache + (size_t(mc::resolve(at)) * size_t(rows_per_pos) + size_t(r)) * rows.row_bytes;
    store_cache_element(row, e, rows.src[r * rows.stride + e], type);
}

// One block per head row of a token: the token's n_head q rows, then n_head_kv k rows, then
// n_head_kv v rows. A q or k row: RMSNorm as rms_norm_rows (squares in float summed in double),
// where the row has a norm weight; then RoPE, a thread per pair; a k row is then stored in the
// cache, and a v row only stored. __syncthreads orders each step's writes before the next's reads.
__global__ void attention_inputs_kernel(float* q, float* k, const float* v, mc::step_pos at, mc_attention_inputs p) {
    const int per_token = p.n_head + 2 * p.n_head_kv;
    const int t = int(blockIdx.x) / per_token, r = int(blockIdx.x) % per_token;
    const int pos = mc::resolve(at) + t;
    if (r >= p.n_head + p.n_head_kv) {  // the whole block: a value row
        const int h = r - p.n_head - p.n_head_kv;
        const float* src = v + (int64_t(t) * p.n_head_kv + h) * p.head_dim_v;
        uint8_t* row = static_cast<uint8_t*>(p.v_cache) + (size_t(pos) * size_t(p.n_head_kv) + size_t(h)) * p.v_row_bytes;
        for (int e = threadIdx.x; e < p.head_dim_v; e += blockDim.x) store_cache_element(row, e, src[e], p.cache_type);
        return;
    }
    const bool is_k = r >= p.n_head;
    const int h = is_k ? r - p.n_head : r;
    const int n = p.head_dim_k;
    float* x = is_k ? k + (int64_t(t) * p.n_head_kv + h) * n : q + (int64_t(t) * p.n_head + h) * n;
    const float* weight = is_k ? p.k_norm : p.q_norm;
    if (weight) {
        double sum = 0;
        for (int i = threadIdx.x; i < n; i += blockDim.x) sum += double(x[i] * x[i]);
        sum = mc::block_sum(sum);
        const float mean = float(sum / double(n));
        const float scale = 1.0f / sqrtf(mean + p.eps);
        for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = (x[i] * scale) * weight[i];
        __syncthreads();
    }
    for (int pair = threadIdx.x; pair < p.n_rot / 2; pair += blockDim.x) mc::rope_pair(x, pair, p.n_rot, pos, p.rope);
    if (!is_k) return;
    __syncthreads();
    uint8_t* row = static_cast<uint8_t*>(p.k_cache) + (size_t(pos) * size_t(p.n_head_kv) + size_t(h)) * p.k_row_bytes;
    for (int e = threadIdx.x; e < n; e += blockDim.x) store_cache_element(row, e, x[e], p.cache_type);
}

__device__ inline float kv_at(const uint8_t* row, int e, uint32_t type) {
    if (type == uint32_t(tensor_type::F32)) return reinterpret_cast<const float*>(row)[e];
    if (type == uint32_t(tensor_type::F16)) return __half2float(reinterpret_cast<const __half*>(row)[e]);
    return __uint_as_float(uint32_t(reinterpret_cast<const uint16_t*>(row)[e]) << 16);
}

// The dot product of a query (floats, in shared memory) with a cache row of n elements of `type`,
// read 16 bytes at a time: the row's bytes and its start a multiple of 16.
__device__ inline float dot_cache_row16(const float* q, const uint8_t* row, int n, uint32_t type) {
    float s = 0.0f;
    if (type == uint32_t(tensor_type::F32)) {
        for (int e = 0; e < n; e += 4) {
            const float4 k = *reinterpret_cast<const float4*>(row + size_t(e) * 4);
            s += q[e] * k.x;
            s += q[e + 1] * k.y;
            s += q[e + 2] * k.z;
            s += q[e + 3] * k.w;
        }
        return s;
    }
    const bool f16 = type == uint32_t(tensor_type::F16);
    for (int e = 0; e < n; e += 8) {
        const uint4 k = *reinterpret_cast<const uint4*>(row + size_t(e) * 2);
        const unsigned words[4] = {k.x, k.y, k.z, k.w};
        for (int i = 0; i < 4; ++i) {
            const float lo = f16 ? mc::f16_of(uint16_t(words[i])) : mc::float_of(words[i] << 16);
            const float hi = f16 ? mc::f16_of(uint16_t(words[i] >> 16)) : mc::float_of(words[i] & 0xffff0000u);
            s += q[e + 2 * i] * lo;
            s += q[e + 2 * i + 1] * hi;
        }
    }
    return s;
}

// One block per (head, query token), k_attention_warps warps. Scores go to `scores` (n_kv_max
// floats per block), each position's whole dot product by one thread (a warp per position, its
// lanes' sums added by shuffles, made a decode step's 600 positions a chain of 75 reductions per
// warp on 16 blocks); then softmax; then the weighted
// sum of values: warp w sums the positions j = w (mod warps) for 4 output elements per lane at a
// time (their loads independent of each other), and the warps' partial sums are added in warp
// order. As the CPU: an F16 cache sees the query rounded to F16 and the probabilities rounded to
// F16; BF16 the query rounded to BF16. Shared memory: head_dim_k floats (the query), then
// warps x head_dim_v floats (the partial sums).
constexpr int k_attention_warps = 8;
__global__ void attention_kernel(mc_kv_view kv, const float* q, mc::step_pos at, float* out, float* scores_all, int n_kv_max) {
    const int pos0 = mc::resolve(at);
    MC_DYNAMIC_SHARED(float, sh);
    float* q_sh = sh;
    float* partial = sh + kv.head_dim_k;
    const int h = blockIdx.x, i = blockIdx.y;
    const int hk = h / (kv.n_head / kv.n_head_kv);
    const int n_kv = pos0 + i + 1;
    const bool f16 = kv.type == uint32_t(tensor_type::F16), bf16 = kv.type == uint32_t(tensor_type::BF16);
    const float* qh = q + (int64_t(i) * kv.n_head + h) * kv.head_dim_k;
    for (int e = threadIdx.x; e < kv.head_dim_k; e += blockDim.x) {
        const float v = qh[e];
        q_sh[e] = f16 ? mc::round_f16(v) : bf16 ? mc::round_bf16(v) : v;
    }
    __syncthreads();
    float* scores = scores_all + (int64_t(i) * kv.n_head + h) * n_kv_max;
    const uint8_t* k0 = static_cast<const uint8_t*>(kv.k) + size_t(hk) * kv.k_row_bytes;
    const size_t k_step = size_t(kv.n_head_kv) * kv.k_row_bytes;  // between positions
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    const size_t k_bytes = size_t(kv.head_dim_k) * (kv.type == uint32_t(tensor_type::F32) ? 4 : 2);
    const bool rows16 = k_bytes % 16 == 0 && kv.k_row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(kv.k) % 16 == 0;
    for (int j = threadIdx.x; j < n_kv; j += blockDim.x) {
        const uint8_t* krow = k0 + size_t(j) * k_step;
        float s = 0;
        if (rows16) {
            s = dot_cache_row16(q_sh, krow, kv.head_dim_k, kv.type);
        } else {
            for (int e = 0; e < kv.head_dim_k; ++e) s += q_sh[e] * kv_at(krow, e, kv.type);
        }
        scores[j] = s * kv.scale;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n_kv; j += blockDim.x) mx = fmaxf(mx, scores[j]);
    mx = mc::block_max(mx);
    double sum = 0;
    for (int j = threadIdx.x; j < n_kv; j += blockDim.x) {
        const float e = expf(scores[j] - mx);
        scores[j] = e;
        sum += double(e);
    }
    sum = mc::block_sum(sum);
    const float inv = float(1.0 / sum);
    for (int j = threadIdx.x; j < n_kv; j += blockDim.x) {
        const float p = scores[j] * inv;
        scores[j] = f16 ? __half2float(__float2half_rn(p)) : p;
    }
    __syncthreads();
    const uint8_t* v0 = static_cast<const uint8_t*>(kv.v) + size_t(hk) * kv.v_row_bytes;
    const size_t v_step = size_t(kv.n_head_kv) * kv.v_row_bytes;
    for (int e0 = 0; e0 < kv.head_dim_v; e0 += 4 * 32) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int j = warp; j < n_kv; j += n_warps) {
            const float p = scores[j];
            const uint8_t* vrow = v0 + size_t(j) * v_step;
            for (int c = 0; c < 4; ++c) {
                const int e = e0 + c * 32 + lane;
                if (e < kv.head_dim_v) acc[c] += p * kv_at(vrow, e, kv.type);
            }
        }
        for (int c = 0; c < 4; ++c) {
            const int e = e0 + c * 32 + lane;
            if (e < kv.head_dim_v) partial[warp * kv.head_dim_v + e] = acc[c];
        }
    }
    __syncthreads();
    float* oh = out + (int64_t(i) * kv.n_head + h) * kv.head_dim_v;
    for (int e = threadIdx.x; e < kv.head_dim_v; e += blockDim.x) {
        float o = partial[e];
        for (int w = 1; w < n_warps; ++w) o += partial[w * kv.head_dim_v + e];
        oh[e] = o;
    }
}

// ---- expert routing: one block per token (route.cuh's route_token_block) ----

__global__ void moe_route_kernel(const float* logits, const float* bias, mc_moe p, int32_t* ids, float* weights) {
    MC_DYNAMIC_SHARED(float, sh);
    const int64_t t = blockIdx.x;
    mc::route_token_block(logits + t * p.n_expert, bias, p, sh, ids + t * p.n_expert_used, weights + t * p.n_expert_used);
}

__global__ void moe_combine_kernel(const float* y, const float* weights, int n_used, int64_t d, int64_t n, const float* add, float* out) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t t = i / d, e = i % d;
    const float* w = weights + t * n_used;
    const float* yt = y + t * n_used * d;
    float o = yt[e] * w[0];
    for (int k = 1; k < n_used; ++k) o += yt[int64_t(k) * d + e] * w[k];
    out[i] = add ? o + add[i] : o;
}

constexpr int k_threads = 256;

}  // namespace

mc_status mc::op_rms_norm(mc_context* ctx, const float* x, const float* weight, float* out, int64_t rows, int64_t n, int64_t stride, float eps) {
    if (rows <= 0) return MC_OK;
    // x is only read (no y): the kernel's x is writable for add_rms_norm's sake.
    mc::launch(rms_norm_rows, unsigned(rows), k_threads, 0, ctx->stream, const_cast<float*>(x), static_cast<const float*>(nullptr), weight,
               out, n, stride, eps);
    return mc::check_launch(ctx, "rms_norm");
}

mc_status mc::op_add_rms_norm(mc_context* ctx, float* x, const float* y, const float* weight, float* out, int64_t rows, int64_t n, float eps) {
    if (rows <= 0) return MC_OK;
    mc::launch(rms_norm_rows, unsigned(rows), k_threads, 0, ctx->stream, x, y, weight, out, n, n, eps);
    return mc::check_launch(ctx, "add_rms_norm");
}

mc_status mc::op_rope(mc_context* ctx, float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0,
                  const mc_rope* p) {
    const int64_t n = int64_t(n_tokens) * n_heads * (n_rot / 2);
    if (n <= 0) return MC_OK;
    mc::launch(rope_kernel, mc::blocks_for(n, k_threads), k_threads, 0, ctx->stream, x, n_tokens, token_stride, n_heads, head_dim,
               n_rot, mc::position(ctx, pos0), *p);
    return mc::check_launch(ctx, "rope");
}

mc_status mc::op_attention_inputs(mc_context* ctx, float* q, float* k, const float* v, int n_tokens, int pos0, const mc_attention_inputs* p) {
    if (n_tokens <= 0) return MC_OK;
    const uint32_t t = p->cache_type;
    if (t != uint32_t(tensor_type::F32) && t != uint32_t(tensor_type::F16) && t != uint32_t(tensor_type::BF16)) {
        return mc::fail(ctx, MC_UNSUPPORTED, "cuda: attention_inputs: cache type %u", t);
    }
    if (p->n_rot > p->head_dim_k || p->n_rot % 2 != 0) return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: attention_inputs: n_rot %d", p->n_rot);
    const int64_t blocks = int64_t(n_tokens) * (p->n_head + 2 * p->n_head_kv);
    mc::launch(attention_inputs_kernel, unsigned(blocks), 128u, 0, ctx->stream, q, k, v, mc::position(ctx, pos0), *p);
    return mc::check_launch(ctx, "attention_inputs");
}

mc_status mc::op_swiglu(mc_context* ctx, float* gate, const float* up, int64_t n) {
    if (n <= 0) return MC_OK;
    mc::launch(swiglu_kernel, mc::blocks_for(n, k_threads), k_threads, 0, ctx->stream, gate, up, n);
    return mc::check_launch(ctx, "swiglu");
}

mc_status mc::op_copy(mc_context* ctx, const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return MC_OK;
    if (src_stride == cols && dst_stride == cols) {
        return mc::check(ctx, cudaMemcpyAsync(dst, src, size_t(rows * cols) * sizeof(float), cudaMemcpyDeviceToDevice, ctx->stream), "copy");
    }
    mc::launch(copy_kernel, mc::blocks_for(rows * cols, k_threads), k_threads, 0, ctx->stream, src, src_stride, dst, dst_stride, rows,
               cols);
    return mc::check_launch(ctx, "copy");
}

mc_status mc::op_add(mc_context* ctx, float* x, const float* y, int64_t n) {
    if (n <= 0) return MC_OK;
    mc::launch(add_kernel, mc::blocks_for(n, k_threads), k_threads, 0, ctx->stream, x, y, n);
    return mc::check_launch(ctx, "add");
}

mc_status mc::op_add_bias(mc_context* ctx, float* y, const float* b, int64_t rows, int64_t dim) {
    if (rows * dim <= 0) return MC_OK;
    mc::launch(add_bias_kernel, mc::blocks_for(rows * dim, k_threads), k_threads, 0, ctx->stream, y, b, rows, dim);
    return mc::check_launch(ctx, "add_bias");
}

mc_status mc::op_scale_by_sigmoid(mc_context* ctx, float* x, const float* g, int n_tokens, int64_t d) {
    const int64_t n = int64_t(n_tokens) * d;
    if (n <= 0) return MC_OK;
    mc::launch(scale_by_sigmoid_kernel, mc::blocks_for(n, k_threads), k_threads, 0, ctx->stream, x, g, d, n);
    return mc::check_launch(ctx, "scale_by_sigmoid");
}

mc_status mc::op_kv_store(mc_context* ctx, uint32_t type, int pos0, int rows_per_pos, int64_t n, const float* k, int64_t k_stride, int k_dim,
                          void* k_cache, uint64_t k_row_bytes, const float* v, int64_t v_stride, int v_dim, void* v_cache,
                          uint64_t v_row_bytes) {
    if (type != uint32_t(tensor_type::F32) && type != uint32_t(tensor_type::F16) && type != uint32_t(tensor_type::BF16)) {
        return mc::fail(ctx, MC_UNSUPPORTED, "cuda: kv_store: cache type %u is not F32, F16 or BF16", type);
    }
    const kv_rows kr{k, k_stride, k_dim, static_cast<uint8_t*>(k_cache), k_row_bytes};
    const kv_rows vr{v, v_stride, v ? v_dim : 0, static_cast<uint8_t*>(v_cache), v_row_bytes};
    const int64_t total = n * (int64_t(kr.dim) + vr.dim);
    if (total <= 0) return MC_OK;
    mc::launch(kv_store_kernel, mc::blocks_for(total, k_threads), k_threads, 0, ctx->stream, type, mc::position(ctx, pos0), rows_per_pos, n,
               kr, vr);
    return mc::check_launch(ctx, "kv_store");
}

mc_status mc::op_attention(mc_context* ctx, const mc_kv_view* kv, const float* q, int n, int pos0, float* out) {
    if (n <= 0) return MC_OK;
    // Scores: n_kv_max floats per (query, head). A recorded step keeps room for twice its
    // positions (at least 1024), so that its replays at later positions fit.
    int n_kv_max = pos0 + n;
    if (ctx->capturing) n_kv_max = std::max(2 * n_kv_max, 1024);
    const size_t per_position = size_t(n) * size_t(kv->n_head) * sizeof(float);
    MC_TRY(mc::reserve(ctx, &ctx->tmp, &ctx->tmp_bytes, per_position * size_t(n_kv_max), "attention scores"));
    if (ctx->capturing) {
        n_kv_max = int(std::min<size_t>(ctx->tmp_bytes / per_position, INT_MAX));
        ctx->graph_positions = std::min(ctx->graph_positions, n_kv_max - n + 1);
    }
    const size_t shared = (size_t(kv->head_dim_k) + size_t(k_attention_warps) * size_t(kv->head_dim_v)) * sizeof(float);
    if (shared > 48 * 1024) {
        return mc::fail(ctx, MC_UNSUPPORTED, "cuda: attention: heads of %d (keys) and %d (values) elements are too large", kv->head_dim_k,
                        kv->head_dim_v);
    }
    const dim3 grid(unsigned(kv->n_head), unsigned(n));
    mc::launch(attention_kernel, grid, 32 * k_attention_warps, shared, ctx->stream, *kv, q, mc::position(ctx, pos0), out,
               static_cast<float*>(ctx->tmp), n_kv_max);
    return mc::check_launch(ctx, "attention");
}

mc_status mc::op_moe_route(mc_context* ctx, const float* logits, const float* bias, int n_tokens, const mc_moe* p, int32_t* ids, float* weights) {
    if (n_tokens <= 0) return MC_OK;
    if (p->n_expert_used > 64 || p->n_groups > 64 || p->n_expert_used > p->n_expert) {
        return mc::fail(ctx, MC_UNSUPPORTED, "cuda: moe_route: %d of %d experts in %d groups is beyond these kernels (at most 64 used, 64 groups)",
                        p->n_expert_used, p->n_expert, p->n_groups);
    }
    const size_t shared = 2 * size_t(p->n_expert) * sizeof(float) + size_t(p->n_expert);
    if (shared > 48 * 1024) return mc::fail(ctx, MC_UNSUPPORTED, "cuda: moe_route: %d experts is beyond these kernels", p->n_expert);
    // One warp per token: its barriers are a warp's, and 256 experts are 8 per lane.
    mc::launch(moe_route_kernel, unsigned(n_tokens), 32u, shared, ctx->stream, logits, bias, *p, ids, weights);
    return mc::check_launch(ctx, "moe_route");
}

mc_status mc::op_moe_combine(mc_context* ctx, const float* y, const float* weights, int n_tokens, int n_used, int64_t d, const float* add,
                             float* out) {
    const int64_t n = int64_t(n_tokens) * d;
    if (n <= 0) return MC_OK;
    mc::launch(moe_combine_kernel, mc::blocks_for(n, k_threads), k_threads, 0, ctx->stream, y, weights, n_used, d, n, add, out);
    return mc::check_launch(ctx, "moe_combine");
}
