// LRU over each layer's slots (expert_cache.h). A layer has at most a few hundred slots, so the
// victim is found by a scan rather than kept in a linked list: no allocation per token.
#include "expert_cache.h"

#include "../base/error.h"

namespace moerun {

expert_cache::expert_cache(std::vector<int> slots_per_layer, int n_expert) : n_expert_(n_expert) {
    if (n_expert < 0) throw error(error_code::invalid_argument, format("expert_cache: %d experts", n_expert));
    layers_.resize(slots_per_layer.size());
    for (size_t l = 0; l < slots_per_layer.size(); ++l) {
        const int slots = slots_per_layer[l];
        if (slots < 0 || slots > n_expert) {
            throw error(error_code::invalid_argument, format("expert_cache: layer %zu has %d slots for %d experts", l, slots, n_expert));
        }
        layers_[l].expert_in_slot.assign(size_t(slots), -1);
        layers_[l].last_use.assign(size_t(slots), 0);
        layers_[l].slot_of_expert.assign(size_t(slots) ? size_t(n_expert) : 0, -1);
    }
}

bool expert_cache::is_resident(int layer, int expert) const {
    const layer_state& s = layers_[size_t(layer)];
    return !s.slot_of_expert.empty() && s.slot_of_expert[size_t(expert)] >= 0;
}

int expert_cache::access(int layer, const int32_t* experts, int n, uint8_t* resident, std::vector<load>& loads) {
    if (layer < 0 || size_t(layer) >= layers_.size()) throw error(error_code::invalid_argument, format("expert_cache: layer %d", layer));
    layer_state& s = layers_[size_t(layer)];
    const uint64_t now = ++tick_;
    int hits = 0;
    // Hits first, so that this token's resident experts are the most recent and never evicted by
    // its own misses.
    for (int i = 0; i < n; ++i) {
        const int e = experts[i];
        if (e < 0 || e >= n_expert_) throw error(error_code::invalid_argument, format("expert_cache: expert %d of %d", e, n_expert_));
        const int slot = s.slot_of_expert.empty() ? -1 : s.slot_of_expert[size_t(e)];
        resident[i] = slot >= 0;
        if (slot >= 0) {
            s.last_use[size_t(slot)] = now;
            ++hits;
        }
    }
    for (int i = 0; i < n; ++i) {
        if (resident[i] || s.expert_in_slot.empty() || s.slot_of_expert[size_t(experts[i])] >= 0) continue;  // hit, or loaded just now
        // The least recently used slot not touched by this token (empty slots have tick 0).
        int victim = -1;
        for (size_t slot = 0; slot < s.last_use.size(); ++slot) {
            if (s.last_use[slot] == now) continue;
            if (victim < 0 || s.last_use[slot] < s.last_use[size_t(victim)]) victim = int(slot);
        }
        if (victim < 0) continue;  // every slot holds one of this token's experts
        const int evicted = s.expert_in_slot[size_t(victim)];
        if (evicted >= 0) s.slot_of_expert[size_t(evicted)] = -1;
        s.expert_in_slot[size_t(victim)] = experts[i];
        s.slot_of_expert[size_t(experts[i])] = victim;
        s.last_use[size_t(victim)] = now;
        loads.push_back({experts[i], victim, evicted});
    }
    hits_ += uint64_t(hits);
    misses_ += uint64_t(n - hits);
    return hits;
}

}  // namespace moerun
