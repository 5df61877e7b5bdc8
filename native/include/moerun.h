// The core's public surface: the one header the N-API addon (native/addon/) includes. Everything
// here is plain C++ with no Node dependency; failures throw moerun::error (runtime/error.h) with a
// stable code and a message naming the function and the bad value.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "../cpu/dispatch.h"
#include "../gguf/gguf.h"
#include "../backend/registry.h"  // cuda_probe(): the GPU library and devices, for `moerun info`
#include "../base/error.h"
#include "../runtime/expert_stats.h"
#include "../runtime/imatrix.h"
#include "../runtime/model.h"
#include "../runtime/placement.h"
#include "../runtime/sampler.h"
#include "../runtime/session.h"

namespace moerun {

struct model_load_params {
    int n_threads = 0;                              // 0 = physical cores
    bool pin_threads = false;                       // bind the compute threads one per physical core
    std::function<void(double)> on_progress;        // fraction loaded, 0..1, from the loading thread
    const std::atomic<bool>* abort = nullptr;       // set to stop loading (throws error(aborted))
    // Weights larger than the host's RAM are refused (error out_of_memory) unless this is set;
    // then they are mapped and read from disk as the pages are needed, and not prefetched.
    bool allow_larger_than_ram = false;
    // Where to compute: the CPU (off), CUDA when a usable device is found (auto_detect), or CUDA
    // or error(no_gpu) saying why not (cuda). The C++ drivers default to the CPU; JS to auto.
    enum class gpu_mode { off, auto_detect, cuda } gpu = gpu_mode::off;
    int gpu_device = 0;
    // On a GPU (issue 14): how much of its memory the model may use (device_budget; 0: the free
    // memory less default_device_budget's margin), the context and KV type to keep room for, and
    // where the routed experts go. Experts that do not fit stay in host memory, computed by the
    // CPU (runtime/placement.h); model_info.placement says what went where.
    placement_request gpu_placement;
    // Read every weight page once at load (progress, abortable) so the first tokens pay no page
    // faults. Off: the weights are only mapped, as for planning a placement.
    bool prefetch = true;
    // Where the CPU reads the weights from: the file's pages in the page cache (map: shared with
    // other processes, loads at once) or a private copy in this process's memory (copy: read once
    // at load by one reader per compute thread, 4.5 GB in 0.8 s and 8.2 GB in 1.9-2.6 s on 2 here;
    // the file may then change freely). auto_detect copies on a virtual machine
    // (host_is_virtual_machine) when the CPU computes, prefetch is on and the file is at most a
    // third of the available memory, and maps otherwise: on a 2-vCPU cloud VM a file's cached
    // pages streamed at 13.4-14.5 GB/s against 19.1-19.7 from anonymous memory, and decode from
    // the copy was 1.02-1.5x faster (README, "weightMemory"). copy without room for it is
    // error(out_of_memory); without mremap (not Linux), error(unsupported), and auto_detect maps.
    enum class weight_memory { auto_detect, map, copy } weights = weight_memory::auto_detect;
};

// Maps and validates a GGUF model; the returned model is immutable and shared by sessions.
std::shared_ptr<model> model_load(const std::string& path, const model_load_params& params);
// The same from bytes in memory (copied; `name` stands for the path in messages). For the fuzzer,
// where ASan sees every byte the reader touches, which it cannot in a mapping.
std::shared_ptr<model> model_load_memory(const uint8_t* data, size_t size, const std::string& name, const model_load_params& params);

struct model_info {
    std::string architecture;
    int n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, n_vocab = 0, n_ctx_train = 0;
    int n_expert = 0, n_expert_used = 0;
    int64_t file_type = -1;   // general.file_type (llama.cpp's LLAMA_FTYPE), -1 when absent
    uint64_t size_bytes = 0;  // file size
    uint64_t n_params = 0;    // elements of all tensors in the file
    uint64_t n_params_active = 0;  // elements read per token (routed experts at used/total)
    int n_threads = 0;
    bool threads_pinned = false;  // pin_threads asked for and every worker bound
    std::string cpu_path;     // kernels in use: scalar, avx2, avx512
    std::string backend;      // "cpu" or "cuda"
    std::string backend_name; // "cpu (avx512)", "cuda (NVIDIA H200, 139.8 GiB, compute capability 9.0)"
    std::string gpu_note;     // gpu auto_detect that chose the CPU: why (no library, driver, device)
    bool placed = false;      // on a GPU: `placement` says where the weights went
    placement_plan placement;
    bool weights_copied = false;  // read from this process's memory, not the file's pages (weight_memory)
    // Bytes of weights the backend rewrote at load into a layout of its own (the CPU's interleaved
    // rows, cpu/interleave.h: AVX512_VNNI's Q4_K and Q5_K, when the weights are copied).
    uint64_t weights_arranged = 0;
};
model_info model_get_info(const model& m);

}  // namespace moerun
