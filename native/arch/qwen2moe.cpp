// qwen2moe: Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B. Q/K/V biases, softmax routing without
// renormalization, and a shared expert scaled by its own sigmoid gate. NeoX RoPE.
#include "arch.h"

namespace moerun {

void arch_load_qwen2moe(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::neox;
    arch_read_moe_hparams(m);
    c.expert_weights_norm = false;
    const int64_t n_ff_shexp = arch_get_int_or(m, "expert_shared_feed_forward_length", c.n_ff_exp);
    arch_load_embeddings(m);
    m.weights.layers.resize(size_t(c.n_layer));
    for (int il = 0; il < c.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        layer_weights& l = m.weights.layers[size_t(il)];
        arch_load_attention(m, l, p, {.bias = true});
        arch_load_moe_ffn(m, l, p);
        arch_load_shared_expert(m, l, p, n_ff_shexp, /*with_gate=*/true);
    }
}

}  // namespace moerun
