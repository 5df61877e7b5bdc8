// What the .cu files of libmoerun_cuda.so share: the context, error reporting, scratch memory.
#pragma once

#include <cuda_runtime.h>

#include <cstdarg>
#include <cstdio>
#include <string>
#include <vector>

#include "api.h"

// One device, one stream, and scratch that grows to the largest request (one forward call at a
// time per context: the core's model::compute_mutex).
struct mc_context {
    int device = 0;
    cudaStream_t stream = nullptr;
    std::string error;
    void* act = nullptr;  // activations rounded/quantized for a matmul
    size_t act_bytes = 0;
    void* tmp = nullptr;  // attention scores
    size_t tmp_bytes = 0;
    void* up = nullptr;   // experts' up rows where gate and up differ in type
    size_t up_bytes = 0;
    void* tiles = nullptr;  // a prompt batch's expert rows grouped by expert (matmul.cu)
    size_t tiles_bytes = 0;
    // Steps as graphs (api.h's capture_begin/end, replay). While recording, device memory given
    // up waits in frees_after_capture until the recorded work has run (it may still read it).
    bool capturing = false;
    std::vector<void*> frees_after_capture;
    cudaGraphExec_t graph = nullptr;  // the last recorded step, updated in place by the next recording
    // A recorded step's kernels read its position from dev_pos, which the graph's first node
    // copies from host_pos (page-locked): a replay at another position writes host_pos only.
    int* dev_pos = nullptr;
    int* host_pos = nullptr;
    int record_pos0 = 0;
    int graph_positions = 0;      // the recorded step's attention scratch holds positions < this
    uint64_t generation = 0;      // device memory (re)allocations so far: a graph recorded before one is stale
    uint64_t graph_generation = 0;
};

namespace mc {

inline mc_status status_of(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return MC_OK;
        case cudaErrorInsufficientDriver:
        case cudaErrorNoDevice:
        case cudaErrorStubLibrary:
        case cudaErrorInitializationError:
        case cudaErrorCompatNotSupportedOnDevice:
            return e == cudaErrorNoDevice ? MC_NO_DEVICE : MC_NO_DRIVER;
        case cudaErrorMemoryAllocation: return MC_OUT_OF_MEMORY;
        case cudaErrorNoKernelImageForDevice:
        case cudaErrorInvalidDeviceFunction:
        case cudaErrorUnsupportedPtxVersion:
            return MC_UNSUPPORTED;
        default: return MC_CUDA_ERROR;
    }
}

__attribute__((format(printf, 3, 4))) inline mc_status fail(mc_context* ctx, mc_status s, const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (ctx) ctx->error = buf;
    return s;
}

inline mc_status check(mc_context* ctx, cudaError_t e, const char* what) {
    if (e == cudaSuccess) return MC_OK;
    return fail(ctx, status_of(e), "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

// After a kernel launch: launch errors (bad configuration, no image for this device).
inline mc_status check_launch(mc_context* ctx, const char* kernel) { return check(ctx, cudaGetLastError(), kernel); }

// Gives device memory back once the work queued so far no longer needs it: at once after the
// stream has finished, or, while a step is being recorded, after the recording has run.
inline void free_device(mc_context* ctx, void* p) {
    if (!p) return;
    ++ctx->generation;
    if (ctx->capturing) {
        ctx->frees_after_capture.push_back(p);
        return;
    }
    cudaStreamSynchronize(ctx->stream);
    cudaFree(p);
}

// Grows a scratch buffer to `bytes` (a quarter more, so that slowly growing needs, the attention
// scores of a lengthening context, seldom reallocate). Legal while a step is being recorded.
inline mc_status reserve(mc_context* ctx, void** p, size_t* have, size_t bytes, const char* what) {
    if (*have >= bytes) return MC_OK;
    free_device(ctx, *p);
    *p = nullptr;
    *have = 0;
    const size_t grown = bytes + bytes / 4;
    ++ctx->generation;
    mc_status s = check(ctx, cudaMalloc(p, grown), what);
    if (s == MC_OK) *have = grown;
    return s;
}

#define MC_TRY(expr)                        \
    do {                                    \
        const mc_status s_ = (expr);        \
        if (s_ != MC_OK) return s_;         \
    } while (0)

inline unsigned blocks_for(int64_t n, int per_block) { return unsigned((n + per_block - 1) / per_block); }

// A position as kernels take it: fixed, or, in a recorded step, the step's position read from the
// device when the step runs (so that the recording replays at later positions) plus an offset.
struct step_pos {
    const int* dev;
    int offset;
};
inline step_pos position(const mc_context* ctx, int pos0) {
    return ctx->capturing ? step_pos{ctx->dev_pos, pos0 - ctx->record_pos0} : step_pos{nullptr, pos0};
}
__device__ inline int resolve(step_pos p) { return p.dev ? *p.dev + p.offset : p.offset; }

// Kernel timing, a measuring tool (api.h's kernel_profile): where MOERUN_CUDA_PROFILE is set when
// a context is made, every launch of the process is bracketed by two CUDA events, read when the
// report is asked for (after the stream has finished). Null otherwise: a launch then costs one
// pointer test more. Not in the emulator, which has no events.
#ifndef MOERUN_CUDA_EMULATOR
struct launch_timer {
    struct span {
        const void* kernel;
        cudaEvent_t start, stop;
    };
    std::vector<span> spans;          // launches since the last report
    std::vector<cudaEvent_t> spare;   // events of earlier reports, reused
    cudaEvent_t take() {
        cudaEvent_t e = nullptr;
        if (!spare.empty()) {
            e = spare.back();
            spare.pop_back();
        } else {
            cudaEventCreate(&e);
        }
        return e;
    }
};
inline launch_timer* g_launch_timer = nullptr;
#endif

// kernel<<<grid, block, shared_bytes, stream>>>(args...): the one place that spells a launch, so
// that the CPU emulator (emulator/, MOERUN_CUDA_EMULATOR) runs the same kernels, and that
// launch_timer sees every launch.
template <class... Params, class... Args>
inline void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, const Args&... args) {
#ifdef MOERUN_CUDA_EMULATOR
    mc_emu_launch(grid, block, shared_bytes, stream, [=] { kernel(args...); });  // the arguments copied, as a launch does
#else
    launch_timer* const timer = g_launch_timer;
    if (!timer) {
        kernel<<<grid, block, shared_bytes, stream>>>(args...);
        return;
    }
    const launch_timer::span s{reinterpret_cast<const void*>(kernel), timer->take(), timer->take()};
    cudaEventRecord(s.start, stream);
    kernel<<<grid, block, shared_bytes, stream>>>(args...);
    cudaEventRecord(s.stop, stream);
    timer->spans.push_back(s);
#endif
}

// A kernel's dynamic shared memory (the launch's shared_bytes) as an array of T named `name`.
#ifdef MOERUN_CUDA_EMULATOR
#define MC_DYNAMIC_SHARED(T, name) T* const name = static_cast<T*>(mc_emu_dynamic_shared())
#else
#define MC_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// SwiGLU's gate activation, as the CPU's (x * sigmoid(x)).
__device__ inline float silu(float x) { return x / (1.0f + expf(-x)); }

// ---- tensor cores ----
// D += A . B for a warp: A 16 x 16 int8 (row-major), B 16 x 8 int8 (column-major), D 16 x 8 int32
// (PTX mma.m16n8k16.row.col.s32.s8.s8.s32). Lane l = 4g + t holds, as 4 packed int8, a_lo = A[g][4t..4t+3],
// a_hi = A[g + 8][4t..4t+3], b = B[4t..4t+3][g], and d = {D[g][2t], D[g][2t + 1], D[g + 8][2t],
// D[g + 8][2t + 1]}. Without tensor cores (the emulator) the warp trades its fragments by shuffles.
__device__ inline void mma_16x8x16(int d[4], int a_lo, int a_hi, int b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && !defined(MOERUN_CUDA_EMULATOR)
    asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a_lo), "r"(a_hi), "r"(b));
#else
    const int lane = int(threadIdx.x % 32), g = lane / 4, t = lane % 4;
    for (int s = 0; s < 4; ++s) {  // k = 4s..4s+3, held by lane 4g + s (A) and 4n + s (B, column n)
        const int lo = __shfl_sync(0xffffffffu, a_lo, 4 * g + s), hi = __shfl_sync(0xffffffffu, a_hi, 4 * g + s);
        const int b0 = __shfl_sync(0xffffffffu, b, 4 * (2 * t) + s), b1 = __shfl_sync(0xffffffffu, b, 4 * (2 * t + 1) + s);
        d[0] = __dp4a(lo, b0, d[0]);
        d[1] = __dp4a(lo, b1, d[1]);
        d[2] = __dp4a(hi, b0, d[2]);
        d[3] = __dp4a(hi, b1, d[3]);
    }
#endif
}

// ---- warp and block reductions ----
__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets it.
template <class T>
__device__ inline T block_sum(T v) {
    __shared__ T partial[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < n_warps ? partial[lane] : T(0);
    return warp_sum(v);
}
__device__ inline float block_max(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < n_warps ? partial[lane] : -INFINITY;
    return warp_max(v);
}

}  // namespace mc

// Implemented in matmul.cu and ops.cu, gathered into the table by api.cu.
namespace mc {
mc_status op_matmul(mc_context* ctx, const mc_tensor* w, const float* x, int64_t m, float* y, int64_t y_stride);
mc_status op_matmul_group(mc_context* ctx, const mc_tensor* w, float* const* y, int n, const float* x, int64_t m);
mc_status op_moe_gate_up(mc_context* ctx, const mc_tensor* gate, const mc_tensor* up, const float* x, const int32_t* ids,
                         const int32_t* slot_of, int n_tokens, int n_used, float* h, const mc_tensor* shared_gate = nullptr,
                         const mc_tensor* shared_up = nullptr);
mc_status op_moe_down(mc_context* ctx, const mc_tensor* down, const float* h, const int32_t* ids, const int32_t* slot_of, int64_t rows,
                      float* y, const mc_tensor* shared_down = nullptr, int64_t n_shared = 0);
mc_status op_rms_norm(mc_context* ctx, const float* x, const float* weight, float* out, int64_t rows, int64_t n, int64_t stride, float eps);
mc_status op_add_rms_norm(mc_context* ctx, float* x, const float* y, const float* weight, float* out, int64_t rows, int64_t n, float eps);
mc_status op_rope(mc_context* ctx, float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0,
                  const mc_rope* p);
mc_status op_moe_route(mc_context* ctx, const float* logits, const float* bias, int n_tokens, const mc_moe* p, int32_t* ids, float* weights);
mc_status op_moe_combine(mc_context* ctx, const float* y, const float* weights, int n_tokens, int n_used, int64_t d, const float* add,
                         float* out);
mc_status op_scale_by_sigmoid(mc_context* ctx, float* x, const float* g, int n_tokens, int64_t d);
mc_status op_swiglu(mc_context* ctx, float* gate, const float* up, int64_t n);
mc_status op_copy(mc_context* ctx, const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols);
mc_status op_add(mc_context* ctx, float* x, const float* y, int64_t n);
mc_status op_add_bias(mc_context* ctx, float* y, const float* b, int64_t rows, int64_t dim);
mc_status op_attention_inputs(mc_context* ctx, float* q, float* k, const float* v, int n_tokens, int pos0, const mc_attention_inputs* p);
mc_status op_kv_store(mc_context* ctx, uint32_t type, int pos0, int rows_per_pos, int64_t n, const float* k, int64_t k_stride, int k_dim,
                      void* k_cache, uint64_t k_row_bytes, const float* v, int64_t v_stride, int v_dim, void* v_cache, uint64_t v_row_bytes);
mc_status op_attention(mc_context* ctx, const mc_kv_view* kv, const float* q, int n, int pos0, float* out);
}  // namespace mc
