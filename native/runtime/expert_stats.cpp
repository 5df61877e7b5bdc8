// Routing statistics (expert_stats.h): one look per MoE layer and batch, at ffn_gate_exps's call
// (up and down see the same selections).
#include "expert_stats.h"

#include <cstdio>
#include <cstring>

#include "../base/error.h"

namespace moerun {

namespace {

// The layer of a weight named "blk.<layer>.ffn_gate_exps.weight", or -1 for any other weight.
int gate_exps_layer(const tensor& w) {
    if (!w.name) return -1;
    int layer = -1, end = 0;
    if (std::sscanf(w.name->c_str(), "blk.%d.ffn_gate_exps.weight%n", &layer, &end) != 1 || size_t(end) != w.name->size()) return -1;
    return layer;
}

}  // namespace

expert_stats::expert_stats(int n_layer, int n_expert, std::vector<int> slots_per_layer) {
    if (n_layer < 0 || n_expert < 0) throw error(error_code::invalid_argument, format("expert_stats: %d layers, %d experts", n_layer, n_expert));
    counts_.assign(size_t(n_layer), std::vector<uint64_t>(size_t(n_expert), 0));
    if (!slots_per_layer.empty()) {
        if (slots_per_layer.size() != size_t(n_layer)) {
            throw error(error_code::invalid_argument, format("expert_stats: %zu layer slot counts for %d layers", slots_per_layer.size(), n_layer));
        }
        cache_ = std::make_unique<expert_cache>(std::move(slots_per_layer), n_expert);
    }
}

void expert_stats::on_experts(const tensor& w, const int32_t* selected, const int32_t*, int n_tokens, int n_used, const float*) {
    const int layer = gate_exps_layer(w);
    if (layer < 0 || layer >= n_layer()) return;
    if (first_moe_layer_ < 0) first_moe_layer_ = layer;
    if (layer == first_moe_layer_) tokens_ += uint64_t(n_tokens);
    std::vector<uint64_t>& counts = counts_[size_t(layer)];
    resident_.resize(size_t(n_used));
    for (int t = 0; t < n_tokens; ++t) {
        const int32_t* ids = selected + size_t(t) * size_t(n_used);
        for (int k = 0; k < n_used; ++k) {
            if (ids[k] < 0 || size_t(ids[k]) >= counts.size()) throw error(error_code::internal, format("expert_stats: expert %d at layer %d", ids[k], layer));
            ++counts[size_t(ids[k])];
        }
        if (cache_) {
            pending_.clear();
            cache_->access(layer, ids, n_used, resident_.data(), pending_);
            loads_ += pending_.size();
        }
    }
}

}  // namespace moerun
