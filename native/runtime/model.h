// A loaded model: its description (backend/model_desc.h), the mapped file its weights point into,
// and the backend that computes it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../backend/backend.h"
#include "../backend/model_desc.h"
#include "../gguf/gguf.h"
#include "../base/memory.h"
#include "../base/tensor.h"
#include "../quant/types.h"
#include "placement.h"

namespace moerun {

struct model {
    std::unique_ptr<gguf_file> file;
    model_config config;
    model_weights weights;
    std::unique_ptr<backend> compute;
    std::string backend_kind = "cpu";  // "cpu" or "cuda"
    std::string gpu_note;              // why gpu auto_detect chose the CPU
    // On a GPU: where the weights went (every routed expert on the device, or some on the host).
    bool placed = false;
    uint64_t arranged_bytes = 0;       // weights the backend rewrote into its own layout at load
    // Where they went when the file stayed mapped (the file's offsets, only those pages written).
    std::unique_ptr<private_pages> arranged_memory;
    placement_plan placement;
    // A backend runs one forward call at a time; sessions on the same model take turns per
    // evaluate call.
    std::mutex compute_mutex;
};

}  // namespace moerun
