// The hot-expert cache's policy (issue 14): per MoE layer, a fixed number of device slots
// (placement_plan::layer_slots) hold routed experts. For each token, the selected experts that are
// resident are hits (the device computes them); the others are misses: the CPU computes them for
// this token, and they are loaded into a slot for the tokens after it, evicting the least recently
// used expert (recency measured better than a static popularity ranking in public experiments on
// Mixtral and DeepSeek). Slots start empty. This class only decides; the backend copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moerun {

class expert_cache {
public:
    // slots_per_layer[l] slots for layer l (0: a dense layer, or all of its experts on the host);
    // experts are ids in [0, n_expert).
    expert_cache(std::vector<int> slots_per_layer, int n_expert);

    struct load {
        int expert;    // to copy into `slot`
        int slot;
        int evicted;   // the expert that was there, or -1 for an empty slot
    };

    // One token's selected experts at `layer` (n ids, distinct). resident[i] says whether
    // experts[i] was in a slot before this access (a hit); `loads` receives the misses that get a
    // slot (a miss gets none when every slot holds an expert this same token uses). Returns the
    // number of hits.
    int access(int layer, const int32_t* experts, int n, uint8_t* resident, std::vector<load>& loads);

    bool is_resident(int layer, int expert) const;
    int slots(int layer) const { return int(layers_[size_t(layer)].expert_in_slot.size()); }
    uint64_t hits() const { return hits_; }
    uint64_t misses() const { return misses_; }

private:
    struct layer_state {
        std::vector<int> expert_in_slot;   // -1 = empty
        std::vector<uint64_t> last_use;    // access tick of each slot's last hit or load
        std::vector<int> slot_of_expert;   // -1 = not resident
    };
    std::vector<layer_state> layers_;
    int n_expert_;
    uint64_t tick_ = 0;
    uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace moerun
