// deepseek2: DeepSeek-V2/V2-Lite/V3/R1, Kimi-K2. Multi-head latent attention in the absorbed form
// (with a query LoRA, or without it for V2-Lite), leading dense layers, routed experts with softmax
// (V2) or sigmoid + selection bias (V3) gating and group-limited top-k, and shared experts.
// Normal-order RoPE on the decoupled rope dims.
#include <cmath>

#include "../base/error.h"
#include "arch.h"

namespace moerun {

void arch_load_deepseek2(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::normal;
    c.mla = true;
    c.q_lora_rank = arch_get_count_or(m, "attention.q_lora_rank", 0);
    c.kv_lora_rank = arch_get_count(m, "attention.kv_lora_rank");
    c.head_dim_k_mla = arch_get_count_or(m, "attention.key_length_mla", 0);
    c.head_dim_v_mla = arch_get_count_or(m, "attention.value_length_mla", 0);
    const std::string& path = m.file->path();
    if (c.head_dim_k_mla == 0 || c.head_dim_v_mla == 0) {
        throw error(error_code::unsupported, format("model: %s: deepseek2 file without attention.key_length_mla/value_length_mla (an old conversion without absorbed attn_k_b/attn_v_b); reconvert it with a current llama.cpp", path.c_str()));
    }
    if (c.n_head_kv != 1 || c.head_dim_k != c.kv_lora_rank + c.n_rot || c.head_dim_v != c.kv_lora_rank || c.head_dim_k_mla <= c.n_rot) {
        throw error(error_code::bad_format, format("model: %s: inconsistent MLA sizes: head_count_kv %d, key_length %d, value_length %d, kv_lora_rank %d, rope dims %d, key_length_mla %d",
                                                   path.c_str(), c.n_head_kv, c.head_dim_k, c.head_dim_v, c.kv_lora_rank, c.n_rot, c.head_dim_k_mla));
    }
    // YaRN: the GGUF's yarn_log_multiplier carries the converter's 0.1 factor.
    const float log_mul = arch_get_float_or(m, "rope.scaling.yarn_log_multiplier", 0.0f) / 0.1f;
    arch_setup_yarn(m, log_mul, /*deepseek_mscale=*/true);
    // Scores are scaled by mscale^2 / sqrt(per-head query size before absorption), where mscale
    // undoes YaRN's cos/sin scaling and applies DeepSeek's own (llama.cpp's kq_scale).
    const float attn_factor_org = c.rope_mscale * (1.0f + 0.1f * std::log(1.0f / c.rope_freq_scale));
    const float mscale = attn_factor_org * (1.0f + 0.1f * log_mul * std::log(1.0f / c.rope_freq_scale));
    c.attn_scale = mscale * mscale / std::sqrt(float(c.head_dim_k_mla));
    arch_read_moe_hparams(m);
    const int64_t n_ff_shexp = c.n_ff_exp * arch_get_int_or(m, "expert_shared_count", 0);

    arch_load_embeddings(m);
    const int64_t d = c.n_embd, n_head = c.n_head, lora = c.kv_lora_rank, rope = c.n_rot, k_mla = c.head_dim_k_mla, v_mla = c.head_dim_v_mla;
    arch_for_each_layer(m, [&](layer_weights& l, const std::string& p, int il) {
        l.attn_norm = arch_tensor(m, p + "attn_norm.weight", {d}, tensor_use::vector);
        if (c.q_lora_rank > 0) {
            l.wq_a = arch_tensor(m, p + "attn_q_a.weight", {d, c.q_lora_rank}, tensor_use::matrix);
            l.attn_q_a_norm = arch_tensor(m, p + "attn_q_a_norm.weight", {c.q_lora_rank}, tensor_use::vector);
            l.wq_b = arch_tensor(m, p + "attn_q_b.weight", {c.q_lora_rank, n_head * k_mla}, tensor_use::matrix);
        } else {
            l.wq = arch_tensor(m, p + "attn_q.weight", {d, n_head * k_mla}, tensor_use::matrix);
        }
        l.wkv_a_mqa = arch_tensor(m, p + "attn_kv_a_mqa.weight", {d, lora + rope}, tensor_use::matrix);
        l.attn_kv_a_norm = arch_tensor(m, p + "attn_kv_a_norm.weight", {lora}, tensor_use::vector);
        l.wk_b = arch_tensor(m, p + "attn_k_b.weight", {k_mla - rope, lora, n_head}, tensor_use::matrix);
        l.wv_b = arch_tensor(m, p + "attn_v_b.weight", {lora, v_mla, n_head}, tensor_use::matrix);
        l.wo = arch_tensor(m, p + "attn_output.weight", {n_head * v_mla, d}, tensor_use::matrix);
        if (il < c.n_layer_dense_lead || c.n_expert == 0) {
            arch_load_dense_ffn(m, l, p, c.n_ff);
        } else {
            arch_load_moe_ffn(m, l, p);
            if (n_ff_shexp > 0) arch_load_shared_expert(m, l, p, n_ff_shexp, /*with_gate=*/false);
        }
    });
}

}  // namespace moerun
