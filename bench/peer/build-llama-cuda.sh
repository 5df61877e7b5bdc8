#!/bin/bash
# llama.cpp's CUDA build, the peer of the GPU comparisons (issues 13 and 14): its llama-bench, from
# the source node-llama-cpp bundles (the same llama.cpp as the CPU binaries `npm run bench` compares
# against), for one GPU architecture.
#
#   here:   bash bench/peer/build-llama-cuda.sh pack [OUT]     # the source, 6 MB: .device/llama-src.tar.xz
#   there:  bash bench/peer/build-llama-cuda.sh build [PACK]   # -> /tmp/moerun-llama-cuda/bin/llama-bench
#
# It is built on the GPU machine, not here: ggml's CUDA code needs cuBLAS's headers and libraries,
# which the CUDA image there has and this machine's nvcc does not. With its 16 cores the build takes
# a few minutes (about 120 CUDA files for one architecture). `pack` keeps what the build needs
# (ggml with its CPU and CUDA backends, the llama library, common, tools, vendored headers).
# The CPU side is built for the GPU host's Sapphire Rapids (AVX-512, VNNI, BF16, AMX), as
# node-llama-cpp's sapphirerapids variant is, for the hybrid comparison (--n-cpu-moe).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-}
case $mode in
  pack)
    out=${2:-$root/.device/llama-src.tar.xz}
    bundle=$root/node_modules/node-llama-cpp/llama/gitRelease.bundle
    [[ -f $bundle ]] || { echo "build-llama-cuda: $bundle is missing (npm install first)"; exit 1; }
    src=$(mktemp -d)
    trap 'rm -rf "$src"' EXIT
    git clone -q "$bundle" "$src/llama.cpp" 2> /dev/null
    mkdir -p "$(dirname "$out")"
    other_backends=(vulkan metal sycl opencl cann musa hip webgpu zdnn zendnn hexagon openvino virtgpu et blas rpc)
    excludes=()
    for b in "${other_backends[@]}"; do excludes+=(--exclude="ggml/src/ggml-$b"); done
    tar -C "$src/llama.cpp" "${excludes[@]}" -cf - CMakeLists.txt cmake ggml src include common tools vendor LICENSE licenses |
      xz -T0 -6 > "$out"
    echo "$out: $(stat -c %s "$out") bytes, llama.cpp $(git -C "$src/llama.cpp" log -1 --format=%h)"
    ;;
  build)
    pack=${2:-$root/.device/llama-src.tar.xz}
    src=${TMPDIR:-/tmp}/moerun-llama-cuda-src
    build=${TMPDIR:-/tmp}/moerun-llama-cuda
    arch=${MOERUN_LLAMA_CUDA_ARCH:-90a}
    rm -rf "$src" && mkdir -p "$src" && tar -C "$src" -xJf "$pack"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
      -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DGGML_CUDA_NCCL=OFF \
      -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
      -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=ON -DGGML_AMX_INT8=ON \
      -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
      > "$build.configure.log" 2>&1 || { tail -30 "$build.configure.log"; exit 1; }
    cmake --build "$build" -j "$(nproc)" --target llama-bench > "$build.build.log" 2>&1 || { grep -m20 -E "error" "$build.build.log"; tail -20 "$build.build.log"; exit 1; }
    echo "$build/bin/llama-bench"
    ;;
  *)
    echo "usage: bash bench/peer/build-llama-cuda.sh pack [OUT.tar.xz] | build [PACK.tar.xz]"
    exit 2
    ;;
esac
