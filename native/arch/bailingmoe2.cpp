// bailingmoe2: Ant Group's Ling/Ring 2.0 (Ling-mini-2.0, Ling-flash-2.0, Ling-1T). Fused QKV,
// per-head Q/K RMSNorm, partial NeoX RoPE (rope.dimension_count < head dim), sigmoid routing with
// a selection-only expert bias and group-limited top-k, a shared expert, leading dense layers, and
// next-token-prediction (MTP) layers at the end of the file that are loaded and skipped.
#include "../base/error.h"
#include "arch.h"

namespace moerun {

void arch_load_bailingmoe2(model& m) {
    arch_read_common_hparams(m);
    model_config& c = m.config;
    c.rope_type = rope_kind::neox;
    // block_count includes the MTP layers; the forward pass runs the others.
    const int64_t n_nextn = arch_get_int_or(m, "nextn_predict_layers", 0);
    if (n_nextn < 0 || n_nextn >= c.n_layer) {
        throw error(error_code::bad_format, format("model: %s: nextn_predict_layers %lld does not fit block_count %d", m.file->path().c_str(),
                                                   (long long)n_nextn, c.n_layer));
    }
    c.n_layer -= int(n_nextn);
    arch_read_moe_hparams(m);
    if (c.n_expert == 0) throw error(error_code::bad_format, format("model: %s: bailingmoe2 needs expert_count > 0", m.file->path().c_str()));
    const int64_t n_shared = arch_get_int_or(m, "expert_shared_count", 0);
    const int64_t n_ff_shexp = arch_get_int_or(m, "expert_shared_feed_forward_length", c.n_ff_exp) * n_shared;
    arch_load_embeddings(m);
    arch_for_each_layer(m, [&](layer_weights& l, const std::string& p, int il) {
        arch_load_attention(m, l, p, {.fused_qkv = true, .norm = qk_norm::per_head});
        if (il < c.n_layer_dense_lead) {
            arch_load_dense_ffn(m, l, p, c.n_ff);
        } else {
            arch_load_moe_ffn(m, l, p);
            if (n_ff_shexp > 0) arch_load_shared_expert(m, l, p, n_ff_shexp, /*with_gate=*/false);
        }
    });
}

}  // namespace moerun
