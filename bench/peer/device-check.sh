#!/bin/bash
# Kernel tests and moerun-vs-llama.cpp decode/prefill on a host without Node (the GPU machine's
# 16-core CPU). Prepare here first (the folder .device/ is git-ignored and travels with `carry`):
#   mkdir -p .device/inc .device/bins
#   cp <llama.cpp>/include/*.h <llama.cpp>/ggml/include/*.h .device/inc/     # the node-llama-cpp bundle's source
#   cp node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/{libggml-base.so,libggml.v0.5.0.so,libllama.v0.5.0.so,libggml-cpu-*.so} .device/bins/
#   scripts/make-model.ts + quantize() -> .device/dev-q4k.gguf (any GGUF both engines load)
# Then: bash bench/peer/device-check.sh [MODEL]
cd "$(dirname "$0")/../.."
M=${1:-.device/dev-q4k.gguf}
cmake -S . -B /tmp/bc -DCMAKE_BUILD_TYPE=Release > /dev/null && cmake --build /tmp/bc -j16 --target run_model test_kernels 2>&1 | grep -E "error"
grep -o 'avx512_vnni\|avx512_bf16\|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
for p in scalar avx2 avx512; do
  MOERUN_CPU=$p /tmp/bc/test_kernels > /tmp/kernels-$p.txt 2>&1
  echo "test_kernels $p rc=$? $(tail -1 /tmp/kernels-$p.txt) $(grep -c '^ok' /tmp/kernels-$p.txt) checks"
done
g++ -O2 -std=c++17 bench/peer/llama_cpp_bench.cpp -I.device/inc -L.device/bins -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so \
  -l:libggml-base.so -Wl,-rpath,$PWD/.device/bins -o /tmp/lcb || exit 1
for t in 1 2 4 8; do
  echo -n "moerun: "; /tmp/bc/run_model $M -n 64 -t $t --prompt 128 1 | tail -1
  /tmp/lcb $M .device/bins $t 129 64
done
