// qwen2: Qwen2/2.5, QwQ-32B. Dense SwiGLU with Q/K/V biases, NeoX RoPE.
#include "arch.h"

namespace moerun {

void arch_load_qwen2(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::neox;
    arch_load_embeddings(m);
    arch_for_each_layer(m, [&](layer_weights& l, const std::string& p, int) {
        arch_load_attention(m, l, p, {.bias = true});
        arch_load_dense_ffn(m, l, p, c.n_ff);
    });
}

}  // namespace moerun
