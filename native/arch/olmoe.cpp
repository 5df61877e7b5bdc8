// olmoe: OLMoE-1B-7B. Q/K RMSNorm over the whole projection (not per head), softmax routing
// without renormalization (64 experts, top-8). NeoX RoPE.
#include "arch.h"

namespace moerun {

void arch_load_olmoe(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::neox;
    arch_read_moe_hparams(m);
    c.expert_weights_norm = false;
    arch_load_embeddings(m);
    arch_for_each_layer(m, [&](layer_weights& l, const std::string& p, int) {
        arch_load_attention(m, l, p, {.norm = qk_norm::whole});
        arch_load_moe_ffn(m, l, p);
    });
}

}  // namespace moerun
