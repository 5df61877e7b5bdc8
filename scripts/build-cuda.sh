#!/bin/bash
# Builds the CUDA backend, libmoerun_cuda.so (needs nvcc, CUDA 12 or newer), and puts it beside the
# addon (build/Release/), where the core looks for it (native/cuda/loader.cpp). npm install never
# runs this: without it moerun simply runs on the CPU. `moerun info` then shows the GPU.
#   npm run build:cuda                 # sm_90a only (H100/H200): quick
#   npm run build:cuda -- --fat        # sm_80, 86, 89, 90a, 100, 120 and PTX (slow)
set -euo pipefail
cd "$(dirname "$0")/.."
fat=OFF
[[ "${1:-}" == "--fat" ]] && fat=ON
command -v nvcc >/dev/null || { echo "build:cuda: nvcc is not on PATH (install the CUDA toolkit)" >&2; exit 1; }
cmake -S native/cuda -B build-cuda-lib -DCMAKE_BUILD_TYPE=Release -DMOERUN_CUDA_FAT=$fat > /dev/null
cmake --build build-cuda-lib -j"${JOBS:-2}"
mkdir -p build/Release
cp build-cuda-lib/libmoerun_cuda.so build/Release/
echo "build:cuda: build/Release/libmoerun_cuda.so ($(du -h build/Release/libmoerun_cuda.so | cut -f1))"
