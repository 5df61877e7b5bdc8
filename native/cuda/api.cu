// libmoerun_cuda.so's entry: devices, contexts, memory, and the table of api.h.
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>
#ifndef MOERUN_CUDA_EMULATOR
#include <cxxabi.h>

#include <algorithm>
#include <map>
#endif

#include "common.cuh"

namespace {

void write_msg(char* msg, size_t cap, const char* text) {
    if (!msg || cap == 0) return;
    std::strncpy(msg, text, cap - 1);
    msg[cap - 1] = '\0';
}

mc_status check_msg(cudaError_t e, const char* what, char* msg, size_t cap) {
    if (e == cudaSuccess) return MC_OK;
    char buf[512];
    std::snprintf(buf, sizeof buf, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    write_msg(msg, cap, buf);
    return mc::status_of(e);
}

mc_status device_count(int* n, char* msg, size_t cap) {
    *n = 0;
    return check_msg(cudaGetDeviceCount(n), "cudaGetDeviceCount", msg, cap);
}

mc_status device_info(int device, mc_device_info* out, char* msg, size_t cap) {
    std::memset(out, 0, sizeof *out);
    cudaDeviceProp prop;
    MC_TRY(check_msg(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties", msg, cap));
    std::snprintf(out->name, sizeof out->name, "%s", prop.name);
    out->total_bytes = prop.totalGlobalMem;
    out->cc_major = prop.major;
    out->cc_minor = prop.minor;
    out->sm_count = prop.multiProcessorCount;
    cudaDriverGetVersion(&out->driver_version);
    cudaRuntimeGetVersion(&out->runtime_version);
    int previous = 0;
    cudaGetDevice(&previous);
    if (cudaSetDevice(device) == cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) out->free_bytes = free_b;
        cudaSetDevice(previous);
    }
    return MC_OK;
}

__global__ void probe_kernel(int* out) {
    if (out) *out = 1;
}

// Whether this library carries code (SASS or PTX) the device can run.
mc_status device_supported(int device, int* supported, char* msg, size_t cap) {
    *supported = 0;
    MC_TRY(check_msg(cudaSetDevice(device), "cudaSetDevice", msg, cap));
    cudaFuncAttributes attr;
    const cudaError_t e = cudaFuncGetAttributes(&attr, probe_kernel);
    if (e == cudaSuccess) {
        *supported = 1;
        return MC_OK;
    }
    if (e == cudaErrorInvalidDeviceFunction || e == cudaErrorNoKernelImageForDevice) {
        cudaGetLastError();
        return MC_OK;
    }
    return check_msg(e, "cudaFuncGetAttributes", msg, cap);
}

mc_status create(int device, mc_context** out, char* msg, size_t cap) {
    *out = nullptr;
    MC_TRY(check_msg(cudaSetDevice(device), "cudaSetDevice", msg, cap));
    cudaStream_t stream;
    MC_TRY(check_msg(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate", msg, cap));
    mc_context* ctx = new (std::nothrow) mc_context;
    if (!ctx) {
        cudaStreamDestroy(stream);
        write_msg(msg, cap, "cuda: out of host memory");
        return MC_OUT_OF_MEMORY;
    }
    ctx->device = device;
    ctx->stream = stream;
#ifndef MOERUN_CUDA_EMULATOR
    if (std::getenv("MOERUN_CUDA_PROFILE") && !mc::g_launch_timer) mc::g_launch_timer = new (std::nothrow) mc::launch_timer;  // lives with the process
#endif
    *out = ctx;
    return MC_OK;
}

void destroy(mc_context* ctx) {
    if (!ctx) return;
    cudaSetDevice(ctx->device);
    if (ctx->capturing) {
        cudaGraph_t unused = nullptr;
        cudaStreamEndCapture(ctx->stream, &unused);
        if (unused) cudaGraphDestroy(unused);
        ctx->capturing = false;
    }
    cudaStreamSynchronize(ctx->stream);
    for (void* p : ctx->frees_after_capture) cudaFree(p);
    for (void* p : {ctx->act, ctx->tmp, ctx->up, ctx->tiles, static_cast<void*>(ctx->dev_pos)}) cudaFree(p);
    if (ctx->host_pos) cudaFreeHost(ctx->host_pos);
    if (ctx->graph) cudaGraphExecDestroy(ctx->graph);
    cudaGetLastError();
    cudaStreamDestroy(ctx->stream);
    delete ctx;
}

const char* last_error(mc_context* ctx) { return ctx ? ctx->error.c_str() : ""; }

// Every entry point makes the context's device current: the core may call from any thread.
#define MC_ON_DEVICE(ctx) MC_TRY(mc::check(ctx, cudaSetDevice((ctx)->device), "cudaSetDevice"))
// The calls that wait for the device (or pin host memory) are refused while a step is recorded.
#define MC_NOT_CAPTURING(ctx, what)                                                                                      \
    do {                                                                                                                 \
        if ((ctx)->capturing) return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: %s while a step is being recorded", what); \
    } while (0)

mc_status alloc(mc_context* ctx, size_t bytes, void** out) {
    *out = nullptr;
    MC_ON_DEVICE(ctx);
    if (bytes == 0) bytes = 1;
    ++ctx->generation;
    const cudaError_t e = cudaMalloc(out, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return mc::fail(ctx, MC_OUT_OF_MEMORY, "cuda: cannot allocate %zu bytes of device memory (%zu of %zu free)", bytes, free_b, total_b);
    }
    return mc::check(ctx, e, "cudaMalloc");
}

void free_(mc_context* ctx, void* p) {
    if (!p) return;
    cudaSetDevice(ctx->device);
    mc::free_device(ctx, p);
}

mc_status upload(mc_context* ctx, void* dst, const void* src, size_t bytes) {
    MC_ON_DEVICE(ctx);
    MC_NOT_CAPTURING(ctx, "upload");
    // Synchronous: the source may be a mapped file's pages or a caller's temporary.
    MC_TRY(mc::check(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream), "upload"));
    return mc::check(ctx, cudaStreamSynchronize(ctx->stream), "upload");
}

mc_status download(mc_context* ctx, void* dst, const void* src, size_t bytes) {
    MC_ON_DEVICE(ctx);
    MC_NOT_CAPTURING(ctx, "download");
    MC_TRY(mc::check(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream), "download"));
    return mc::check(ctx, cudaStreamSynchronize(ctx->stream), "download (or a kernel before it)");
}

mc_status alloc_host(mc_context* ctx, size_t bytes, void** out) {
    *out = nullptr;
    MC_ON_DEVICE(ctx);
    MC_NOT_CAPTURING(ctx, "page-locked host memory");
    const cudaError_t e = cudaMallocHost(out, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return mc::fail(ctx, MC_OUT_OF_MEMORY, "cuda: cannot allocate %zu bytes of page-locked host memory", bytes);
    }
    return mc::check(ctx, e, "cudaMallocHost");
}

void free_host(mc_context* ctx, void* p) {
    if (!p) return;
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(ctx->stream);  // no copy may still use it
    cudaFreeHost(p);
}

mc_status upload_async(mc_context* ctx, void* dst, const void* src, size_t bytes) {
    MC_ON_DEVICE(ctx);
    return mc::check(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream), "upload");
}

mc_status download_async(mc_context* ctx, void* dst, const void* src, size_t bytes) {
    MC_ON_DEVICE(ctx);
    return mc::check(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream), "download");
}

mc_status synchronize(mc_context* ctx) {
    MC_ON_DEVICE(ctx);
    MC_NOT_CAPTURING(ctx, "synchronize");
    return mc::check(ctx, cudaStreamSynchronize(ctx->stream), "synchronize (or a kernel before it)");
}

// ---- steps as graphs ----

mc_status capture_begin(mc_context* ctx, int pos0) {
    MC_ON_DEVICE(ctx);
    if (ctx->capturing) return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: capture_begin: a step is already being recorded");
#ifndef MOERUN_CUDA_EMULATOR
    if (mc::g_launch_timer) return mc::fail(ctx, MC_UNSUPPORTED, "cuda: graphs are off while kernels are timed (MOERUN_CUDA_PROFILE)");
#endif
    if (!ctx->dev_pos) {
        MC_TRY(mc::check(ctx, cudaMalloc(reinterpret_cast<void**>(&ctx->dev_pos), sizeof(int)), "cudaMalloc (step position)"));
        MC_TRY(mc::check(ctx, cudaMallocHost(reinterpret_cast<void**>(&ctx->host_pos), sizeof(int)), "cudaMallocHost (step position)"));
    }
    ctx->record_pos0 = pos0;
    *ctx->host_pos = pos0;
    ctx->graph_positions = INT_MAX;
    // Relaxed: cudaMalloc stays legal (scratch may grow while recording; see free_device).
    MC_TRY(mc::check(ctx, cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture"));
    ctx->capturing = true;
    // The graph's first node: the position its kernels read (host_pos when the graph runs).
    return mc::check(ctx, cudaMemcpyAsync(ctx->dev_pos, ctx->host_pos, sizeof(int), cudaMemcpyHostToDevice, ctx->stream), "step position");
}

// Ends the recording and runs it; then gives back the memory freed while recording.
mc_status capture_end(mc_context* ctx) {
    MC_ON_DEVICE(ctx);
    if (!ctx->capturing) return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: capture_end: no step is being recorded");
    ctx->capturing = false;
    cudaGraph_t graph = nullptr;
    mc_status s = mc::check(ctx, cudaStreamEndCapture(ctx->stream, &graph), "recording a step (an operation in it failed)");
    if (s == MC_OK && ctx->graph) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(ctx->graph, graph, &info) != cudaSuccess) {  // another shape: a new graph
            cudaGetLastError();
            cudaGraphExecDestroy(ctx->graph);
            ctx->graph = nullptr;
        }
    }
    if (s == MC_OK && !ctx->graph) s = mc::check(ctx, cudaGraphInstantiate(&ctx->graph, graph, 0), "cudaGraphInstantiate");
    if (s == MC_OK) s = mc::check(ctx, cudaGraphLaunch(ctx->graph, ctx->stream), "cudaGraphLaunch");
    if (graph) cudaGraphDestroy(graph);
    if (!ctx->frees_after_capture.empty()) {
        cudaStreamSynchronize(ctx->stream);
        for (void* p : ctx->frees_after_capture) cudaFree(p);
        ctx->frees_after_capture.clear();
    }
    if (s != MC_OK && ctx->graph) {  // nothing stale may be replayed
        cudaGraphExecDestroy(ctx->graph);
        ctx->graph = nullptr;
    }
    ctx->graph_generation = ctx->generation;
    return s;
}

mc_status replay(mc_context* ctx, int pos0, int launch) {
    MC_ON_DEVICE(ctx);
    MC_NOT_CAPTURING(ctx, "replay");
    if (!ctx->graph || ctx->generation != ctx->graph_generation || pos0 < 0 || pos0 >= ctx->graph_positions) return MC_UNSUPPORTED;
    if (!launch) return MC_OK;
    *ctx->host_pos = pos0;
    return mc::check(ctx, cudaGraphLaunch(ctx->graph, ctx->stream), "cudaGraphLaunch (a replayed step)");
}

// Wrappers that make the device current before the op.
#define MC_WRAP(name, params, args) \
    mc_status name##_on params {    \
        MC_ON_DEVICE(ctx);          \
        return mc::op_##name args;      \
    }
MC_WRAP(rms_norm, (mc_context* ctx, const float* x, const float* w, float* out, int64_t rows, int64_t n, int64_t stride, float eps),
        (ctx, x, w, out, rows, n, stride, eps))
MC_WRAP(rope, (mc_context* ctx, float* x, int nt, int64_t ts, int nh, int hd, int nr, int pos0, const mc_rope* p),
        (ctx, x, nt, ts, nh, hd, nr, pos0, p))
MC_WRAP(matmul, (mc_context* ctx, const mc_tensor* w, const float* x, int64_t m, float* y, int64_t ys), (ctx, w, x, m, y, ys))
MC_WRAP(matmul_group, (mc_context* ctx, const mc_tensor* w, float* const* y, int n, const float* x, int64_t m), (ctx, w, y, n, x, m))
MC_WRAP(moe_gate_up,
        (mc_context* ctx, const mc_tensor* g, const mc_tensor* u, const float* x, const int32_t* ids, const int32_t* so, int nt, int nu,
         float* h, const mc_tensor* sg, const mc_tensor* su),
        (ctx, g, u, x, ids, so, nt, nu, h, sg, su))
MC_WRAP(moe_down,
        (mc_context* ctx, const mc_tensor* d, const float* h, const int32_t* ids, const int32_t* so, int64_t rows, float* y,
         const mc_tensor* sd, int64_t ns),
        (ctx, d, h, ids, so, rows, y, sd, ns))
MC_WRAP(moe_route, (mc_context* ctx, const float* l, const float* b, int nt, const mc_moe* p, int32_t* ids, float* w), (ctx, l, b, nt, p, ids, w))
MC_WRAP(moe_combine, (mc_context* ctx, const float* y, const float* w, int nt, int nu, int64_t d, const float* a, float* out),
        (ctx, y, w, nt, nu, d, a, out))
MC_WRAP(scale_by_sigmoid, (mc_context* ctx, float* x, const float* g, int nt, int64_t d), (ctx, x, g, nt, d))
MC_WRAP(copy, (mc_context* ctx, const float* s, int64_t ss, float* d, int64_t ds, int64_t r, int64_t c), (ctx, s, ss, d, ds, r, c))
MC_WRAP(add, (mc_context* ctx, float* x, const float* y, int64_t n), (ctx, x, y, n))
mc_status zero_on(mc_context* ctx, float* x, int64_t n) {
    MC_ON_DEVICE(ctx);
    return mc::check(ctx, cudaMemsetAsync(x, 0, size_t(n) * sizeof(float), ctx->stream), "zero");
}
MC_WRAP(add_bias, (mc_context* ctx, float* y, const float* b, int64_t r, int64_t d), (ctx, y, b, r, d))
MC_WRAP(kv_store,
        (mc_context* ctx, uint32_t t, int pos0, int rpp, int64_t n, const float* k, int64_t ks, int kd, void* kc, uint64_t kb, const float* v,
         int64_t vs, int vd, void* vc, uint64_t vb),
        (ctx, t, pos0, rpp, n, k, ks, kd, kc, kb, v, vs, vd, vc, vb))
MC_WRAP(attention, (mc_context* ctx, const mc_kv_view* kv, const float* q, int n, int pos0, float* out), (ctx, kv, q, n, pos0, out))
MC_WRAP(add_rms_norm, (mc_context* ctx, float* x, const float* y, const float* w, float* out, int64_t rows, int64_t n, float eps),
        (ctx, x, y, w, out, rows, n, eps))
MC_WRAP(attention_inputs, (mc_context* ctx, float* q, float* k, const float* v, int nt, int pos0, const mc_attention_inputs* p),
        (ctx, q, k, v, nt, pos0, p))
#undef MC_WRAP

#ifndef MOERUN_CUDA_EMULATOR
// "(anonymous namespace)::mul_mat_vec<(moerun::tensor_type)12, 1>(unsigned char const*, ...)"
// -> "mul_mat_vec<(moerun::tensor_type)12, 1>"
std::string kernel_name(const void* kernel) {
    const char* mangled = nullptr;
    if (cudaFuncGetName(&mangled, kernel) != cudaSuccess || !mangled) {
        cudaGetLastError();
        return "?";
    }
    int status = 0;
    char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string name = status == 0 && demangled ? demangled : mangled;
    std::free(demangled);
    const std::string anonymous = "(anonymous namespace)::";
    for (size_t p; (p = name.find(anonymous)) != std::string::npos;) name.erase(p, anonymous.size());
    int depth = 0;  // cut the parameter list: the first '(' outside the template arguments
    for (size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '<') ++depth;
        else if (name[i] == '>') --depth;
        else if (name[i] == '(' && depth == 0) {
            name.resize(i);
            break;
        }
    }
    return name;
}
#endif

mc_status kernel_profile(mc_context* ctx, int per, char* report, size_t cap) {
    write_msg(report, cap, "");
#ifndef MOERUN_CUDA_EMULATOR
    mc::launch_timer* const timer = mc::g_launch_timer;
    if (!timer) return MC_OK;
    MC_ON_DEVICE(ctx);
    MC_TRY(mc::check(ctx, cudaDeviceSynchronize(), "kernel_profile"));
    struct row {
        uint64_t launches = 0;
        double us = 0;
    };
    std::map<const void*, row> by_kernel;
    row all;
    for (const mc::launch_timer::span& s : timer->spans) {
        float ms = 0;
        cudaEventElapsedTime(&ms, s.start, s.stop);
        row& r = by_kernel[s.kernel];
        r.launches += 1;
        r.us += double(ms) * 1e3;
        all.launches += 1;
        all.us += double(ms) * 1e3;
        timer->spare.push_back(s.start);
        timer->spare.push_back(s.stop);
    }
    timer->spans.clear();
    std::vector<std::pair<std::string, row>> rows;
    for (const auto& [kernel, r] : by_kernel) rows.emplace_back(kernel_name(kernel), r);
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.us > b.second.us; });
    rows.emplace_back("all kernels", all);
    const double d = per > 0 ? per : 1;
    std::string text = "kernel                                              launches      device us   us each\n";
    for (const auto& [name, r] : rows) {
        char line[512];
        std::snprintf(line, sizeof line, "%-50s %10.1f %14.1f %9.2f\n", name.c_str(), double(r.launches) / d, r.us / d,
                      r.launches ? r.us / double(r.launches) : 0.0);
        text += line;
    }
    write_msg(report, cap, text.c_str());
#else
    (void)ctx;
    (void)per;
#endif
    return MC_OK;
}

const mc_api k_api = {
    MC_API_VERSION,
    device_count, device_info, device_supported,
    create, destroy, last_error,
    alloc, free_, upload, download, synchronize, alloc_host, free_host, upload_async, download_async,
    rms_norm_on, rope_on, matmul_on, matmul_group_on, moe_gate_up_on, moe_down_on, moe_route_on, moe_combine_on, scale_by_sigmoid_on,
    copy_on, add_on, zero_on, add_bias_on, kv_store_on, attention_on, add_rms_norm_on, attention_inputs_on,
    capture_begin, capture_end, replay, kernel_profile,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const mc_api* moerun_cuda_api(void) { return &k_api; }
