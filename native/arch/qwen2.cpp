// qwen2: Qwen2/2.5, QwQ-32B. Dense SwiGLU with Q/K/V biases, NeoX RoPE.
#include "arch.h"

namespace moerun {

void arch_load_qwen2(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::neox;
    arch_load_embeddings(m);
    m.weights.layers.resize(size_t(c.n_layer));
    for (int il = 0; il < c.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        layer_weights& l = m.weights.layers[size_t(il)];
        arch_load_attention(m, l, p, {.bias = true});
        arch_load_dense_ffn(m, l, p, c.n_ff);
    }
}

}  // namespace moerun
