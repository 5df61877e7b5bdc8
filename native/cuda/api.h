// The C interface of libmoerun_cuda.so, the CUDA backend's device half.
//
// native/cuda/ holds two halves:
//   *.cu  (nvcc) -> libmoerun_cuda.so: kernels and the CUDA runtime (linked statically), behind the
//                   plain-C table below. Nothing C++ crosses it (no exceptions, no std types), so the
//                   library works with any build of the core (static libstdc++ prebuilds included).
//   *.cpp (g++)  -> the core: loader.cpp finds and dlopen()s the library only when a GPU is asked
//                   for or probed; backend.cpp implements backend/backend.h by calling this table.
// The core never links the CUDA runtime, so the .node loads on machines with no NVIDIA driver.
//
// Every function returns an mc_status; on failure mc_last_error(ctx) (or the msg buffer of the
// context-free calls) says what failed, naming the CUDA call and its error string. All device
// work of a context is ordered on its one stream; only upload, download and synchronize wait for it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MC_API_VERSION 9

typedef enum mc_status {
    MC_OK = 0,
    MC_NO_DRIVER = 1,       // no NVIDIA driver, or one too old for this library's CUDA runtime
    MC_NO_DEVICE = 2,       // a driver but no (such) device
    MC_OUT_OF_MEMORY = 3,
    MC_UNSUPPORTED = 4,     // a type or shape these kernels do not handle
    MC_INVALID_ARGUMENT = 5,
    MC_CUDA_ERROR = 6,      // any other CUDA failure (a kernel fault, a launch error)
} mc_status;

// A weight on the device: ne[0] elements per row (row_stride bytes), ne[1] rows, ne[2] experts
// (expert e starts at row e * ne[1]). type: GGUF's type id (base/tensor_type.h).
typedef struct mc_tensor {
    const void* data;
    uint32_t type;
    int64_t ne[4];
    uint64_t row_stride;
} mc_tensor;

typedef struct mc_device_info {
    char name[256];
    uint64_t total_bytes, free_bytes;  // device memory
    int cc_major, cc_minor;            // compute capability
    int sm_count;
    int driver_version, runtime_version;  // 13000 = CUDA 13.0
} mc_device_info;

// RoPE parameters (backend/model_desc.h's model_config fields; theta_scale precomputed on the host
// as base^(-2/n_rot) so both backends start from the same float).
typedef struct mc_rope {
    int neox;            // 0: rotate pairs (2i, 2i+1); 1: rotate (i, i + n_rot/2)
    float theta_scale;   // theta_{i+1} = theta_i * theta_scale, theta_0 = position
    float freq_scale, ext_factor, mscale, corr_dims[2];
} mc_rope;

// A layer's attention inputs (api.attention_inputs): q and k rows of head_dim_k floats get their
// RMSNorm (q_norm / k_norm: head_dim_k floats, null: none) and RoPE; k and v rows are then stored
// in a cache of cache_type (F32, F16 or BF16) as kv_store stores them (n_head_kv rows per position).
typedef struct mc_attention_inputs {
    int n_head, n_head_kv, head_dim_k, head_dim_v, n_rot;
    const float* q_norm;
    const float* k_norm;
    float eps;
    mc_rope rope;
    uint32_t cache_type;
    void* k_cache;
    uint64_t k_row_bytes;
    void* v_cache;
    uint64_t v_row_bytes;
} mc_attention_inputs;

// Expert routing (model_config's MoE fields).
typedef struct mc_moe {
    int n_expert, n_expert_used;
    int sigmoid;          // 0: softmax over all experts; 1: sigmoid of each logit
    int norm;             // renormalize the selected weights to sum 1
    float scale;          // then multiply them by this (1 = none)
    int n_groups, n_group_used;  // group-limited top-k (1, 1 = none)
} mc_moe;

// One layer's cache as attention reads it: rows of head_dim elements of `type` (F32 or F16),
// (position, KV head) major. MLA: v = k, v_row_stride = k's, head_dim_v < head_dim_k (the latent
// part of each key row).
typedef struct mc_kv_view {
    uint32_t type;
    void* k;
    void* v;
    uint64_t k_row_bytes, v_row_bytes;  // one head's row
    int n_head, n_head_kv, head_dim_k, head_dim_v;
    float scale;          // score scale
} mc_kv_view;

typedef struct mc_context mc_context;

typedef struct mc_api {
    int version;  // MC_API_VERSION
    // ---- devices (no context) ----
    mc_status (*device_count)(int* n, char* msg, size_t msg_cap);
    mc_status (*device_info)(int device, mc_device_info* out, char* msg, size_t msg_cap);
    // Whether the library has kernels for the device's compute capability.
    mc_status (*device_supported)(int device, int* supported, char* msg, size_t msg_cap);
    // ---- context: one device, one stream ----
    mc_status (*create)(int device, mc_context** out, char* msg, size_t msg_cap);
    void (*destroy)(mc_context* ctx);
    const char* (*last_error)(mc_context* ctx);
    // ---- memory ----
    mc_status (*alloc)(mc_context* ctx, size_t bytes, void** out);
    void (*free)(mc_context* ctx, void* p);
    mc_status (*upload)(mc_context* ctx, void* dst, const void* host_src, size_t bytes);
    mc_status (*download)(mc_context* ctx, void* host_dst, const void* src, size_t bytes);  // waits
    mc_status (*synchronize)(mc_context* ctx);
    // Page-locked host memory, for copies that do not wait: an async copy's host memory must not
    // be touched until a later synchronize (or download) returns.
    mc_status (*alloc_host)(mc_context* ctx, size_t bytes, void** out);
    void (*free_host)(mc_context* ctx, void* p);
    mc_status (*upload_async)(mc_context* ctx, void* dst, const void* host_src, size_t bytes);
    mc_status (*download_async)(mc_context* ctx, void* host_dst, const void* src, size_t bytes);
    // ---- operations (device pointers; rows contiguous unless a stride in floats is given) ----
    // out (rows x n) = x / rms(x) * weight (weight may be null); x and out may alias.
    mc_status (*rms_norm)(mc_context* ctx, const float* x, const float* weight, float* out, int64_t rows, int64_t n, int64_t stride,
                          float eps);
    mc_status (*rope)(mc_context* ctx, float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0,
                      const mc_rope* p);
    // y (m x w.ne[1], rows y_stride floats apart) = x (m x w.ne[0]) . w^T. Activations are rounded
    // to the weight's dot type first, as the CPU does: F16/BF16 weights to halves, quantized ones
    // to int8 blocks (Q8_0, Q8_1 or Q8_K).
    mc_status (*matmul)(mc_context* ctx, const mc_tensor* w, const float* x, int64_t m, float* y, int64_t y_stride);
    // y[i] (m x w[i].ne[1], contiguous) = x . w[i]^T for n weights of one row length, as matmul,
    // with x rounded or quantized once for each run of weights of one dot type (Q, K and V of
    // Q4_K and Q6_K: one Q8_K quantization instead of three).
    mc_status (*matmul_group)(mc_context* ctx, const mc_tensor* w, float* const* y, int n, const float* x, int64_t m);
    // Routed experts. rows = n_tokens * n_used (token t, slot k: row t * n_used + k); ids
    // (rows) on the device; no ids (and no slot_of): a dense FFN's gate and up (n_used 1). gate_up: h[row] = silu(x[t] . gate[e]^T) * (x[t] . up[e]^T);
    // down: y[row] = h[row] . down[e]^T. Expert e is at e * ne[1] rows into the weights, or, with
    // slot_of (n_expert ints on the device; null: every expert is there), in slot slot_of[e] of
    // a tensor holding only the experts the device keeps; a row whose expert has slot -1 is left
    // to another pass or the host: h and y are not written there.
    // A shared expert of the routed experts' types and shapes joins their passes (null: none):
    // gate_up writes its rows after the routed ones (h row rows + t: token t), and down reads
    // h rows [rows, rows + n_shared) through shared_down into y rows [rows, rows + n_shared).
    mc_status (*moe_gate_up)(mc_context* ctx, const mc_tensor* gate, const mc_tensor* up, const float* x, const int32_t* ids,
                             const int32_t* slot_of, int n_tokens, int n_used, float* h, const mc_tensor* shared_gate,
                             const mc_tensor* shared_up);
    mc_status (*moe_down)(mc_context* ctx, const mc_tensor* down, const float* h, const int32_t* ids, const int32_t* slot_of, int64_t rows,
                          float* y, const mc_tensor* shared_down, int64_t n_shared);
    // ids, weights (n_tokens x n_used) from router logits (n_tokens x n_expert), bias optional.
    mc_status (*moe_route)(mc_context* ctx, const float* logits, const float* bias, int n_tokens, const mc_moe* p, int32_t* ids,
                           float* weights);
    // out[t] = sum over slots k in order of y[t * n_used + k] * weights[t * n_used + k] (d floats),
    // then + add[t] where add is given (the shared expert's rows).
    mc_status (*moe_combine)(mc_context* ctx, const float* y, const float* weights, int n_tokens, int n_used, int64_t d, const float* add,
                             float* out);
    // x[t] *= sigmoid(g[t]) for n_tokens rows of d floats (qwen2moe's shared-expert gate).
    mc_status (*scale_by_sigmoid)(mc_context* ctx, float* x, const float* g, int n_tokens, int64_t d);
    mc_status (*copy)(mc_context* ctx, const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols);
    mc_status (*add)(mc_context* ctx, float* x, const float* y, int64_t n);
    // x[0..n) = 0.
    mc_status (*zero)(mc_context* ctx, float* x, int64_t n);
    mc_status (*add_bias)(mc_context* ctx, float* y, const float* b, int64_t rows, int64_t dim);
    // Stores n rows of keys and of values at positions pos0..: row i of k (k_dim floats at
    // k + i * k_stride) becomes cache row pos0 * rows_per_pos + i of `type` in k_cache (rows
    // k_row_bytes apart), and likewise for v (null: keys only).
    mc_status (*kv_store)(mc_context* ctx, uint32_t type, int pos0, int rows_per_pos, int64_t n, const float* k, int64_t k_stride, int k_dim,
                          void* k_cache, uint64_t k_row_bytes, const float* v, int64_t v_stride, int v_dim, void* v_cache,
                          uint64_t v_row_bytes);
    // Causal attention of n queries at positions pos0.. over cached positions 0..pos0+i.
    mc_status (*attention)(mc_context* ctx, const mc_kv_view* kv, const float* q, int n, int pos0, float* out);
    // x += y, then out = rms_norm(x) * weight (as rms_norm), for rows contiguous rows of n floats.
    mc_status (*add_rms_norm)(mc_context* ctx, float* x, const float* y, const float* weight, float* out, int64_t rows, int64_t n,
                              float eps);
    // q (n_tokens x n_head rows), k and v (n_tokens x n_head_kv rows), each contiguous, of token
    // i at position pos0 + i: RMSNorm and RoPE of q and k in place, then k and v into the cache,
    // in one kernel (the steps between a layer's projections and its attention).
    mc_status (*attention_inputs)(mc_context* ctx, float* q, float* k, const float* v, int n_tokens, int pos0, const mc_attention_inputs* p);
    // ---- steps as graphs ----
    // Between capture_begin and capture_end the context's operations are recorded, not run; then
    // capture_end runs the recording as one CUDA graph (updating the previous recording's graph in
    // place when only the kernels' arguments changed). pos0: the step's position; the recorded
    // kernels read it from the device, so that replay(pos) can run the recording again for the
    // same step at position pos with no recording: one graph launch per token. In between, alloc
    // works and free waits for the end; nothing may wait for the device: upload, download,
    // synchronize and alloc_host fail (MC_INVALID_ARGUMENT). A launch that fails spoils the
    // recording (capture_end then runs nothing and returns the error); an operation refused
    // before its launch is only missing from it. capture_begin returns MC_UNSUPPORTED where
    // graphs are off (kernel timing), and the operations then simply run.
    mc_status (*capture_begin)(mc_context* ctx, int pos0);
    mc_status (*capture_end)(mc_context* ctx);
    // Runs the last recording again at position pos0 (launch 0: only says whether it can):
    // MC_UNSUPPORTED where there is none, device memory was (re)allocated since (its pointers may
    // be stale), or its attention scratch holds fewer positions. The caller vouches that the step
    // is the recorded one but for its position (same buffers, same operations), and that the last
    // step that read the position has finished (a download or synchronize since).
    mc_status (*replay)(mc_context* ctx, int pos0, int launch);
    // ---- measuring ----
    // Where MOERUN_CUDA_PROFILE was set when the context was made, every kernel launch is timed
    // on the device (CUDA events): this waits for the stream, writes one line per kernel launched
    // since the last call (launches and device µs, each divided by `per`, e.g. decode steps; then
    // µs per launch) and a total line into report, and starts over. Otherwise the report is empty.
    mc_status (*kernel_profile)(mc_context* ctx, int per, char* report, size_t cap);
} mc_api;

// The library's one export.
const mc_api* moerun_cuda_api(void);
typedef const mc_api* (*moerun_cuda_api_fn)(void);

#ifdef __cplusplus
}
#endif
