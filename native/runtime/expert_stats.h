// Routing statistics (issue 14): which routed experts a text selects, per layer, and what a
// hot-expert cache of a given placement would have hit. Attach to a session (session::set_observer)
// and evaluate text; the forward pass reports each MoE layer's selections through on_experts.
// On the CPU nothing is cached: the hit rate is what a device holding placement_plan::layer_slots
// experts per layer (expert_cache.h, LRU) would see on the same tokens, in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../backend/backend.h"
#include "../backend/expert_cache.h"

namespace moerun {

class expert_stats final : public activation_observer {
public:
    // slots_per_layer: the placement to simulate (empty: count selections only).
    expert_stats(int n_layer, int n_expert, std::vector<int> slots_per_layer);

    void on_matmul(const tensor&, const float*, int64_t, int64_t) override {}
    void on_experts(const tensor& w, const int32_t* selected, const int32_t* row_of, int n_tokens, int n_used,
                    const float* x) override;

    // selections(layer)[e]: tokens that selected expert e at that layer.
    const std::vector<uint64_t>& selections(int layer) const { return counts_[size_t(layer)]; }
    int n_layer() const { return int(counts_.size()); }
    uint64_t tokens() const { return tokens_; }  // tokens seen by the first MoE layer
    // The simulated cache: hits and misses over all layers (0 and 0 without a placement).
    uint64_t hits() const { return cache_ ? cache_->hits() : 0; }
    uint64_t misses() const { return cache_ ? cache_->misses() : 0; }
    uint64_t loads() const { return loads_; }  // expert copies the cache would have made

private:
    std::vector<std::vector<uint64_t>> counts_;
    std::unique_ptr<expert_cache> cache_;
    int first_moe_layer_ = -1;
    uint64_t tokens_ = 0, loads_ = 0;
    std::vector<uint8_t> resident_;
    std::vector<expert_cache::load> pending_;
};

}  // namespace moerun
