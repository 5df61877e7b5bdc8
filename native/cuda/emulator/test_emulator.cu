// The CUDA emulator's own checks: barriers and shared memory, warp shuffles, dynamic shared
// memory, and the faults a GPU would show (a deadlock, a shuffle with exited lanes, a bad launch
// configuration, device memory beyond the budget) reported as CUDA errors, not as hangs or crashes.
//   test_emulator      prints one line per check; exits 0 when every check passes, 1 otherwise
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../common.cuh"

namespace {

int g_failed = 0;

void check(bool ok, const char* what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    g_failed += !ok;
}

// Each block sums its threads' values through shared memory (a tree with a barrier per level).
__global__ void block_tree_sum(const int* in, int* out) {
    __shared__ int s[256];
    const int t = threadIdx.x;
    s[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) s[t] += s[t + half];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// Each warp's lanes exchange by xor: lane l ends with the sum of its warp (mc::warp_sum), and with
// lane l ^ 5's index.
__global__ void warp_checks(int* sums, int* partners) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    sums[i] = int(mc::warp_sum(float(i)));
    partners[i] = __shfl_xor_sync(0xffffffffu, i, 5);
}

// Dynamic shared memory: thread t writes slot t, then reads its mirror.
__global__ void mirror(int* out) {
    MC_DYNAMIC_SHARED(int, s);
    const int t = threadIdx.x;
    s[t] = t * 3 + int(blockIdx.x);
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = s[blockDim.x - 1 - t];
}

// Lanes 0..15 wait at __syncthreads while lanes 16..31 wait at a shuffle: neither can complete.
__global__ void deadlock(int* out) {
    int v = int(threadIdx.x);
    if (threadIdx.x < 16) __syncthreads();
    else v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

// Half the warp has exited when the other half shuffles.
__global__ void shuffle_after_exit(int* out) {
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
}

template <class T>
T* device_array(size_t n) {
    void* p = nullptr;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) {
        std::printf("FAIL cudaMalloc of %zu bytes\n", n * sizeof(T));
        std::exit(1);
    }
    return static_cast<T*>(p);
}

}  // namespace

int main() {
    const int blocks = 5, threads = 256;
    std::vector<int> in(size_t(blocks * threads));
    for (size_t i = 0; i < in.size(); ++i) in[i] = int(i * 7 % 1000);
    int* d_in = device_array<int>(in.size());
    int* d_out = device_array<int>(in.size());
    int* d_aux = device_array<int>(in.size());
    cudaMemcpyAsync(d_in, in.data(), in.size() * sizeof(int), cudaMemcpyHostToDevice, nullptr);

    mc::launch(block_tree_sum, blocks, threads, 0, nullptr, d_in, d_out);
    bool ok = cudaGetLastError() == cudaSuccess;
    for (int b = 0; b < blocks; ++b) {
        int want = 0;
        for (int t = 0; t < threads; ++t) want += in[size_t(b * threads + t)];
        ok = ok && d_out[b] == want;
    }
    check(ok, "block tree sum through __shared__ memory and __syncthreads (5 blocks of 256)");

    mc::launch(warp_checks, 2, 128, 0, nullptr, d_out, d_aux);
    ok = cudaGetLastError() == cudaSuccess;
    for (int i = 0; i < 256; ++i) {
        const int w0 = i / 32 * 32;
        ok = ok && d_out[i] == 32 * w0 + 31 * 32 / 2 && d_aux[i] == (i ^ 5);
    }
    check(ok, "warp_sum and __shfl_xor_sync in every warp (2 blocks of 4 warps)");

    mc::launch(mirror, 3, 64, 64 * sizeof(int), nullptr, d_out);
    ok = cudaGetLastError() == cudaSuccess;
    for (int b = 0; b < 3; ++b)
        for (int t = 0; t < 64; ++t) ok = ok && d_out[b * 64 + t] == (63 - t) * 3 + b;
    check(ok, "dynamic shared memory (3 blocks of 64, 256 bytes)");

    std::fprintf(stderr, "(the next three launches fail on purpose)\n");
    mc::launch(deadlock, 1, 32, 0, nullptr, d_out);
    check(cudaGetLastError() == cudaErrorLaunchFailure, "threads split between __syncthreads and a shuffle: a launch failure");
    check(cudaGetLastError() == cudaSuccess, "cudaGetLastError resets the error");
    mc::launch(shuffle_after_exit, 1, 32, 0, nullptr, d_out);
    check(cudaGetLastError() == cudaErrorLaunchFailure, "a shuffle whose warp has exited lanes: a launch failure");
    mc::launch(block_tree_sum, 1, 2048, 0, nullptr, d_in, d_out);
    check(cudaGetLastError() == cudaErrorInvalidConfiguration, "a block of 2048 threads: an invalid configuration");

    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    check(total_b - free_b == 3 * in.size() * sizeof(int), "cudaMemGetInfo counts the allocations");
    void* huge = nullptr;
    check(cudaMalloc(&huge, total_b) == cudaErrorMemoryAllocation && huge == nullptr, "an allocation beyond the budget: out of memory");
    cudaFree(d_in);
    cudaFree(d_out);
    cudaFree(d_aux);
    cudaMemGetInfo(&free_b, &total_b);
    check(free_b == total_b, "cudaFree returns the bytes");

    std::printf("%d failed\n", g_failed);
    return g_failed ? 1 : 0;
}
