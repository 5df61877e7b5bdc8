// The model as the forward pass sees it, shared by runtime/ and every backend: hyper-parameters
// (model_config) and weight views (model_weights) into the mapped GGUF file or a backend's
// memory. Architecture files in native/arch/ fill these from GGUF metadata and tensor names;
// the forward pass in runtime/session.cpp is shared and driven by config flags.
#pragma once

#include <string>
#include <vector>

#include "../base/tensor.h"

namespace moerun {

enum class rope_kind {
    normal,  // rotate adjacent pairs (x[2i], x[2i+1]): llama
    neox,    // rotate halves (x[i], x[i + n_rot/2]): qwen2, qwen3moe, ...
};

enum class expert_gating {
    softmax,  // probabilities = softmax over all experts
    sigmoid,  // probabilities = sigmoid of each router logit (DeepSeek V3, Ling 2.0)
};

struct model_config {
    std::string architecture;  // GGUF general.architecture
    int n_layer = 0;
    int n_embd = 0;         // hidden size
    int n_head = 0;         // query heads
    int n_head_kv = 0;      // key/value heads (GQA when < n_head)
    int head_dim_k = 0;     // per-head query/key size
    int head_dim_v = 0;     // per-head value size
    int n_ff = 0;           // dense FFN hidden size
    int n_vocab = 0;
    int n_ctx_train = 0;
    float norm_eps = 1e-5f;  // RMSNorm epsilon

    // RoPE
    rope_kind rope_type = rope_kind::normal;
    int n_rot = 0;              // rotated dims per head (<= head_dim_k)
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor (linear or YaRN)
    // YaRN (rope.scaling.type = yarn): dims below corr_dims[0] extrapolate, above corr_dims[1]
    // interpolate, with a linear ramp between; cos/sin are scaled by rope_mscale.
    float rope_ext_factor = 0.0f;  // 1 with YaRN, else 0
    float rope_mscale = 1.0f;      // llama.cpp's yarn_attn_factor
    float rope_corr_dims[2] = {0, 0};

    // Attention score scale; 0 = 1/sqrt(head_dim_k).
    float attn_scale = 0.0f;

    // Multi-head latent attention (deepseek2), absorbed form: the cache holds one latent row per
    // token, (kv_lora_rank + n_rot): the normalized compressed KV followed by the shared RoPE key.
    // Queries are absorbed into the latent space with attn_k_b and outputs expanded with attn_v_b.
    // Then n_head_kv = 1, head_dim_k = kv_lora_rank + n_rot, head_dim_v = kv_lora_rank (V is the
    // latent part of K, not stored twice).
    bool mla = false;
    int q_lora_rank = 0;     // 0 = queries projected directly (V2-Lite)
    int kv_lora_rank = 0;
    int head_dim_k_mla = 0;  // per-head query/key size before absorption: nope + n_rot
    int head_dim_v_mla = 0;  // per-head value size after expansion

    // Mixture of experts (n_expert = 0: dense). Layers below n_layer_dense_lead use the dense FFN.
    int n_expert = 0;
    int n_expert_used = 0;
    int n_ff_exp = 0;              // hidden size of one routed expert
    int n_layer_dense_lead = 0;
    expert_gating gating = expert_gating::softmax;
    bool expert_weights_norm = false;  // renormalize the selected experts' weights to sum 1
    float expert_weights_scale = 1.0f;
    int n_expert_groups = 1;       // group-limited top-k: pick n_group_used groups (by the sum of
    int n_group_used = 1;          // each group's top-2 scores), then top-k experts inside them
};

struct layer_weights {
    tensor attn_norm;  // (n_embd)
    tensor wqkv;       // fused (n_embd, q_dim + k_dim + v_dim), or the three below
    tensor wq;         // (n_embd, q_dim = n_head * head_dim_k)
    tensor wk;         // (n_embd, k_dim = n_head_kv * head_dim_k)
    tensor wv;         // (n_embd, v_dim = n_head_kv * head_dim_v)
    tensor bq, bk, bv;  // optional biases (qwen2): (q_dim), (k_dim), (v_dim)
    tensor attn_q_norm;  // optional RMSNorm of queries: (head_dim_k) per head, or (q_dim) whole
    tensor attn_k_norm;  // optional RMSNorm of keys: (head_dim_k) per head, or (k_dim) whole
    tensor wo;         // (n_head * head_dim_v, n_embd); MLA: (n_head * head_dim_v_mla, n_embd)

    // MLA (deepseek2)
    tensor wq_a;            // (n_embd, q_lora_rank)
    tensor attn_q_a_norm;   // (q_lora_rank)
    tensor wq_b;            // (q_lora_rank, n_head * head_dim_k_mla); or wq (n_embd, same) without q LoRA
    tensor wkv_a_mqa;       // (n_embd, kv_lora_rank + n_rot)
    tensor attn_kv_a_norm;  // (kv_lora_rank)
    tensor wk_b;            // (head_dim_k_mla - n_rot, kv_lora_rank, n_head): query absorption
    tensor wv_b;            // (kv_lora_rank, head_dim_v_mla, n_head): output expansion

    tensor ffn_norm;   // (n_embd)

    // Dense FFN (SwiGLU)
    tensor ffn_gate;   // (n_embd, n_ff)
    tensor ffn_up;     // (n_embd, n_ff)
    tensor ffn_down;   // (n_ff, n_embd)

    // Routed experts (present on MoE layers)
    tensor ffn_gate_inp;     // router: (n_embd, n_expert)
    tensor ffn_exp_probs_b;  // optional selection bias: (n_expert), added for top-k choice only
    tensor ffn_gate_exps;    // (n_embd, n_ff_exp, n_expert)
    tensor ffn_up_exps;      // (n_embd, n_ff_exp, n_expert)
    tensor ffn_down_exps;    // (n_ff_exp, n_embd, n_expert)

    // Shared expert(s), always on (all shared experts fused into one FFN of width n_ff_shexp)
    tensor ffn_gate_shexp;      // (n_embd, n_ff_shexp)
    tensor ffn_up_shexp;        // (n_embd, n_ff_shexp)
    tensor ffn_down_shexp;      // (n_ff_shexp, n_embd)
    tensor ffn_gate_inp_shexp;  // optional scalar gate: (n_embd); output *= sigmoid(gate . x) (qwen2moe)

    bool is_moe() const { return bool(ffn_gate_inp); }
    // Whether the shared expert has the routed experts' types, shapes and row strides (Ling's
    // 512-wide one does), so that a backend can run it as one more row of their passes.
    bool shared_expert_like_routed() const {
        if (!ffn_up_shexp || !ffn_gate_shexp || !ffn_down_shexp) return false;
        const auto same = [](const tensor& shared, const tensor& experts) {
            return shared.type == experts.type && shared.ne[0] == experts.ne[0] && shared.ne[1] == experts.ne[1] && shared.ne[2] == 1 &&
                   shared.row_stride == experts.row_stride;
        };
        return same(ffn_gate_shexp, ffn_gate_exps) && same(ffn_up_shexp, ffn_up_exps) && same(ffn_down_shexp, ffn_down_exps);
    }
};

struct model_weights {
    tensor token_embd;   // (n_embd, n_vocab)
    tensor output_norm;  // (n_embd)
    tensor output;       // (n_embd, n_vocab); token_embd when the file ties them
    std::vector<layer_weights> layers;
};

// Calls f(tensor&, bool matmul_weight) for every tensor slot of one layer, set or not (norms,
// biases and the expert selection bias are read as values; the others are matmul weights).
template <class Layer, class F>
void for_each_layer_tensor(Layer& l, F&& f) {
    for (auto* t : {&l.attn_norm, &l.bq, &l.bk, &l.bv, &l.attn_q_norm, &l.attn_k_norm, &l.attn_q_a_norm, &l.attn_kv_a_norm, &l.ffn_norm,
                    &l.ffn_exp_probs_b}) {
        f(*t, false);
    }
    for (auto* t : {&l.wqkv, &l.wq, &l.wk, &l.wv, &l.wo, &l.wq_a, &l.wq_b, &l.wkv_a_mqa, &l.wk_b, &l.wv_b, &l.ffn_gate, &l.ffn_up,
                    &l.ffn_down, &l.ffn_gate_inp, &l.ffn_gate_exps, &l.ffn_up_exps, &l.ffn_down_exps, &l.ffn_gate_shexp,
                    &l.ffn_up_shexp, &l.ffn_down_shexp, &l.ffn_gate_inp_shexp}) {
        f(*t, true);
    }
}

// Whether t is one of l's routed-expert tensors (ffn_gate_exps, ffn_up_exps, ffn_down_exps).
inline bool is_routed_experts(const layer_weights& l, const tensor& t) {
    return &t == &l.ffn_gate_exps || &t == &l.ffn_up_exps || &t == &l.ffn_down_exps;
}

// Calls f(tensor&, bool matmul_weight) for every tensor slot of the model, set or not (the
// embedding is read as values): the model's own, then each layer's (for_each_layer_tensor).
template <class Weights, class F>
void for_each_tensor(Weights& w, F&& f) {
    f(w.token_embd, false);
    f(w.output_norm, false);
    f(w.output, true);
    for (auto& l : w.layers) for_each_layer_tensor(l, f);
}

}  // namespace moerun
