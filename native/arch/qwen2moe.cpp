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
    arch_for_each_layer(m, [&](layer_weights& l, const std::string& p, int) {
        arch_load_attention(m, l, p, {.bias = true});
        arch_load_moe_ffn(m, l, p);
        arch_load_shared_expert(m, l, p, n_ff_shexp, /*with_gate=*/true);
    });
}

}  // namespace moerun
