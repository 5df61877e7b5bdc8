// Choosing a backend: the one place that knows the implementations (cpu/ today, cuda/ next).
#pragma once

#include <memory>

#include "backend.h"

namespace moerun {

struct backend_params {
    int n_threads = 0;  // CPU compute threads; 0 = one per physical core
};

// The CPU backend with the best kernels this machine has (MOERUN_CPU=scalar|avx2|avx512
// overrides); throws error(invalid_argument) for a MOERUN_CPU this CPU cannot run.
std::unique_ptr<backend> backend_create_cpu(const backend_params& params);

}  // namespace moerun
