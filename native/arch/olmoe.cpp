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
    m.weights.layers.resize(size_t(c.n_layer));
    for (int il = 0; il < c.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        layer_weights& l = m.weights.layers[size_t(il)];
        arch_load_attention(m, l, p, {.norm = qk_norm::whole});
        arch_load_moe_ffn(m, l, p);
    }
}

}  // namespace moerun
