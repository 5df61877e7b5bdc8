// Where a model's parts go when a device (a GPU) has a memory budget (issue 14): the planner that
// turns one option (`gpu: { vram }`) into a placement, before any weight is copied.
//
// Priority, highest first, because of what each costs per token if left on the host:
//   1. the KV cache and the activations (scratch): read and written by every layer;
//   2. the non-expert weights (attention, router, shared experts, dense FFNs, output head): read
//      whole for every token;
//   3. routed experts: each token reads only n_expert_used of n_expert, so they are the part that
//      can live in host memory and be computed by the CPU at the least cost. The device keeps as
//      many expert *slots* as the rest of the budget holds, spread evenly over the MoE layers
//      (every layer runs once per token, so an uneven spread only moves the misses around);
//      which experts occupy the slots is the hot-expert cache's choice at run time.
// The token embedding stays on the host unless the output head shares it: a lookup reads n_embd
// values per token, which is cheaper to send than to keep (151,936 rows on Qwen3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../backend/backend.h"
#include "../base/tensor_type.h"

namespace moerun {

struct model;
struct model_config;

enum class expert_placement {
    automatic,  // as many routed experts on the device as the budget holds
    host,       // every routed expert in host memory, computed by the CPU (llama.cpp's --cpu-moe)
    device,     // every routed expert on the device; a budget that cannot hold them is an error
};

struct placement_request {
    uint64_t device_budget = 0;  // bytes the device may use for everything below
    int n_ctx = 4096;            // KV cache positions
    tensor_type kv_type = tensor_type::F16;
    int n_batch = 0;             // tokens per forward chunk: bounds the scratch; 0: default_batch_tokens
    expert_placement experts = expert_placement::automatic;
    bool expert_cache = true;    // the device's expert slots are a cache (weight_placement::expert_cache)
    weight_placement::batch_offload batch_offload = weight_placement::batch_offload::automatic;
};

// Bytes by part; `device_*` are in the device's memory, `host_*` stay in the mapped file.
struct placement_plan {
    uint64_t device_budget = 0;
    uint64_t device_weights = 0;  // non-expert weights
    uint64_t device_kv = 0;       // the KV cache of n_ctx positions
    uint64_t device_scratch = 0;  // activations for n_batch tokens (an upper bound)
    uint64_t device_experts = 0;  // the expert slots
    uint64_t host_weights = 0;    // non-expert weights left on the host (the token embedding)
    uint64_t host_experts = 0;    // routed experts without a slot (all of them are also mapped)

    int n_expert_total = 0;        // routed experts over all MoE layers (n_expert × MoE layers)
    int n_expert_slots = 0;        // of those, how many the device holds
    std::vector<int> layer_slots;  // per layer; 0 on dense layers
    std::vector<uint64_t> layer_expert_bytes;  // per layer: one expert's gate + up + down bytes

    uint64_t device_total() const { return device_weights + device_kv + device_scratch + device_experts; }
    bool experts_all_on_device() const { return n_expert_slots == n_expert_total; }
};

// Bytes of a KV cache of n_ctx positions of `type` for the model (MLA: the latent rows only), as
// every backend lays it out: n_layer × n_ctx × n_head_kv rows of head_dim_k (+ head_dim_v) values.
uint64_t kv_cache_bytes(const model_config& c, int n_ctx, tensor_type type);

// An upper bound on the activations a forward chunk of n_batch tokens allocates, in bytes.
uint64_t scratch_bytes(const model_config& c, int n_batch);

// Tokens per forward chunk when a session does not say: 512 for MoE models, 256 for dense ones.
// An MoE chunk reads every expert its tokens select once, and each expert's matmuls see about
// n_batch × n_expert_used / n_expert tokens (Ling-mini-2.0: 16 at 512), so larger chunks read the
// experts fewer times and give their int8 tiles more rows: prefill of 512 tokens on 2 threads,
// 512 against 256, used 7% (Ling-mini-2.0 Q4_K_M) and 6-12% (Qwen3-30B-A3B Q4_K_M) less CPU time
// for about 53 MB more peak RSS (1.1% of the file; cpu/ffn.cpp's expert rows are one buffer).
// Dense models gained nothing, and TinyLlama's peak RSS grew by 4.5% of its file.
int default_batch_tokens(const model_config& c);

// The device budget when none is given: the free memory less a margin for the CUDA context, the
// allocator and what the scratch estimate misses (512 MiB + 2% of the device).
uint64_t default_device_budget(uint64_t free_bytes, uint64_t total_bytes);

// The placement of `m` under the request. Throws error(out_of_memory) naming the sizes when the
// budget cannot hold the KV cache, scratch and non-expert weights (or, with experts = device,
// the experts too), and error(invalid_argument) for a request out of range.
placement_plan plan_placement(const model& m, const placement_request& request);

// "device 20.0 GiB budget: weights 1.2 GiB, KV 384 MiB, scratch 40 MiB, 412 of 5120 experts
// (14.1 GiB); host: 5.6 GiB of experts, 300 MiB token embedding" — for messages and the CLI.
std::string describe(const placement_plan& plan);

}  // namespace moerun
