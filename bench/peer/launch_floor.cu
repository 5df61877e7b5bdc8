// What one kernel costs on this GPU when it does next to nothing: the floor under each of the
// hundreds of kernels of a decode step (issue 13). Times 2000 launches of an empty kernel and of
// an add over 2048 floats (a decode step's residual add), queued on a stream and replayed as one
// CUDA graph, with CUDA events; prints microseconds per kernel.
//   nvcc -O3 -arch=sm_90a -o launch_floor bench/peer/launch_floor.cu   (here; run on the GPU machine)
#include <cuda_runtime.h>

#include <cstdio>

__global__ void empty_kernel() {}

__global__ void add_kernel(float* x, const float* y, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

int main() {
    const int n = 2048, launches = 2000;
    float *x, *y;
    if (cudaMalloc(&x, n * sizeof(float)) != cudaSuccess || cudaMalloc(&y, n * sizeof(float)) != cudaSuccess) {
        std::printf("no device: %s\n", cudaGetErrorString(cudaGetLastError()));
        return 77;
    }
    cudaMemset(x, 0, n * sizeof(float));
    cudaMemset(y, 0, n * sizeof(float));
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    auto queue = [&](bool add) {
        for (int i = 0; i < launches; ++i) {
            if (add) add_kernel<<<n / 256, 256, 0, s>>>(x, y, n);
            else empty_kernel<<<1, 32, 0, s>>>();
        }
    };
    for (int add = 0; add < 2; ++add) {
        const char* what = add ? "add of 2048 floats" : "empty kernel";
        queue(add);  // warm-up
        cudaStreamSynchronize(s);
        cudaEventRecord(a, s);
        queue(add);
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        std::printf("%-20s stream: %6.2f us per kernel\n", what, ms * 1e3 / launches);
        cudaGraph_t g;
        cudaGraphExec_t ge;
        cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
        queue(add);
        cudaStreamEndCapture(s, &g);
        cudaGraphInstantiate(&ge, g, 0);
        cudaGraphLaunch(ge, s);  // warm-up
        cudaStreamSynchronize(s);
        cudaEventRecord(a, s);
        cudaGraphLaunch(ge, s);
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        cudaEventElapsedTime(&ms, a, b);
        std::printf("%-20s graph:  %6.2f us per kernel\n", what, ms * 1e3 / launches);
        cudaGraphExecDestroy(ge);
        cudaGraphDestroy(g);
    }
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) std::printf("error: %s\n", cudaGetErrorString(e));
    return e == cudaSuccess ? 0 : 1;
}
