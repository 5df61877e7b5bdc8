// llama: Llama 1/2/3, TinyLlama, stories260K (dense SwiGLU); with expert_count > 0, Mixtral
// (softmax over all experts, top-k, renormalized). Normal-order RoPE.
#include "arch.h"

namespace moerun {

void arch_load_llama(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::normal;
    arch_read_moe_hparams(m);
    c.expert_weights_norm = true;  // Mixtral renormalizes over the chosen experts
    arch_load_embeddings(m);
    arch_for_each_layer(m, [&](layer_weights& l, const std::string& p, int) {
        arch_load_attention(m, l, p, {});
        if (c.n_expert > 0) {
            arch_load_moe_ffn(m, l, p);
        } else {
            arch_load_dense_ffn(m, l, p, c.n_ff);
        }
    });
}

}  // namespace moerun
