// The CUDA emulator's stand-in for the toolkit's <cuda_runtime.h>: what native/cuda/*.cu use of the
// CUDA language and runtime, as plain C++, so that g++ compiles the same kernels for the CPU and
// emulator.cpp runs them there (no GPU and no CUDA toolkit needed).
//
// Execution model, as a GPU's, but one block at a time on the calling thread: the threads of a
// block are fibers (each with its own stack) switched at __syncthreads() and at warp shuffles, in
// thread order, so barriers and shuffles have their CUDA meaning; __shared__ variables are
// `static` (one copy, the running block's); device memory is host memory. Floats are the host's:
// expf & co. differ from the device's in the last bits, so this checks a kernel's logic (indexing,
// synchronisation, the order of its integer and float steps), not its last-bit results or speed.
// Included instead of the toolkit's when native/cuda/emulator is first on the include path
// (emulator/CMakeLists.txt), with MOERUN_CUDA_EMULATOR defined.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

// ---- the language's keywords ----
#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__ static
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)

// ---- vector types ----
struct uint3 {
    unsigned x, y, z;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// ---- the running thread's coordinates (set by the emulator's scheduler at each switch) ----
extern "C" {
extern uint3 mc_emu_thread_idx, mc_emu_block_idx;
extern dim3 mc_emu_block_dim, mc_emu_grid_dim;
}
#define threadIdx mc_emu_thread_idx
#define blockIdx mc_emu_block_idx
#define blockDim mc_emu_block_dim
#define gridDim mc_emu_grid_dim

// ---- synchronisation and warp exchange (emulator.cpp) ----
extern "C" void mc_emu_syncthreads(void);
// Every lane of the calling thread's warp deposits 8 bytes; returns the 8 bytes of lane `src`
// (its own where src is outside the warp).
extern "C" uint64_t mc_emu_warp_exchange(uint64_t mine, int src_lane);
extern "C" int mc_emu_lane(void);
// The running block's dynamic shared memory (the launch's shared_bytes, malloc'ed: an overrun is
// a heap overrun for AddressSanitizer).
extern "C" void* mc_emu_dynamic_shared(void);

inline void __syncthreads() { mc_emu_syncthreads(); }
// v of lane `src` of the calling thread's warp (its own v where src is outside its segment of
// `width` lanes).
template <class T>
inline T mc_emu_shuffle(T v, int src, int width) {
    static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    const int lane = mc_emu_lane();
    if (src < 0 || src / width != lane / width) src = lane;
    bits = mc_emu_warp_exchange(bits, src);
    T r;
    std::memcpy(&r, &bits, sizeof r);
    return r;
}
// The mask is taken to name every lane (what native/cuda passes).
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) { return mc_emu_shuffle(v, mc_emu_lane() ^ lane_mask, width); }
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) { return mc_emu_shuffle(v, mc_emu_lane() + int(delta), width); }
template <class T>
inline T __shfl_sync(unsigned, T v, int src_lane, int width = 32) {
    return mc_emu_shuffle(v, mc_emu_lane() / width * width + src_lane % width, width);
}

// ---- intrinsics, as the PTX ISA defines them ----
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __float2int_rn(float f) { return int(std::nearbyint(f)); }  // the default rounding mode: half to even
// c + the sum of the four products of a's and b's signed bytes.
inline int __dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; ++i) c += int(int8_t(uint32_t(a) >> (8 * i))) * int(int8_t(uint32_t(b) >> (8 * i)));
    return c;
}
// Byte-wise a - b, each byte modulo 256.
inline unsigned __vsub4(unsigned a, unsigned b) {
    unsigned r = 0;
    for (int i = 0; i < 4; ++i) r |= unsigned(uint8_t(uint8_t(a >> (8 * i)) - uint8_t(b >> (8 * i)))) << (8 * i);
    return r;
}
// *address += v, returning the old value (the emulator's threads switch only at barriers and
// shuffles, so a read-modify-write is never interleaved; atomic for host threads too).
inline int atomicAdd(int* address, int v) { return __atomic_fetch_add(address, v, __ATOMIC_RELAXED); }
// The integer and float min/max overloads CUDA declares for device and host code.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

// ---- the runtime API (the subset native/cuda uses) ----
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorStubLibrary = 34,
    cudaErrorCompatNotSupportedOnDevice = 804,
    cudaErrorNoKernelImageForDevice = 209,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorUnsupportedPtxVersion = 222,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorGraphExecUpdateFailure = 910,
};
typedef enum cudaError cudaError_t;
typedef struct mc_emu_stream* cudaStream_t;
// Graphs: a stream's work recorded between cudaStreamBeginCapture and cudaStreamEndCapture,
// queued again as recorded at each cudaGraphLaunch (kernels with their arguments, copies reading
// their source when they run).
typedef struct mc_emu_graph* cudaGraph_t;
typedef struct mc_emu_graph* cudaGraphExec_t;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
struct cudaGraphExecUpdateResultInfo {
    int result;
};
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
};
struct cudaFuncAttributes {
    int maxThreadsPerBlock;
};

extern "C" {
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t stream);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaFreeAsync(void* p, cudaStream_t stream);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, cudaGraphExecUpdateResultInfo* info);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGetLastError(void);
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t mc_emu_func_attributes(cudaFuncAttributes* attr);
}

template <class T>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* /*kernel*/) { return mc_emu_func_attributes(attr); }

// Queues body() to run once per thread of every block of grid x block (blocks in order, one at a
// time), with shared_bytes of dynamic shared memory per block, on `stream` (null: at once).
// A bad configuration is reported by cudaGetLastError at once; a fault in the kernel by the
// synchronization that runs it, as on a GPU.
void mc_emu_launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, std::function<void()> body);
