// qwen3moe: Qwen3-30B-A3B, Qwen3-235B-A22B, Qwen3-Coder. Per-head Q/K RMSNorm, softmax routing
// renormalized over the top-k. NeoX RoPE.
#include "arch.h"

namespace moerun {

void arch_load_qwen3moe(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::neox;
    arch_read_moe_hparams(m);
    c.expert_weights_norm = true;
    arch_load_embeddings(m);
    arch_for_each_layer(m, [&](layer_weights& l, const std::string& p, int) {
        arch_load_attention(m, l, p, {.norm = qk_norm::per_head});
        arch_load_moe_ffn(m, l, p);
    });
}

}  // namespace moerun
