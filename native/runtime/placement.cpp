// The placement planner (placement.h): sizes from the model's tensors, then the budget filled in
// priority order.
#include "placement.h"

#include <algorithm>

#include "../base/error.h"
#include "../base/memory.h"
#include "../quant/types.h"
#include "model.h"

namespace moerun {

namespace {

uint64_t bytes_of(const tensor& t) { return t ? uint64_t(t.rows()) * uint64_t(t.row_bytes()) : 0; }

// Every non-expert weight of a layer (the routed experts are ffn_{gate,up,down}_exps).
uint64_t layer_dense_bytes(const layer_weights& l) {
    uint64_t sum = 0;
    for_each_layer_tensor(l, [&](const tensor& t, bool) {
        if (!is_routed_experts(l, t)) sum += bytes_of(t);
    });
    return sum;
}

}  // namespace

uint64_t kv_cache_bytes(const model_config& c, int n_ctx, tensor_type type) {
    const uint64_t k_row = row_size(type, c.head_dim_k);
    const uint64_t v_row = c.mla ? 0 : row_size(type, c.head_dim_v);  // MLA: V is the latent part of K
    return uint64_t(c.n_layer) * uint64_t(n_ctx) * uint64_t(c.n_head_kv) * (k_row + v_row);
}

uint64_t scratch_bytes(const model_config& c, int n_batch) {
    // The session's activation buffers (runtime/session.cpp) and the FFN's per-batch scratch
    // (cpu/ffn.cpp), all counted as if live at once: an upper bound in floats per token.
    const uint64_t d = uint64_t(c.n_embd);
    const uint64_t q_dim = uint64_t(c.n_head) * uint64_t(std::max(c.head_dim_k, c.head_dim_k_mla));
    const uint64_t kv_dim = uint64_t(c.n_head_kv) * uint64_t(c.head_dim_k + c.head_dim_v);
    const uint64_t o_dim = uint64_t(c.n_head) * uint64_t(std::max(c.head_dim_v, c.head_dim_v_mla));
    const uint64_t mla = c.mla ? uint64_t(c.q_lora_rank) + uint64_t(c.kv_lora_rank + c.n_rot) +
                                     uint64_t(c.n_head) * uint64_t(c.kv_lora_rank + c.n_rot) * 2
                               : 0;
    const uint64_t used = uint64_t(std::max(c.n_expert_used, 0));
    const uint64_t ffn_width = std::max({uint64_t(std::max(c.n_ff, 0)), used * uint64_t(std::max(c.n_ff_exp, 0))});
    // router scores, the selection and its weights, the experts' gathered rows (inputs, then
    // outputs: cpu/ffn.cpp) and room for their int8 copies
    const uint64_t moe = uint64_t(std::max(c.n_expert, 0)) + 2 * used + used * 2 * d;
    const uint64_t per_token = 4 * d + q_dim + 2 * kv_dim + o_dim + mla + 2 * ffn_width + moe + 2 * d + uint64_t(c.n_vocab);
    return per_token * uint64_t(std::max(n_batch, 1)) * sizeof(float);
}

int default_batch_tokens(const model_config& c) { return c.n_expert > 0 ? 512 : 256; }

uint64_t default_device_budget(uint64_t free_bytes, uint64_t total_bytes) {
    const uint64_t margin = (uint64_t(512) << 20) + total_bytes / 50;
    return free_bytes > margin ? free_bytes - margin : 0;
}

placement_plan plan_placement(const model& m, const placement_request& r) {
    const model_config& c = m.config;
    if (r.n_ctx <= 0) throw error(error_code::invalid_argument, format("placement: context size %d must be positive", r.n_ctx));
    if (r.n_batch < 0) throw error(error_code::invalid_argument, format("placement: batch size %d must be positive (or 0: the default)", r.n_batch));
    const int n_batch = r.n_batch > 0 ? r.n_batch : default_batch_tokens(c);

    placement_plan p;
    p.device_budget = r.device_budget;
    p.device_kv = kv_cache_bytes(c, r.n_ctx, r.kv_type);
    p.device_scratch = scratch_bytes(c, std::min(n_batch, r.n_ctx));

    const model_weights& w = m.weights;
    const bool tied = w.output.data == w.token_embd.data;
    p.device_weights = bytes_of(w.output_norm) + bytes_of(w.output);
    p.host_weights = tied ? 0 : bytes_of(w.token_embd);
    p.layer_slots.assign(w.layers.size(), 0);
    p.layer_expert_bytes.assign(w.layers.size(), 0);
    uint64_t experts_bytes = 0;
    for (size_t il = 0; il < w.layers.size(); ++il) {
        const layer_weights& l = w.layers[il];
        p.device_weights += layer_dense_bytes(l);
        if (!l.ffn_gate_exps) continue;
        const uint64_t routed = bytes_of(l.ffn_gate_exps) + bytes_of(l.ffn_up_exps) + bytes_of(l.ffn_down_exps);
        p.layer_expert_bytes[il] = routed / uint64_t(c.n_expert);
        p.n_expert_total += c.n_expert;
        experts_bytes += routed;
    }

    const uint64_t fixed = p.device_kv + p.device_scratch + p.device_weights;
    if (fixed > r.device_budget) {
        throw error(error_code::out_of_memory,
                    format("placement: the device budget of %s cannot hold the non-expert weights (%s), the KV cache of %d "
                           "positions (%s) and the activations (%s): %s in all. Give a larger budget or a smaller context",
                           format_bytes(r.device_budget).c_str(), format_bytes(p.device_weights).c_str(), r.n_ctx,
                           format_bytes(p.device_kv).c_str(), format_bytes(p.device_scratch).c_str(), format_bytes(fixed).c_str()));
    }
    uint64_t left = r.device_budget - fixed;
    if (r.experts == expert_placement::device && experts_bytes > left) {
        throw error(error_code::out_of_memory,
                    format("placement: the routed experts (%s) do not fit in the %s the device budget of %s leaves after the rest "
                           "of the model (%s); place experts automatically or on the host",
                           format_bytes(experts_bytes).c_str(), format_bytes(left).c_str(), format_bytes(r.device_budget).c_str(),
                           format_bytes(fixed).c_str()));
    }

    if (r.experts != expert_placement::host) {
        if (experts_bytes <= left) {
            for (size_t il = 0; il < w.layers.size(); ++il) p.layer_slots[il] = p.layer_expert_bytes[il] ? c.n_expert : 0;
            p.n_expert_slots = p.n_expert_total;
            p.device_experts = experts_bytes;
        } else {
            // Round robin over the MoE layers, one slot each per round, so every layer holds the
            // same number of experts (±1) even when their types (and so sizes) differ by layer.
            for (bool placed = true; placed;) {
                placed = false;
                for (size_t il = 0; il < w.layers.size(); ++il) {
                    const uint64_t cost = p.layer_expert_bytes[il];
                    if (!cost || p.layer_slots[il] == c.n_expert || cost > left) continue;
                    ++p.layer_slots[il];
                    ++p.n_expert_slots;
                    p.device_experts += cost;
                    left -= cost;
                    placed = true;
                }
            }
        }
    }
    p.host_experts = experts_bytes - p.device_experts;
    return p;
}

std::string describe(const placement_plan& p) {
    std::string s = format("device (budget %s): weights %s, KV cache %s, activations %s, experts %d of %d (%s); host: ",
                           format_bytes(p.device_budget).c_str(), format_bytes(p.device_weights).c_str(),
                           format_bytes(p.device_kv).c_str(), format_bytes(p.device_scratch).c_str(), p.n_expert_slots,
                           p.n_expert_total, format_bytes(p.device_experts).c_str());
    s += format("experts %s, token embedding %s", format_bytes(p.host_experts).c_str(), format_bytes(p.host_weights).c_str());
    return s;
}

}  // namespace moerun
