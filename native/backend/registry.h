// Choosing a backend: the one place that knows the implementations (cpu/, cuda/).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"

namespace moerun {

struct backend_params {
    int n_threads = 0;  // CPU compute threads; 0 = one per physical core
    bool pin_threads = false;  // bind them one per physical core (thread_pool)
    int gpu_device = 0; // CUDA device index
};

// The CPU backend with the best kernels this machine has (MOERUN_CPU=scalar|avx2|avx512
// overrides); throws error(invalid_argument) for a MOERUN_CPU this CPU cannot run.
std::unique_ptr<backend> backend_create_cpu(const backend_params& params);

// The CUDA backend on device params.gpu_device, from libmoerun_cuda.so (cuda/loader.cpp: loaded
// on first use, never linked). Throws error(no_gpu) saying why none is usable: no library, no
// driver, no device, a device this library has no kernels for.
std::unique_ptr<backend> backend_create_cuda(const backend_params& params);

// What `moerun info` and gpu 'auto' see, without creating a backend. Never throws.
struct gpu_device_info {
    int index = 0;
    std::string name;
    uint64_t total_bytes = 0, free_bytes = 0;
    int cc_major = 0, cc_minor = 0;  // compute capability
    bool supported = false;          // the library has kernels for it
};
struct gpu_probe {
    std::string library;   // path of libmoerun_cuda.so, empty when not found
    bool usable = false;   // a supported device exists
    std::string reason;    // why not, when !usable ("libmoerun_cuda.so not found (looked in ...)")
    int driver_version = 0, runtime_version = 0;  // 13000 = CUDA 13.0
    std::vector<gpu_device_info> devices;
};
gpu_probe cuda_probe();

}  // namespace moerun
