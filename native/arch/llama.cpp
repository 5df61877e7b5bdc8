// llama: Llama 1/2/3, TinyLlama, stories260K. Dense SwiGLU FFN, RMSNorm, normal-order RoPE.
#include "arch.h"

namespace moerun {

void arch_load_llama(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::normal;
    const int64_t d = c.n_embd, q_dim = int64_t(c.n_head) * c.head_dim_k, k_dim = int64_t(c.n_head_kv) * c.head_dim_k,
                  v_dim = int64_t(c.n_head_kv) * c.head_dim_v, o_dim = int64_t(c.n_head) * c.head_dim_v;

    model_weights& w = m.weights;
    w.token_embd = arch_tensor(m, "token_embd.weight", {d, c.n_vocab}, tensor_use::matrix);
    w.output_norm = arch_tensor(m, "output_norm.weight", {d}, tensor_use::vector);
    w.output = arch_tensor(m, "output.weight", {d, c.n_vocab}, tensor_use::matrix, /*required=*/false);
    if (!w.output) w.output = w.token_embd;  // tied embeddings

    w.layers.resize(size_t(c.n_layer));
    for (int il = 0; il < c.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        layer_weights& l = w.layers[size_t(il)];
        l.attn_norm = arch_tensor(m, p + "attn_norm.weight", {d}, tensor_use::vector);
        l.wq = arch_tensor(m, p + "attn_q.weight", {d, q_dim}, tensor_use::matrix);
        l.wk = arch_tensor(m, p + "attn_k.weight", {d, k_dim}, tensor_use::matrix);
        l.wv = arch_tensor(m, p + "attn_v.weight", {d, v_dim}, tensor_use::matrix);
        l.wo = arch_tensor(m, p + "attn_output.weight", {o_dim, d}, tensor_use::matrix);
        l.ffn_norm = arch_tensor(m, p + "ffn_norm.weight", {d}, tensor_use::vector);
        l.ffn_gate = arch_tensor(m, p + "ffn_gate.weight", {d, c.n_ff}, tensor_use::matrix);
        l.ffn_up = arch_tensor(m, p + "ffn_up.weight", {d, c.n_ff}, tensor_use::matrix);
        l.ffn_down = arch_tensor(m, p + "ffn_down.weight", {c.n_ff, d}, tensor_use::matrix);
    }
}

}  // namespace moerun
